"""vq: every variant against its own contract and the reference; the reference
against a float64 numpy oracle that uses the direct broadcast distance
``sum((x - c)**2)`` (not the matmul form the kernels use).

Tolerances. Exact ties aside, a lookup may pick a code other than the true
nearest only when its score product is inexact, so we check *distance
optimality*: the chosen code's true squared distance exceeds the minimum by
at most twice the worst score error of the variant:
- float32 scores: ~2^-24 per term, bounded by 1e-5 (||x||² + ||c||²);
- bf16 operands (8-bit mantissa, each rounded by <= 2^-9 relative): the
  score x·c moves by <= 2^-7 ||x|| ||c||, the distance by twice that;
- int8 operands (per-row step max|row|/127, rounded by half a step):
  x·c moves by <= sqrt(D) (dx ||c|| + dc ||x||) + D dx dc.
Everything computed *from* the chosen code (quantized rows, squared errors,
counts) is then compared exactly or at float32 rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capibara.kernels import vq as vq_family
from capibara.kernels.base import Unsupported
from capibara.kernels.linalg import AffineWeight, dequantize

# One contract class subclassed per variant runs each @given test from several
# classes; that is the point (same properties, different implementation).
SETTINGS = settings(max_examples=6, deadline=None,
                    suppress_health_check=[HealthCheck.differing_executors])


def problem(seed, n, d, k, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    c = rng.standard_normal((k, d)).astype(np.float32)
    if dtype != np.float32:
        x = np.asarray(jnp.asarray(x, dtype))
    return x, c


def distances(x, c):
    x = np.asarray(x, np.float64)
    c = np.asarray(c, np.float64)
    return ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)


def entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def oracle_losses(x, c, idx, beta, tau):
    """Losses at the given indices, and the diversity from exact distances."""
    x = np.asarray(x, np.float64).reshape(-1, c.shape[1])
    n, d = x.shape
    dist = distances(x, c)
    err = dist[np.arange(n), idx]
    logits = -dist / (tau * d)
    soft = np.exp(logits - logits.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    counts = np.bincount(idx, minlength=c.shape[0]) / n
    return {
        "commitment": beta * err.sum() / (n * d),
        "codebook": err.sum() / (n * d),
        "diversity": np.log(c.shape[0]) - entropy(soft.mean(0)),
        "perplexity": np.exp(entropy(counts)),
        "err": err,
    }


class VQContract:
    """What every variant promises; subclasses name the variant and its error."""

    implementation: str
    static: dict = {}

    def run(self, x, c, **kw):
        # jitted: one compilation per shape instead of one per eager op
        f = functools.partial(vq_family.vq, implementation=self.implementation, **self.static, **kw)
        return jax.jit(f)(x, c)

    def score_error(self, x, c):
        """Bound on |computed x·c - exact x·c| per (row, code)."""
        x = np.abs(np.asarray(x, np.float64))
        c = np.abs(np.asarray(c, np.float64))
        return 1e-5 * ((x**2).sum(1)[:, None] + (c**2).sum(1)[None, :])

    def check_forward(self, x, c, result, *, beta, tau, threshold):
        c = np.asarray(dequantize(c) if isinstance(c, AffineWeight) else c)
        flat = np.asarray(x, np.float64).reshape(-1, c.shape[1])
        n, d = flat.shape
        idx = np.asarray(result.indices).reshape(-1)
        assert result.indices.dtype == jnp.int32 and result.indices.shape == x.shape[:-1]
        assert result.quantized.shape == x.shape and result.quantized.dtype == x.dtype

        dist = distances(flat, c)
        excess = dist[np.arange(n), idx] - dist.min(1)
        assert np.all(excess <= 2 * self.score_error(flat, c).max(1) + 1e-6), excess.max()

        want = oracle_losses(flat, c, idx, beta, tau)
        for name in ("commitment", "codebook", "perplexity"):
            np.testing.assert_allclose(float(getattr(result, name)), want[name], rtol=2e-5, atol=1e-7)
        logit_error = 2 * self.score_error(flat, c).max() / (tau * d)
        np.testing.assert_allclose(float(result.diversity), want["diversity"],
                                   atol=1e-5 + 4 * logit_error * (1 + np.log(c.shape[0])))

        bypassed = np.asarray(result.bypassed).reshape(-1)
        if threshold is None:
            assert not bypassed.any()
        else:
            x_sq = (flat**2).sum(1)
            margin = np.abs(want["err"] - threshold * x_sq) > 1e-4 * (want["err"] + x_sq)
            np.testing.assert_array_equal(bypassed[margin], (want["err"] > threshold * x_sq)[margin])
        q = np.asarray(result.quantized).reshape(n, d)
        codes = np.asarray(jnp.asarray(c, x.dtype))[idx]
        np.testing.assert_array_equal(q[~bypassed], codes[~bypassed])
        np.testing.assert_array_equal(q[bypassed], np.asarray(x).reshape(n, d)[bypassed])

    @SETTINGS
    @given(n=st.integers(1, 70), d=st.integers(1, 24), k=st.integers(1, 16), seed=st.integers(0, 2**16),
           threshold=st.sampled_from([None, 0.0, 0.5, 0.9, 1.0]), beta=st.sampled_from([0.25, 1.0]),
           tau=st.sampled_from([0.5, 1.0]))
    def test_forward(self, n, d, k, seed, threshold, beta, tau):
        x, c = problem(seed, n, d, k)
        result = self.run(x, c, commitment_weight=beta, adaptive_threshold=threshold,
                          diversity_temperature=tau)
        self.check_forward(x, c, result, beta=beta, tau=tau, threshold=threshold)

    def test_bf16_input_and_leading_dims(self):
        x, c = problem(3, 30, 12, 8, dtype=jnp.bfloat16)
        x = x.reshape(2, 3, 5, 12)
        result = self.run(x, c, adaptive_threshold=0.8)
        self.check_forward(x, c, result, beta=0.25, tau=1.0, threshold=0.8)

    def test_int8_codebook(self):
        x, c = problem(4, 40, 16, 8)
        codebook = vq_family.quantize_codebook(c)
        result = self.run(x, codebook)
        self.check_forward(x, codebook, result, beta=0.25, tau=1.0, threshold=None)

    def test_adaptive_threshold_bypasses_what_the_codebook_cannot_represent(self):
        rng = np.random.default_rng(5)
        c = rng.standard_normal((6, 10)).astype(np.float32)
        near = c[rng.integers(0, 6, 20)] + 0.05 * rng.standard_normal((20, 10)).astype(np.float32)
        far = -3 * c[rng.integers(0, 6, 20)]  # opposite every code: zero would be better
        x = np.concatenate([near, far])
        result = self.run(x, c, adaptive_threshold=0.5)
        bypassed = np.asarray(result.bypassed)
        assert not bypassed[:20].any() and bypassed[20:].all()
        np.testing.assert_array_equal(np.asarray(result.quantized)[20:], far)

    def test_gradients(self):
        x, c = problem(6, 37, 12, 5)
        r = np.random.default_rng(7).standard_normal(x.shape).astype(np.float32)

        def objective(impl, static, diversity_weight):
            def f(x, c):
                out = vq_family.vq(x, c, implementation=impl, adaptive_threshold=0.9, **static)
                return (jnp.sum(out.quantized * r) + out.commitment + out.codebook
                        + diversity_weight * out.diversity)
            return f

        # Straight-through output plus the two squared errors, from the
        # variant's own indices: d/dx = r + 2 beta (x - q) / (N D),
        # d/dc_k = 2 sum_{i -> k} (c_k - x_i) / (N D).
        gx, gc = jax.jit(jax.grad(objective(self.implementation, self.static, 0.0), argnums=(0, 1)))(x, c)
        idx = np.asarray(self.run(x, c, adaptive_threshold=0.9).indices)
        q = c[idx]
        nd = x.size
        want_gx = r + 2 * 0.25 * (x - q) / nd
        want_gc = np.zeros_like(c)
        np.add.at(want_gc, idx, 2 * (q - x) / nd)
        np.testing.assert_allclose(gx, want_gx, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(gc, want_gc, rtol=1e-5, atol=1e-7)

        # With the diversity term, compare to the reference's autodiff.
        got = jax.jit(jax.grad(objective(self.implementation, self.static, 10.0), argnums=(0, 1)))(x, c)
        ref = jax.jit(jax.grad(objective("reference", {}, 10.0), argnums=(0, 1)))(x, c)
        for g, w in zip(got, ref):
            scale = np.abs(np.asarray(w)).max()
            np.testing.assert_allclose(g, w, atol=self.gradient_rtol * scale)

    gradient_rtol = 1e-5

    forward_mode = True

    def test_forward_mode_straight_through(self):
        # the straight-through output's derivative in x is the identity, in
        # forward mode too (jax.jvp), bypassed rows or not
        if not self.forward_mode:
            pytest.skip("its score product has a custom VJP only")
        x, c = problem(14, 20, 6, 4)
        t = np.random.default_rng(15).standard_normal(x.shape).astype(np.float32)
        f = functools.partial(vq_family.vq, codebook=c, implementation=self.implementation,
                              adaptive_threshold=0.5, **self.static)
        out, tangent = jax.jit(lambda x, t: jax.jvp(lambda x: f(x).quantized, (x,), (t,)))(x, t)
        np.testing.assert_array_equal(out, self.run(x, c, adaptive_threshold=0.5).quantized)
        np.testing.assert_array_equal(tangent, t)

    def test_jit_and_vmap(self):
        x, c = problem(8, 24, 6, 4)
        batched = x.reshape(3, 8, 6)
        f = jax.jit(jax.vmap(lambda xb: self.run(xb, c, adaptive_threshold=0.7)))
        result = f(batched)
        for i in range(3):
            one = self.run(batched[i], c, adaptive_threshold=0.7)
            np.testing.assert_array_equal(result.indices[i], one.indices)
            np.testing.assert_array_equal(result.quantized[i], one.quantized)
            np.testing.assert_allclose(result.commitment[i], one.commitment, rtol=1e-6)

    def test_duplicate_codes_pick_the_first(self):
        # identical codes tie exactly in every score form; argmin semantics
        # (the first) keeps indices and counts deterministic
        x, c = problem(12, 33, 8, 3)
        once = self.run(x, c)
        twice = self.run(x, np.concatenate([c, c]))
        np.testing.assert_array_equal(twice.indices, once.indices)
        np.testing.assert_allclose(float(twice.perplexity), float(once.perplexity), rtol=1e-6)

    def test_donated_input(self):
        # a runtime that no longer needs x donates it; the output may reuse its buffer
        x, c = problem(13, 40, 8, 5)
        want = self.run(x, c, adaptive_threshold=0.9)
        f = functools.partial(vq_family.vq, implementation=self.implementation,
                              adaptive_threshold=0.9, **self.static)
        got = jax.jit(f, donate_argnums=(0,))(jnp.asarray(x), c)
        for name in ("quantized", "indices", "bypassed"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))

    def test_refusals(self):
        x, c = problem(9, 4, 6, 3)
        with pytest.raises(ValueError, match="adaptive_threshold=1.5"):
            self.run(x, c, adaptive_threshold=1.5)
        with pytest.raises(ValueError, match="code dim 6"):
            self.run(x[:, :5], c)
        with pytest.raises(ValueError, match="no vectors"):
            self.run(x[:0], c)


class TestReference(VQContract):
    implementation = "reference"

    def test_diversity_gradient_matches_finite_differences(self):
        # The oracle's diversity, differentiated numerically in float64.
        x, c = problem(10, 9, 4, 3)
        gx, gc = jax.grad(lambda x, c: vq_family.vq(x, c).diversity, argnums=(0, 1))(x, c)

        def diversity(x, c):
            dist = distances(x, c)
            logits = -dist / x.shape[1]
            soft = np.exp(logits - logits.max(1, keepdims=True))
            soft /= soft.sum(1, keepdims=True)
            return np.log(c.shape[0]) - entropy(soft.mean(0))

        h = 1e-6
        for arr, grad in ((x, gx), (c, gc)):
            base = arr.astype(np.float64)
            for pos in [(0, 0), (1, 2), (2, 3)]:
                up, down = base.copy(), base.copy()
                up[pos] += h
                down[pos] -= h
                args_up = (up, c) if arr is x else (x, up)
                args_down = (down, c) if arr is x else (x, down)
                numeric = (diversity(*args_up) - diversity(*args_down)) / (2 * h)
                np.testing.assert_allclose(float(grad[pos]), numeric, rtol=1e-3, atol=1e-6)


class TestXlaF32(VQContract):
    implementation = "xla"
    static = {"block_rows": 16}  # several blocks and a ragged tail at these sizes


class TestXlaBf16(VQContract):
    implementation = "xla"
    static = {"block_rows": 16, "compute_dtype": "bfloat16"}
    gradient_rtol = 5e-2  # the softmax sees bf16 scores: logits off by ~2^-7 relative

    def score_error(self, x, c):
        x = np.asarray(x, np.float64)
        c = np.asarray(c, np.float64)
        return 2.0**-7 * np.sqrt((x**2).sum(1))[:, None] * np.sqrt((c**2).sum(1))[None, :] + 1e-6


class TestInt8(VQContract):
    implementation = "int8"
    static = {"block_rows": 16}
    gradient_rtol = 5e-2
    forward_mode = False

    def score_error(self, x, c):
        x = np.asarray(x, np.float64)
        c = np.asarray(c, np.float64)
        d = x.shape[1]
        dx = np.abs(x).max(1) / 254
        dc = np.abs(c).max(1) / 254
        nx = np.sqrt((x**2).sum(1))
        nc = np.sqrt((c**2).sum(1))
        return np.sqrt(d) * (dx[:, None] * nc[None, :] + nx[:, None] * dc[None, :]) \
            + d * dx[:, None] * dc[None, :] + 1e-6

    def test_refuses_an_empty_block(self):
        x, c = problem(11, 4, 6, 3)
        with pytest.raises(Unsupported, match="block_rows=0"):
            vq_family.vq(x, c, implementation="int8", block_rows=0)


def test_registry():
    assert set(vq_family.VARIANTS) == {"reference", "xla", "int8"}
    for name, variant in vq_family.VARIANTS.items():
        assert variant.family == "vq" and variant.name == name and "cpu" in variant.platforms
