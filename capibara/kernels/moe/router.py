"""Top-k softmax routing and the Switch-style load-balancing loss, shared by every moe variant.

Routing runs in float32 whatever the activations' dtype: which experts a
token reaches is decided by small logit differences, and a bf16 router would
flip choices from one step to the next.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Experts", "MoRResult", "Routing", "check_inputs", "route", "summarize"]

_ACTIVATIONS = {
    "gelu": jax.nn.gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


class Experts(NamedTuple):
    """The experts' feed-forward weights: ``w_in [E, d, f]``, ``w_out [E, f, d]``.

    Expert ``e`` maps a token ``x [d]`` to ``act(x @ w_in[e]) @ w_out[e]``.
    """

    w_in: jax.Array
    w_out: jax.Array


class MoRResult(NamedTuple):
    """The output of :func:`capibara.kernels.moe.mor` (a NamedTuple, so a pytree).

    - ``output``: ``x``'s shape and dtype: ``sum_j gate_j * expert_{e_j}(x)``
      over the token's top-k experts, gates renormalized to sum to 1.
    - ``load_balancing_loss``: ``E * sum_e f_e * P_e`` (Switch Transformer),
      ``f_e`` the fraction of the ``T * k`` token-expert assignments that
      chose ``e`` (routing decision, no gradient), ``P_e`` the mean router
      probability of ``e`` (differentiable). 1 when perfectly balanced.
    - ``expert_load``: ``f_e``, ``[E]``.
    - ``dropped_fraction``: the fraction of assignments an expert's capacity
      turned away (their contribution is zero); always 0 for ``reference``.
    """

    output: jax.Array
    load_balancing_loss: jax.Array
    expert_load: jax.Array
    dropped_fraction: jax.Array


class Routing(NamedTuple):
    """Per-token routing: ``probs [T, E]``, ``experts [T, k]`` (int32, best
    first), ``gates [T, k]`` (the chosen probabilities renormalized)."""

    probs: jax.Array
    experts: jax.Array
    gates: jax.Array


def activation_by_name(name: str):
    """The expert nonlinearity by name (``gelu`` is the tanh approximation)."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"{name=} is not an activation; expected one of {sorted(_ACTIVATIONS)}") from None


def check_inputs(x: jax.Array, router_w: jax.Array, experts: Experts, top_k: int) -> None:
    """Raise ``ValueError`` for inputs no variant can route."""
    e, d, f = experts.w_in.shape
    if experts.w_out.shape != (e, f, d):
        raise ValueError(f"w_out must be [E, f, d] = {(e, f, d)}, got {experts.w_out.shape}")
    if router_w.shape != (d, e):
        raise ValueError(f"router_w must be [d, E] = {(d, e)}, got {router_w.shape}")
    if x.ndim < 1 or x.shape[-1] != d:
        raise ValueError(f"x's last axis must be the model dim {d}, got shape {x.shape}")
    if not 1 <= top_k <= e:
        raise ValueError(f"{top_k=} must be between 1 and the number of experts {e}")


def route(tokens: jax.Array, router_w: jax.Array, top_k: int) -> Routing:
    """Softmax router over ``tokens [T, d]`` with top-k selection."""
    logits = jnp.matmul(tokens.astype(jnp.float32), router_w.astype(jnp.float32),
                        precision=lax.Precision.HIGHEST)
    probs = jax.nn.softmax(logits, axis=-1)
    top, experts = lax.top_k(probs, top_k)
    gates = top / jnp.sum(top, axis=-1, keepdims=True)
    return Routing(probs, experts.astype(jnp.int32), gates)


def summarize(routing: Routing, num_experts: int) -> tuple[jax.Array, jax.Array]:
    """(load-balancing loss, expert load ``f_e``) of a routing decision."""
    tokens, k = routing.experts.shape
    chosen = jnp.zeros(num_experts, jnp.float32).at[routing.experts.reshape(-1)].add(1.0)
    load = chosen / (tokens * k)
    mean_prob = jnp.mean(routing.probs, axis=0)
    return num_experts * jnp.sum(load * mean_prob), load
