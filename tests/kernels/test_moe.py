"""moe: the reference against a per-token float64 numpy oracle, ``dispatch``
against the reference (no capacity limit) and against the oracle's
priority-and-capacity rule (with one).

Tolerances: float32 variants differ only in summation order, ~2^-24 per term
over sums of at most d*f terms; we allow 1e-5 of the output's scale
(``sum_j g_j sum_f |h_f| |w_out|``, bounded here by max|y| of the dense
oracle). bf16 operands (8-bit mantissa) move each product by ~2^-8 relative.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capibara.kernels import moe
from capibara.kernels.moe import Experts

SETTINGS = settings(max_examples=6, deadline=None,
                    suppress_health_check=[HealthCheck.differing_executors])


def problem(seed, t, d, f, e, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, d)).astype(np.float32)
    router = rng.standard_normal((d, e)).astype(np.float32)
    experts = Experts(
        (rng.standard_normal((e, d, f)) / np.sqrt(d)).astype(np.float32),
        (rng.standard_normal((e, f, d)) / np.sqrt(f)).astype(np.float32),
    )
    return np.asarray(jnp.asarray(x, dtype)), router, experts


def gelu(h):
    return 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))


def oracle(x, router, experts, top_k, capacity=None):
    """Per-token float64 loop: route, apply the chosen experts, drop past capacity."""
    x = np.asarray(x, np.float64)
    t, d = x.shape
    e = router.shape[1]
    logits = x @ router.astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    chosen = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    gates = np.take_along_axis(probs, chosen, 1)
    gates /= gates.sum(1, keepdims=True)
    w_in, w_out = (np.asarray(w, np.float64) for w in experts)
    out = np.zeros_like(x)
    magnitude = np.zeros_like(x)
    used = np.zeros(e, int)
    kept = 0
    for j in range(top_k):          # first choices queue before second choices
        for i in range(t):
            ex = chosen[i, j]
            if capacity is not None and used[ex] >= capacity:
                continue
            used[ex] += 1
            kept += 1
            out[i] += gates[i, j] * (gelu(x[i] @ w_in[ex]) @ w_out[ex])
            magnitude[i] += gates[i, j] * ((np.abs(x[i]) @ np.abs(w_in[ex])) @ np.abs(w_out[ex]))
    load = np.bincount(chosen.reshape(-1), minlength=e) / (t * top_k)
    return Oracle(out, e * np.sum(load * probs.mean(0)), load, 1 - kept / (t * top_k), magnitude)


class Oracle(NamedTuple):
    output: np.ndarray
    loss: float
    load: np.ndarray
    dropped: float
    magnitude: np.ndarray  # sum_j g_j |x| |w_in| |w_out|: the scale rounding errors have


def scale_of(y):
    return max(float(np.abs(y).max()), 1e-3)


class MoRContract:
    implementation: str
    static: dict = {}

    def run(self, x, router, experts, **kw):
        f = functools.partial(moe.mor, implementation=self.implementation, **{**self.static, **kw})
        return jax.jit(f)(x, router, experts)

    @SETTINGS
    @given(t=st.integers(1, 40), d=st.integers(1, 12), f=st.integers(1, 12), e=st.integers(1, 6),
           seed=st.integers(0, 2**16), data=st.data())
    def test_forward_against_oracle(self, t, d, f, e, seed, data):
        top_k = data.draw(st.integers(1, e))
        x, router, experts = problem(seed, t, d, f, e)
        got = self.run(x, router, experts, top_k=top_k)
        want = oracle(x, router, experts, top_k)
        assert got.output.shape == x.shape and got.output.dtype == x.dtype
        assert np.all(np.abs(got.output - want.output) <= 1e-5 * want.magnitude + 1e-7)
        np.testing.assert_allclose(float(got.load_balancing_loss), want.loss, rtol=1e-5)
        np.testing.assert_allclose(got.expert_load, want.load, atol=1e-7)
        assert float(got.dropped_fraction) == want.dropped == 0.0

    def test_gradients_match_the_reference(self):
        x, router, experts = problem(1, 24, 8, 10, 5)
        r = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)

        def objective(impl, static):
            def f(x, router, experts):
                out = moe.mor(x, router, experts, top_k=2, implementation=impl, **static)
                return jnp.sum(out.output * r) + out.load_balancing_loss
            return jax.jit(jax.grad(f, argnums=(0, 1, 2)))

        got = jax.tree.leaves(objective(self.implementation, self.static)(x, router, experts))
        want = jax.tree.leaves(objective("reference", {})(x, router, experts))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=1e-5 * scale_of(w))

    def test_bf16_activations(self):
        x, router, experts = problem(3, 16, 8, 8, 4, dtype=jnp.bfloat16)
        got = self.run(x, router, experts, top_k=2)
        want = oracle(x, router, experts, 2)
        assert got.output.dtype == jnp.bfloat16
        # operands (weights, hidden) and the output rounded to bf16: a few
        # 2^-8 relative steps of the terms' magnitude
        err = np.abs(np.asarray(got.output, np.float64) - want.output)
        assert np.all(err <= 4 * 2.0**-8 * want.magnitude + 1e-6)

    def test_jit_vmap_and_leading_dims(self):
        x, router, experts = problem(4, 24, 6, 6, 3)
        batched = x.reshape(2, 3, 4, 6)
        got = jax.jit(jax.vmap(lambda xb: moe.mor(xb, router, experts, implementation=self.implementation,
                                                  **self.static).output))(batched)
        for i in range(2):
            want = oracle(batched[i].reshape(-1, 6), router, experts, 2)
            err = np.abs(np.asarray(got[i]).reshape(-1, 6) - want.output)
            assert np.all(err <= 1e-5 * want.magnitude + 1e-7)

    def test_refusals(self):
        x, router, experts = problem(5, 4, 6, 5, 3)
        with pytest.raises(ValueError, match="top_k=4"):
            self.run(x, router, experts, top_k=4)
        with pytest.raises(ValueError, match="router_w must be"):
            self.run(x, router[:, :2], experts)
        with pytest.raises(ValueError, match="model dim 6"):
            self.run(x[:, :5], router, experts)
        with pytest.raises(ValueError, match="not an activation"):
            self.run(x, router, experts, activation="tanh")


class TestReference(MoRContract):
    implementation = "reference"


class TestDispatch(MoRContract):
    implementation = "dispatch"
    static = {"capacity_factor": None}

    @SETTINGS
    @given(t=st.integers(1, 40), e=st.integers(1, 6), factor=st.sampled_from([0.25, 0.5, 1.0, 1.25, 2.0]),
           seed=st.integers(0, 2**16), data=st.data())
    def test_capacity_drops_by_priority(self, t, e, factor, seed, data):
        top_k = data.draw(st.integers(1, e))
        x, router, experts = problem(seed, t, 6, 8, e)
        capacity = moe.capacity_of(t, top_k, e, factor)
        got = self.run(x, router, experts, top_k=top_k, capacity_factor=factor)
        want = oracle(x, router, experts, top_k, capacity=capacity)
        assert np.all(np.abs(got.output - want.output) <= 1e-5 * want.magnitude + 1e-7)
        np.testing.assert_allclose(float(got.dropped_fraction), want.dropped, atol=1e-6)
        np.testing.assert_allclose(float(got.load_balancing_loss), want.loss, rtol=1e-5)

    def test_capacity_rule(self):
        assert moe.capacity_of(4096, 2, 8, 1.25) == 1280
        assert moe.capacity_of(10, 2, 2, 4.0) == 10      # never more than T
        assert moe.capacity_of(3, 1, 8, 0.1) == 1        # never less than one
        assert moe.capacity_of(7, 2, 4, None) == 7
        with pytest.raises(ValueError, match="capacity_factor=0"):
            moe.capacity_of(7, 2, 4, 0)


def test_registry():
    assert set(moe.VARIANTS) == {"reference", "dispatch"}
    for name, variant in moe.VARIANTS.items():
        assert variant.family == "moe" and variant.name == name and "cpu" in variant.platforms
