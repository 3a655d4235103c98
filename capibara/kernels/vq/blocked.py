"""Blocked vector quantizers: rows in blocks, one small score matrix at a time.

The reference materializes ``[N, K]`` distances, their softmax and several
``[N, D]`` temporaries. Here a loop walks blocks of ``block_rows`` vectors and
each block does its lookup, gather, straight-through output and partial loss
sums while the block is still in cache; only the outputs and a few ``[K]``
sums leave it. On CPU that matters more than the FLOPs: XLA
allocates every large buffer fresh per call and page-faults it in at ~0.5 ms
per MiB (DESIGN.md §5), so small temporaries are the whole game.

``||x||²`` is constant along a row, so the lookup needs only
``||c||² - 2 x·cᵀ``; the softmax for the diversity term is shift-invariant
along the row too, so it uses the same partial distance.

Two score functions: ``xla`` (float32, or bf16 operands with f32 sums, which
is the AMX path) and ``int8`` (both sides int8 per row, int8 x int8 -> int32),
whose gradient is the straight-through float one.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.base import Unsupported
from capibara.kernels.linalg import AffineWeight, quantize_rows
from capibara.kernels.linalg.policy import Policy
from capibara.kernels.vq.inputs import check_inputs, float_codes
from capibara.kernels.vq.reference import straight_through
from capibara.kernels.vq.result import VQResult, summarize

__all__ = ["BLOCK_ROWS", "vq_int8", "vq_xla"]

#: Rows per block. Measured at N65536 D768 K64 f32 on the 2-core dev box (CPU
#: time, donated input): 512 -> 151 ms, 1024 -> 159, 4096 -> ~220, 128 -> 168.
#: A 512 x 768 float32 block is 1.5 MiB, so it stays in cache between the
#: score product, the gather and the error sums; smaller blocks pay the
#: per-iteration overhead.
BLOCK_ROWS = 512

sg = lax.stop_gradient
Scores = Callable[[jax.Array, jax.Array], jax.Array]


def _blocked(
    x: jax.Array,
    codes: jax.Array,
    scores: Scores,
    *,
    commitment_weight: float,
    adaptive_threshold: float | None,
    diversity_temperature: float,
    block_rows: int,
) -> VQResult:
    lead, dim = x.shape[:-1], x.shape[-1]
    k = codes.shape[0]
    rows = x.reshape(-1, dim)
    n = rows.shape[0]
    if block_rows < 1:
        raise Unsupported(f"{block_rows=} must be at least 1")
    block = min(block_rows, n)
    full, tail = divmod(n, block)
    codes_sq = jnp.sum(codes * codes, axis=1)
    scale = -1.0 / (diversity_temperature * dim)

    def one_block(xb):
        """Everything one block contributes: its output rows and partial sums."""
        xf = xb.astype(jnp.float32)
        partial = codes_sq[None, :] - 2.0 * scores(xf, codes)
        idx = jnp.argmin(partial, axis=1).astype(jnp.int32)
        q = jnp.take(codes, idx, axis=0)
        commit = jnp.sum((xf - sg(q)) ** 2, axis=1)
        if adaptive_threshold is None:
            bypass = jnp.zeros(idx.shape, bool)
        else:
            bypass = sg(commit) > adaptive_threshold * jnp.sum(sg(xf) ** 2, axis=1)
        out = jnp.where(bypass[:, None], xf, straight_through(xf, q)).astype(x.dtype)
        sums = (
            jnp.sum(commit),
            jnp.sum((sg(xf) - q) ** 2),
            jnp.sum(jax.nn.one_hot(idx, k, dtype=jnp.int32), axis=0),
            jnp.sum(jax.nn.softmax(partial * scale, axis=1), axis=0),
        )
        return out, idx, bypass, sums

    def store(carry, start, size):
        out, idx, bypass, sums = carry
        # Read the block through a conditional that is always true: XLA
        # cannot fuse across it, so the block becomes one small buffer that
        # every reader shares. Without it XLA fuses the slice separately into
        # each consumer (the bf16 cast, the error sums), finds several readers
        # of the buffer about to be overwritten and copies all of ``out`` on
        # every iteration (measured 2-3x slower with bf16 scores).
        # ``optimization_barrier`` does not help: XLA:CPU expands it away
        # before fusion.
        xb = lax.cond(start < n, lambda: lax.dynamic_slice_in_dim(out, start, size),
                      lambda: jnp.zeros((size, dim), out.dtype))
        ob, ib, bb, sb = one_block(xb)
        return (
            lax.dynamic_update_slice_in_dim(out, ob, start, 0),
            lax.dynamic_update_slice_in_dim(idx, ib, start, 0),
            lax.dynamic_update_slice_in_dim(bypass, bb, start, 0),
            jax.tree.map(jnp.add, sums, sb),
        )

    # The output buffer *is* the input: block i is read, then overwritten by
    # its quantized rows, so a donated x is quantized in place with no fresh
    # [N, D] allocation (and an undonated one costs a single copy, where a
    # lax.map would zero-fill a stacked output and copy it out again).
    zeros = (jnp.float32(0), jnp.float32(0), jnp.zeros(k, jnp.int32), jnp.zeros(k, jnp.float32))
    carry = (rows, jnp.zeros(n, jnp.int32), jnp.zeros(n, bool), zeros)
    carry = lax.fori_loop(0, full, lambda i, c: store(c, i * block, block), carry)
    if tail:
        carry = store(carry, full * block, tail)
    out, idx, bypass, (commit, code, counts, soft) = carry
    commitment, codebook_loss, diversity, perplexity = summarize(
        n=n, dim=dim, commitment_weight=commitment_weight,
        commit_sq=commit, code_sq=code, counts=counts, soft_sum=soft)
    return VQResult(
        quantized=out.reshape(x.shape),
        indices=idx.reshape(lead),
        commitment=commitment,
        codebook=codebook_loss,
        diversity=diversity,
        perplexity=perplexity,
        bypassed=bypass.reshape(lead),
    )


def vq_xla(
    x: jax.Array,
    codebook: jax.Array | AffineWeight,
    *,
    commitment_weight: float = 0.25,
    adaptive_threshold: float | None = None,
    diversity_temperature: float = 1.0,
    block_rows: int = BLOCK_ROWS,
    compute_dtype="float32",
) -> VQResult:
    """Blocked quantizer whose scores are one XLA dot per block.

    ``compute_dtype="bfloat16"`` rounds both operands of the score product to
    bf16 and sums in f32: about twice as fast on CPUs with bf16 dot support,
    at the price of picking a code up to ~2^-7 ||x|| ||c|| from optimal. The
    losses are always computed from the exact float32 error of the chosen code.
    """
    check_inputs(x, codebook, adaptive_threshold)
    policy = Policy.of(compute_dtype=compute_dtype)

    def scores(xf, codes):
        return lax.dot_general(
            xf.astype(policy.compute_dtype), codes.astype(policy.compute_dtype),
            (((1,), (1,)), ((), ())), precision=policy.dot_precision,
            preferred_element_type=jnp.float32)

    return _blocked(x, float_codes(codebook), scores, commitment_weight=commitment_weight,
                    adaptive_threshold=adaptive_threshold,
                    diversity_temperature=diversity_temperature, block_rows=block_rows)


@jax.custom_vjp
def _int8_scores(xf: jax.Array, codes: jax.Array) -> jax.Array:
    """``x @ codes.T`` with both sides int8 per row: int8 x int8 -> int32, rescaled."""
    qx, sx = quantize_rows(xf)
    qc, sc = quantize_rows(codes)
    acc = lax.dot_general(qx, qc, (((1,), (1,)), ((), ())), preferred_element_type=jnp.int32)
    return acc.astype(jnp.float32) * sx * sc.T


def _int8_scores_fwd(xf, codes):
    return _int8_scores(xf, codes), (xf, codes)


def _int8_scores_bwd(residuals, g):
    # straight-through on both operands: the gradient of the float product
    xf, codes = residuals
    return g @ codes, g.T @ xf


_int8_scores.defvjp(_int8_scores_fwd, _int8_scores_bwd)


def vq_int8(
    x: jax.Array,
    codebook: jax.Array | AffineWeight,
    *,
    commitment_weight: float = 0.25,
    adaptive_threshold: float | None = None,
    diversity_temperature: float = 1.0,
    block_rows: int = BLOCK_ROWS,
) -> VQResult:
    """Blocked quantizer whose lookup runs in int8 x int8 -> int32.

    The vectors and the codes are each rounded to int8 per row for the score
    product only; the output is the float code (the dequantized one for an
    int8 codebook) and the losses use its exact error. The chosen code can be
    off the true nearest by the rounding: at most about
    ``2 (||x|| ||c|| (δx + δc))`` in squared distance, δ = max|row| / 254.
    """
    check_inputs(x, codebook, adaptive_threshold)
    return _blocked(x, float_codes(codebook), _int8_scores, commitment_weight=commitment_weight,
                    adaptive_threshold=adaptive_threshold,
                    diversity_temperature=diversity_temperature, block_rows=block_rows)
