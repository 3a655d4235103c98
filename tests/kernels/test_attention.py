"""attention: every variant against the reference, the reference against jax.nn.

Tolerances. Attention's output is a convex combination of v's rows, so output
errors are measured against ``max|v|`` and gradient errors against the largest
reference gradient entry (at least 1: inputs and cotangents are O(1)).

- float32: every path computes the same sums in another order with an ~1-ulp
  exp, a few times ``n * 2^-24`` for the ``n <= 64`` terms here; 1e-5 leaves room.
- bf16 has 8 significant bits, unit roundoff ``u = 2^-8``. The fast path
  rounds the probabilities before ``p @ v`` (``u`` relative each, so ``u *
  max|v|`` on the output); a bf16 *output* is rounded once more, and two
  roundings of nearly equal values can land one ulp (``2u``) apart: forward
  ``2u`` for f32 outputs, ``4u`` for bf16 ones. A gradient product has up to
  three rounded factors (``3u``) plus the output rounding: ``8u``. (Observed
  worst over a sweep: forward 1.1u, gradients 2.2u.)

The reference runs on the same bf16-rounded inputs, and head_dim is a power
of 4, so ``1/sqrt(head_dim)`` scales q exactly.
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

from capibara.kernels import attention as attention_family
from capibara.kernels.attention import VARIANTS, attention
from capibara.kernels.attention import cpu as cpu_attention
from capibara.kernels.base import Unsupported

U_BF16 = 2.0**-8
F32_TOL = 1e-5
BF16_FWD_TOL = 2 * U_BF16  # f32 output, bf16 matmul operands
BF16_OUT_TOL = 4 * U_BF16  # bf16 output
BF16_GRAD_TOL = 8 * U_BF16

# Each example compiles a forward and backward pass for a new shape (~1-3 s on
# two busy cores), so few examples per property. derandomize: every contract
# test draws the same examples, so the reference's compiled forward/backward
# is reused across the variant classes.
SETTINGS = settings(max_examples=5, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.differing_executors, HealthCheck.too_slow])


@st.composite
def problems(draw):
    """Small attention problems: shapes that fit the given block sizes, a mask kind, a seed."""
    block_q, block_kv = draw(st.sampled_from([4, 8])), draw(st.sampled_from([4, 8]))
    return dict(
        batch=draw(st.integers(1, 2)),
        seq_q=block_q * draw(st.integers(1, 4)),
        seq_kv=block_kv * draw(st.integers(1, 4)),
        kv_heads=draw(st.integers(1, 2)),
        groups=draw(st.integers(1, 3)),
        head_dim=draw(st.sampled_from([4, 16])),
        causal=draw(st.booleans()),
        mask=draw(st.sampled_from([None, "padding", "full", "per_head"])),
        block_q=block_q, block_kv=block_kv, heads_per_step=draw(st.sampled_from([None, 1, 2])),
        seed=draw(st.integers(0, 2**16)),
    )


def make_inputs(p, dtype=np.float32):
    """q, k, v, mask and an output cotangent for problem ``p``. Masks always keep
    key 0, so (with top-left causal alignment) every query row sees some key."""
    rng = np.random.default_rng(p["seed"])
    b, h, kh, d = p["batch"], p["kv_heads"] * p["groups"], p["kv_heads"], p["head_dim"]
    q = rng.standard_normal((b, p["seq_q"], h, d))
    k = rng.standard_normal((b, p["seq_kv"], kh, d))
    v = rng.standard_normal((b, p["seq_kv"], kh, d))
    shape = {None: None, "padding": (b, p["seq_kv"]), "full": (b, h, p["seq_q"], p["seq_kv"]),
             "per_head": (1, h, 1, p["seq_kv"])}[p["mask"]]
    mask = None
    if shape is not None:
        mask = rng.random(shape) > 0.4
        mask[..., 0] = True
        mask = jnp.asarray(mask)
    cotangent = rng.standard_normal(q.shape)
    cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return cast(q), cast(k), cast(v), mask, cast(cotangent)


def value_and_grads(implementation, q, k, v, mask, cotangent, *, causal, **static):
    """Output and (dq, dk, dv) of ``sum(output * cotangent)``."""
    grads, out = _value_and_grads(q, k, v, mask, cotangent, implementation, causal,
                                  tuple(sorted(static.items())))
    return out, grads


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _value_and_grads(q, k, v, mask, cotangent, implementation, causal, static):
    def f(q, k, v):
        out = attention(q, k, v, causal=causal, mask=mask, implementation=implementation, **dict(static))
        return jnp.sum(out.astype(jnp.float32) * cotangent.astype(jnp.float32)), out
    return jax.grad(f, argnums=(0, 1, 2), has_aux=True)(q, k, v)


def assert_close(got, want, tol, scale):
    """max|got - want| <= tol * scale, with scale at least 1: the inputs and
    cotangents are O(1), so a gradient that is exactly 0 in the reference
    (a key only ever seen alone) may carry O(1)-scaled rounding here."""
    scale = max(float(scale), 1.0)
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.max(np.abs(got - want)) if got.size else 0.0
    assert got.shape == want.shape
    assert err <= tol * scale, f"max error {err:.3g} > {tol:.3g} * {scale:.3g}"


def jax_nn_mask(mask):
    if mask is None or mask.ndim == 4:
        return mask
    return mask[:, None, None, :]


class TestReferenceAgainstJaxNN:
    """The oracle's oracle: ``jax.nn.dot_product_attention`` (XLA) on the same inputs."""

    @SETTINGS
    @given(p=problems())
    def test_forward_and_gradients(self, p):
        q, k, v, mask, ct = make_inputs(p)
        out, grads = value_and_grads("reference", q, k, v, mask, ct, causal=p["causal"])

        def nn(q, k, v):
            o = jax.nn.dot_product_attention(q, k, v, mask=jax_nn_mask(mask), is_causal=p["causal"])
            return jnp.sum(o * ct), o
        want_grads, want = jax.jit(jax.grad(nn, argnums=(0, 1, 2), has_aux=True))(q, k, v)
        assert_close(out, want, F32_TOL, np.abs(v).max())
        for g, w in zip(grads, want_grads):
            assert_close(g, w, F32_TOL, np.abs(w).max())

    def test_fully_masked_rows_are_zero_with_zero_gradient(self):
        # jax.nn averages v uniformly over a row with no visible key; we define
        # it as 0 (no information), and every CPU variant must agree.
        p = dict(batch=1, seq_q=8, seq_kv=8, kv_heads=1, groups=2, head_dim=4, causal=False,
                 mask=None, block_q=4, block_kv=4, seed=3)
        q, k, v, _, ct = make_inputs(p)
        mask = jnp.ones((1, 2, 8, 8), bool).at[0, 1, 5].set(False)
        for implementation, static in [("reference", {}), ("cpu_blocked", dict(block_q=4, block_kv=4))]:
            out, (dq, _, _) = value_and_grads(implementation, q, k, v, mask, ct, causal=True, **static)
            assert np.all(np.asarray(out[0, 5, 1]) == 0)
            assert np.all(np.asarray(dq[0, 5, 1]) == 0)
            assert np.all(np.isfinite(np.asarray(out)))


class AttentionContract:
    """What every runnable variant promises; subclasses name the variant."""

    implementation: str
    fwd_tol = F32_TOL
    grad_tol = F32_TOL
    vmap_dtype = np.float32

    def static(self, p) -> dict:
        return dict(block_q=p["block_q"], block_kv=p["block_kv"], heads_per_step=p.get("heads_per_step"))

    def check(self, p, dtype, fwd_tol, grad_tol):
        q, k, v, mask, ct = make_inputs(p, dtype)
        out, grads = value_and_grads(self.implementation, q, k, v, mask, ct, causal=p["causal"], **self.static(p))
        want, want_grads = value_and_grads("reference", q, k, v, mask, ct, causal=p["causal"])
        assert out.dtype == q.dtype
        assert_close(out, want, fwd_tol, np.abs(np.asarray(v, np.float32)).max())
        for g, w, x in zip(grads, want_grads, (q, k, v)):
            assert g.dtype == x.dtype
            assert_close(g, w, grad_tol, np.abs(np.asarray(w, np.float32)).max())

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_f32(self, p):
        self.check(p, np.float32, self.fwd_tol, self.grad_tol)

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_bf16(self, p):
        self.check(p, jnp.bfloat16, BF16_OUT_TOL, BF16_GRAD_TOL)

    def test_vmap_over_an_extra_axis(self):
        p = dict(batch=1, seq_q=8, seq_kv=8, kv_heads=1, groups=2, head_dim=4, causal=True,
                 mask=None, block_q=4, block_kv=4, seed=5)
        xs = [make_inputs({**p, "seed": s}, self.vmap_dtype) for s in range(3)]
        q, k, v = (jnp.stack([x[i] for x in xs]) for i in range(3))
        f = lambda impl, **st: jax.vmap(lambda q, k, v: attention(q, k, v, causal=True, implementation=impl, **st))  # noqa: E731
        got = jax.jit(f(self.implementation, **self.static(p)))(q, k, v)
        tol = self.fwd_tol if self.vmap_dtype == np.float32 else BF16_OUT_TOL
        assert_close(got.astype(jnp.float32), f("reference")(q, k, v).astype(jnp.float32), tol,
                     np.abs(np.asarray(v, np.float32)).max())


class TestCpuBlocked(AttentionContract):
    implementation = "cpu_blocked"

    def test_refuses_sequences_that_are_not_a_multiple_of_the_block(self):
        q = jnp.ones((1, 12, 1, 4))
        with pytest.raises(Unsupported, match="seq_q=12 must be a multiple of block_q=8"):
            attention(q, q, q, implementation="cpu_blocked", block_q=8, block_kv=4)
        with pytest.raises(Unsupported, match="seq_kv=12 must be a multiple of block_kv=8"):
            attention(q, q, q, implementation="cpu_blocked", block_q=4, block_kv=8)

    def test_refuses_kv_heads_that_are_not_a_multiple_of_heads_per_step(self):
        q, k = jnp.ones((1, 4, 6, 4)), jnp.ones((1, 4, 3, 4))
        with pytest.raises(Unsupported, match="kv_heads=3 must be a multiple of heads_per_step=2"):
            attention(q, k, k, implementation="cpu_blocked", heads_per_step=2)

    def test_short_sequences_are_one_block(self):
        q = jnp.asarray(np.random.default_rng(0).standard_normal((1, 6, 2, 4)), jnp.float32)
        got = attention(q, q, q, causal=True, implementation="cpu_blocked")  # default blocks 512
        assert_close(got, attention(q, q, q, causal=True), F32_TOL, np.abs(q).max())

    def test_causal_skips_blocks_above_the_diagonal(self):
        # A NaN in a key block that no query may see must not reach the output:
        # block skipping never reads it (a masked read would still give NaN * 0).
        rng = np.random.default_rng(1)
        q = jnp.asarray(rng.standard_normal((1, 8, 1, 4)), jnp.float32)
        k = jnp.asarray(rng.standard_normal((1, 16, 1, 4)), jnp.float32).at[:, 8:].set(jnp.nan)
        out = attention(q, k, k, causal=True, implementation="cpu_blocked", block_q=4, block_kv=4)
        assert np.all(np.isfinite(np.asarray(out)))
        assert_close(out, attention(q[:, :8], k[:, :8], k[:, :8], causal=True), F32_TOL, 4.0)


    @pytest.mark.parametrize("block_kv", [8, 4])  # all diagonal tiles at once; one query block at a time
    def test_causal_diagonal_tiles_split_in_half_skip_the_quarter_above(self, block_kv):
        # 8-row tiles split in halves: query rows 0-3 never read keys 4-7,
        # forward or backward (a computed-then-masked tile would still give
        # NaN * 0 = NaN).
        rng = np.random.default_rng(2)
        q = jnp.asarray(rng.standard_normal((1, 8, 1, 4)), jnp.float32)
        k = jnp.asarray(rng.standard_normal((1, 8, 1, 4)), jnp.float32)
        v = k.at[:, 4:].set(jnp.nan)

        def first_rows(q, k, v, **blocks):
            return jnp.sum(attention(q, k, v, causal=True, **blocks)[:, :4])
        out, dq = jax.value_and_grad(first_rows)(q, k, v, implementation="cpu_blocked",
                                                 block_q=8, block_kv=block_kv)
        want, want_dq = jax.value_and_grad(first_rows)(q[:, :4], k[:, :4], v[:, :4])
        assert np.isfinite(float(out)) and np.all(np.isfinite(np.asarray(dq[:, :4])))
        assert_close(out, want, F32_TOL, 16.0)  # a sum of 16 outputs of size <= 4
        assert_close(dq[:, :4], want_dq, F32_TOL, np.abs(want_dq).max())

    @pytest.mark.parametrize("block_q,block_kv,seq_q,seq_kv,mask,together", [
        # every diagonal tile at once, in quarters, with each kind of mask
        *[(8, 8, 16, 16, mask, True) for mask in (None, "padding", "full", "per_head")],
        (8, 8, 16, 24, "full", True),      # ... and keys no query sees
        (8, 8, 24, 16, None, False),       # more queries than keys: quarters one block at a time
        (8, 4, 16, 24, "full", False),     # tall tiles: 4 x 2 quarters
        (4, 8, 12, 16, None, False),       # wide tiles: 2 x 4 quarters
        (6, 2, 12, 12, "padding", False),  # quarters of 3 x 1
        (3, 3, 9, 9, None, False),         # odd sizes: straddling tiles stay whole and masked
        (3, 5, 9, 15, "full", False),
    ])
    def test_causal_tilings_match_reference(self, block_q, block_kv, seq_q, seq_kv, together, mask):
        static = cpu_attention._Static(True, 1.0, block_q, block_kv, "float32", 1)
        assert cpu_attention._diagonal_blocks_together(static, seq_q, seq_kv) == together
        p = dict(batch=1, seq_q=seq_q, seq_kv=seq_kv, kv_heads=2, groups=2, head_dim=4, causal=True,
                 mask=mask, block_q=block_q, block_kv=block_kv, heads_per_step=None, seed=7)
        self.check(p, np.float32, self.fwd_tol, self.grad_tol)


class TestCpuBf16(AttentionContract):
    """f32 inputs: compared with the reference on bf16-rounded inputs, the only
    remaining error is the bf16 probabilities (forward) and bf16 products (backward)."""

    implementation = "cpu_bf16"
    fwd_tol = BF16_FWD_TOL
    grad_tol = BF16_GRAD_TOL

    @SETTINGS
    @given(p=problems())
    def test_matches_reference_f32(self, p):
        q, k, v, mask, ct = make_inputs(p, np.float32)
        rounded = [jnp.asarray(x, jnp.bfloat16).astype(jnp.float32) for x in (q, k, v)]
        out, grads = value_and_grads(self.implementation, q, k, v, mask, ct, causal=p["causal"], **self.static(p))
        want, want_grads = value_and_grads("reference", *rounded, mask, ct, causal=p["causal"])
        assert out.dtype == jnp.float32
        assert_close(out, want, self.fwd_tol, np.abs(v).max())
        for g, w in zip(grads, want_grads):
            assert_close(g, w, self.grad_tol, np.abs(w).max())

    def test_matches_reference_bf16(self):
        pytest.skip("bf16 inputs make cpu_bf16 the same computation as cpu_blocked, tested there")


@pytest.mark.parametrize("implementation,platform", [("cudnn", "gpu"), ("pallas_tpu", "tpu")])
def test_accelerator_variants_refuse_other_platforms(implementation, platform):
    if jax.default_backend() == platform:
        pytest.skip(f"running on {platform}: the contract tests cover {implementation}")
    q = jnp.ones((1, 128, 2, 64), jnp.bfloat16)
    with pytest.raises(Unsupported, match=f"needs a .*{platform.upper()}"):
        attention(q, q, q, causal=True, implementation=implementation)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN runs on GPU only")
class TestCudnn(AttentionContract):
    implementation = "cudnn"
    fwd_tol, grad_tol = BF16_OUT_TOL, BF16_GRAD_TOL
    vmap_dtype = jnp.bfloat16

    def static(self, p):
        return {}

    def test_matches_reference_f32(self):
        q = jnp.ones((1, 128, 2, 64), jnp.float32)
        with pytest.raises(Unsupported, match="float16 or bfloat16"):
            attention(q, q, q, implementation="cudnn")


@pytest.mark.skipif(jax.default_backend() != "tpu", reason="Pallas TPU kernels run on TPU only")
class TestPallasTpu(AttentionContract):
    implementation = "pallas_tpu"
    # TPU f32 matmuls at default precision take bf16 passes.
    fwd_tol, grad_tol = BF16_OUT_TOL, BF16_GRAD_TOL


class TestContract:
    def test_registry(self):
        assert set(VARIANTS) == {"reference", "cpu_blocked", "cpu_bf16", "cudnn", "pallas_tpu"}
        for name, variant in VARIANTS.items():
            assert (variant.family, variant.name) == ("attention", name)
            assert variant.doc

    def test_unknown_implementation(self):
        q = jnp.ones((1, 4, 1, 4))
        with pytest.raises(ValueError, match="unknown attention implementation 'flash'"):
            attention(q, q, q, implementation="flash")

    @pytest.mark.parametrize("shapes,mask,message", [
        (((1, 4, 3, 4), (1, 4, 2, 4)), None, "heads=3 must be a multiple of kv_heads=2"),
        (((1, 4, 2, 4), (1, 4, 2, 8)), None, "does not match q"),
        (((4, 2, 4), (4, 2, 4)), None, "must be \\[batch, seq, heads, head_dim\\]"),
        (((1, 4, 2, 4), (1, 4, 2, 4)), np.ones((1, 4), np.float32), "must be boolean"),
        (((1, 4, 2, 4), (1, 4, 2, 4)), np.ones((1, 3), bool), "padding mask must be"),
        (((1, 4, 2, 4), (1, 4, 2, 4)), np.ones((1, 3, 4, 4), bool), "broadcastable to"),
    ])
    @pytest.mark.parametrize("implementation", ["reference", "cpu_blocked"])
    def test_bad_inputs_raise_value_error(self, shapes, mask, message, implementation):
        q, k = (jnp.ones(s) for s in shapes)
        with pytest.raises(ValueError, match=message):
            attention(q, k, k, mask=mask, implementation=implementation)

    def test_docstring_example(self):
        assert doctest.testmod(attention_family).failed == 0
