"""What the compiler knows about the linalg family, without JAX: every variant
takes the use's precision policy as its static parameters."""

from __future__ import annotations

from typing import Any

__all__ = ["SELECTORS"]


def _policy(use: Any, ir: Any) -> dict[str, Any]:
    return dict(use.params)


SELECTORS = {
    "xla": _policy,
    "reference": _policy,
}
