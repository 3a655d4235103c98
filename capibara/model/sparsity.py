"""The dense feed-forward's sparsity: magnitude pruning of its weights, top-k of its activations.

A plan records the method on the feed-forward's linalg specs
(:class:`~capibara.compiler.model_spec.FeedForwardSparsity`):

- ``magnitude``: ``w_in`` and ``w_out`` keep, per layer, the largest
  ``1 - ratio`` of their entries by absolute value; the rest are zero. The
  model prunes its parameters when it builds them and after every training
  step (to the schedule's level with ``adaptive_sparsity``), so forward and
  generation multiply by weights that are already sparse.
- ``topk``: each token keeps the largest ``1 - ratio`` of its hidden
  activations (between ``w_in`` and ``w_out``) by absolute value.

The arithmetic stays dense: XLA on CPU has no sparse matmul, so zeros cost
what other numbers cost (``benchmarks/sparsity.py`` measures it).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from capibara.compiler.model_spec import FeedForwardSparsity

__all__ = ["PRUNED_WEIGHTS", "magnitude_prune", "prune_params", "topk_activations"]

#: The block parameters magnitude pruning applies to: the dense feed-forward's.
PRUNED_WEIGHTS = ("w_in", "w_out")


def magnitude_prune(w: jax.Array, ratio: Any) -> jax.Array:
    """``w [..., m, n]`` with the ``round(ratio · m · n)`` smallest entries of each
    trailing matrix (by absolute value) set to zero, ties at the threshold
    broken by position so the count is exact. ``ratio`` may be traced (gradual pruning inside the
    training step). Entries already zero stay zero."""
    lead, size = w.shape[:-2], w.shape[-2] * w.shape[-1]
    flat = jnp.abs(w.reshape(*lead, size)).astype(jnp.float32)
    zeros = jnp.round(jnp.asarray(ratio, jnp.float32) * size).astype(jnp.int32)
    # One sort per matrix: the smallest kept magnitude is the threshold.
    ordered = jnp.sort(flat, axis=-1)
    threshold = lax.dynamic_index_in_dim(ordered, jnp.minimum(zeros, size - 1), axis=-1)
    above = flat > threshold
    # Entries tied at the threshold (weights the optimizer moved off zero by the
    # same step) are kept in position order until the count is exact.
    tied = flat == threshold
    wanted = size - zeros - jnp.sum(above, axis=-1, keepdims=True)
    keep = (above | (tied & (jnp.cumsum(tied, axis=-1) <= wanted))) & (zeros < size)
    return jnp.where(keep.reshape(w.shape), w, jnp.zeros((), w.dtype))


def prune_params(params: Any, sparsity: FeedForwardSparsity | None, level: Any) -> Any:
    """``params`` with the feed-forward weights magnitude-pruned to ``level``
    (per layer); unchanged without magnitude sparsity."""
    if sparsity is None or sparsity.method != "magnitude":
        return params
    blocks = dict(params["blocks"])
    for name in PRUNED_WEIGHTS:
        if name in blocks:
            blocks[name] = magnitude_prune(blocks[name], level)
    return {**params, "blocks": blocks}


def topk_activations(h: jax.Array, ratio: float) -> jax.Array:
    """``h [..., F]`` keeping each row's largest ``F - round(ratio · F)`` entries by
    absolute value (at least one); the choice is not differentiated through."""
    width = h.shape[-1]
    keep = max(width - int(round(ratio * width)), 1)
    if keep >= width:
        return h
    magnitude = lax.stop_gradient(jnp.abs(h))
    threshold = lax.top_k(magnitude, keep)[0][..., -1:]
    return jnp.where(magnitude >= threshold, h, jnp.zeros((), h.dtype))
