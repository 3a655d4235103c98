"""The JAX half of the moe family: what ``capibara.kernels.moe`` exports."""

from __future__ import annotations

import jax

from capibara.kernels.base import EVERYWHERE, Variant
from capibara.kernels.moe.dispatch import capacity_of, mor_dispatch
from capibara.kernels.moe.reference import mor_reference
from capibara.kernels.moe.router import Experts, MoRResult, route

__all__ = ["Experts", "MoRResult", "VARIANTS", "capacity_of", "mor", "route"]

VARIANTS: dict[str, Variant] = {
    "reference": Variant("moe", "reference", mor_reference, EVERYWHERE,
                         {"top_k": 2, "activation": "gelu"},
                         "all experts on all tokens, masked by the gates; the oracle and the anchor"),
    "dispatch": Variant("moe", "dispatch", mor_dispatch, EVERYWHERE,
                        {"top_k": 2, "activation": "gelu", "capacity_factor": 1.25},
                        "sorted per-expert buffers with a capacity; computes only routed tokens"),
}


def mor(
    x: jax.Array,
    router_w: jax.Array,
    experts: Experts,
    *,
    top_k: int = 2,
    implementation: str = "reference",
    **static,
) -> MoRResult:
    """Route ``x`` through its ``top_k`` experts with the named variant; see the module doc."""
    return VARIANTS[implementation](x, router_w, experts, top_k=top_k, **static)
