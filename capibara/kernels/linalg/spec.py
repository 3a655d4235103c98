"""What the compiler knows about the linalg family, without JAX: every variant
takes the use's precision policy as its static parameters."""

from __future__ import annotations

from typing import Any

__all__ = ["RANKING", "work", "SELECTORS"]


def _policy(use: Any, ir: Any) -> dict[str, Any]:
    return dict(use.params)


#: Implementations best first per platform.
RANKING = {platform: ("xla", "reference") for platform in ("cpu", "gpu", "tpu")}

SELECTORS = {
    "xla": _policy,
    "reference": _policy,
}


def work(shapes: Any, dtypes: Any, attrs: Any) -> tuple[float, str]:
    """FLOPs of ``x @ w``."""
    rows = 1
    for n in shapes["x"][:-1]:
        rows *= n
    return 2.0 * rows * shapes["w"][0] * shapes["w"][1], "FLOP"
