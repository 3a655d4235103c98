"""What the compiler knows about the moe family, without JAX: the expert capacity
and when dispatch applies (the ``select-kernels`` pass asks)."""

from __future__ import annotations

from typing import Any

from capibara.kernels.selection import Refusal, tuning_mode

__all__ = ["RANKING", "work", "MOE_CAPACITY", "SELECTORS"]

#: Expert capacity per token share (dispatch drops the assignments beyond it):
#: 1.25 is the Switch Transformer's training default with a load-balancing loss
#: keeping experts even; without that loss routing skews, so 2.0; ``aggressive``
#: trades a few more drops for tighter buffers.
MOE_CAPACITY = {"balanced": 1.25, "unbalanced": 2.0, "aggressive": 1.0}


def _dispatch(use: Any, ir: Any) -> dict[str, Any] | Refusal:
    experts, top_k = int(use.shapes["router"][1]), int(use.attrs["top_k"])
    if top_k >= experts:
        return Refusal(f"top_k {top_k} of {experts} experts runs every expert on every token")
    if not use.attrs.get("load_balancing"):
        return {"capacity_factor": MOE_CAPACITY["unbalanced"]}
    return {"capacity_factor": MOE_CAPACITY["aggressive" if tuning_mode(ir) == "aggressive"
                                            else "balanced"]}


#: Implementations best first per platform.
RANKING = {platform: ("dispatch", "reference") for platform in ("cpu", "gpu", "tpu")}

SELECTORS = {
    "dispatch": _dispatch,
    "reference": lambda use, ir: {},
}


def work(shapes: Any, dtypes: Any, attrs: Any) -> tuple[float, str]:
    """FLOPs of routing every token and running its ``top_k`` experts."""
    n, d = shapes["x"]
    experts, _, f = shapes["w_in"]
    top_k = int(attrs.get("top_k", 2))
    return 2.0 * n * (d * experts + top_k * 2 * d * f), "FLOP"
