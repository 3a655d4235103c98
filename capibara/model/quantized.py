"""Quantized block matmuls: quantization-aware training with straight-through gradients."""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from capibara.compiler.model_spec import WeightFormat
from capibara.kernels.linalg import (AffineWeight, TernaryWeight, dequantize, quantize_rows,
                                     quantize_weight)


def _rounded_activations(x: jax.Array, w: AffineWeight | TernaryWeight) -> jax.Array:
    """``x`` as an integer kernel multiplies it, in float32: rounded to int8 per
    row when ``w`` is stored in int8 (W8A8); 16-bit weights keep float rows."""
    x = x.astype(jnp.float32)
    stored = w.t if isinstance(w, TernaryWeight) else w.q
    if stored.dtype != jnp.int8:
        return x
    qx, sx = quantize_rows(x)
    return sx * qx.astype(jnp.float32)


def float_quantized_product(x: jax.Array, w: AffineWeight | TernaryWeight) -> jax.Array:
    """``x @ w`` on the values the integer kernels multiply, in float32."""
    return jnp.matmul(_rounded_activations(x, w), dequantize(w), precision=lax.Precision.HIGHEST)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def quantized_matmul(matmul: Callable[..., jax.Array], fmt: WeightFormat, x: jax.Array,
                     w: jax.Array) -> jax.Array:
    """``matmul(x, quantize_weight(fmt, w))`` with a straight-through gradient.

    Quantization-aware training: the float master weight ``w`` is what the
    optimizer updates, the forward pass multiplies its quantized form with the
    kernel, and the backward pass treats both roundings (weight levels, int8
    activation rows) as the identity, since rounding has zero derivative
    almost everywhere and would stop training dead.
    """
    return matmul(x, quantize_weight(fmt, w))


def _quantized_matmul_fwd(matmul, fmt, x, w):
    qw = quantize_weight(fmt, w)
    # The integer weight is the residual (a quarter of the float one at int8);
    # the empty array only remembers the master weight's dtype for its gradient.
    return matmul(x, qw), (x, qw, jnp.zeros((0,), w.dtype))


def _quantized_matmul_bwd(matmul, fmt, residuals, g):
    x, qw, w_dtype = residuals
    g = g.astype(jnp.float32)
    w_float = dequantize(qw)
    k, n = w_float.shape
    gx = jnp.matmul(g, w_float.T, precision=lax.Precision.HIGHEST)
    rows = _rounded_activations(x, qw).reshape(-1, k)
    gw = jnp.matmul(rows.T, g.reshape(-1, n), precision=lax.Precision.HIGHEST)
    return gx.astype(x.dtype), gw.astype(w_dtype.dtype)


quantized_matmul.defvjp(_quantized_matmul_fwd, _quantized_matmul_bwd)
