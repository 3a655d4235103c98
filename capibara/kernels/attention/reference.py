"""Attention as written in the textbook: the whole score matrix, one softmax, float32.

The oracle for every other variant and the fallback where none applies. It
materializes ``[batch, heads, seq_q, seq_kv]`` scores, so it is only for
shapes where that fits; gradients come from JAX's autodiff.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.attention.inputs import check_inputs, default_scale, grouped_mask, mask4

__all__ = ["attention_reference"]


def attention_reference(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                        mask: jax.Array | None = None, scale: float | None = None) -> jax.Array:
    """softmax(q kᵀ · scale, masked) v in float32, returned in q's dtype and layout."""
    dims = check_inputs(q, k, v)
    scale = default_scale(dims, scale)
    b, sq, _, d = q.shape
    # HIGHEST: on TPU/GPU the default f32 dot precision rounds to bf16/tf32,
    # which would make the oracle no better than what it checks.
    hi = lax.Precision.HIGHEST
    qg = q.astype(jnp.float32).reshape(b, sq, dims.kv_heads, dims.groups, d)
    s = jnp.einsum("bqhgd,bkhd->bhgqk", qg, k.astype(jnp.float32), precision=hi) * scale

    keep = grouped_mask(mask4(mask, dims), dims)
    if causal:
        rows = lax.broadcasted_iota(jnp.int32, (sq, dims.seq_kv), 0)
        cols = lax.broadcasted_iota(jnp.int32, (sq, dims.seq_kv), 1)
        keep = cols <= rows if keep is None else keep & (cols <= rows)
    if keep is not None:
        s = jnp.where(keep, s, -jnp.inf)

    # The max only stabilizes exp; it cancels in the ratio, so no gradient
    # flows through it. A row with every key masked has max -inf: shift by 0
    # instead, its p is all zeros and its output zero.
    m = lax.stop_gradient(s.max(axis=-1, keepdims=True))
    p = jnp.exp(s - jnp.where(jnp.isfinite(m), m, 0.0))
    total = p.sum(axis=-1, keepdims=True)
    w = p / jnp.where(total > 0, total, 1.0)
    o = jnp.einsum("bhgqk,bkhd->bqhgd", w, v.astype(jnp.float32), precision=hi)
    return o.reshape(q.shape).astype(q.dtype)
