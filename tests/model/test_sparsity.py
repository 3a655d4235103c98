"""Feed-forward sparsity: magnitude pruning (fixed and gradual) and top-k activations.

Each method is checked the way the plan promises it: the achieved fraction of
zeros equals the ratio (or the schedule's level, step by step), and the sparse
computation equals a dense one on the entries it keeps. Comparisons are exact
where both sides run the same float32 operations and use float32 tolerances
(1e-5 relative) where the reference is numpy.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from capibara.compiler.driver import compile_config
from capibara.compiler.model_spec import FeedForwardSparsity, ModelSpec, schedule_level
from capibara.config.model_config import ModularModelConfig
from capibara.model.facade import Kernels, Model, init_params
from capibara.model.network import Network
from capibara.model.sparsity import magnitude_prune, prune_params, topk_activations

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, vocab_size=64, max_seq_length=16,
            warmup_steps=0, decay_steps=4, save_checkpoint_steps=4, learning_rate=3e-3,
            mixed_precision=False, use_bfloat16=False, use_vq=False, temperature=0.0,
            use_affine_quantization=False)


def config(**changes) -> ModularModelConfig:
    return ModularModelConfig(**{**TINY, **changes})


def build(cfg: ModularModelConfig) -> Model:
    """The model ``cfg`` describes with plain-JAX kernels (quick to compile; the
    sparsity code is the same whatever the kernels)."""
    spec = ModelSpec.from_config(cfg)
    return Model.build(spec, Kernels.plain(spec), cfg)


def zeros_fraction(w) -> np.ndarray:
    w = np.asarray(w)
    return (w == 0).reshape(w.shape[0], -1).mean(-1)


def tokens(batch: int = 2, length: int = 8, seed: int = 1) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (batch, length), 0, 64)


def test_magnitude_prune_zeroes_exactly_the_smallest_entries() -> None:
    w = jax.random.normal(jax.random.key(0), (3, 16, 24))
    pruned = np.asarray(magnitude_prune(w, 0.65))
    assert list(zeros_fraction(pruned)) == [round(0.65 * 384) / 384] * 3
    for layer, kept in zip(np.asarray(w), pruned):
        mask = kept != 0
        np.testing.assert_array_equal(kept[mask], layer[mask])  # kept entries untouched
        assert np.abs(layer[mask]).min() >= np.abs(layer[~mask]).max()


@pytest.mark.parametrize("kind", ["linear", "cosine", "exponential"])
def test_schedule_follows_its_formula(kind) -> None:
    start, end, steps = 0.3, 0.8, 10
    expected = {
        "linear": lambda t: start + (end - start) * t,
        "cosine": lambda t: start + (end - start) * (1 - math.cos(math.pi * t)) / 2,
        "exponential": lambda t: 1 - (1 - start) ** (1 - t) * (1 - end) ** t,
    }[kind]
    traced = jax.jit(lambda s: schedule_level(kind, start, end, steps, s))
    for step in range(0, 13):
        t = min(step / steps, 1.0)
        assert float(schedule_level(kind, start, end, steps, step)) == pytest.approx(expected(t),
                                                                                   abs=1e-6)
        assert float(traced(jnp.int32(step))) == pytest.approx(expected(t), abs=1e-6)
    assert float(schedule_level(kind, start, end, steps, 0)) == pytest.approx(start)
    assert float(schedule_level(kind, start, end, steps, steps)) == pytest.approx(end)


def test_plan_records_the_method_and_the_model_reads_it() -> None:
    plan = compile_config(config(sparsity_method="magnitude", sparsity_ratio=0.5,
                                 adaptive_sparsity=False), "cpu").plan
    w_in = next(k for k in plan.kernels if "blocks.w_in" in (k.uses or (k.name,)))
    assert w_in.attrs["sparsity"] == {"method": "magnitude", "ratio": 0.5}
    spec = ModelSpec.from_plan(plan)
    assert spec.ffn_sparsity == FeedForwardSparsity("magnitude", 0.5)
    mor = compile_config(config(), "cpu").plan
    assert ModelSpec.from_plan(mor).ffn_sparsity is None
    assert all("sparsity" not in k.attrs for k in mor.kernels)
    assert not [n for n in mor.notes if "sparsity" in n]
    assert any("no time or memory is saved" in n for n in plan.notes)


def test_magnitude_model_prunes_on_the_schedule_and_computes_like_dense_weights() -> None:
    """One model: pruned to the schedule's first level when built, computing what
    a dense network computes with those weights, then pruned further step by step."""
    cfg = config(sparsity_method="magnitude", adaptive_sparsity=True, sparsity_schedule="cosine",
                 min_sparsity=0.2, max_sparsity=0.7)
    model = build(cfg)
    size = np.asarray(model.params["blocks"]["w_in"])[0].size
    assert (np.asarray(model.params["blocks"]["wq"]) != 0).all()  # attention stays dense
    dense_spec = ModelSpec.from_config(config(use_sparse=False))
    dense = jax.jit(partial(Network(dense_spec, Kernels.plain(dense_spec)).forward,
                            use_vq=False, threshold=None))
    batch = tokens()
    np.testing.assert_array_equal(np.asarray(model.forward(batch)),
                                  np.asarray(dense(model.params, batch)))
    for step in range(0, 6):
        if step:
            model.train_step(tokens(seed=step))
        level = 0.2 + 0.5 * (1 - math.cos(math.pi * min(step / 4, 1))) / 2
        for name in ("w_in", "w_out"):
            assert list(zeros_fraction(model.params["blocks"][name])) == \
                [round(level * size) / size] * cfg.num_layers, (step, name)


def test_fixed_ratio_without_adaptive_sparsity() -> None:
    sparsity = FeedForwardSparsity("magnitude", 0.65)
    assert [sparsity.level(step) for step in (0, 10, 10**6)] == [0.65] * 3
    params = {"blocks": {"w_in": jax.random.normal(jax.random.key(1), (2, 8, 32)),
                         "wq": jnp.ones((2, 8, 8))}}
    pruned = prune_params(params, sparsity, sparsity.level(0))
    assert list(zeros_fraction(pruned["blocks"]["w_in"])) == [round(0.65 * 256) / 256] * 2
    assert pruned["blocks"]["wq"] is params["blocks"]["wq"]
    assert prune_params(params, FeedForwardSparsity("topk", 0.5), 0.5) is params


def test_topk_keeps_the_largest_activations_of_each_token() -> None:
    h = jax.random.normal(jax.random.key(3), (6, 40))
    kept = np.asarray(topk_activations(h, 0.75))
    assert ((kept == 0).mean(-1) == 30 / 40).all()
    for row, out in zip(np.asarray(h), kept):
        mask = out != 0
        np.testing.assert_array_equal(out[mask], row[mask])
        assert np.abs(row[mask]).min() >= np.abs(row[~mask]).max()


def test_topk_feed_forward_matches_a_dense_reference_on_the_kept_entries() -> None:
    spec = ModelSpec.from_config(config(sparsity_method="topk", sparsity_ratio=0.5))
    assert spec.ffn_sparsity == FeedForwardSparsity("topk", 0.5)
    params = jax.jit(partial(init_params, spec))(jax.random.key(0))
    layer = jax.tree.map(lambda x: x[0], params["blocks"])
    h = jax.random.normal(jax.random.key(4), (1, 5, 32))
    y, _ = jax.jit(Network(spec, Kernels.plain(spec)).feed_forward)(h, layer)
    x = np.asarray(h[0], np.float64)
    x = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * np.asarray(layer["ffn_norm"])
    inner = np.asarray(jax.nn.gelu(jnp.asarray(x @ np.asarray(layer["w_in"], np.float64),
                                               jnp.float32)), np.float64)
    threshold = np.sort(np.abs(inner), -1)[:, -inner.shape[-1] // 2][:, None]
    reference = np.where(np.abs(inner) >= threshold, inner, 0) @ np.asarray(layer["w_out"])
    np.testing.assert_allclose(np.asarray(y[0]), reference, rtol=1e-4, atol=1e-5)


def test_a_plan_with_a_bad_sparsity_record_is_refused() -> None:
    import msgspec

    from capibara.diagnostics import ConfigError
    from capibara.plan import decode_plan, encode_plan, seal

    plan = compile_config(config(sparsity_method="magnitude"), "cpu").plan
    assert decode_plan(encode_plan(plan)) == plan  # the record passes the plan's own check
    kernels = tuple(msgspec.structs.replace(k, attrs={**k.attrs, "sparsity": {
        "method": "magnitude", "ratio": 1.5}}) if "sparsity" in k.attrs else k
        for k in plan.kernels)
    bad = seal(msgspec.structs.replace(plan, kernels=kernels))
    with pytest.raises(ConfigError) as refused:
        decode_plan(encode_plan(bad))
    assert "attrs.sparsity" in str(refused.value)
