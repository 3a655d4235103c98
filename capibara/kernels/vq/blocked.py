"""Blocked vector quantizers: the lookup and the losses walk row blocks; the output is one gather.

The reference materializes ``[N, K]`` distances, their softmax and several
``[N, D]`` temporaries. Here a loop walks blocks of ``block_rows`` vectors
and each block does its score product (the bf16 or int8 operands made from
the block while it is in cache), lookup, exact squared error of the chosen
code and partial loss sums; only the indices, the bypass flags and a few
``[K]`` sums leave it. The quantized rows are then written once, outside
the loop, by a single gather ``codebook[indices]`` that never reads ``x``
(it does only with a threshold, to pass bypassed rows through), with the
straight-through gradient attached by :func:`_straight_through`.

Why: on CPU memory traffic costs more than the FLOPs. XLA allocates every
large buffer fresh per call, so the one ``[N, D]`` output is written once,
and an ``x`` that is not donated is never copied (benchmarks/kernels_vq.py;
the measured breakdown is in benchmarks/RESULTS.md).

``||x||²`` is constant along a row, so the lookup needs only
``||c||² - 2 x·cᵀ``; the softmax for the diversity term is shift-invariant
along the row too, so it uses the same partial distance.

Two score functions: ``xla`` (float32, or bf16 operands with f32 sums) and
``int8`` (both sides int8 per row, int8 x int8 -> int32), whose gradient is
the straight-through float one.
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
from capibara.kernels.vq.result import VQResult, summarize

__all__ = ["BLOCK_ROWS", "vq_int8", "vq_xla"]

#: Rows per block: a 1024 x 768 f32 block (3 MiB) stays in cache from the convert
#: to the exact error; smaller blocks pay loop overhead (benchmarks/kernels_vq.py).
BLOCK_ROWS = 1024

sg = lax.stop_gradient
Scores = Callable[[jax.Array, jax.Array], jax.Array]


@jax.custom_jvp
def _straight_through(x: jax.Array, q: jax.Array) -> jax.Array:
    """Forward exactly ``q`` (never reading ``x``); derivative the identity in ``x``, none in ``q``.

    The reference's autodiff form ``sg(q) + (x - sg(x))`` reads ``x`` in the
    forward pass to add an exact zero: a second ``[N, D]`` stream for nothing.
    A JVP rule (rather than a VJP one) keeps forward-mode autodiff working;
    its tangent is linear, so reverse mode transposes it.
    """
    return q


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    _, q = primals
    x_dot, _ = tangents
    return q, x_dot


def _first_index(hit: jax.Array) -> jax.Array:
    """The first True along axis 1 of a bool ``[rows, K]`` (each row has one).

    ``argmin`` as a min, a compare and this: XLA:CPU lowers ``jnp.argmin``'s
    (value, index) pair reduction to a slow scalar loop (about twice this
    way's time; benchmarks/RESULTS.md, vq), and the row minimum is needed
    anyway to shift the softmax. Indices up to
    2^24 are exact in float32.
    """
    iota = lax.broadcasted_iota(jnp.float32, hit.shape, 1)
    return jnp.min(jnp.where(hit, iota, hit.shape[1]), axis=1).astype(jnp.int32)


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
        """Everything one block contributes: its indices, bypass flags and partial sums."""
        xf = xb.astype(jnp.float32)
        partial = codes_sq[None, :] - 2.0 * scores(xf, codes)
        best = jnp.min(partial, axis=1, keepdims=True)
        idx = _first_index(partial == best)
        # the block's codes are small and in cache: the exact error costs one
        # pass over the block, where after the loop it would re-read all of x
        q = codes.at[idx].get(mode="clip")
        commit = jnp.sum((xf - sg(q)) ** 2, axis=1)
        # softmax(partial * scale) (scale < 0) shifted by the row minimum we
        # already have, instead of another max reduction
        weights = jnp.exp((partial - sg(best)) * scale)
        sums = (
            jnp.sum(commit),
            jnp.sum((sg(xf) - q) ** 2),
            jnp.sum(weights / jnp.sum(weights, axis=1, keepdims=True), axis=0),
        )
        if adaptive_threshold is None:
            return (idx,), sums
        bypass = sg(commit) > adaptive_threshold * jnp.sum(sg(xf) ** 2, axis=1)
        return (idx, bypass), sums

    def store(carry, start, size):
        rows_out, sums = carry
        block_out, block_sums = one_block(lax.dynamic_slice_in_dim(rows, start, size))
        return (
            tuple(lax.dynamic_update_slice_in_dim(a, b, start, 0) for a, b in zip(rows_out, block_out)),
            jax.tree.map(jnp.add, sums, block_sums),
        )

    # per-row outputs: the indices, and the bypass flags only with a threshold
    rows_out = (jnp.zeros(n, jnp.int32),) if adaptive_threshold is None else (
        jnp.zeros(n, jnp.int32), jnp.zeros(n, bool))
    zeros = (jnp.float32(0), jnp.float32(0), jnp.zeros(k, jnp.float32))
    carry = lax.fori_loop(0, full, lambda i, c: store(c, i * block, block), (rows_out, zeros))
    if tail:
        carry = store(carry, full * block, tail)
    rows_out, (commit, code, soft) = carry
    idx = rows_out[0]
    # one scatter over all N indices (0.2 ms) rather than one per block
    counts = jnp.zeros(k, jnp.int32).at[idx].add(1)
    bypass = jnp.zeros(n, bool) if adaptive_threshold is None else rows_out[1]

    # The one fresh [N, D] write: a gather that reads only the codebook.
    quantized = _straight_through(rows, codes.at[idx].get(mode="clip").astype(x.dtype))
    if adaptive_threshold is not None:
        quantized = jnp.where(bypass[:, None], rows, quantized)
    commitment, codebook_loss, diversity, perplexity = summarize(
        n=n, dim=dim, commitment_weight=commitment_weight,
        commit_sq=commit, code_sq=code, counts=counts, soft_sum=soft)
    return VQResult(
        quantized=quantized.reshape(x.shape),
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
