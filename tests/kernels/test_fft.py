"""fft: every long_conv variant against the reference, the reference against np.convolve,
and the cost model's choices.

Tolerances. ``y[t] = sum_j k[j] u[t-j]`` summed in another order is off by
at most ``K * 2^-24`` of ``sum_j |k[j]| |u[t-j]|`` (the elementwise scale
``conv(|u|, |k|)``); gradients likewise with their own sums: ``du`` has
``K`` terms on the scale ``corr(|g|, |k|)``, ``dk`` has ``L`` terms on the
scale ``corr(|g|, |u|)``. We allow 4x that. The FFT spreads its rounding over
all outputs instead: its error is bounded in norm, ``~log2(n) * 2^-24 *
||u|| * ||k||`` per channel, so the ``fft`` variant gets that term (x8) too.
bf16 inputs are converted to f32 once; the bf16 output is rounded once
(unit roundoff ``u = 2^-8``), and two roundings of nearly equal values may
land one ulp apart: ``2u`` of the elementwise scale.
"""

from __future__ import annotations

import doctest
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capibara.kernels.fft as fft_family
import capibara.kernels.fft.cost as cost
from capibara.kernels.fft import VARIANTS, choose_long_conv, fast_fft_length, long_conv

EPS32 = 2.0**-24
U_BF16 = 2.0**-8

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.differing_executors, HealthCheck.too_slow])


@st.composite
def problems(draw):
    length = draw(st.integers(1, 48))
    return dict(channels=draw(st.integers(1, 4)), length=length, kernel_len=draw(st.integers(1, length)),
                taps_per_step=draw(st.sampled_from([1, 3, 16])), seed=draw(st.integers(0, 2**16)))


def make_inputs(p, dtype=np.float32):
    rng = np.random.default_rng(p["seed"])
    u = rng.standard_normal((p["channels"], p["length"]))
    k = rng.standard_normal((p["channels"], p["kernel_len"]))
    g = rng.standard_normal((p["channels"], p["length"]))
    return (jnp.asarray(x, dtype) for x in (u, k, g))


def conv64(u, k):
    """The oracle: float64 ``np.convolve`` per channel, first ``length`` outputs."""
    u, k = np.asarray(u, np.float64), np.asarray(k, np.float64)
    return np.stack([np.convolve(uc, kc)[: u.shape[1]] for uc, kc in zip(u, k)])


def scales(u, k, g):
    """Elementwise magnitudes of y, du, dk (sums of absolute products)."""
    u, k, g = (np.abs(np.asarray(x, np.float64)) for x in (u, k, g))
    y = conv64(u, k)
    # du[s] = sum_j k[j] g[s + j]: a convolution in reversed time.
    du = conv64(g[:, ::-1], k)[:, ::-1]
    dk = np.stack([[np.dot(gc[j:], uc[: len(uc) - j]) for j in range(k.shape[1])] for gc, uc in zip(g, u)])
    return y, du, dk


def normwise(a, b, n):
    """Per-channel FFT error scale ``log2(n) ||a|| ||b||`` as a column."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (max(math.log2(n), 1.0) * np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))[:, None]


def assert_within(got, want, allowed):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    excess = np.abs(got - want) - (allowed + 1e-30)
    assert np.all(excess <= 0), f"max excess {excess.max():.3g}"


def value_and_grads(implementation, u, k, g, **static):
    (du, dk), y = _value_and_grads(u, k, g, implementation, tuple(sorted(static.items())))
    return y, du, dk


@functools.partial(jax.jit, static_argnums=(3, 4))
def _value_and_grads(u, k, g, implementation, static):
    def f(u, k):
        y = long_conv(u, k, implementation=implementation, **dict(static))
        return jnp.sum(y.astype(jnp.float32) * g.astype(jnp.float32)), y
    return jax.grad(f, argnums=(0, 1), has_aux=True)(u, k)


class TestReferenceAgainstNumpy:
    @SETTINGS
    @given(p=problems())
    def test_forward(self, p):
        u, k, g = make_inputs(p)
        got = long_conv(u, k)
        assert got.dtype == jnp.float32
        assert_within(got, conv64(u, k), 4 * p["kernel_len"] * EPS32 * scales(u, k, g)[0])


class LongConvContract:
    implementation: str
    normwise = False  # FFT rounding is spread over all outputs (module docstring)

    def static(self, p) -> dict:
        return {}

    def allowed(self, p, u, k, g, extra_rel=0.0):
        """Allowed |error| of (y, du, dk) against the reference."""
        sy, sdu, sdk = scales(u, k, g)
        allowed = [(4 * p["kernel_len"] * EPS32 + extra_rel) * sy,
                   (4 * p["kernel_len"] * EPS32 + extra_rel) * sdu,
                   (4 * p["length"] * EPS32 + extra_rel) * sdk]
        if self.normwise:
            n = fast_fft_length(p["length"] + p["kernel_len"] - 1)
            allowed = [allowed[0] + 8 * EPS32 * normwise(u, k, n), allowed[1] + 8 * EPS32 * normwise(g, k, n),
                       allowed[2] + 8 * EPS32 * normwise(g, u, n)]
        return allowed

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_f32(self, p):
        u, k, g = make_inputs(p)
        got = value_and_grads(self.implementation, u, k, g, **self.static(p))
        want = value_and_grads("reference", u, k, g)
        for x, ref, allowed in zip(got, want, self.allowed(p, u, k, g)):
            assert x.dtype == jnp.float32
            assert_within(x, ref, allowed)

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_bf16(self, p):
        u, k, g = make_inputs(p, jnp.bfloat16)
        got = value_and_grads(self.implementation, u, k, g, **self.static(p))
        want = value_and_grads("reference", u, k, g)
        for x, ref, allowed in zip(got, want, self.allowed(p, u, k, g, extra_rel=2 * U_BF16)):
            assert x.dtype == jnp.bfloat16
            assert_within(x, ref, allowed)

    def test_vmap(self):
        p = dict(channels=2, length=12, kernel_len=5, taps_per_step=3, seed=4)
        u, k, _ = make_inputs(p)
        us, ks = jnp.stack([u, 2 * u]), jnp.stack([k, -k])
        got = jax.jit(jax.vmap(lambda u, k: long_conv(u, k, implementation=self.implementation,
                                                       **self.static(p))))(us, ks)
        for i in range(2):
            assert_within(got[i], conv64(us[i], ks[i]), 1e-5 * (1 + scales(us[i], ks[i], us[i])[0]))


class TestFft(LongConvContract):
    implementation = "fft"
    normwise = True


class TestDirect(LongConvContract):
    implementation = "direct"

    def static(self, p):
        return dict(taps_per_step=p["taps_per_step"])


class TestCostModel:
    def test_fast_fft_length_is_the_smallest_5_smooth_length(self):
        def smooth(m):
            for prime in (2, 3, 5):
                while m % prime == 0:
                    m //= prime
            return m == 1
        for n in list(range(1, 200)) + [8207, 8255, 9215, 16383]:
            got = fast_fft_length(n)
            assert got >= n and smooth(got)
            assert not any(smooth(m) for m in range(n, got))

    def test_short_filters_go_direct_long_ones_fft(self):
        assert choose_long_conv(8192, 16, "cpu") == "direct"
        assert choose_long_conv(8192, 8192, "cpu") == "fft"
        # One crossover: once FFT wins at some kernel length it wins at all longer ones.
        picks = [choose_long_conv(8192, kl, "cpu") for kl in range(1, 8193, 7)]
        assert picks == sorted(picks, key=("direct", "fft").index)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="kernel_len"):
            choose_long_conv(16, 32, "cpu")
        with pytest.raises(ValueError, match="unknown platform"):
            choose_long_conv(16, 4, "quantum")

    def test_cost_module_imports_no_jax(self):
        import subprocess
        import sys
        code = ("import sys; import capibara.kernels.fft.cost as c; "
                "print(c.choose_long_conv(8192, 64, 'cpu'), 'jax' in sys.modules)")
        # The compile path imports the cost model; importing it (and so the
        # fft package) must not pull in JAX.
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["direct", "False"]


class TestContract:
    def test_registry(self):
        assert set(VARIANTS) == {"reference", "fft", "direct"}
        for name, variant in VARIANTS.items():
            assert (variant.family, variant.name) == ("fft", name)
            assert variant.doc

    @pytest.mark.parametrize("implementation", sorted(VARIANTS))
    @pytest.mark.parametrize("shapes,message", [
        (((2, 8), (3, 4)), "channels"),
        (((2, 8), (2, 9)), "kernel_len <= length"),
        (((8,), (4,)), "must be \\[channels, length\\]"),
    ])
    def test_bad_inputs_raise_value_error(self, implementation, shapes, message):
        with pytest.raises(ValueError, match=message):
            long_conv(jnp.ones(shapes[0]), jnp.ones(shapes[1]), implementation=implementation)

    def test_unknown_implementation(self):
        with pytest.raises(ValueError, match="unknown long_conv implementation 'winograd'"):
            long_conv(jnp.ones((1, 4)), jnp.ones((1, 2)), implementation="winograd")

    def test_docstring_examples(self):
        for module in (fft_family, cost):
            assert doctest.testmod(module).failed == 0
