"""What a vector-quantization call returns, and the one place its losses are defined.

Every variant reduces its rows to the same few sums (squared errors, hard code
counts, summed soft assignments) and calls :func:`summarize`, so the loss
definitions below cannot drift apart between variants.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["VQResult", "summarize"]


class VQResult(NamedTuple):
    """The output of :func:`capibara.kernels.vq.vq` (a NamedTuple, so a pytree).

    - ``quantized``: ``x``'s shape and dtype. Forward: the nearest code (or
      ``x`` itself where ``bypassed``). Gradient: the identity to ``x``
      (straight-through estimator); the codebook gets no gradient from it.
    - ``indices``: int32, ``x.shape[:-1]``: the nearest code of each vector.
    - ``commitment``: ``commitment_weight * mean((x - sg(q))**2)`` over all
      elements; pulls the encoder output toward its code.
    - ``codebook``: ``mean((sg(x) - q)**2)``; pulls each used code toward the
      vectors assigned to it.
    - ``diversity``: ``log(K) - H(p̄)`` = ``KL(p̄ || uniform)`` >= 0, where
      ``p̄`` is the mean over vectors of the soft assignment
      ``softmax_k(-||x - c_k||² / (temperature * dim))``. Zero when codes are
      used uniformly; differentiable (it is what a diversity regularizer adds).
    - ``perplexity``: ``exp(H(f))`` of the hard code frequencies ``f``, between
      1 (one code used) and K (all used equally). Not differentiable.
    - ``bypassed``: bool, ``x.shape[:-1]``: vectors the adaptive threshold let
      through unquantized (all False without a threshold).

    Both squared-error losses count every vector, bypassed or not, so the
    codebook keeps learning to cover the vectors it cannot represent yet.
    """

    quantized: jax.Array
    indices: jax.Array
    commitment: jax.Array
    codebook: jax.Array
    diversity: jax.Array
    perplexity: jax.Array
    bypassed: jax.Array


def _entropy(p: jax.Array) -> jax.Array:
    # 0 log 0 = 0; the where keeps the gradient finite at unused codes
    safe = jnp.where(p > 0, p, 1.0)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(safe), 0.0))


def summarize(
    *,
    n: int,
    dim: int,
    commitment_weight: float,
    commit_sq: jax.Array,
    code_sq: jax.Array,
    counts: jax.Array,
    soft_sum: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Scalar losses from per-call sums over ``n`` vectors of ``dim`` elements.

    ``commit_sq`` / ``code_sq``: total squared error with the gradient routed
    to ``x`` / to the codebook; ``counts``: hard assignments per code;
    ``soft_sum``: soft assignments per code. Returns (commitment, codebook,
    diversity, perplexity).
    """
    k = counts.shape[0]
    elements = n * dim
    commitment = commitment_weight * commit_sq / elements
    codebook = code_sq / elements
    diversity = jnp.log(float(k)) - _entropy(soft_sum / n)
    perplexity = jnp.exp(_entropy(counts.astype(jnp.float32) / n))
    return commitment, codebook, diversity, perplexity
