"""Routed Mixture-of-Rookies: each expert computes only the tokens sent to it.

The ``T * k`` token-expert assignments are ordered by priority (every
token's first choice before any second choice, then by token position),
stably sorted by expert, and each expert takes the first ``capacity`` of its
queue into a ``[E, capacity, d]`` buffer (a gather; empty slots read a zero
row). Two batched matmuls run the experts on their buffers, and each
token gathers its ``k`` results back, weighted by its gates. Assignments past
an expert's capacity are dropped (their contribution is zero) and counted in
``dropped_fraction``.

``capacity = ceil(capacity_factor * T * k / E)``, at most ``T`` (top-k picks
distinct experts, so no expert can receive more). ``capacity_factor=None``
means ``T``: nothing is dropped and the result equals the dense reference.
FLOPs are ``E * capacity`` token-FFNs instead of the reference's ``E * T``:
``capacity_factor * k / E`` of the dense work (0.31 for 2 of 8 at 1.25).

The expert matmuls take ``x``'s dtype as operands and accumulate in float32
(``preferred_element_type``), so bf16 activations run on the AMX / MXU path.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.moe.router import Experts, MoRResult, activation_by_name, check_inputs, route, summarize

__all__ = ["capacity_of", "mor_dispatch"]


def capacity_of(tokens: int, top_k: int, num_experts: int, capacity_factor: float | None) -> int:
    """Slots per expert for ``tokens`` tokens routed to ``top_k`` of ``num_experts``."""
    if capacity_factor is None:
        return tokens
    if capacity_factor <= 0:
        raise ValueError(f"{capacity_factor=} must be positive (or None for no limit)")
    return max(1, min(tokens, math.ceil(capacity_factor * tokens * top_k / num_experts)))


def mor_dispatch(
    x: jax.Array,
    router_w: jax.Array,
    experts: Experts,
    *,
    top_k: int = 2,
    activation: str = "gelu",
    capacity_factor: float | None = 1.25,
) -> MoRResult:
    """Top-k routed expert FFNs computing only the routed tokens; see the module doc."""
    experts = Experts(*experts)
    check_inputs(x, router_w, experts, top_k)
    act = activation_by_name(activation)
    num_experts, dim, _ = experts.w_in.shape
    tokens = x.reshape(-1, dim)
    count = tokens.shape[0]
    capacity = capacity_of(count, top_k, num_experts, capacity_factor)
    routing = route(tokens, router_w, top_k)

    # Assignment a = j * T + t: slot-major, so first choices queue first.
    expert_of = routing.experts.T.reshape(-1)
    token_of = jnp.tile(jnp.arange(count, dtype=jnp.int32), top_k)
    order = jnp.argsort(expert_of, stable=True)
    sorted_expert = expert_of[order]
    per_expert = jnp.zeros(num_experts, jnp.int32).at[expert_of].add(1)
    queue_start = jnp.cumsum(per_expert) - per_expert
    rank = jnp.arange(count * top_k, dtype=jnp.int32) - queue_start[sorted_expert]
    kept = rank < capacity
    slots = num_experts * capacity
    # Dropped assignments point at one extra slot past the end, which reads
    # a zero row and is written to nowhere that matters.
    slot_sorted = jnp.where(kept, sorted_expert * capacity + rank, slots)
    slot_token = jnp.full(slots + 1, count, jnp.int32).at[slot_sorted].set(token_of[order])[:slots]

    compute = tokens.dtype
    padded = jnp.concatenate([tokens, jnp.zeros((1, dim), compute)])
    buffer = padded[slot_token].reshape(num_experts, capacity, dim)
    hidden = lax.dot_general(buffer, experts.w_in.astype(compute), (((2,), (1,)), ((0,), (0,))),
                             preferred_element_type=jnp.float32)
    hidden = act(hidden).astype(compute)
    done = lax.dot_general(hidden, experts.w_out.astype(compute), (((2,), (1,)), ((0,), (0,))),
                           preferred_element_type=jnp.float32)

    slot_of = jnp.zeros(count * top_k, jnp.int32).at[order].set(slot_sorted)
    results = jnp.concatenate([done.reshape(slots, dim), jnp.zeros((1, dim), jnp.float32)])
    picked = results[slot_of].reshape(top_k, count, dim)
    out = jnp.einsum("kt,ktd->td", routing.gates.T, picked)

    loss, load = summarize(routing, num_experts)
    dropped = jnp.sum(~kept).astype(jnp.float32) / (count * top_k)
    return MoRResult(out.astype(x.dtype).reshape(x.shape), loss, load, dropped)
