"""The reference vector quantizer: the whole distance matrix, float32, plain autodiff.

Runs everywhere; the oracle for the other variants and their fallback. The
nearest code comes from the matmul form ``||x||² - 2 x·cᵀ + ||c||²`` (one
``[N, K]`` product instead of an ``[N, K, D]`` broadcast); the losses use the
exact squared error ``||x - q||²`` of the chosen code, which the matmul form
would give with cancellation error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.linalg import AffineWeight
from capibara.kernels.vq.inputs import check_inputs, float_codes
from capibara.kernels.vq.result import VQResult, summarize

__all__ = ["vq_reference"]

sg = lax.stop_gradient


def straight_through(x: jax.Array, q: jax.Array) -> jax.Array:
    """Forward exactly ``q``; gradient the identity to ``x`` and none to ``q``.

    ``x + sg(q - x)`` would be off by a rounding in the forward value;
    ``sg(q) + (x - sg(x))`` adds an exact zero.
    """
    return sg(q) + (x - sg(x))


def vq_reference(
    x: jax.Array,
    codebook: jax.Array | AffineWeight,
    *,
    commitment_weight: float = 0.25,
    adaptive_threshold: float | None = None,
    diversity_temperature: float = 1.0,
) -> VQResult:
    """Quantize ``x: [..., dim]`` against ``codebook: [codes, dim]``; see :class:`VQResult`."""
    check_inputs(x, codebook, adaptive_threshold)
    lead, dim = x.shape[:-1], x.shape[-1]
    codes = float_codes(codebook)
    xf = x.reshape(-1, dim).astype(jnp.float32)
    n = xf.shape[0]

    x_sq = jnp.sum(xf * xf, axis=1)
    dist = (x_sq[:, None] - 2.0 * jnp.matmul(xf, codes.T, precision=lax.Precision.HIGHEST)
            + jnp.sum(codes * codes, axis=1)[None, :])
    indices = jnp.argmin(dist, axis=1).astype(jnp.int32)
    q = codes[indices]

    commit_rows = jnp.sum((xf - sg(q)) ** 2, axis=1)
    code_rows = jnp.sum((sg(xf) - q) ** 2, axis=1)
    soft = jax.nn.softmax(-dist / (diversity_temperature * dim), axis=1)
    counts = jnp.zeros(codes.shape[0], jnp.int32).at[indices].add(1)
    commitment, codebook_loss, diversity, perplexity = summarize(
        n=n, dim=dim, commitment_weight=commitment_weight,
        commit_sq=jnp.sum(commit_rows), code_sq=jnp.sum(code_rows),
        counts=counts, soft_sum=jnp.sum(soft, axis=0))

    if adaptive_threshold is None:
        bypassed = jnp.zeros(n, bool)
    else:
        # relative squared error of the best code: above the threshold, the
        # codebook does not represent this vector and it passes through
        bypassed = sg(commit_rows) > adaptive_threshold * sg(x_sq)
    quantized = jnp.where(bypassed[:, None], xf, straight_through(xf, q))
    return VQResult(
        quantized=quantized.astype(x.dtype).reshape(x.shape),
        indices=indices.reshape(lead),
        commitment=commitment,
        codebook=codebook_loss,
        diversity=diversity,
        perplexity=perplexity,
        bypassed=bypassed.reshape(lead),
    )
