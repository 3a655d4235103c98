"""The JAX half of the linalg family: what ``capibara.kernels.linalg`` exports."""

from __future__ import annotations

import jax

from capibara.kernels.base import EVERYWHERE, Variant
from capibara.kernels.linalg.policy import Policy
from capibara.kernels.linalg.quant import (
    AFFINE_BITS,
    AffineWeight,
    TernaryWeight,
    dequantize,
    quantize_affine,
    quantize_rows,
    quantize_weight,
    ternarize,
)
from capibara.kernels.linalg.reference import dense_reference
from capibara.kernels.linalg.xla import MAX_INT8_CONTRACTION, dense_xla

__all__ = [
    "AFFINE_BITS",
    "AffineWeight",
    "MAX_INT8_CONTRACTION",
    "Policy",
    "TernaryWeight",
    "VARIANTS",
    "dense",
    "dequantize",
    "int8_matmul",
    "matmul",
    "quantize_affine",
    "quantize_rows",
    "quantize_weight",
    "ternarize",
    "ternary_matmul",
]

_POLICY_DEFAULTS = {
    "param_dtype": None,
    "compute_dtype": "float32",
    "accumulate_dtype": "float32",
    "output_dtype": None,
}

VARIANTS: dict[str, Variant] = {
    "reference": Variant(
        "linalg", "reference", dense_reference, EVERYWHERE, _POLICY_DEFAULTS,
        "exact float32 math on rounded operands; the oracle and the fallback",
    ),
    "xla": Variant(
        "linalg", "xla", dense_xla, EVERYWHERE, _POLICY_DEFAULTS,
        "one dot_general: preferred_element_type accumulation, int8 x int8 -> int32 for int8 weights",
    ),
}


def dense(x: jax.Array, w, *, implementation: str = "reference", **static) -> jax.Array:
    """``x @ w`` (``x: [..., k]``, ``w: [k, n]``) with the named variant.

    ``static`` are the policy keywords (``param_dtype``, ``compute_dtype``,
    ``accumulate_dtype``, ``output_dtype``); see :class:`Policy`.
    """
    return VARIANTS[implementation](x, w, **static)


def matmul(a: jax.Array, b: jax.Array, *, param_dtype=None, compute_dtype="float32",
           accumulate_dtype="float32", output_dtype=None, implementation: str = "reference") -> jax.Array:
    """``a @ b`` under a precision policy, e.g. bf16 compute with f32 accumulation."""
    return dense(a, b, implementation=implementation, param_dtype=param_dtype,
                 compute_dtype=compute_dtype, accumulate_dtype=accumulate_dtype,
                 output_dtype=output_dtype)


def int8_matmul(x: jax.Array, q: jax.Array, scale: jax.Array, zero_point: jax.Array, *,
                output_dtype=None, implementation: str = "reference") -> jax.Array:
    """``x @ (scale * (q - zero_point))`` for a weight from :func:`quantize_affine`.

    int8-stored weights (4 or 8 bits) quantize ``x`` per row to int8 and, in
    the ``xla`` variant, multiply int8 x int8 -> int32 before rescaling.
    """
    return dense(x, AffineWeight(q, scale, zero_point), implementation=implementation,
                 output_dtype=output_dtype)


def ternary_matmul(x: jax.Array, t: jax.Array, scale: jax.Array, *, output_dtype=None,
                   implementation: str = "reference") -> jax.Array:
    """``x @ (scale * t)`` for a BitNet b1.58 weight from :func:`ternarize`
    (activations int8-quantized per row, as in BitNet)."""
    return dense(x, TernaryWeight(t, scale), implementation=implementation, output_dtype=output_dtype)
