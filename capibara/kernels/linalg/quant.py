"""Weight representations for the linalg family, and the conversions into them.

A dense layer's weight is one of three things: a float array, an
:class:`AffineWeight` (``quantize_affine``: integers with a scale and a zero
point per output channel) or a :class:`TernaryWeight` (``ternarize``: BitNet
b1.58, values in {-1, 0, 1} with one absmean scale). Both quantized forms are
NamedTuples, hence pytrees that ``jax.jit`` and ``jax.grad`` carry through, and
they unpack as the ``(q, scale, zero_point)`` / ``(t, scale)`` tuples the
public functions take.

Activations of an integer matmul are quantized on the fly, per row, to
symmetric int8 (``quantize_rows``): that is what lets the product run as
int8 x int8 -> int32 (W8A8; BitNet b1.58 uses the same 8-bit absmax
activations).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "AFFINE_BITS",
    "AffineWeight",
    "TernaryWeight",
    "dequantize",
    "quantize_affine",
    "quantize_rows",
    "quantize_weight",
    "ternarize",
]

#: The bit widths ``affine_bits`` accepts (the seed's 4, 8, 16). 4 and 8 are stored
#: in int8 (4-bit values simply use 16 of the 256 levels); 16 needs int16.
AFFINE_BITS = (4, 8, 16)

# An activation row quantized to int8 spends its 255 levels on [-127, 127];
# -128 is left unused so the range is symmetric and negation cannot overflow.
_INT8_MAX = 127


class AffineWeight(NamedTuple):
    """An affine-quantized weight: ``w ≈ scale * (q - zero_point)``.

    ``q`` is int8 (4 or 8 bits) or int16 (16 bits); ``scale`` (float32) and
    ``zero_point`` (int32, all zeros when symmetric) have ``q``'s rank with
    the reduced axis kept as size 1, so they broadcast against ``q``.
    """

    q: jax.Array
    scale: jax.Array
    zero_point: jax.Array


class TernaryWeight(NamedTuple):
    """A BitNet b1.58 weight: ``w ≈ scale * t`` with ``t`` in {-1, 0, 1} (int8)
    and one float32 ``scale`` (the mean absolute value of the original)."""

    t: jax.Array
    scale: jax.Array


def _storage_dtype(bits: int) -> jnp.dtype:
    return jnp.dtype(jnp.int16) if bits > 8 else jnp.dtype(jnp.int8)


def quantize_affine(
    w: jax.Array, bits: int = 8, symmetric: bool = True, axis: int | None = 0
) -> AffineWeight:
    """Quantize ``w`` to ``bits``-bit integers with a scale per slice along ``axis``.

    ``axis`` is the axis the ranges are reduced over: for a ``[in, out]``
    weight used as ``x @ w`` the default ``axis=0`` gives one scale per output
    channel, which is what an integer matmul can factor out of its sum;
    ``axis=None`` gives one scale for the whole tensor.

    Symmetric: ``scale = max|w| / (2^(bits-1) - 1)``, ``zero_point = 0``, and
    ``q`` uses the levels ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]``.
    Asymmetric: the range ``[min(w, 0), max(w, 0)]`` is spread over all
    ``2^bits`` levels ``[-2^(bits-1), 2^(bits-1) - 1]``; the zero point is the
    level that represents 0.0, so zero is exact (padding stays zero).

    >>> qw = quantize_affine(jnp.array([[0.5, -1.0], [0.25, 2.0]]))
    >>> qw.q.dtype, qw.scale.shape
    (dtype('int8'), (1, 2))
    """
    if bits not in AFFINE_BITS:
        raise ValueError(f"{bits=} must be one of {AFFINE_BITS}")
    w = jnp.asarray(w, jnp.float32)
    if axis is not None:
        axis = axis % w.ndim
    reduce = tuple(range(w.ndim)) if axis is None else (axis,)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax
        absmax = jnp.max(jnp.abs(w), axis=reduce, keepdims=True)
        scale = absmax / qmax
        scale = jnp.where(scale > 0, scale, 1.0)
        zero_point = jnp.zeros(scale.shape, jnp.int32)
    else:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        lo = jnp.minimum(jnp.min(w, axis=reduce, keepdims=True), 0.0)
        hi = jnp.maximum(jnp.max(w, axis=reduce, keepdims=True), 0.0)
        scale = (hi - lo) / (qmax - qmin)
        scale = jnp.where(scale > 0, scale, 1.0)
        zero_point = jnp.clip(qmin - jnp.round(lo / scale), qmin, qmax).astype(jnp.int32)
    q = jnp.clip(jnp.round(w / scale) + zero_point, qmin, qmax)
    return AffineWeight(q.astype(_storage_dtype(bits)), scale.astype(jnp.float32), zero_point)


def ternarize(w: jax.Array) -> TernaryWeight:
    """BitNet b1.58 absmean ternarization: ``t = clip(round(w / mean|w|), -1, 1)``.

    The scale is the mean absolute value over the whole tensor (not the max):
    weights are roughly Gaussian, and rounding against the mean puts about a
    third of them at zero, which is what makes the weight "1.58-bit".
    """
    w = jnp.asarray(w, jnp.float32)
    scale = jnp.mean(jnp.abs(w))
    scale = jnp.where(scale > 0, scale, 1.0)
    t = jnp.clip(jnp.round(w / scale), -1, 1).astype(jnp.int8)
    return TernaryWeight(t, scale)


def dequantize(w: AffineWeight | TernaryWeight) -> jax.Array:
    """The float32 weight a quantized representation stands for."""
    if isinstance(w, TernaryWeight):
        return w.t.astype(jnp.float32) * w.scale
    return w.scale * (w.q.astype(jnp.float32) - w.zero_point.astype(jnp.float32))


def quantize_rows(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Symmetric int8 quantization of each row (last axis) of ``x``.

    Returns ``(qx, sx)`` with ``x ≈ sx * qx``; ``sx`` keeps a trailing axis of
    size 1. A zero row gets scale 1 so nothing divides by zero.
    """
    x = x.astype(jnp.float32)
    sx = jnp.max(jnp.abs(x), axis=-1, keepdims=True) / _INT8_MAX
    sx = jnp.where(sx > 0, sx, 1.0)
    qx = jnp.clip(jnp.round(x / sx), -_INT8_MAX, _INT8_MAX).astype(jnp.int8)
    return qx, sx


def quantize_weight(fmt: Any, w: jax.Array) -> AffineWeight | TernaryWeight:
    """``w [k, n]`` in weight format ``fmt`` as the linalg kernels take it.

    ``fmt`` is a :class:`capibara.compiler.model_spec.WeightFormat` other than float
    (what a plan's linalg spec names): ``ternary`` is BitNet b1.58
    (:func:`ternarize`); ``affine`` is ``fmt.bits``-bit integers with one
    scale per output column, or one for the whole tensor when ``fmt.per_tensor``
    (BitNet's int8/int4 weights).
    """
    if fmt.kind == "ternary":
        return ternarize(w)
    return quantize_affine(w, fmt.bits, fmt.symmetric, axis=None if fmt.per_tensor else 0)
