"""The registry of the families' compile-side knowledge, without JAX.

Each family folder holds a ``spec.py`` with ``SELECTORS``: implementation →
``(use, ir) -> static params | Refusal`` (with the tile tables they read). The
``select-kernels`` pass asks this registry; adding a variant is one entry there
and one in the family's ``VARIANTS``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

__all__ = ["SPEC_FAMILIES", "selectors"]

#: Every family; each keeps its compile-side knowledge in ``capibara/kernels/<family>/spec.py``.
SPEC_FAMILIES = ("attention", "linalg", "vq", "moe", "collective", "scan", "conv", "fft")


def selectors() -> dict[tuple[str, str], Callable[..., Any]]:
    """``(family, implementation) → selector`` for every family."""
    found = {}
    for family in SPEC_FAMILIES:
        module = import_module(f"capibara.kernels.{family}.spec")
        found.update({(family, name): select for name, select in module.SELECTORS.items()})
    return found
