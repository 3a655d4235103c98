"""The CapibaraGPT model: forward, loss, generation with a KV cache, runtime updates.

Tiny shapes (d_model 64, 2 layers, vocab 128, seq 32) keep compilation short;
models are shared per module, since compiling dominates the time here.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from capibara.diagnostics import ConfigError
from jax.sharding import PartitionSpec as P

from capibara.kernels.moe import Experts
from capibara.model.facade import (Kernels, Model, ModelSpec, RunPolicy, init_params,
                                   param_partition_specs)
from capibara.model.network import Network
from capibara.config.model_config import ModularModelConfig
from capibara.plan import write_plan_file

ROOT = Path(__file__).resolve().parents[2]

# float32 compute (no mixed precision) keeps greedy decoding free of rounding ties
TINY = dict(hidden_size=64, num_layers=2, num_heads=4, vocab_size=128, max_seq_length=32,
            mor_num_experts=4, warmup_steps=0, decay_steps=1000, learning_rate=3e-3,
            mixed_precision=False, use_bfloat16=False)

#: capibara's CPU kernels with tiles smaller than the sequence, so the blocked
#: attention really skips causal blocks and the VQ really loops over row blocks.
SMALL_TILES = {"attention": ("cpu_blocked", {"block_q": 8, "block_kv": 8}),
               "vq": ("xla", {"block_rows": 16}),
               "moe": ("dispatch", {"capacity_factor": None}),
               "linalg": ("xla", {})}


def tiny_config(**changes) -> ModularModelConfig:
    return ModularModelConfig(**{**TINY, **changes})


def build(config: ModularModelConfig, seed: int = 0) -> Model:
    """The model the compiler plans for this host (capibara's kernels)."""
    return Model(config, seed=seed)


def tokens(batch: int = 2, length: int = 32, seed: int = 1) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (batch, length), 0, 128)


@pytest.fixture(scope="module")
def model() -> Model:
    """VQ bottleneck and Mixture of Rookies both on (the config defaults), with a
    codebook drawn from hidden states so the bottleneck quantizes from the start."""
    m = build(tiny_config(temperature=0.0))
    m.init_codebook(tokens(batch=4, seed=9))
    return m


@pytest.fixture(scope="module")
def dense_model() -> Model:
    return build(tiny_config(use_vq=False, use_sparse=False, temperature=0.0))


def test_spec_follows_the_config() -> None:
    spec = ModelSpec.from_config(tiny_config())
    assert (spec.d_model, spec.num_layers, spec.num_heads, spec.vocab_size) == (64, 2, 4, 128)
    assert spec.vq_codes == 64 and spec.num_experts == 4 and spec.top_k == 2
    dense = ModelSpec.from_config(tiny_config(use_vq=False, sparsity_method="topk"))
    assert dense.vq_codes is None and dense.num_experts is None


def test_parameter_layout_matches_the_tree_and_the_plan(model, dense_model) -> None:
    for m in (model, dense_model):
        flat = jax.tree_util.tree_flatten_with_path(m.params)[0]
        assert {jax.tree_util.keystr(k): v.shape for k, v in flat} == m.spec.parameter_shapes()
        # the compiler counts the same parameters without building them
        assert m.spec.parameter_count() == m.plan.model.parameter_count


def test_forward_gives_finite_logits(dense_model) -> None:
    logits = dense_model.forward(tokens())
    assert logits.shape == (2, 32, 128) and logits.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits)))


def test_parameters_come_from_the_seed(dense_model) -> None:
    init = jax.jit(functools.partial(init_params, dense_model.spec))
    same, other = init(jax.random.key(0)), init(jax.random.key(1))
    for a, b, c in zip(*(jax.tree.leaves(p) for p in (dense_model.params, same, other))):
        np.testing.assert_array_equal(a, b)
        assert bool(jnp.all(a == 1)) or not np.array_equal(a, c)  # norm scales start at 1


@pytest.mark.parametrize("which", ["model", "dense_model"])
def test_forward_is_causal(which, request) -> None:
    m = request.getfixturevalue(which)
    a = tokens()
    b = a.at[:, 20:].set((a[:, 20:] + 7) % 128)
    la, lb = m.forward(a), m.forward(b)
    np.testing.assert_allclose(la[:, :20], lb[:, :20], rtol=1e-5, atol=1e-5)
    assert not np.allclose(la[:, 20:], lb[:, 20:])


def test_loss_parts_add_up_and_cross_entropy_matches_the_logits(model) -> None:
    batch = tokens()
    parts = model.loss(batch)
    assert math.isclose(float(parts.total), float(sum(parts[1:])), rel_tol=1e-5)
    assert float(parts.vq_commitment) > 0 and float(parts.vq_codebook) > 0
    assert float(parts.load_balancing) > 0
    log_probs = jax.nn.log_softmax(model.forward(batch)[:, :-1], -1)
    expected = -jnp.mean(jnp.take_along_axis(log_probs, batch[:, 1:, None], -1))
    assert math.isclose(float(parts.cross_entropy), float(expected), rel_tol=1e-5)
    # an untrained model is close to uniform over the vocabulary
    assert abs(float(parts.cross_entropy) - math.log(128)) < 0.5


def test_loss_mask_drops_positions(dense_model) -> None:
    batch = tokens()
    mask = jnp.zeros((2, 32), bool).at[:, :11].set(True)
    masked = dense_model.loss({"tokens": batch, "mask": mask})
    log_probs = jax.nn.log_softmax(dense_model.forward(batch)[:, :10], -1)
    expected = -jnp.mean(jnp.take_along_axis(log_probs, batch[:, 1:11, None], -1))
    assert math.isclose(float(masked.cross_entropy), float(expected), rel_tol=1e-5)


def greedy_by_recomputing(m: Model, prompt: jax.Array, new: int) -> jax.Array:
    """Greedy decoding without a cache: the full forward pass for every token.

    The sequence is padded to a fixed length so the forward compiles once; the
    padding cannot leak into earlier positions (the model is causal, tested above).
    """
    length = prompt.shape[1]
    sequence = jnp.zeros((prompt.shape[0], m.spec.max_seq_len), prompt.dtype).at[:, :length].set(prompt)
    for position in range(length, length + new):
        nxt = jnp.argmax(m.forward(sequence)[:, position - 1], -1)
        sequence = sequence.at[:, position].set(nxt.astype(sequence.dtype))
    return sequence[:, :length + new]


@pytest.mark.parametrize("which", ["model", "dense_model"])
def test_cached_greedy_generation_equals_recomputing_the_forward(which, request) -> None:
    m = request.getfixturevalue(which)
    prompt = tokens(length=5)
    generated = m.generate(prompt, max_new_tokens=10)
    assert generated.shape == (2, 15)
    np.testing.assert_array_equal(generated[:, :5], prompt)
    np.testing.assert_array_equal(generated, greedy_by_recomputing(m, prompt, 10))


@pytest.mark.parametrize("which", ["model", "dense_model"])
def test_left_padded_prompts_generate_as_they_would_alone(which, request) -> None:
    """``prompt_mask`` (what ``capibara serve`` batches with): padding is invisible."""
    m = request.getfixturevalue(which)
    short, long = tokens(batch=1, length=3, seed=4), tokens(batch=1, length=9, seed=5)
    padded = jnp.zeros((2, 12), short.dtype).at[0, 9:].set(short[0]).at[1, 3:].set(long[0])
    mask = jnp.arange(12)[None, :] >= jnp.array([[9], [3]])
    together = m.generate(padded, 6, prompt_mask=mask)
    np.testing.assert_array_equal(together[0, 12:], m.generate(short, 6)[0, 3:])
    np.testing.assert_array_equal(together[1, 12:], m.generate(long, 6)[0, 9:])
    with pytest.raises(ValueError, match="prompt_mask shape"):
        m.generate(padded, 6, prompt_mask=mask[:, :5])


def test_generation_refuses_to_run_past_max_seq_length(dense_model) -> None:
    with pytest.raises(ValueError, match="exceeds max_seq_length=32"):
        dense_model.generate(tokens(length=30), max_new_tokens=5)


def test_sampling_is_seeded_and_temperature_changes_compile_nothing(dense_model) -> None:
    m = dense_model
    prompt = tokens(length=4)
    greedy = m.generate(prompt, 12)
    counts = m.compiled_counts()
    config = m.get_current_config()
    config.update_runtime_settings({"temperature": 1.5})
    m.apply_config_updates(config)
    first, again, other = (m.generate(prompt, 12, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, greedy)
    config.update_runtime_settings({"temperature": 0.0})
    m.apply_config_updates(config)
    np.testing.assert_array_equal(m.generate(prompt, 12, seed=5), greedy)
    assert m.compiled_counts() == counts


def test_the_seed_runtime_update_example_runs_verbatim(model) -> None:
    config = model.get_current_config()
    config.update_runtime_settings({
        "batch_size": 16,
        "temperature": 0.8,
        "use_vq": True,
        "vq_adaptive_threshold": 0.6
    })
    model.apply_config_updates(config)
    current_config = model.get_current_config()
    assert current_config.use_vq is True
    assert current_config.temperature == 0.8 and current_config.batch_size == 16
    assert current_config.use_tpu_v4_optimizations is True
    config.update_runtime_settings({"temperature": 0.0, "vq_adaptive_threshold": 0.5})
    model.apply_config_updates(config)


def test_vq_bypass_recompiles_only_the_forward_it_runs(model) -> None:
    batch = tokens()
    with_vq = model.forward(batch)
    before = model.compiled_counts()
    config = model.get_current_config()
    config.update_runtime_settings({"use_vq": False})
    model.apply_config_updates(config)
    try:
        bypassed = model.forward(batch)
        after = model.compiled_counts()
        assert after == {**before, "forward": before["forward"] + 1}
        assert not np.allclose(with_vq, bypassed)
        assert float(model.loss(batch).vq_commitment) == 0.0
    finally:
        config.update_runtime_settings({"use_vq": True})
        model.apply_config_updates(config)
    np.testing.assert_array_equal(model.forward(batch), with_vq)
    assert model.compiled_counts()["forward"] == before["forward"] + 1


def test_current_config_is_a_snapshot(model) -> None:
    snapshot = model.get_current_config()
    snapshot.update_runtime_settings({"temperature": 1.7})
    assert model.get_current_config().temperature == 0.0


def test_immutable_changes_are_refused_and_change_nothing(model) -> None:
    batch = tokens()
    before = model.forward(batch)
    changed = model.get_current_config().replace(num_layers=3, learning_rate=0.1, temperature=0.9)
    with pytest.raises(ConfigError) as caught:
        model.apply_config_updates(changed)
    messages = [(d.code, d.message) for d in caught.value.diagnostics]
    assert messages == [
        ("S501", "`num_layers` cannot change on a running model (2 to 3)"),
        ("S501", "`learning_rate` cannot change on a running model (0.003 to 0.1)")]
    text = str(caught.value)
    assert "help: build a new model from the new config" in text
    assert "note: apply_config_updates changed nothing" in text
    assert model.get_current_config().temperature == 0.0
    np.testing.assert_array_equal(model.forward(batch), before)


def test_invalid_configs_are_refused(model) -> None:
    before = model.get_current_config()
    invalid = before.replace(batch_size=64, max_batch_size=32)
    with pytest.raises(ConfigError, match=r"batch_size"):
        model.apply_config_updates(invalid)
    assert model.get_current_config() == before


def test_vq_cannot_be_turned_on_without_a_codebook(dense_model) -> None:
    config = dense_model.get_current_config().replace(use_vq=True)
    with pytest.raises(ConfigError, match=r"error\[R212\]: `use_vq` cannot be turned on"):
        dense_model.apply_config_updates(config)
    assert dense_model.get_current_config().use_vq is False


def test_the_model_runs_the_kernels_its_plan_chose(model) -> None:
    chosen = {k.family: k.implementation for k in model.plan.kernels}
    assert chosen["attention"] == "cpu_blocked" and chosen["vq"] == "xla"
    assert model.kernels.attention.__name__ == "attention_cpu_blocked"
    assert model.kernels.attention_decode.__name__ == "attention_reference"
    assert model.kernels.name == "capibara"
    assert model.policy == RunPolicy(remat=True, donate=True, loss_chunk=1024,
                                     shard_optimizer_state=True)


def test_a_plan_file_builds_the_same_model(dense_model, tmp_path) -> None:
    path = write_plan_file(dense_model.plan, tmp_path / "tiny.plan.json")
    loaded = Model.from_plan(path)
    assert loaded.get_current_config() == dense_model.get_current_config()
    assert loaded.get_current_config().explicit_fields == dense_model.get_current_config().explicit_fields
    batch = tokens()
    np.testing.assert_array_equal(loaded.forward(batch), dense_model.forward(batch))


def test_capibara_kernels_compute_what_plain_jax_computes() -> None:
    # one block: the bottleneck and the Rookies still run, for half the compile time
    spec = ModelSpec.from_config(tiny_config(num_layers=1))
    params = init_params(spec, jax.random.key(0))
    batch = {"tokens": tokens()}
    results = []
    for kernels in (Kernels.plain(spec), Kernels.from_variants(spec, SMALL_TILES)):
        net = Network(spec, kernels)
        loss = jax.jit(jax.value_and_grad(lambda p: net.loss(p, batch, use_vq=True, threshold=1.0).total))
        results.append(loss(params))
    (plain_loss, plain_grads), (ours_loss, our_grads) = results
    assert float(ours_loss) == pytest.approx(float(plain_loss), rel=1e-5)
    for a, b in zip(jax.tree.leaves(plain_grads), jax.tree.leaves(our_grads)):
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-6)


def test_chunked_loss_equals_the_whole_loss() -> None:
    spec = ModelSpec.from_config(tiny_config(use_vq=False))
    params = init_params(spec, jax.random.key(0))
    h = jax.random.normal(jax.random.key(2), (2, 31, 64))
    targets = tokens(length=31)
    results = []
    for chunk in (None, 20):  # 62 target tokens: four chunks, the last one padded
        net = Network(spec, Kernels.plain(spec), loss_chunk=chunk)
        loss = lambda p, h: -jnp.sum(net.target_log_probs(p, h, targets))
        results.append(jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, h))
    (whole, whole_grads), (chunked, chunked_grads) = results
    assert float(chunked) == pytest.approx(float(whole), rel=1e-6)
    for a, b in zip(jax.tree.leaves(whole_grads), jax.tree.leaves(chunked_grads)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_mixed_precision_model_computes_in_bfloat16_close_to_float32(dense_model) -> None:
    mixed = build(tiny_config(use_vq=False, use_sparse=False, temperature=0.0,
                              mixed_precision=True, use_bfloat16=True))
    assert (mixed.spec.param_dtype, mixed.spec.compute_dtype) == ("float32", "bfloat16")
    assert mixed.params["embed"].dtype == jnp.float32
    batch = tokens()
    assert float(mixed.loss(batch).total) == pytest.approx(float(dense_model.loss(batch).total),
                                                           rel=2e-2)


SHARDED = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    sys.path[:0] = [{root!r}, {tests!r}]
    import jax, numpy as np
    from jax.sharding import PartitionSpec as P
    from capibara.model.facade import Kernels, Model, ModelSpec, make_mesh
    from test_model import SMALL_TILES, tiny_config, tokens
    assert jax.device_count() == 8
    config = tiny_config(use_vq=False, use_sparse=False, temperature=0.0)
    spec = ModelSpec.from_config(config)
    model = Model.build(spec, Kernels.from_variants(spec, SMALL_TILES), config,
                        mesh=make_mesh((2, 4)))
    blocks = model.params["blocks"]
    specs = {{"embed": model.params["embed"].sharding.spec, "wq": blocks["wq"].sharding.spec,
             "wo": blocks["wo"].sharding.spec, "w_in": blocks["w_in"].sharding.spec}}
    assert specs == {{"embed": P("model", None), "wq": P(None, None, "model"),
                     "wo": P(None, "model", None), "w_in": P(None, None, "model")}}, specs
    assert len(model.params["embed"].sharding.device_set) == 8
    batch = tokens(batch=4)
    logits = model.forward(batch)
    assert logits.sharding.mesh.shape == {{"data": 2, "model": 4}}
    loss = model.train_step(batch)["total"]
    assert blocks["wq"].sharding == model.params["blocks"]["wq"].sharding
    np.savez({out!r}, logits=np.asarray(logits), loss=np.asarray(loss))
""")


@pytest.mark.slow
def test_parameters_shard_over_a_2x4_mesh_and_compute_the_same(dense_model, tmp_path) -> None:
    out = tmp_path / "sharded.npz"
    script = SHARDED.format(root=str(ROOT), tests=str(Path(__file__).parent), out=str(out))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = np.load(out)
    batch = tokens(batch=4)
    # same seed: the sharded program computes what one device does
    np.testing.assert_allclose(sharded["logits"], dense_model.forward(batch), rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(sharded["loss"], dense_model.loss(batch).total, rtol=1e-5)


def test_rookie_experts_and_vocabulary_split_over_the_model_axis() -> None:
    spec = ModelSpec.from_config(tiny_config())
    specs = param_partition_specs(spec)
    assert specs["blocks"]["experts"] == Experts(P(None, None, None, "model"),
                                                 P(None, None, "model", None))
    assert specs["blocks"]["router"] == P() and specs["codebook"] == P()
    assert set(specs["blocks"]) == set(init_params(spec, jax.random.key(0))["blocks"])
