"""The reference Mixture-of-Rookies layer: every expert on every token, masked by the gates.

This is also the anchor to beat: it spends ``E / k`` times the FLOPs a
routed layer needs, but it is one dense einsum chain that is easy to trust.
Computed in float32 at full precision whatever ``x``'s dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.moe.router import Experts, MoRResult, activation_by_name, check_inputs, route, summarize

__all__ = ["mor_reference"]

_HIGHEST = lax.Precision.HIGHEST


def mor_reference(
    x: jax.Array,
    router_w: jax.Array,
    experts: Experts,
    *,
    top_k: int = 2,
    activation: str = "gelu",
) -> MoRResult:
    """Top-k routed expert FFNs over ``x: [..., d]``; see :class:`MoRResult`."""
    experts = Experts(*experts)
    check_inputs(x, router_w, experts, top_k)
    act = activation_by_name(activation)
    num_experts = experts.w_in.shape[0]
    tokens = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    routing = route(tokens, router_w, top_k)

    hidden = act(jnp.einsum("td,edf->tef", tokens, experts.w_in.astype(jnp.float32), precision=_HIGHEST))
    every = jnp.einsum("tef,efd->ted", hidden, experts.w_out.astype(jnp.float32), precision=_HIGHEST)
    # the dense gate matrix: gate_j at column e_j, zero for unchosen experts
    combine = jnp.sum(jax.nn.one_hot(routing.experts, num_experts) * routing.gates[..., None], axis=1)
    out = jnp.einsum("te,ted->td", combine, every, precision=_HIGHEST)

    loss, load = summarize(routing, num_experts)
    return MoRResult(out.astype(x.dtype).reshape(x.shape), loss, load, jnp.float32(0.0))
