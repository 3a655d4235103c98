"""scan: every variant against the reference, the reference against a float64 numpy loop.

Tolerances. ``h_t = sum_s (a_{s+1} ... a_t) b_s``: variants evaluate the same
products and sums in different orders (chunk summaries, prefix trees), each
step adding at most a few float32 roundings relative to the magnitudes
involved. So errors are bounded elementwise by ``rel * bound_t`` where
``bound`` is the same recurrence run on ``|a|`` and ``|b|`` (and, for
gradients, its reverse on ``|a|`` and ``|cotangent|``): float32 gets
``rel = 4 * seq * 2^-24``. bf16 outputs are rounded once (unit roundoff
``u = 2^-8``) and two roundings of nearly equal values may land one ulp
apart, so bf16 adds ``2u``; the saved bf16 output feeds ``da`` (another
``u``), so gradients get ``4u``.
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

import capibara.kernels.scan as scan_family
from capibara.kernels.base import Unsupported
from capibara.kernels.scan import VARIANTS, scan

U_BF16 = 2.0**-8
F32_STEP = 4 * 2.0**-24

# Each new shape costs a compile. derandomize: every contract test draws the
# same examples, so the reference's compiled forward/backward is reused
# across the variant classes (``value_and_grads`` is jitted once per shape).
SETTINGS = settings(max_examples=10, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.differing_executors, HealthCheck.too_slow])


@st.composite
def problems(draw):
    chunk = draw(st.sampled_from([1, 2, 4, 8]))
    return dict(batch=draw(st.integers(1, 3)), seq=chunk * draw(st.integers(1, 6)),
                dim=draw(st.integers(1, 6)), chunk=chunk, seed=draw(st.integers(0, 2**16)))


def make_inputs(p, dtype=np.float32):
    """a in [-1.1, 1.1] with some exact zeros (a reset), b and a cotangent ~ N(0, 1)."""
    rng = np.random.default_rng(p["seed"])
    shape = (p["batch"], p["seq"], p["dim"])
    a = rng.uniform(-1.1, 1.1, shape) * (rng.random(shape) > 0.1)
    b, g = rng.standard_normal(shape), rng.standard_normal(shape)
    return (jnp.asarray(x, dtype) for x in (a, b, g))


def recurrence64(a, b, reverse=False):
    """float64 numpy loop: the oracle, and (on |a|, |b|) the error scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    h, out = np.zeros((a.shape[0], a.shape[2])), np.zeros(a.shape)
    steps = range(a.shape[1] - 1, -1, -1) if reverse else range(a.shape[1])
    for t in steps:
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


def bounds(a, b, g):
    """Elementwise scales of h, da and db (see the module docstring)."""
    a, b, g = (np.abs(np.asarray(x, np.float64)) for x in (a, b, g))
    h = recurrence64(a, b)
    a_next = np.pad(a[:, 1:], ((0, 0), (0, 1), (0, 0)))
    lam = recurrence64(a_next, g, reverse=True)
    h_prev = np.pad(h[:, :-1], ((0, 0), (1, 0), (0, 0)))
    return h, lam * h_prev, lam


def assert_within(got, want, bound, rel):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    excess = np.abs(got - want) - (rel * bound + 1e-30)
    assert np.all(excess <= 0), f"max excess {excess.max():.3g} (rel {rel:.3g})"


def value_and_grads(implementation, a, b, g, **static):
    """h and the gradients (da, db) of ``sum(h * g)``."""
    (da, db), h = _value_and_grads(a, b, g, implementation, tuple(sorted(static.items())))
    return h, da, db


@functools.partial(jax.jit, static_argnums=(3, 4))
def _value_and_grads(a, b, g, implementation, static):
    def f(a, b):
        h = scan(a, b, implementation=implementation, **dict(static))
        return jnp.sum(h.astype(jnp.float32) * g.astype(jnp.float32)), h
    return jax.grad(f, argnums=(0, 1), has_aux=True)(a, b)


class TestReferenceAgainstNumpy:
    @SETTINGS
    @given(p=problems())
    def test_forward(self, p):
        a, b, g = make_inputs(p)
        got = scan(a, b)
        assert got.dtype == jnp.float32
        assert_within(got, recurrence64(a, b), bounds(a, b, g)[0], F32_STEP * p["seq"])

    def test_gradient_matches_finite_differences(self):
        # The reference's gradient is JAX autodiff; check it once against
        # central differences in float64 numpy on a tiny problem.
        a, b, g = make_inputs(dict(batch=1, seq=5, dim=2, chunk=1, seed=7))
        da, db = jax.grad(lambda a, b: jnp.sum(scan(a, b) * g), argnums=(0, 1))(a, b)
        loss = lambda a, b: float(np.sum(recurrence64(a, b) * np.asarray(g, np.float64)))  # noqa: E731
        a64, b64, eps = np.asarray(a, np.float64), np.asarray(b, np.float64), 1e-6
        for got, which in ((da, 0), (db, 1)):
            num = np.zeros(a64.shape)
            for idx in np.ndindex(a64.shape):
                args = [a64.copy(), b64.copy()]
                args[which][idx] += eps
                up = loss(*args)
                args[which][idx] -= 2 * eps
                num[idx] = (up - loss(*args)) / (2 * eps)
            assert np.allclose(np.asarray(got), num, atol=1e-4)


class ScanContract:
    """What every variant promises; subclasses name it and its static parameters."""

    implementation: str

    def static(self, p) -> dict:
        return {}

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_f32(self, p):
        a, b, g = make_inputs(p)
        h, da, db = value_and_grads(self.implementation, a, b, g, **self.static(p))
        want = value_and_grads("reference", a, b, g)
        rel = F32_STEP * p["seq"]
        for got, ref, bound in zip((h, da, db), want, bounds(a, b, g)):
            assert got.dtype == jnp.float32
            assert_within(got, ref, bound, rel)

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_bf16(self, p):
        a, b, g = make_inputs(p, jnp.bfloat16)
        h, da, db = value_and_grads(self.implementation, a, b, g, **self.static(p))
        want = value_and_grads("reference", a, b, g)
        f32 = F32_STEP * p["seq"]
        scale_h, scale_da, scale_db = bounds(a, b, g)
        assert h.dtype == da.dtype == db.dtype == jnp.bfloat16
        assert_within(h, want[0], scale_h, f32 + 2 * U_BF16)
        assert_within(da, want[1], scale_da, f32 + 4 * U_BF16)
        assert_within(db, want[2], scale_db, f32 + 4 * U_BF16)

    def test_vmap_and_donation(self):
        p = dict(batch=2, seq=8, dim=3, chunk=4, seed=11)
        a, b, _ = make_inputs(p)
        stacked_a, stacked_b = jnp.stack([a, -a]), jnp.stack([b, 2 * b])
        f = jax.vmap(lambda a, b: scan(a, b, implementation=self.implementation, **self.static(p)))
        want = jax.vmap(scan)(stacked_a, stacked_b)
        got = jax.jit(f)(stacked_a, stacked_b)
        # Donating b lets the in-place variants write into its storage; same answer.
        donated = jax.jit(f, donate_argnums=1)(stacked_a, stacked_b + 0)
        bound = np.stack([bounds(a, b, b)[0], bounds(-a, 2 * b, b)[0]])
        for result in (got, donated):
            assert_within(result, want, bound, F32_STEP * 8)


class TestSequential(ScanContract):
    implementation = "sequential"


class TestChunked(ScanContract):
    implementation = "chunked"

    def static(self, p):
        return dict(chunk=p["chunk"])

    def test_refuses_a_sequence_that_is_not_a_multiple_of_the_chunk(self):
        x = jnp.ones((1, 12, 2))
        with pytest.raises(Unsupported, match="seq=12 must be a multiple of chunk=8"):
            scan(x, x, implementation="chunked", chunk=8)

    def test_a_chunk_longer_than_the_sequence_is_one_chunk(self):
        a, b, g = make_inputs(dict(batch=1, seq=6, dim=2, chunk=1, seed=2))
        assert_within(scan(a, b, implementation="chunked"), scan(a, b), bounds(a, b, g)[0], F32_STEP * 6)


class TestAssociative(ScanContract):
    implementation = "associative"


class TestContract:
    def test_registry(self):
        assert set(VARIANTS) == {"reference", "sequential", "chunked", "associative"}
        for name, variant in VARIANTS.items():
            assert (variant.family, variant.name) == ("scan", name)
            assert variant.doc

    @pytest.mark.parametrize("implementation", sorted(VARIANTS))
    def test_bad_shapes_raise_value_error(self, implementation):
        with pytest.raises(ValueError, match="must both be \\[batch, seq, dim\\]"):
            scan(jnp.ones((1, 4, 2)), jnp.ones((1, 4, 3)), implementation=implementation)
        with pytest.raises(ValueError, match="must both be"):
            scan(jnp.ones((4, 2)), jnp.ones((4, 2)), implementation=implementation)

    def test_unknown_implementation(self):
        with pytest.raises(ValueError, match="unknown scan implementation 'parallel'"):
            scan(jnp.ones((1, 2, 1)), jnp.ones((1, 2, 1)), implementation="parallel")

    def test_docstring_example(self):
        assert doctest.testmod(scan_family).failed == 0
