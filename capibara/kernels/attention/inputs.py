"""The input contract every attention variant shares: shapes, heads, masks.

Layout follows ``jax.nn.dot_product_attention``: q ``[batch, seq_q, heads,
head_dim]``, k and v ``[batch, seq_kv, kv_heads, head_dim]`` with ``heads`` a
multiple of ``kv_heads`` (grouped-query; ``kv_heads == 1`` is multi-query).
Query head ``h`` reads kv head ``h // (heads // kv_heads)``, as in ``jax.nn``.

Causal masking is aligned top-left, again as in ``jax.nn``: query ``i`` sees
keys ``j <= i``. A query row that sees no key at all (every key masked) has a
zero output and zero gradient, in every variant that runs on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Dims", "check_inputs", "grouped_mask", "mask4", "default_scale"]


@dataclass(frozen=True)
class Dims:
    """The sizes of one attention call; ``groups`` query heads share one kv head."""

    batch: int
    seq_q: int
    seq_kv: int
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def groups(self) -> int:
        return self.heads // self.kv_heads


def check_inputs(q: jax.Array, k: jax.Array, v: jax.Array) -> Dims:
    """Raise ``ValueError`` for inputs no variant can attend over; return their sizes."""
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(
            "q, k and v must be [batch, seq, heads, head_dim], "
            f"got shapes {q.shape}, {k.shape}, {v.shape}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {k.shape} and {v.shape}")
    batch, seq_q, heads, head_dim = q.shape
    _, seq_kv, kv_heads, _ = k.shape
    if k.shape[0] != batch or k.shape[3] != head_dim:
        raise ValueError(f"k {k.shape} does not match q {q.shape} in batch or head_dim")
    if kv_heads == 0 or heads % kv_heads:
        raise ValueError(f"{heads=} must be a multiple of {kv_heads=}")
    if seq_q == 0 or seq_kv == 0:
        raise ValueError(f"empty sequence: {seq_q=}, {seq_kv=}")
    return Dims(batch, seq_q, seq_kv, heads, kv_heads, head_dim)


def default_scale(dims: Dims, scale: float | None) -> float:
    """``scale`` or ``1/sqrt(head_dim)``, as a Python float (it is static)."""
    return float(1.0 / np.sqrt(dims.head_dim)) if scale is None else float(scale)


def mask4(mask: jax.Array | None, dims: Dims) -> jax.Array | None:
    """The user's mask as a 4-D boolean ``[batch|1, heads|1, seq_q|1, seq_kv|1]``.

    Accepts a padding mask ``[batch, seq_kv]`` (True = keep) or anything
    broadcastable to ``[batch, heads, seq_q, seq_kv]``. Axes of size one stay
    size one, so a padding mask is never expanded to a full score matrix.
    """
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise ValueError(f"the mask must be boolean (True = keep), got {mask.dtype}")
    full = (dims.batch, dims.heads, dims.seq_q, dims.seq_kv)
    if mask.ndim == 2:
        if mask.shape != (dims.batch, dims.seq_kv):
            raise ValueError(
                f"a 2-D padding mask must be [batch, seq_kv] = {(dims.batch, dims.seq_kv)}, got {mask.shape}")
        return mask[:, None, None, :]
    if mask.ndim != 4 or any(m not in (1, n) for m, n in zip(mask.shape, full)):
        raise ValueError(f"the mask must be [batch, seq_kv] or broadcastable to {full}, got {mask.shape}")
    return mask


def grouped_mask(mask: jax.Array | None, dims: Dims) -> jax.Array | None:
    """:func:`mask4`'s result split by kv head: ``[batch|1, kv_heads|1, groups|1, seq_q|1, seq_kv|1]``."""
    if mask is None:
        return None
    b, h, sq, skv = mask.shape
    if h == 1:
        return mask.reshape(b, 1, 1, sq, skv)
    return mask.reshape(b, dims.kv_heads, dims.groups, sq, skv)
