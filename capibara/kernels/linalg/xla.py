"""The fast dense product: one ``dot_general`` per call, lowered by XLA.

Float weights: the operands are cast to the compute dtype and the sum is
accumulated in the accumulate dtype through ``preferred_element_type``. That
keyword is the whole trick on CPU: a bf16 ``dot`` with a bf16 result is
converted to f32 first, while bf16 operands with an f32 result run on AMX,
several times faster (``benchmarks/kernels_linalg.py``).

Quantized weights stored in int8 (4/8-bit affine, ternary): the activations
are quantized per row to int8 and the product is int8 x int8 -> int32, then
rescaled. With ``w = s_j (q_kj - z_j)`` and ``x_ik ≈ a_i p_ik``::

    (x @ w)_ij ≈ a_i s_j (sum_k p_ik q_kj - z_j sum_k p_ik)

so one integer matmul plus a rank-one correction gives the affine product,
exact in int32. That factorization needs the scale and zero point to depend
on the output column only (``quantize_affine(..., axis=0)`` or ``axis=None``);
other layouts are refused. The backward pass is the reference's (straight-
through for the activation rounding), computed in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.base import Unsupported
from capibara.kernels.linalg.policy import Policy
from capibara.kernels.linalg.quant import AffineWeight, TernaryWeight, quantize_rows
from capibara.kernels.linalg.reference import quantized_reference

__all__ = ["dense_xla", "MAX_INT8_CONTRACTION"]

# |activation level| <= 127 and |weight level| <= 128 (asymmetric int8 uses
# -128): each product is below 2^14, so an int32 sum of k of them is exact
# while k * 127 * 128 < 2^31.
MAX_INT8_CONTRACTION = (2**31 - 1) // (127 * 128)


def _int8_product(x: jax.Array, q: jax.Array, scale: jax.Array, zero_point: jax.Array) -> jax.Array:
    """The W8A8 forward: int8 activations times int8 weights, int32 sums."""
    lead, k = x.shape[:-1], x.shape[-1]
    qx, sx = quantize_rows(x.reshape(-1, k))
    acc = lax.dot_general(qx, q, (((1,), (0,)), ((), ())), preferred_element_type=jnp.int32)
    row_sums = jnp.sum(qx, axis=1, keepdims=True, dtype=jnp.int32)
    acc = acc - row_sums * zero_point.reshape(1, -1)
    y = acc.astype(jnp.float32) * sx * scale.reshape(1, -1)
    return y.reshape(*lead, q.shape[1])


@jax.custom_vjp
def _int8_dense(x: jax.Array, w: AffineWeight) -> jax.Array:
    return _int8_product(x, w.q, w.scale, w.zero_point)


def _int8_dense_fwd(x, w):
    return _int8_dense(x, w), (x, w)


def _int8_dense_bwd(residuals, g):
    x, w = residuals
    # The reference's VJP. Its forward matmul is dead code here and XLA drops
    # it; what remains is g @ w^T (straight-through to x) and the scale's sum.
    _, vjp = jax.vjp(lambda x, scale: quantized_reference(x, w._replace(scale=scale)), x, w.scale)
    gx, gscale = vjp(g)
    return gx.astype(x.dtype), AffineWeight(None, gscale, None)


_int8_dense.defvjp(_int8_dense_fwd, _int8_dense_bwd)


def _check_int8(x: jax.Array, w: AffineWeight) -> None:
    k, n = w.q.shape
    if x.shape[-1] > MAX_INT8_CONTRACTION:
        raise Unsupported(
            f"contraction {x.shape[-1]=} exceeds {MAX_INT8_CONTRACTION=}: the int32 accumulator could overflow"
        )
    if w.scale.shape not in ((1, n), (1, 1)) or w.zero_point.shape != w.scale.shape:
        raise Unsupported(
            f"int8 matmul needs one scale per output column, got {w.scale.shape=} for {w.q.shape=}; "
            "quantize with axis=0 (or None)"
        )


def dense_xla(
    x: jax.Array,
    w: jax.Array | AffineWeight | TernaryWeight,
    *,
    param_dtype=None,
    compute_dtype="float32",
    accumulate_dtype="float32",
    output_dtype=None,
) -> jax.Array:
    """``x @ w`` as one XLA dot; same contract as :func:`dense_reference`."""
    if isinstance(w, TernaryWeight):
        zero = jnp.zeros((1, 1), jnp.int32)
        w = AffineWeight(w.t, jnp.reshape(w.scale, (1, 1)), zero)
    if isinstance(w, AffineWeight):
        if w.q.ndim != 2:
            raise Unsupported(f"quantized weights must be [k, n], got {w.q.shape=}")
        out = output_dtype if output_dtype is not None else jnp.float32
        if w.q.dtype != jnp.int8:
            # 16-bit levels: no integer product fits int32, so the weight is
            # dequantized and multiplied in float32, as the reference does.
            return quantized_reference(x, w).astype(out)
        _check_int8(x, w)
        return _int8_dense(x, w).astype(out)
    policy = Policy.of(param_dtype=param_dtype, compute_dtype=compute_dtype,
                       accumulate_dtype=accumulate_dtype, output_dtype=output_dtype)
    if policy.param_dtype is not None:
        w = w.astype(policy.param_dtype)
    y = lax.dot_general(
        x.astype(policy.compute_dtype),
        w.astype(policy.compute_dtype),
        (((x.ndim - 1,), (0,)), ((), ())),
        precision=policy.dot_precision,
        preferred_element_type=policy.accumulate_dtype,
    )
    return y.astype(policy.output_dtype)
