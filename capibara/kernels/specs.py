"""The registry of the families' compile-side knowledge, without JAX.

Each family folder holds a ``spec.py`` with ``SELECTORS``: implementation →
``(use, ir) -> static params | Refusal`` (with the tile tables they read). The
``select-kernels`` pass asks this registry; adding a variant is one entry there
and one in the family's ``VARIANTS``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Mapping

__all__ = ["SPEC_FAMILIES", "ranking", "selectors", "work"]

#: Every family; each keeps its compile-side knowledge in ``capibara/kernels/<family>/spec.py``.
SPEC_FAMILIES = ("attention", "scan", "collective", "fft", "vq", "linalg", "conv", "moe")


def selectors() -> dict[tuple[str, str], Callable[..., Any]]:
    """``(family, implementation) → selector`` for every family."""
    found = {}
    for family in SPEC_FAMILIES:
        module = import_module(f"capibara.kernels.{family}.spec")
        found.update({(family, name): select for name, select in module.SELECTORS.items()})
    return found


_ITEM_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1, "int32": 4}


def work(family: str, shapes: Mapping[str, Any], dtypes: Mapping[str, str],
         attrs: Mapping[str, Any]) -> tuple[float, str]:
    """``(amount, unit)`` of one call: the family's FLOP estimate (its spec's
    ``work``), or for bandwidth-bound families the bytes moved: every input
    read once and an output of the same size written."""
    module = import_module(f"capibara.kernels.{family}.spec")
    shapes = {k: tuple(v) for k, v in shapes.items()}
    if hasattr(module, "work"):
        return module.work(shapes, dtypes, attrs)
    total = 0
    for name, shape in shapes.items():
        count = 1
        for n in shape:
            count *= n
        total += count * _ITEM_BYTES.get(dtypes.get(name, "float32"), 4)
    return 2.0 * total, "B"


def ranking(platform: str) -> dict[str, tuple[str, ...]]:
    """family → implementations best first on ``platform`` (``cpu``, ``gpu``, ``tpu``)."""
    return {family: import_module(f"capibara.kernels.{family}.spec").RANKING[platform]
            for family in SPEC_FAMILIES}
