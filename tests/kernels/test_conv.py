"""conv: every causal_conv1d variant against the reference, the reference against np.convolve.

Tolerances. ``y[t] = sum_i w[i] x[t - width + 1 + i]`` summed in another
order is off by at most ``width * 2^-24`` of ``sum_i |w[i]| |x[...]|`` (the
elementwise scale, ``conv(|x|, |w|)``); ``dx`` has ``width`` terms on the
scale ``corr(|g|, |w|)`` and ``dw`` has ``batch * seq`` terms on the scale
``sum_t |g[t]| |x[t - ...]|``. We allow 4x that. bf16 outputs are rounded
once (unit roundoff ``u = 2^-8``) and two roundings of nearly equal values
may land one ulp apart: ``2u`` of the scale.
"""

from __future__ import annotations

import doctest
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capibara.kernels.conv as conv_family
from capibara.kernels.base import Unsupported
from capibara.kernels.conv import VARIANTS, causal_conv1d

EPS32 = 2.0**-24
U_BF16 = 2.0**-8

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.differing_executors, HealthCheck.too_slow])


@st.composite
def problems(draw):
    return dict(batch=draw(st.integers(1, 3)), seq=draw(st.integers(1, 24)), channels=draw(st.integers(1, 5)),
                width=draw(st.integers(1, 6)), seed=draw(st.integers(0, 2**16)))


def make_inputs(p, dtype=np.float32):
    rng = np.random.default_rng(p["seed"])
    x = rng.standard_normal((p["batch"], p["seq"], p["channels"]))
    w = rng.standard_normal((p["width"], p["channels"]))
    g = rng.standard_normal(x.shape)
    return (jnp.asarray(a, dtype) for a in (x, w, g))


def conv64(x, w):
    """The oracle: float64 ``np.convolve`` of each (batch, channel) row with the
    flipped filter (w[-1] weighs the current step), first ``seq`` outputs."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    out = np.zeros(x.shape)
    for b in range(x.shape[0]):
        for c in range(x.shape[2]):
            out[b, :, c] = np.convolve(x[b, :, c], w[::-1, c])[: x.shape[1]]
    return out


def scales(x, w, g):
    """Elementwise magnitudes of y, dx and dw."""
    x, w, g = (np.abs(np.asarray(a, np.float64)) for a in (x, w, g))
    width, seq = w.shape[0], x.shape[1]
    # dx[s] = sum_i w[i] g[s + width - 1 - i]: conv64 (which flips w) in reversed time.
    dx = conv64(g[:, ::-1], w)[:, ::-1]
    padded = np.pad(x, ((0, 0), (width - 1, 0), (0, 0)))
    dw = np.stack([np.sum(g * padded[:, i:i + seq], axis=(0, 1)) for i in range(width)])
    return conv64(x, w), dx, dw


def assert_within(got, want, allowed):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    excess = np.abs(got - want) - (allowed + 1e-30)
    assert np.all(excess <= 0), f"max excess {excess.max():.3g}"


def value_and_grads(implementation, x, w, g):
    (dx, dw), y = _value_and_grads(x, w, g, implementation)
    return y, dx, dw


@functools.partial(jax.jit, static_argnums=(3,))
def _value_and_grads(x, w, g, implementation):
    def f(x, w):
        y = causal_conv1d(x, w, implementation=implementation)
        return jnp.sum(y.astype(jnp.float32) * g.astype(jnp.float32)), y
    return jax.grad(f, argnums=(0, 1), has_aux=True)(x, w)


def allowed(p, x, w, g, extra_rel=0.0):
    sy, sdx, sdw = scales(x, w, g)
    terms = (p["width"], p["width"], p["batch"] * p["seq"])
    return [(4 * n * EPS32 + extra_rel) * s for n, s in zip(terms, (sy, sdx, sdw))]


class TestReferenceAgainstNumpy:
    @SETTINGS
    @given(p=problems())
    def test_forward(self, p):
        x, w, g = make_inputs(p)
        got = causal_conv1d(x, w)
        assert got.dtype == jnp.float32
        assert_within(got, conv64(x, w), allowed(p, x, w, g)[0])


class ConvContract:
    implementation: str

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_f32(self, p):
        x, w, g = make_inputs(p)
        got = value_and_grads(self.implementation, x, w, g)
        want = value_and_grads("reference", x, w, g)
        for a, ref, bound in zip(got, want, allowed(p, x, w, g)):
            assert a.dtype == jnp.float32
            assert_within(a, ref, bound)

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_bf16(self, p):
        x, w, g = make_inputs(p, jnp.bfloat16)
        got = value_and_grads(self.implementation, x, w, g)
        want = value_and_grads("reference", x, w, g)
        for a, ref, bound in zip(got, want, allowed(p, x, w, g, extra_rel=2 * U_BF16)):
            assert a.dtype == jnp.bfloat16
            assert_within(a, ref, bound)

    def test_vmap(self):
        p = dict(batch=2, seq=9, channels=3, width=4, seed=8)
        x, w, g = make_inputs(p)
        xs, ws = jnp.stack([x, -x]), jnp.stack([w, 2 * w])
        got = jax.jit(jax.vmap(lambda x, w: causal_conv1d(x, w, implementation=self.implementation)))(xs, ws)
        for i in range(2):
            assert_within(got[i], conv64(xs[i], ws[i]), allowed(p, xs[i], ws[i], g)[0])


class TestShiftAdd(ConvContract):
    implementation = "shift_add"

    def test_refuses_long_filters(self):
        with pytest.raises(Unsupported, match="width=65 is above MAX_WIDTH=64"):
            causal_conv1d(jnp.ones((1, 80, 2)), jnp.ones((65, 2)), implementation="shift_add")


class TestContract:
    def test_registry(self):
        assert set(VARIANTS) == {"reference", "shift_add"}
        for name, variant in VARIANTS.items():
            assert (variant.family, variant.name) == ("conv", name)
            assert variant.doc

    @pytest.mark.parametrize("implementation", sorted(VARIANTS))
    @pytest.mark.parametrize("shapes,message", [
        (((1, 8, 3), (4, 2)), "channels"),
        (((8, 3), (4, 3)), "must be \\[batch, seq, channels\\]"),
        (((1, 8, 3), (0, 3)), "width 0"),
    ])
    def test_bad_inputs_raise_value_error(self, implementation, shapes, message):
        with pytest.raises(ValueError, match=message):
            causal_conv1d(jnp.ones(shapes[0]), jnp.ones(shapes[1]), implementation=implementation)

    def test_unknown_implementation(self):
        with pytest.raises(ValueError, match="unknown causal_conv1d implementation 'im2col'"):
            causal_conv1d(jnp.ones((1, 4, 1)), jnp.ones((2, 1)), implementation="im2col")

    def test_docstring_example(self):
        assert doctest.testmod(conv_family).failed == 0
