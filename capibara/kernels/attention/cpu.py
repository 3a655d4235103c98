"""Blocked online-softmax attention (flash-style) for CPUs, forward and backward.

Why this shape (benchmarks/kernels_attention.py; numbers in benchmarks/RESULTS.md):

- ``jax.nn.dot_product_attention`` builds the full score matrix (1 GiB of
  temporaries here) and masks it afterwards, so causal costs as much as full
  and most of its time is page faults on fresh buffers.
- Here one loop step handles a few kv heads of one batch row, each with the
  ``groups`` query heads that share it, attending as one ``[groups * block_q,
  head_dim]`` matrix per kv head (grouped/multi-query attention gets bigger
  matmuls for free; as a 4-d ``[heads, groups, ...]`` einsum XLA copies every
  score tile once more). A step's temporaries are one
  ``[heads, groups * block_q, block_kv]`` score tile and its exponentials,
  reused by every step of a ``fori_loop``; unrolled Python loops make XLA
  keep every block's temporaries alive.
- Causal block skipping is in the loop bounds: for query block ``i`` the kv
  loop runs over the blocks entirely below the diagonal without a mask;
  blocks above it are never visited. Tiles straddling the diagonal are split
  into quarters, so the quarter above it is skipped too. With square tiles
  the diagonal tiles of all query blocks run first, together
  (:func:`_diagonal_states`): half-size tiles one block at a time make
  matmuls too small for XLA to split across cores.
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
    block is one block. ``heads_per_step`` kv heads share a loop step; None
    picks the most that keep ``heads_per_step * groups <=``
    ``QUERY_HEADS_PER_STEP`` (1) query heads.

    512 x 512 is the fastest square tile on a machine the job has to itself:
    XLA splits a matmul across cores only when it is big enough (the tile
    sweep is in benchmarks/RESULTS.md; benchmarks/kernels_attention.py)."""

    block_q: int = 512
    block_kv: int = 512
    heads_per_step: int | None = None


# Query heads per loop step when heads_per_step is None: one head's score tile
# and exponentials (2 MiB at 512 x 512 f32) fit a core's L2 (benchmarks/kernels_attention.py).
QUERY_HEADS_PER_STEP = 1


def _auto_heads_per_step(dims: Dims) -> int:
    fits = [h for h in range(1, dims.kv_heads + 1)
            if dims.kv_heads % h == 0 and h * dims.groups <= QUERY_HEADS_PER_STEP]
    return max(fits, default=1)


@dataclass(frozen=True)
class _Static:
    """Everything the custom VJP treats as a compile-time constant."""

    causal: bool
    scale: float
    block_q: int
    block_kv: int
    compute_dtype: str
    heads_per_step: int


def attention_cpu_blocked(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                          mask: jax.Array | None = None, scale: float | None = None,
                          block_q: int = BlockSizes.block_q, block_kv: int = BlockSizes.block_kv,
                          heads_per_step: int | None = BlockSizes.heads_per_step,
                          compute_dtype: str | None = None) -> jax.Array:
    """Attention by ``[block_q, block_kv]`` tiles with an online softmax.

    ``compute_dtype`` is the matmul operand dtype (default: q's dtype);
    accumulation is always float32. ``heads_per_step`` kv heads (with their
    query groups) are batched into each loop step (default: see
    :class:`BlockSizes`). Raises :class:`Unsupported` when a sequence is not a
    multiple of its block or ``kv_heads`` not a multiple of ``heads_per_step``.
    """
    dims = check_inputs(q, k, v)
    bq, bk = min(block_q, dims.seq_q), min(block_kv, dims.seq_kv)
    if bq <= 0 or bk <= 0:
        raise ValueError(f"block sizes must be positive, got {block_q=}, {block_kv=}")
    if dims.seq_q % bq:
        raise Unsupported(f"seq_q={dims.seq_q} must be a multiple of {block_q=}")
    if dims.seq_kv % bk:
        raise Unsupported(f"seq_kv={dims.seq_kv} must be a multiple of {block_kv=}")
    hb = _auto_heads_per_step(dims) if heads_per_step is None else min(heads_per_step, dims.kv_heads)
    if hb <= 0:
        raise ValueError(f"{heads_per_step=} must be positive")
    if dims.kv_heads % hb:
        raise Unsupported(f"kv_heads={dims.kv_heads} must be a multiple of {heads_per_step=}")
    static = _Static(causal, default_scale(dims, scale), bq, bk,
                     jnp.dtype(compute_dtype or q.dtype).name, hb)
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


def _steps(dims: Dims, static: _Static) -> int:
    return dims.batch * dims.kv_heads // static.heads_per_step


def _head_slices(idx, dims: Dims, static: _Static):
    """(batch row, first kv head) of loop step ``idx``."""
    per_row = dims.kv_heads // static.heads_per_step
    return idx // per_row, (idx % per_row) * static.heads_per_step


def _query_heads(x, b, h, dims: Dims, static: _Static):
    """The query heads of kv heads ``h .. h + heads_per_step`` in row ``b`` of a
    q-shaped array, as ``[heads_per_step, groups, seq_q, head_dim]``."""
    hb, g = static.heads_per_step, dims.groups
    block = lax.dynamic_slice(x, (b, 0, h * g, 0), (1, dims.seq_q, hb * g, dims.head_dim))[0]
    return jnp.transpose(block.reshape(dims.seq_q, hb, g, dims.head_dim), (1, 2, 0, 3))


def _kv_heads(x, b, h, dims: Dims, static: _Static):
    """kv heads ``h .. h + heads_per_step`` of row ``b`` as ``[heads_per_step, seq_kv, head_dim]``."""
    block = lax.dynamic_slice(x, (b, 0, h, 0), (1, dims.seq_kv, static.heads_per_step, dims.head_dim))[0]
    return jnp.swapaxes(block, 0, 1)


def _put_query_heads(out, oh, b, h, dims: Dims):
    """Write ``[heads_per_step, groups, seq_q, d]`` back into a q-shaped array."""
    hb, g = oh.shape[:2]
    block = jnp.transpose(oh, (2, 0, 1, 3)).reshape(1, dims.seq_q, hb * g, dims.head_dim)
    return lax.dynamic_update_slice(out, block.astype(out.dtype), (b, 0, h * g, 0))


def _put_kv_heads(out, xh, b, h):
    return lax.dynamic_update_slice(out, jnp.swapaxes(xh, 0, 1)[None].astype(out.dtype), (b, 0, h, 0))


def _mask_heads(mask, b, h, static: _Static):
    """The grouped mask's ``[heads_per_step|1, groups|1, seq_q|1, seq_kv|1]`` slab, or None."""
    if mask is None:
        return None
    bm, hm = mask.shape[:2]
    heads = static.heads_per_step if hm > 1 else 1
    start = (b if bm > 1 else 0, h if hm > 1 else 0, 0, 0, 0)
    return lax.dynamic_slice(mask, start, (1, heads) + mask.shape[2:])[0]


def _tile_mask(mask, row0, col0, rows: int, cols: int, causal_tile: bool):
    """The keep-mask of the score tile of query rows ``row0 .. row0 + rows`` and
    keys ``col0 .. col0 + cols``: the user's mask slice and/or the diagonal,
    broadcastable to ``[heads, groups, rows, cols]``; None keeps all."""
    keep = None
    if mask is not None:
        sliced = lax.dynamic_slice_in_dim(mask, row0, rows, 2) if mask.shape[2] > 1 else mask
        keep = lax.dynamic_slice_in_dim(sliced, col0, cols, 3) if sliced.shape[3] > 1 else sliced
    if causal_tile:
        diagonal = (col0 + lax.broadcasted_iota(jnp.int32, (rows, cols), 1)
                    <= row0 + lax.broadcasted_iota(jnp.int32, (rows, cols), 0))
        keep = diagonal if keep is None else keep & diagonal
    return keep


def _causal_kv_range(row0, rows: int, width: int, n_kv: int):
    """For query rows ``row0 .. row0 + rows`` and kv blocks of ``width`` keys:
    blocks ``[0, below)`` lie on or below the diagonal for every row (no mask
    needed) and ``[below, needed)`` straddle it; blocks from ``needed`` on are
    above it for every row and are skipped."""
    below = jnp.minimum((row0 + 1) // width, n_kv)
    needed = jnp.minimum((row0 + rows - 1) // width + 1, n_kv)
    return below, needed


def _causal_q_range(col0, cols: int, height: int, n_q: int):
    """For keys ``col0 .. col0 + cols`` and query blocks of ``height`` rows:
    blocks ``[start, below)`` straddle the diagonal and ``[below, n_q)`` see
    all of the keys; earlier ones see none of them."""
    last_key = col0 + cols - 1
    start = jnp.minimum(col0 // height, n_q)
    below = jnp.clip(-(-last_key // height), start, n_q)
    return start, below


def _diagonal_blocks_together(static: _Static, seq_q: int, seq_kv: int) -> bool:
    """Whether the causal forward computes every query block's diagonal tile
    in one batched pass (:func:`_diagonal_states`) before its loop over the
    tiles left of it, which then need no causal mask.

    Batched over query blocks, the half-size tiles of the diagonal make
    matmuls as big as a whole tile's, which XLA runs on both cores; one block
    at a time they ran on one (``benchmarks/kernels_attention.py``, causal).
    Square, even tiles only, and no more queries than keys, so that query
    block ``i``'s diagonal tile is kv block ``i``."""
    return (static.causal and static.block_q == static.block_kv and static.block_q % 2 == 0
            and seq_q <= seq_kv)


def _halves_diagonal(static: _Static) -> bool:
    """Whether causal tiles straddling the diagonal are split in half both
    ways (when :func:`_diagonal_blocks_together` does not apply, and in the
    backward pass).

    A square diagonal tile is half above the diagonal: split into four
    half-size tiles, the one above it is skipped, the one below it runs
    unmasked and only two pay for a mask."""
    return static.causal and static.block_q % 2 == 0 and static.block_kv % 2 == 0


# --- forward ---------------------------------------------------------------------------


def _forward(q, k, v, mask, static: _Static):
    dims = _dims(q, k)
    cd = jnp.dtype(static.compute_dtype)

    def step(idx, carry):
        out, lse = carry
        b, h = _head_slices(idx, dims, static)
        qh = (_query_heads(q, b, h, dims, static).astype(jnp.float32) * static.scale).astype(cd)
        kh = _kv_heads(k, b, h, dims, static).astype(cd)
        vh = _kv_heads(v, b, h, dims, static).astype(cd)
        oh, lse_h = _attend(qh, kh, vh, _mask_heads(mask, b, h, static), static)
        return _put_query_heads(out, oh, b, h, dims), lax.dynamic_update_index_in_dim(lse, lse_h, idx, 0)

    steps = _steps(dims, static)
    init = (jnp.zeros(q.shape, q.dtype),
            jnp.zeros((steps, static.heads_per_step, dims.groups, dims.seq_q), jnp.float32))
    return lax.fori_loop(0, steps, step, init)


def _attend(qh, kh, vh, mask, static: _Static):
    """One step's kv heads: ``qh [heads, groups, seq_q, d]`` (pre-scaled),
    ``kh, vh [heads, seq_kv, d]`` → output ``[heads, groups, seq_q, d]`` f32
    and log-sum-exp ``[heads, groups, seq_q]``."""
    heads, groups, seq_q, d = qh.shape
    bq, bk = static.block_q, static.block_kv
    n_q, n_kv = seq_q // bq, kh.shape[1] // bk

    def fold(state, qb, row0, width, lo, hi, causal_tile):
        """Fold kv blocks ``lo .. hi`` of ``width`` keys into the state of query rows ``qb``."""
        rows = qb.shape[2]
        # The group's query rows attend as one [groups * rows, d] matrix.
        q2 = qb.reshape(heads, groups * rows, d)

        def step(j, state):
            kb = lax.dynamic_slice_in_dim(kh, j * width, width, 1)
            vb = lax.dynamic_slice_in_dim(vh, j * width, width, 1)
            keep = _tile_mask(mask, row0, j * width, rows, width, causal_tile)
            return _online_softmax_step(state, q2, kb, vb, keep, groups)
        return lax.fori_loop(lo, hi, step, state)

    init = (jnp.zeros((heads, groups, seq_q, d), jnp.float32), jnp.zeros((heads, groups, seq_q), jnp.float32))
    if _diagonal_blocks_together(static, seq_q, kh.shape[1]):
        diagonal = _diagonal_states(qh, kh, vh, _diagonal_mask(mask, n_q, bq))

        def below_diagonal(i, carry):
            # Query block i starts from its diagonal block's state and
            # folds in the i whole blocks left of it, none masked by causality.
            state = tuple(lax.dynamic_index_in_dim(x, i, 1, keepdims=False) for x in diagonal)
            qb = lax.dynamic_slice_in_dim(qh, i * bq, bq, 2)
            return _put_rows(carry, fold(state, qb, i * bq, bk, 0, i, False), i * bq, groups)
        return lax.fori_loop(0, n_q, below_diagonal, init)

    def q_block(i, carry):
        qb = lax.dynamic_slice_in_dim(qh, i * bq, bq, 2)
        state = _initial_state(heads, groups * bq, d)
        if not static.causal:
            return _put_rows(carry, fold(state, qb, i * bq, bk, 0, n_kv, False), i * bq, groups)
        parts, width, first = [(0, bq)], bk, 0
        if _halves_diagonal(static):
            # Whole tiles below the diagonal, then each half of the query
            # block finishes with half-width tiles.
            first, _ = _causal_kv_range(i * bq, bq, bk, n_kv)
            state = fold(state, qb, i * bq, bk, 0, first, False)
            parts, width, first = [(0, bq // 2), (bq // 2, bq // 2)], bk // 2, 2 * first
        for offset, rows in parts:
            part = state if rows == bq else _state_rows(state, offset, rows, groups)
            row0, qp = i * bq + offset, qb[:, :, offset:offset + rows]
            below, needed = _causal_kv_range(row0, rows, width, kh.shape[1] // width)
            part = fold(part, qp, row0, width, first, below, False)
            part = fold(part, qp, row0, width, below, needed, True)
            carry = _put_rows(carry, part, row0, groups)
        return carry

    return lax.fori_loop(0, n_q, q_block, init)


def _diagonal_states(qh, kh, vh, mask):
    """Every query block's online-softmax state after its own diagonal block,
    as ``[heads, n_blocks, groups * block (, d)]``; the block size is
    ``mask``'s (see :func:`_diagonal_mask`).

    All blocks at once, in halves: the top half of a block's rows sees the
    first half of its keys (masked), the bottom half all of them (masked on
    the second half); the quarter above the diagonal is never computed."""
    heads, groups, seq_q, d = qh.shape
    block, n = mask.shape[-1], seq_q // mask.shape[-1]
    half = block // 2
    q_halves = jnp.moveaxis(qh.reshape(heads, groups, n, 2, half, d), 2, 1)  # [h, n, g, 2, half, d]
    kb = kh[:, :seq_q].reshape(heads, n, block, d)
    vb = vh[:, :seq_q].reshape(heads, n, block, d)

    def fold(qx, kx, vx, keep):
        s = jnp.einsum("hnqd,hnkd->hnqk", qx.reshape(heads, n, groups * half, d), kx,
                       preferred_element_type=jnp.float32)
        s = jnp.where(keep, s.reshape(heads, n, groups, half, -1), -jnp.inf).reshape(s.shape)
        m = s.max(axis=-1)
        # A row whose every key is masked (by the user's mask) has max -inf: shift by 0.
        p = jnp.exp(s - jnp.where(m == -jnp.inf, 0.0, m)[..., None])
        acc = jnp.einsum("hnqk,hnkd->hnqd", p.astype(vx.dtype), vx, preferred_element_type=jnp.float32)
        return tuple(x.reshape(heads, n, groups, half, *x.shape[3:]) for x in (m, p.sum(axis=-1), acc))

    top = fold(q_halves[:, :, :, 0], kb[:, :, :half], vb[:, :, :half], mask[..., :half, :half])
    bottom = fold(q_halves[:, :, :, 1], kb, vb, mask[..., half:, :])
    return tuple(jnp.stack(pair, axis=3).reshape(heads, n, groups * block, *pair[0].shape[4:])
                 for pair in zip(top, bottom))


def _diagonal_mask(mask, n: int, block: int):
    """The keep-mask of the ``n`` diagonal ``block x block`` tiles: the
    diagonal itself and the user's mask (the step's slab from
    :func:`_mask_heads`, or None) there, as ``[heads|1, n|1, groups|1, block, block]``."""
    keep = (lax.broadcasted_iota(jnp.int32, (block, block), 1)
            <= lax.broadcasted_iota(jnp.int32, (block, block), 0))
    if mask is None:
        return keep
    hm, gm, sq, skv = mask.shape
    rows = mask.reshape(hm, gm, n, block, skv) if sq > 1 else mask[:, :, None]
    if skv > 1:
        tiles = rows[..., :n * block].reshape(*rows.shape[:4], n, block)
        # [hm, gm, n|1, block|1, n, block]: tile (i, i) of each row block i.
        rows = (jnp.moveaxis(jnp.diagonal(tiles, axis1=2, axis2=4), -1, 2) if sq > 1
                else jnp.moveaxis(tiles, 4, 2)[:, :, :, 0])
    return keep & jnp.moveaxis(rows, 2, 1)


def _initial_state(heads: int, rows: int, d: int):
    """(running max, sum, unnormalized output) before any key: ``rows`` counts every group's rows."""
    return (jnp.full((heads, rows), -jnp.inf, jnp.float32), jnp.zeros((heads, rows), jnp.float32),
            jnp.zeros((heads, rows, d), jnp.float32))


def _state_rows(state, offset: int, rows: int, groups: int):
    """Rows ``offset .. offset + rows`` of each group of an online-softmax state."""
    def take(x):
        heads, all_rows = x.shape[:2]
        grouped = x.reshape(heads, groups, all_rows // groups, *x.shape[2:])
        return grouped[:, :, offset:offset + rows].reshape(heads, groups * rows, *x.shape[2:])
    return tuple(take(x) for x in state)


def _put_rows(carry, state, row0, groups: int):
    """Normalize a finished state and write it at query rows ``row0 ..`` of (output, lse)."""
    out, lse = carry
    m, total, acc = state
    heads, d = acc.shape[0], acc.shape[2]
    # A row that saw no key has total 0: output 0, and lse +inf so the
    # backward pass recomputes p = exp(s - lse) = 0 for it.
    seen = total > 0
    ob = acc * jnp.where(seen, 1.0 / jnp.where(seen, total, 1.0), 0.0)[..., None]
    lse_b = jnp.where(seen, m + jnp.log(jnp.where(seen, total, 1.0)), jnp.inf)
    return (lax.dynamic_update_slice_in_dim(out, ob.reshape(heads, groups, -1, d), row0, 2),
            lax.dynamic_update_slice_in_dim(lse, lse_b.reshape(heads, groups, -1), row0, 2))


def _online_softmax_step(state, qb, kb, vb, keep, groups):
    """Fold one kv tile into the running (max, sum, unnormalized output);
    ``qb [heads, groups * block_q, d]``, ``keep`` broadcastable to
    ``[heads, groups, block_q, block_kv]`` or None."""
    m, total, acc = state
    s = jnp.einsum("hqd,hkd->hqk", qb, kb, preferred_element_type=jnp.float32)
    if keep is not None:
        s = _masked(s, keep, groups)
    m_new = jnp.maximum(m, s.max(axis=-1))
    # While every key seen so far is masked the max is -inf; shift by 0 then
    # (p is 0 either way) instead of computing -inf - -inf.
    shift = jnp.where(m_new == -jnp.inf, 0.0, m_new) if keep is not None else m_new
    p = jnp.exp(s - shift[..., None])
    rescale = jnp.exp(m - shift)
    total = rescale * total + p.sum(axis=-1)
    acc = rescale[..., None] * acc + jnp.einsum(
        "hqk,hkd->hqd", p.astype(vb.dtype), vb, preferred_element_type=jnp.float32)
    return m_new, total, acc


def _masked(s, keep, groups: int):
    """Scores ``[heads, groups * rows, cols]`` with -inf where ``keep``
    (broadcastable to ``[heads, groups, rows, cols]``) is False."""
    heads, rows, cols = s.shape
    return jnp.where(keep, s.reshape(heads, groups, rows // groups, cols), -jnp.inf).reshape(s.shape)


# --- backward --------------------------------------------------------------------------


def _backward(q, k, v, mask, out, lse, d_out, static: _Static):
    dims = _dims(q, k)
    cd = jnp.dtype(static.compute_dtype)

    def step(idx, grads):
        dq, dk, dv = grads
        b, h = _head_slices(idx, dims, static)
        qh = (_query_heads(q, b, h, dims, static).astype(jnp.float32) * static.scale).astype(cd)
        kh = _kv_heads(k, b, h, dims, static).astype(cd)
        vh = _kv_heads(v, b, h, dims, static).astype(cd)
        doh = _query_heads(d_out, b, h, dims, static).astype(jnp.float32)
        # delta_i = sum_d dO_i * O_i = sum_j P_ij dP_ij: the softmax Jacobian's row term.
        delta = jnp.sum(doh * _query_heads(out, b, h, dims, static).astype(jnp.float32), axis=-1)
        dqh, dkh, dvh = _attend_bwd(qh, kh, vh, doh.astype(cd), lse[idx], delta,
                                    _mask_heads(mask, b, h, static), static)
        return (_put_query_heads(dq, dqh, b, h, dims), _put_kv_heads(dk, dkh, b, h),
                _put_kv_heads(dv, dvh, b, h))

    init = (jnp.zeros(q.shape, jnp.float32), jnp.zeros(k.shape, jnp.float32), jnp.zeros(v.shape, jnp.float32))
    dq, dk, dv = lax.fori_loop(0, _steps(dims, static), step, init)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype)


def _attend_bwd(qh, kh, vh, doh, lse, delta, mask, static: _Static):
    """Gradients for one step's kv heads (shapes as in :func:`_attend`); dq is
    returned for the unscaled q, dk and dv in f32."""
    heads, groups, seq_q, d = qh.shape
    bq, bk = static.block_q, static.block_kv
    n_q, n_kv = seq_q // bq, kh.shape[1] // bk
    cd = qh.dtype

    def fold(state, kb, vb, col0, height, lo, hi, causal_tile):
        """Fold query blocks ``lo .. hi`` of ``height`` rows into (dk, dv) of
        the keys ``kb, vb`` starting at ``col0``, and their share into dq."""
        cols = kb.shape[1]

        def step(i, state):
            dk_j, dv_j, dq = state
            rows = functools.partial(lax.dynamic_slice_in_dim, start_index=i * height, slice_size=height, axis=2)

            def flat(x):  # the group's rows as one matrix, as in the forward
                return rows(x).reshape(heads, groups * height, *x.shape[3:])
            qb, dob, lse_b, delta_b = flat(qh), flat(doh), flat(lse), flat(delta)
            s = jnp.einsum("hqd,hkd->hqk", qb, kb, preferred_element_type=jnp.float32)
            keep = _tile_mask(mask, i * height, col0, height, cols, causal_tile)
            if keep is not None:
                s = _masked(s, keep, groups)
            p = jnp.exp(s - lse_b[..., None])
            dv_j = dv_j + jnp.einsum("hqk,hqd->hkd", p.astype(cd), dob, preferred_element_type=jnp.float32)
            dp = jnp.einsum("hqd,hkd->hqk", dob, vb, preferred_element_type=jnp.float32)
            ds = (p * (dp - delta_b[..., None])).astype(cd)
            dq_i = rows(dq) + jnp.einsum("hqk,hkd->hqd", ds, kb, preferred_element_type=jnp.float32
                                         ).reshape(heads, groups, height, d)
            dk_j = dk_j + jnp.einsum("hqk,hqd->hkd", ds, qb, preferred_element_type=jnp.float32)
            return dk_j, dv_j, lax.dynamic_update_slice_in_dim(dq, dq_i, i * height, 2)
        return lax.fori_loop(lo, hi, step, state)

    def zeros(cols):
        return jnp.zeros((heads, cols, d), jnp.float32)

    def kv_block(j, carry):
        dq, dk, dv = carry
        kb = lax.dynamic_slice_in_dim(kh, j * bk, bk, 1)
        vb = lax.dynamic_slice_in_dim(vh, j * bk, bk, 1)
        if not static.causal:
            dk_j, dv_j, dq = fold((zeros(bk), zeros(bk), dq), kb, vb, j * bk, bq, 0, n_q, False)
        elif _halves_diagonal(static):
            # The forward's quarters, transposed: each half of the kv block
            # takes the straddling query rows in half-height tiles, then the
            # whole block takes the query blocks entirely below the diagonal.
            _, below = _causal_q_range(j * bk, bk, bq, n_q)
            halves = []
            for offset in (0, bk // 2):
                cols, col0 = bk // 2, j * bk + offset
                start_h, below_h = _causal_q_range(col0, cols, bq // 2, 2 * n_q)
                kb_h, vb_h = kb[:, offset:offset + cols], vb[:, offset:offset + cols]
                state = fold((zeros(cols), zeros(cols), dq), kb_h, vb_h, col0, bq // 2, start_h, below_h, True)
                dk_h, dv_h, dq = fold(state, kb_h, vb_h, col0, bq // 2, below_h, 2 * below, False)
                halves.append((dk_h, dv_h))
            state = tuple(jnp.concatenate(parts, axis=1) for parts in zip(*halves)) + (dq,)
            dk_j, dv_j, dq = fold(state, kb, vb, j * bk, bq, below, n_q, False)
        else:
            start, below = _causal_q_range(j * bk, bk, bq, n_q)
            state = fold((zeros(bk), zeros(bk), dq), kb, vb, j * bk, bq, start, below, True)
            dk_j, dv_j, dq = fold(state, kb, vb, j * bk, bq, below, n_q, False)
        return (dq, lax.dynamic_update_slice_in_dim(dk, dk_j, j * bk, 1),
                lax.dynamic_update_slice_in_dim(dv, dv_j, j * bk, 1))

    init = (jnp.zeros((heads, groups, seq_q, d), jnp.float32),
            jnp.zeros(kh.shape, jnp.float32), jnp.zeros(kh.shape, jnp.float32))
    dq, dk, dv = lax.fori_loop(0, n_kv, kv_block, init)
    # s = (scale·q) kᵀ: dk already used the scaled q; dq needs the scale once.
    return dq * static.scale, dk, dv
