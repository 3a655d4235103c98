"""linalg: every variant against the reference, the reference against numpy.

Tolerances. The reference and the fast variants round their operands the
same way (to the compute dtype, or to int8 levels), so what is left between
them is float32 accumulation order: each of the k products is exact or
rounded once, and the sums differ by at most ~k * 2^-24 of sum_k |x_ik w_kj|.
We bound every comparison by ``rel * (|x| @ |w|)`` elementwise, which is the
scale the error actually has (a plain rtol fails on entries that cancel to
near zero). Rounding the *result* to bf16 adds 2^-8 relative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capibara.kernels import linalg
from capibara.kernels.base import Unsupported
from capibara.kernels.linalg import (
    AffineWeight,
    TernaryWeight,
    dequantize,
    quantize_affine,
    ternarize,
)

F32_ACCUMULATION = 2.0**-24 * 8  # per-term rounding, with headroom for blocked sums
BF16 = 2.0**-8

dims = st.integers(min_value=1, max_value=48)
# One contract class subclassed per variant runs each @given test from several
# classes; that is the point (same properties, different implementation).
SETTINGS = settings(max_examples=8, deadline=None,
                    suppress_health_check=[HealthCheck.differing_executors])


def rng_arrays(seed: int, *shapes, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def assert_within(got, want, bound, rel):
    """|got - want| <= rel * bound + tiny, elementwise."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    excess = np.abs(got - want) - (rel * np.asarray(bound, np.float64) + 1e-30)
    assert np.all(excess <= 0), f"max excess {excess.max():.3g} (rel {rel:.3g})"


def round_to(a, dtype):
    return np.asarray(a).astype(dtype).astype(np.float64)


class TestReferenceAgainstNumpy:
    """The oracle's oracle: float64 numpy on the same rounded operands."""

    @SETTINGS
    @given(m=dims, k=dims, n=dims, seed=st.integers(0, 2**16), compute=st.sampled_from(["float32", "bfloat16"]))
    def test_policy_matmul(self, m, k, n, seed, compute):
        a, b = rng_arrays(seed, (m, k), (k, n))
        got = linalg.matmul(a, b, compute_dtype=compute)
        dt = jnp.bfloat16 if compute == "bfloat16" else np.float32
        want = round_to(a, dt) @ round_to(b, dt)
        assert got.dtype == jnp.float32
        assert_within(got, want, np.abs(a) @ np.abs(b), F32_ACCUMULATION * k)

    def test_param_dtype_rounds_the_weight_only(self):
        a, b = rng_arrays(0, (3, 5), (5, 4))
        got = linalg.matmul(a, b, param_dtype="bfloat16")
        want = a.astype(np.float64) @ round_to(b, jnp.bfloat16)
        assert_within(got, want, np.abs(a) @ np.abs(b), F32_ACCUMULATION * 5)

    @pytest.mark.parametrize("bits,symmetric", [(4, True), (8, True), (8, False), (16, True), (16, False)])
    def test_affine_matches_numpy(self, bits, symmetric):
        x, w = rng_arrays(bits, (6, 33), (33, 7))
        qw = quantize_affine(w, bits=bits, symmetric=symmetric)
        q, s, z = (np.asarray(v, np.float64) for v in qw)
        w_deq = s * (q - z)
        if bits <= 8:  # int8 activations, per row
            sx = np.abs(x).max(1, keepdims=True) / 127
            x = np.clip(np.round(x / sx), -127, 127) * sx
        got = linalg.int8_matmul(np.asarray(x, np.float32), *qw)
        assert_within(got, x @ w_deq, np.abs(x) @ np.abs(w_deq), F32_ACCUMULATION * 33)

    def test_ternary_matches_numpy(self):
        x, w = rng_arrays(3, (5, 40), (40, 6))
        scale = np.abs(w).mean()
        t = np.clip(np.round(w / scale), -1, 1)
        tw = ternarize(w)
        np.testing.assert_array_equal(np.asarray(tw.t), t)
        np.testing.assert_allclose(float(tw.scale), scale, rtol=1e-6)
        sx = np.abs(x).max(1, keepdims=True) / 127
        xq = np.clip(np.round(x / sx), -127, 127) * sx
        got = linalg.ternary_matmul(x, *tw)
        assert_within(got, xq @ (t * scale), np.abs(xq) @ np.abs(t * scale), F32_ACCUMULATION * 40)


class TestQuantization:
    @SETTINGS
    @given(k=dims, n=dims, seed=st.integers(0, 2**16), bits=st.sampled_from([4, 8, 16]),
           symmetric=st.booleans(), axis=st.sampled_from([0, 1, None]))
    def test_affine_round_trip_is_within_half_a_step(self, k, n, seed, bits, symmetric, axis):
        (w,) = rng_arrays(seed, (k, n))
        qw = quantize_affine(w, bits=bits, symmetric=symmetric, axis=axis)
        assert qw.q.dtype == (jnp.int16 if bits == 16 else jnp.int8)
        levels = np.asarray(qw.q, np.int64)
        lo = -(2 ** (bits - 1)) + (1 if symmetric else 0)
        assert levels.min() >= lo and levels.max() <= 2 ** (bits - 1) - 1
        err = np.abs(np.asarray(dequantize(qw)) - w)
        half_step = np.broadcast_to(np.asarray(qw.scale), w.shape) / 2
        # half a step, plus the float32 rounding of scale * level itself
        assert np.all(err <= half_step + 2.0**-22 * np.abs(w))
        if symmetric:
            assert not np.asarray(qw.zero_point).any()

    def test_asymmetric_represents_zero_exactly(self):
        w = np.array([[0.0, 1.0, 3.0], [0.5, 2.0, 0.0]], np.float32)  # all >= 0
        qw = quantize_affine(w, bits=4, symmetric=False, axis=None)
        deq = np.asarray(dequantize(qw))
        assert deq[0, 0] == 0.0 and deq[1, 2] == 0.0
        # an all-positive range uses the levels from the bottom, not half of them
        assert int(np.asarray(qw.q).min()) == -8

    def test_zero_weight_gets_a_finite_scale(self):
        qw = quantize_affine(np.zeros((4, 3), np.float32))
        assert np.all(np.isfinite(np.asarray(qw.scale)))
        np.testing.assert_array_equal(np.asarray(dequantize(qw)), 0.0)

    def test_bad_bits_is_refused(self):
        with pytest.raises(ValueError, match="bits=3"):
            quantize_affine(np.ones((2, 2), np.float32), bits=3)


class DenseContract:
    """Shared by every variant: compared to the reference, forward and gradient."""

    implementation: str

    def dense(self, x, w, **static):
        return linalg.dense(x, w, implementation=self.implementation, **static)

    @SETTINGS
    @given(m=dims, k=dims, n=dims, seed=st.integers(0, 2**16),
           policy=st.sampled_from([("float32", "float32", None), ("bfloat16", "float32", None),
                                   ("bfloat16", "float32", "bfloat16")]))
    def test_float_policy(self, m, k, n, seed, policy):
        compute, accumulate, output = policy
        a, b = rng_arrays(seed, (m, k), (k, n))
        static = dict(compute_dtype=compute, accumulate_dtype=accumulate, output_dtype=output)
        got = self.dense(a, b, **static)
        want = linalg.dense(a, b, implementation="reference", **static)
        assert got.dtype == want.dtype == jnp.dtype(output or accumulate)
        # bf16 output: both round a nearly equal f32 to bf16, which can land one
        # bf16 step apart.
        rel = F32_ACCUMULATION * k + (BF16 if output == "bfloat16" else 0.0)
        assert_within(got, want, np.abs(a) @ np.abs(b), rel)

    @pytest.mark.parametrize("compute", ["float32", "bfloat16"])
    def test_float_gradient(self, compute):
        a, b, r = rng_arrays(7, (2, 3, 24), (24, 10), (2, 3, 10))

        def loss(impl):
            return lambda a, b: jnp.sum(linalg.dense(a, b, implementation=impl, compute_dtype=compute) * r)

        got = jax.grad(loss(self.implementation), argnums=(0, 1))(a, b)
        want = jax.grad(loss("reference"), argnums=(0, 1))(a, b)
        # the cotangent of a bf16 operand is itself rounded to bf16
        rel = BF16 if compute == "bfloat16" else F32_ACCUMULATION * 24
        assert_within(got[0], want[0], np.abs(r) @ np.abs(b).T, rel)
        assert_within(got[1], want[1], np.abs(a).reshape(-1, 24).T @ np.abs(r).reshape(-1, 10), rel)

    @SETTINGS
    @given(m=dims, k=dims, n=dims, seed=st.integers(0, 2**16),
           kind=st.sampled_from(["affine4", "affine8", "affine8_asym", "affine16", "ternary", "per_tensor"]))
    def test_quantized(self, m, k, n, seed, kind):
        x, w = rng_arrays(seed, (m, k), (k, n))
        qw = {
            "affine4": lambda: quantize_affine(w, bits=4),
            "affine8": lambda: quantize_affine(w, bits=8),
            "affine8_asym": lambda: quantize_affine(w, bits=8, symmetric=False),
            "affine16": lambda: quantize_affine(w, bits=16, symmetric=False),
            "ternary": lambda: ternarize(w),
            "per_tensor": lambda: quantize_affine(w, axis=None, symmetric=False),
        }[kind]()
        got = self.dense(x, qw)
        want = linalg.dense(x, qw, implementation="reference")
        w_deq = np.asarray(dequantize(qw))
        assert_within(got, want, np.abs(x) @ np.abs(w_deq), F32_ACCUMULATION * k)

    @pytest.mark.parametrize("make", [lambda w: quantize_affine(w, symmetric=False), ternarize])
    def test_quantized_gradient_is_straight_through(self, make):
        x, w, r = rng_arrays(11, (4, 20), (20, 6), (4, 6))
        qw = make(w)
        f = lambda x, qw: jnp.sum(self.dense(x, qw) * r)  # noqa: E731
        gx, gw = jax.grad(f, argnums=(0, 1), allow_int=True)(x, qw)
        # straight-through: d/dx of x_q @ w_deq is r @ w_deq^T, rounding ignored
        w_deq = np.asarray(dequantize(qw), np.float64)
        assert_within(gx, r @ w_deq.T, np.abs(r) @ np.abs(w_deq).T, F32_ACCUMULATION * 6)
        ref_gw = jax.grad(lambda qw: jnp.sum(linalg.dense(x, qw) * r), allow_int=True)(qw)
        np.testing.assert_allclose(np.asarray(gw.scale), np.asarray(ref_gw.scale), rtol=1e-4, atol=1e-4)

    def test_bf16_input_and_leading_dims(self):
        a, b = rng_arrays(5, (2, 3, 16), (16, 8))
        a16 = jnp.asarray(a, jnp.bfloat16)
        got = self.dense(a16, b, compute_dtype="bfloat16")
        want = linalg.dense(a16, b, implementation="reference", compute_dtype="bfloat16")
        assert got.shape == (2, 3, 8)
        assert_within(got, want, np.abs(a) @ np.abs(b), F32_ACCUMULATION * 16)

    def test_jit_and_vmap(self):
        a, b = rng_arrays(9, (5, 4, 12), (12, 3))
        qw = quantize_affine(b)
        f = jax.jit(jax.vmap(lambda a: self.dense(a, qw)))
        want = linalg.dense(a, qw, implementation="reference")
        assert_within(f(a), want, np.abs(a) @ np.abs(np.asarray(dequantize(qw))), F32_ACCUMULATION * 12)


class TestReference(DenseContract):
    implementation = "reference"


class TestXla(DenseContract):
    implementation = "xla"

    def test_int8_error_is_bounded_by_activation_rounding(self):
        # Independent of the reference: each activation moves by at most half
        # its row's step, so |error| <= (max|x_i| / 254) * sum_k |w_deq_kj|.
        x, w = rng_arrays(13, (8, 64), (64, 5))
        qw = quantize_affine(w)
        w_deq = np.asarray(dequantize(qw), np.float64)
        got = linalg.int8_matmul(x, *qw, implementation="xla")
        half_step = np.abs(x).max(1, keepdims=True) / 254
        bound = half_step * np.abs(w_deq).sum(0, keepdims=True)
        err = np.abs(np.asarray(got, np.float64) - x.astype(np.float64) @ w_deq)
        assert np.all(err <= bound * (1 + 1e-4) + 1e-6)

    def test_refuses_per_row_scales(self):
        x, w = rng_arrays(1, (2, 6), (6, 3))
        qw = quantize_affine(w, axis=1)
        with pytest.raises(Unsupported, match="one scale per output column"):
            linalg.dense(x, qw, implementation="xla")
        linalg.dense(x, qw, implementation="reference")  # the fallback handles it

    def test_refuses_a_contraction_that_could_overflow_int32(self):
        k = linalg.MAX_INT8_CONTRACTION + 1
        x = np.ones((1, k), np.float32)
        qw = AffineWeight(np.ones((k, 1), np.int8), np.ones((1, 1), np.float32), np.zeros((1, 1), np.int32))
        with pytest.raises(Unsupported, match="int32 accumulator"):
            linalg.dense(x, qw, implementation="xla")


def test_registry():
    assert set(linalg.VARIANTS) == {"reference", "xla"}
    for name, variant in linalg.VARIANTS.items():
        assert variant.family == "linalg" and variant.name == name and "cpu" in variant.platforms
    assert isinstance(ternarize(np.ones((2, 2), np.float32)), TernaryWeight)
