"""The registry of the families' compile-side knowledge, without JAX.

Each family folder may hold a ``spec.py`` with ``SELECTORS``: implementation →
``(use, ir) -> static params | Refusal``. The ``select-kernels`` pass asks this
registry; a family without a spec module keeps its selectors in the pass.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

__all__ = ["SPEC_FAMILIES", "selectors"]

#: Families whose compile-side knowledge lives in ``capibara/kernels/<family>/spec.py``.
SPEC_FAMILIES = ("scan", "conv", "fft")


def selectors() -> dict[tuple[str, str], Callable[..., Any]]:
    """``(family, implementation) → selector`` for every family with a spec module."""
    found = {}
    for family in SPEC_FAMILIES:
        module = import_module(f"capibara.kernels.{family}.spec")
        found.update({(family, name): select for name, select in module.SELECTORS.items()})
    return found
