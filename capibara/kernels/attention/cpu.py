"""Blocked online-softmax attention (flash-style) for CPUs, forward and backward.

Why this shape (measured on the 2-core dev box, B4 H8 S2048 D64; see
``benchmarks/kernels_attention.py``):

- ``jax.nn.dot_product_attention`` builds the full score matrix (1 GiB of
  temporaries here) and masks it afterwards, so causal costs as much as full
  and most of its time is page faults on fresh buffers.
- Here one loop step handles one (batch row, kv head) pair: the ``groups``
  query heads that share a kv head attend as one ``[groups * block_q, head_dim]``
  matrix, so grouped/multi-query attention gets bigger matmuls for free. A
  step's temporaries are one ``[groups, block_q, block_kv]`` score tile and
  its exponentials (2 MiB for 512 x 512 f32), reused by every step of a
  ``fori_loop``; unrolling the blocks in Python instead made XLA keep
  170-630 MiB of temporaries alive and run 1.5-2x slower.
- Causal block skipping is in the loop bounds: for query block ``i`` the kv
  loop runs over the blocks entirely below the diagonal without a mask, then
  over the few straddling it with one; blocks above it are never visited.
- ``compute_dtype="bfloat16"`` feeds the matmuls bf16 with f32 accumulation
  (``preferred_element_type``), the fast path on CPUs with AMX/AVX512-BF16;
  the softmax statistics and accumulators stay f32.

The backward pass is FlashAttention-2's: it saves only the output and the
per-row log-sum-exp, and recomputes each score tile, looping over kv blocks
outside (their dk, dv accumulate in the loop carry) and query blocks inside.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.attention.inputs import Dims, check_inputs, default_scale, grouped_mask, mask4
from capibara.kernels.base import Unsupported

__all__ = ["BlockSizes", "attention_cpu_blocked"]


@dataclass(frozen=True)
class BlockSizes:
    """Tile sizes for :func:`attention_cpu_blocked`; a sequence shorter than its
    block is one block. 512 x 512 was the fastest of 128-1024 at S=2048 here."""

    block_q: int = 512
    block_kv: int = 512


@dataclass(frozen=True)
class _Static:
    """Everything the custom VJP treats as a compile-time constant."""

    causal: bool
    scale: float
    block_q: int
    block_kv: int
    compute_dtype: str


def attention_cpu_blocked(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                          mask: jax.Array | None = None, scale: float | None = None,
                          block_q: int = BlockSizes.block_q, block_kv: int = BlockSizes.block_kv,
                          compute_dtype: str | None = None) -> jax.Array:
    """Attention by ``[block_q, block_kv]`` tiles with an online softmax.

    ``compute_dtype`` is the matmul operand dtype (default: q's dtype);
    accumulation is always float32. Raises :class:`Unsupported` when a
    sequence is not a multiple of its block.
    """
    dims = check_inputs(q, k, v)
    bq, bk = min(block_q, dims.seq_q), min(block_kv, dims.seq_kv)
    if bq <= 0 or bk <= 0:
        raise ValueError(f"block sizes must be positive, got {block_q=}, {block_kv=}")
    if dims.seq_q % bq:
        raise Unsupported(f"seq_q={dims.seq_q} must be a multiple of {block_q=}")
    if dims.seq_kv % bk:
        raise Unsupported(f"seq_kv={dims.seq_kv} must be a multiple of {block_kv=}")
    static = _Static(causal, default_scale(dims, scale), bq, bk,
                     jnp.dtype(compute_dtype or q.dtype).name)
    return _flash(q, k, v, grouped_mask(mask4(mask, dims), dims), static)


# --- the custom VJP -------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _flash(q, k, v, mask, static):
    return _forward(q, k, v, mask, static)[0]


def _flash_fwd(q, k, v, mask, static):
    out, lse = _forward(q, k, v, mask, static)
    return out, (q, k, v, mask, out, lse)


def _flash_bwd(static, residuals, d_out):
    q, k, v, mask, out, lse = residuals
    dq, dk, dv = _backward(q, k, v, mask, out, lse, d_out, static)
    # The mask is boolean: it has no cotangent.
    return dq, dk, dv, None


_flash.defvjp(_flash_fwd, _flash_bwd)


# --- per (batch row, kv head) slicing -----------------------------------------------------


def _dims(q, k) -> Dims:
    b, sq, h, d = q.shape
    return Dims(b, sq, k.shape[1], h, k.shape[2], d)


def _head_slices(idx, dims: Dims):
    """(batch row, kv head) of loop step ``idx``."""
    return idx // dims.kv_heads, idx % dims.kv_heads


def _query_heads(x, b, h, dims: Dims):
    """``x[b, :, h*groups:(h+1)*groups]`` of a q-shaped array as ``[groups, seq_q, head_dim]``."""
    g = dims.groups
    block = lax.dynamic_slice(x, (b, 0, h * g, 0), (1, dims.seq_q, g, dims.head_dim))[0]
    return jnp.swapaxes(block, 0, 1)


def _kv_head(x, b, h, dims: Dims):
    """``x[b, :, h]`` of a k-shaped array as ``[seq_kv, head_dim]``."""
    return lax.dynamic_slice(x, (b, 0, h, 0), (1, dims.seq_kv, 1, dims.head_dim))[0, :, 0]


def _mask_head(mask, b, h):
    """The grouped mask's ``[groups|1, seq_q|1, seq_kv|1]`` slab for (b, h), or None."""
    if mask is None:
        return None
    bm, hm = mask.shape[:2]
    start = (b if bm > 1 else 0, h if hm > 1 else 0, 0, 0, 0)
    return lax.dynamic_slice(mask, start, (1, 1) + mask.shape[2:])[0, 0]


def _tile_mask(mask, i, j, static: _Static, causal_tile: bool):
    """The keep-mask of score tile (i, j): the user's mask slice and/or the
    diagonal, broadcastable to ``[groups, block_q, block_kv]``; None keeps all."""
    keep = None
    if mask is not None:
        rows = lax.dynamic_slice_in_dim(mask, i * static.block_q, static.block_q, 1) if mask.shape[1] > 1 else mask
        keep = (lax.dynamic_slice_in_dim(rows, j * static.block_kv, static.block_kv, 2)
                if rows.shape[2] > 1 else rows)
    if causal_tile:
        shape = (static.block_q, static.block_kv)
        rows = i * static.block_q + lax.broadcasted_iota(jnp.int32, shape, 0)
        cols = j * static.block_kv + lax.broadcasted_iota(jnp.int32, shape, 1)
        diagonal = cols <= rows
        keep = diagonal if keep is None else keep & diagonal
    return keep


def _causal_kv_range(i, static: _Static, n_kv: int):
    """For query block ``i``: kv blocks ``[0, below)`` lie on or below the
    diagonal for every row (no mask needed) and ``[below, needed)`` straddle it;
    blocks from ``needed`` on are above it for every row and are skipped."""
    first_row, last_row = i * static.block_q, (i + 1) * static.block_q - 1
    below = jnp.minimum((first_row + 1) // static.block_kv, n_kv)
    needed = jnp.minimum(last_row // static.block_kv + 1, n_kv)
    return below, needed


def _causal_q_range(j, static: _Static, n_q: int):
    """For kv block ``j``: query blocks ``[start, below)`` straddle the
    diagonal and ``[below, n_q)`` see all of block ``j``; earlier ones see none of it."""
    first_key, last_key = j * static.block_kv, (j + 1) * static.block_kv - 1
    start = jnp.minimum(first_key // static.block_q, n_q)
    below = jnp.clip(-(-last_key // static.block_q), start, n_q)
    return start, below


# --- forward ---------------------------------------------------------------------------


def _forward(q, k, v, mask, static: _Static):
    dims = _dims(q, k)
    cd = jnp.dtype(static.compute_dtype)

    def pair(idx, carry):
        out, lse = carry
        b, h = _head_slices(idx, dims)
        qh = (_query_heads(q, b, h, dims).astype(jnp.float32) * static.scale).astype(cd)
        kh, vh = _kv_head(k, b, h, dims).astype(cd), _kv_head(v, b, h, dims).astype(cd)
        oh, lse_h = _attend(qh, kh, vh, _mask_head(mask, b, h), static)
        out = lax.dynamic_update_slice(
            out, jnp.swapaxes(oh, 0, 1)[None].astype(out.dtype), (b, 0, h * dims.groups, 0))
        return out, lax.dynamic_update_slice(lse, lse_h[None], (idx, 0, 0))

    init = (jnp.zeros(q.shape, q.dtype),
            jnp.zeros((dims.batch * dims.kv_heads, dims.groups, dims.seq_q), jnp.float32))
    return lax.fori_loop(0, dims.batch * dims.kv_heads, pair, init)


def _attend(qh, kh, vh, mask, static: _Static):
    """One kv head: ``qh [groups, seq_q, d]`` (pre-scaled), ``kh, vh [seq_kv, d]``
    → output ``[groups, seq_q, d]`` f32 and log-sum-exp ``[groups, seq_q]``."""
    groups, seq_q, d = qh.shape
    bq, bk = static.block_q, static.block_kv
    n_q, n_kv = seq_q // bq, kh.shape[0] // bk

    def q_block(i, carry):
        out, lse = carry
        qb = lax.dynamic_slice_in_dim(qh, i * bq, bq, 1)

        def kv_step(causal_tile):
            def step(j, state):
                kb = lax.dynamic_slice_in_dim(kh, j * bk, bk, 0)
                vb = lax.dynamic_slice_in_dim(vh, j * bk, bk, 0)
                return _online_softmax_step(state, qb, kb, vb, _tile_mask(mask, i, j, static, causal_tile))
            return step

        state = (jnp.full((groups, bq), -jnp.inf, jnp.float32),
                 jnp.zeros((groups, bq), jnp.float32),
                 jnp.zeros((groups, bq, d), jnp.float32))
        if static.causal:
            below, needed = _causal_kv_range(i, static, n_kv)
            state = lax.fori_loop(0, below, kv_step(False), state)
            state = lax.fori_loop(below, needed, kv_step(True), state)
        else:
            state = lax.fori_loop(0, n_kv, kv_step(False), state)
        m, total, acc = state
        # A row that saw no key has total 0: output 0, and lse +inf so the
        # backward pass recomputes p = exp(s - lse) = 0 for it.
        seen = total > 0
        ob = acc * jnp.where(seen, 1.0 / jnp.where(seen, total, 1.0), 0.0)[..., None]
        lse_b = jnp.where(seen, m + jnp.log(jnp.where(seen, total, 1.0)), jnp.inf)
        return (lax.dynamic_update_slice_in_dim(out, ob, i * bq, 1),
                lax.dynamic_update_slice_in_dim(lse, lse_b, i * bq, 1))

    init = (jnp.zeros((groups, seq_q, d), jnp.float32), jnp.zeros((groups, seq_q), jnp.float32))
    return lax.fori_loop(0, n_q, q_block, init)


def _online_softmax_step(state, qb, kb, vb, keep):
    """Fold one kv tile into the running (max, sum, unnormalized output)."""
    m, total, acc = state
    s = jnp.einsum("gqd,kd->gqk", qb, kb, preferred_element_type=jnp.float32)
    if keep is not None:
        s = jnp.where(keep, s, -jnp.inf)
    m_new = jnp.maximum(m, s.max(axis=-1))
    # While every key seen so far is masked the max is -inf; shift by 0 then
    # (p is 0 either way) instead of computing -inf - -inf.
    shift = jnp.where(m_new == -jnp.inf, 0.0, m_new) if keep is not None else m_new
    p = jnp.exp(s - shift[..., None])
    rescale = jnp.exp(m - shift)
    total = rescale * total + p.sum(axis=-1)
    acc = rescale[..., None] * acc + jnp.einsum(
        "gqk,kd->gqd", p.astype(vb.dtype), vb, preferred_element_type=jnp.float32)
    return m_new, total, acc


# --- backward --------------------------------------------------------------------------


def _backward(q, k, v, mask, out, lse, d_out, static: _Static):
    dims = _dims(q, k)
    cd = jnp.dtype(static.compute_dtype)

    def pair(idx, grads):
        dq, dk, dv = grads
        b, h = _head_slices(idx, dims)
        qh = (_query_heads(q, b, h, dims).astype(jnp.float32) * static.scale).astype(cd)
        kh, vh = _kv_head(k, b, h, dims).astype(cd), _kv_head(v, b, h, dims).astype(cd)
        doh = _query_heads(d_out, b, h, dims).astype(jnp.float32)
        # delta_i = sum_d dO_i * O_i = sum_j P_ij dP_ij: the softmax Jacobian's row term.
        delta = jnp.sum(doh * _query_heads(out, b, h, dims).astype(jnp.float32), axis=-1)
        dqh, dkh, dvh = _attend_bwd(qh, kh, vh, doh.astype(cd), lse[idx], delta,
                                    _mask_head(mask, b, h), static)
        dq = lax.dynamic_update_slice(dq, jnp.swapaxes(dqh, 0, 1)[None], (b, 0, h * dims.groups, 0))
        dk = lax.dynamic_update_slice(dk, dkh[None, :, None], (b, 0, h, 0))
        dv = lax.dynamic_update_slice(dv, dvh[None, :, None], (b, 0, h, 0))
        return dq, dk, dv

    init = (jnp.zeros(q.shape, jnp.float32), jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32))
    dq, dk, dv = lax.fori_loop(0, dims.batch * dims.kv_heads, pair, init)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


def _attend_bwd(qh, kh, vh, doh, lse, delta, mask, static: _Static):
    """Gradients for one kv head (shapes as in :func:`_attend`); dq is returned
    for the unscaled q, dk and dv in f32."""
    groups, seq_q, d = qh.shape
    bq, bk = static.block_q, static.block_kv
    n_q, n_kv = seq_q // bq, kh.shape[0] // bk
    cd = qh.dtype

    def kv_block(j, carry):
        dq, dk, dv = carry
        kb = lax.dynamic_slice_in_dim(kh, j * bk, bk, 0)
        vb = lax.dynamic_slice_in_dim(vh, j * bk, bk, 0)

        def q_step(causal_tile):
            def step(i, state):
                dk_j, dv_j, dq = state
                rows = functools.partial(lax.dynamic_slice_in_dim, start_index=i * bq, slice_size=bq, axis=1)
                qb, dob, lse_b, delta_b = rows(qh), rows(doh), rows(lse), rows(delta)
                s = jnp.einsum("gqd,kd->gqk", qb, kb, preferred_element_type=jnp.float32)
                keep = _tile_mask(mask, i, j, static, causal_tile)
                if keep is not None:
                    s = jnp.where(keep, s, -jnp.inf)
                p = jnp.exp(s - lse_b[..., None])
                dv_j = dv_j + jnp.einsum("gqk,gqd->kd", p.astype(cd), dob, preferred_element_type=jnp.float32)
                dp = jnp.einsum("gqd,kd->gqk", dob, vb, preferred_element_type=jnp.float32)
                ds = (p * (dp - delta_b[..., None])).astype(cd)
                dq_i = rows(dq) + jnp.einsum("gqk,kd->gqd", ds, kb, preferred_element_type=jnp.float32)
                dk_j = dk_j + jnp.einsum("gqk,gqd->kd", ds, qb, preferred_element_type=jnp.float32)
                return dk_j, dv_j, lax.dynamic_update_slice_in_dim(dq, dq_i, i * bq, 1)
            return step

        state = (jnp.zeros((bk, d), jnp.float32), jnp.zeros((bk, d), jnp.float32), dq)
        if static.causal:
            start, below = _causal_q_range(j, static, n_q)
            state = lax.fori_loop(start, below, q_step(True), state)
            state = lax.fori_loop(below, n_q, q_step(False), state)
        else:
            state = lax.fori_loop(0, n_q, q_step(False), state)
        dk_j, dv_j, dq = state
        return (dq, lax.dynamic_update_slice_in_dim(dk, dk_j, j * bk, 0),
                lax.dynamic_update_slice_in_dim(dv, dv_j, j * bk, 0))

    init = (jnp.zeros((groups, seq_q, d), jnp.float32),
            jnp.zeros((kh.shape[0], d), jnp.float32), jnp.zeros((kh.shape[0], d), jnp.float32))
    dq, dk, dv = lax.fori_loop(0, n_kv, kv_block, init)
    # s = (scale·q) kᵀ: dk already used the scaled q; dq needs the scale once.
    return dq * static.scale, dk, dv
