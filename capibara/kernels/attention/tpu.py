"""The Pallas TPU flash-attention kernel shipped with JAX
(``jax.experimental.pallas.ops.tpu.flash_attention``).

That kernel wants ``[batch, heads, seq, head_dim]`` and as many kv heads as
query heads, so grouped kv heads are repeated. A padding mask becomes the
kernel's segment ids (query segment 1, kept keys 1, padded keys 0); other
masks would need a full ``[batch, heads, seq_q, seq_kv]`` bias and are refused.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from capibara.kernels.attention.inputs import check_inputs, default_scale, mask4
from capibara.kernels.base import Unsupported

__all__ = ["attention_pallas_tpu"]


def attention_pallas_tpu(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                         mask: jax.Array | None = None, scale: float | None = None,
                         block_q: int = 128, block_kv: int = 128) -> jax.Array:
    """Pallas TPU flash attention with ``block_q`` x ``block_kv`` tiles (forward and backward)."""
    dims = check_inputs(q, k, v)
    backend = jax.default_backend()
    if backend != "tpu":
        raise Unsupported(f"pallas_tpu attention needs a TPU, the default backend is {backend!r}")
    bq, bk = min(block_q, dims.seq_q), min(block_kv, dims.seq_kv)
    if dims.seq_q % bq:
        raise Unsupported(f"seq_q={dims.seq_q} must be a multiple of {block_q=}")
    if dims.seq_kv % bk:
        raise Unsupported(f"seq_kv={dims.seq_kv} must be a multiple of {block_kv=}")
    keep = mask4(mask, dims)
    if keep is not None and keep.shape[1:3] != (1, 1):
        raise Unsupported(
            f"pallas_tpu attention takes padding masks [batch, seq_kv] only, got a mask of shape {keep.shape}")
    # Imported here: the module pulls in Pallas, which only a TPU run needs.
    from jax.experimental.pallas.ops.tpu import flash_attention as pallas_fa

    segments = None
    if keep is not None:
        kv_ids = jnp.broadcast_to(keep[:, 0, 0, :], (dims.batch, dims.seq_kv)).astype(jnp.int32)
        segments = pallas_fa.SegmentIds(q=jnp.ones((dims.batch, dims.seq_q), jnp.int32), kv=kv_ids)
    blocks = pallas_fa.BlockSizes(
        block_q=bq, block_k_major=bk, block_k=bk, block_b=1,
        block_q_major_dkv=bq, block_k_major_dkv=bk, block_k_dkv=bk, block_q_dkv=bq,
        block_k_major_dq=bk, block_k_dq=bk, block_q_dq=bq)
    heads_first = lambda x: jnp.swapaxes(x, 1, 2)  # noqa: E731 - [b, s, h, d] <-> [b, h, s, d]
    kh = jnp.repeat(heads_first(k), dims.groups, axis=1)
    vh = jnp.repeat(heads_first(v), dims.groups, axis=1)
    out = pallas_fa.flash_attention(heads_first(q), kh, vh, segment_ids=segments, causal=causal,
                                    sm_scale=default_scale(dims, scale), block_sizes=blocks)
    return heads_first(out)
