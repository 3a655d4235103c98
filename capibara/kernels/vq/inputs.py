"""The input contract every vq variant shares: shapes, the threshold range, codebook forms.

A codebook is a float ``[codes, dim]`` array or an int8 one from
:func:`quantize_codebook` (an :class:`~capibara.kernels.linalg.AffineWeight`
with one scale per code). Variants that compute in float see the int8 form
dequantized; the ``int8`` variant uses the levels directly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from capibara.kernels.linalg import AffineWeight, dequantize, quantize_affine

__all__ = ["check_inputs", "float_codes", "quantize_codebook"]


def quantize_codebook(codebook: jax.Array) -> AffineWeight:
    """Store ``codebook`` as symmetric int8 with one scale per code (row).

    Each code keeps its own range, so a small-norm code is not crushed to
    zero by a large one; a 64x768 codebook shrinks from 192 KiB to 48 KiB.
    """
    return quantize_affine(codebook, bits=8, symmetric=True, axis=1)


def float_codes(codebook: jax.Array | AffineWeight) -> jax.Array:
    """The codebook as float32 ``[codes, dim]`` (dequantized if stored as int8)."""
    if isinstance(codebook, AffineWeight):
        return dequantize(codebook)
    return jnp.asarray(codebook, jnp.float32)


def check_inputs(x: jax.Array, codebook: jax.Array | AffineWeight, adaptive_threshold: float | None) -> None:
    """Raise ``ValueError`` for inputs no variant can quantize."""
    codes = codebook.q if isinstance(codebook, AffineWeight) else codebook
    if codes.ndim != 2:
        raise ValueError(f"the codebook must be [codes, dim], got shape {codes.shape}")
    if x.ndim < 1 or x.shape[-1] != codes.shape[1]:
        raise ValueError(f"x's last axis must be the code dim {codes.shape[1]}, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"x has no vectors to quantize (shape {x.shape})")
    if adaptive_threshold is not None and not 0.0 <= adaptive_threshold <= 1.0:
        raise ValueError(f"{adaptive_threshold=} must be in [0, 1]")
