"""The reference dense product: the exact math, in float32, on every platform.

Every other linalg variant is tested against this, and its gradients are the
ones the fast variants reproduce. Operands are rounded exactly as the fast
path rounds them (to the compute dtype, or to int8 levels), then multiplied in
float32 at full precision, so the only difference left to a fast variant is
its accumulation order.

Quantized activations use the straight-through estimator: the forward value
is the int8-rounded row, the gradient flows to ``x`` as if it had not been
rounded (rounding has zero derivative almost everywhere, which would stop
training dead).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.linalg.policy import Policy
from capibara.kernels.linalg.quant import (
    AffineWeight,
    TernaryWeight,
    dequantize,
    quantize_rows,
)

__all__ = ["dense_reference", "fake_quantize_rows", "quantized_reference"]

_HIGHEST = lax.Precision.HIGHEST


def fake_quantize_rows(x: jax.Array) -> jax.Array:
    """``x`` rounded to its per-row int8 levels, with an identity gradient."""
    x = x.astype(jnp.float32)
    qx, sx = quantize_rows(x)
    return x + lax.stop_gradient(sx * qx.astype(jnp.float32) - x)


def quantized_reference(x: jax.Array, w: AffineWeight | TernaryWeight) -> jax.Array:
    """``x @ w`` for a quantized weight, in float32.

    Activations are int8-quantized per row when the weight is stored in int8
    (4- and 8-bit affine, ternary): that is the W8A8 product an int8 kernel
    computes. 16-bit weights keep float activations, since int16 x int16
    products overflow an int32 accumulator after two terms.
    """
    w_float = dequantize(w)
    stored = w.t if isinstance(w, TernaryWeight) else w.q
    if stored.dtype == jnp.int8:
        x = fake_quantize_rows(x)
    return jnp.matmul(x.astype(jnp.float32), w_float, precision=_HIGHEST)


def dense_reference(
    x: jax.Array,
    w: jax.Array | AffineWeight | TernaryWeight,
    *,
    param_dtype=None,
    compute_dtype="float32",
    accumulate_dtype="float32",
    output_dtype=None,
) -> jax.Array:
    """``x @ w`` with ``x: [..., k]`` and ``w: [k, n]`` under a precision policy.

    For a float ``w`` the operands are rounded to ``param_dtype`` (weight only)
    and ``compute_dtype``, multiplied exactly in float32 and rounded to the
    accumulate and then the output dtype. A quantized ``w`` ignores the policy's
    operand dtypes (its integers are exact) and returns ``output_dtype`` or
    float32.
    """
    policy = Policy.of(param_dtype=param_dtype, compute_dtype=compute_dtype,
                       accumulate_dtype=accumulate_dtype, output_dtype=output_dtype)
    if isinstance(w, (AffineWeight, TernaryWeight)):
        out = output_dtype if output_dtype is not None else jnp.float32
        return quantized_reference(x, w).astype(out)
    if policy.param_dtype is not None:
        w = w.astype(policy.param_dtype)
    xc = x.astype(policy.compute_dtype).astype(jnp.float32)
    wc = w.astype(policy.compute_dtype).astype(jnp.float32)
    y = jnp.matmul(xc, wc, precision=_HIGHEST)
    return y.astype(policy.accumulate_dtype).astype(policy.output_dtype)
