"""Hybrid models: ``ssm`` and ``hyena`` blocks beside attention, through the plan's kernels.

Tiny shapes (width 32, one block of each mixer, 32 tokens) keep compiling short.
"""

from __future__ import annotations

import msgspec

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from capibara.compiler.driver import compile_config
from capibara.config.model_config import ModularModelConfig
from capibara.model.facade import Kernels, Model, ModelSpec, init_params
from capibara.model.mixers import HybridNetwork

TINY = dict(hidden_size=32, num_layers=3, num_heads=2, vocab_size=64, max_seq_length=32,
            warmup_steps=0, decay_steps=1000, learning_rate=3e-3, mixed_precision=False,
            use_bfloat16=False, use_vq=False, use_sparse=False, temperature=0.0,
            mixers=["ssm", "hyena", "attention"], hyena_filter_length=16, ssm_state_size=4)


def tokens(batch: int = 2, length: int = 32, seed: int = 1) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (batch, length), 0, 64)


@pytest.fixture(scope="module")
def model() -> Model:
    return Model(ModularModelConfig(**TINY))


@pytest.mark.parametrize("target", ["cpu", "gpu-h100", "tpu_v4-32"])
def test_the_plan_names_a_kernel_for_every_family_the_pattern_needs(target: str) -> None:
    result = compile_config(ModularModelConfig(**{**TINY, "hyena_filter_length": None}), target)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    families = {k.name: k.family for k in result.plan.kernels}
    assert families["ssm_blocks.scan"] == "scan"
    assert families["ssm_blocks.conv"] == "conv" and families["hyena_blocks.conv"] == "conv"
    assert families["hyena_blocks.long_conv"] == "fft"
    assert result.plan.model.mixers == ("ssm", "hyena", "attention")


def test_the_long_conv_follows_the_cost_model() -> None:
    def long_conv(taps: int, length: int) -> str:
        config = ModularModelConfig(**{**TINY, "max_seq_length": length, "hyena_filter_length": taps})
        return compile_config(config, "cpu").plan.kernel("hyena_blocks.long_conv").implementation

    assert long_conv(64, 8192) == "direct"
    assert long_conv(8192, 8192) == "fft"


def test_an_attention_only_model_has_no_mixer_sizes() -> None:
    plain = {k: v for k, v in TINY.items() if k not in ("mixers", "hyena_filter_length",
                                                          "ssm_state_size")}
    plan = compile_config(ModularModelConfig(**plain, mixers=["attention"]), "cpu").plan
    assert plan.model.mixers is msgspec.UNSET and plan.model.ssm_state_size is msgspec.UNSET
    # the config section records every field, as set
    plan = compile_config(ModularModelConfig(**plain, ssm_state_size=8), "cpu").plan
    assert plan.config["model.ssm_state_size"] == 8
    assert {k.family for k in plan.kernels}.isdisjoint({"scan", "conv", "fft"})


def test_the_model_runs_the_families_its_plan_chose(model) -> None:
    assert isinstance(model._net, HybridNetwork)
    plan = model.plan
    for family, attribute in (("scan", "scan"), ("conv", "conv"), ("fft", "long_conv")):
        chosen = next(k.implementation for k in plan.kernels if k.family == family)
        assert getattr(model.kernels, attribute).__name__ == f"{family}_{chosen}"


def test_forward_is_causal(model) -> None:
    a = tokens()
    b = a.at[:, 20:].set((a[:, 20:] + 7) % 64)
    la, lb = model.forward(a), model.forward(b)
    np.testing.assert_allclose(la[:, :20], lb[:, :20], rtol=1e-5, atol=1e-5)
    assert not np.allclose(la[:, 20:], lb[:, 20:])


def test_cached_greedy_generation_equals_recomputing_the_forward(model) -> None:
    prompt = tokens(length=5)
    generated = model.generate(prompt, max_new_tokens=8)
    sequence = jnp.zeros((2, 32), prompt.dtype).at[:, :5].set(prompt)
    for position in range(5, 13):
        nxt = jnp.argmax(model.forward(sequence)[:, position - 1], -1)
        sequence = sequence.at[:, position].set(nxt.astype(sequence.dtype))
    np.testing.assert_array_equal(generated, sequence[:, :13])


def test_an_ssm_block_generates_from_a_state_of_constant_size(model) -> None:
    net, params = model._net, model.params

    def states(length: int):
        prompt = jax.ShapeDtypeStruct((2, length), jnp.int32)
        _, found, *_ = jax.eval_shape(
            lambda p, t: net.hidden(p, t, use_vq=False, threshold=None, keep_kv=True), params, prompt)
        return found

    short, long = states(4), states(24)
    assert jax.tree.map(lambda x: x.shape, short[0]) == jax.tree.map(lambda x: x.shape, long[0])
    recurrent, window = short[0]
    assert recurrent.shape == (2, 64, 4) and window.shape == (2, 3, 64)  # [B, E, N], [B, W-1, E]


def test_a_train_step_lowers_the_loss_on_its_batch(model) -> None:
    batch = tokens(seed=3)
    # each step reports the loss before its update: the third sees two updates
    losses = [float(model.train_step(batch)["total"]) for _ in range(3)]
    assert all(math.isfinite(x) for x in losses) and losses[2] < losses[0]


def test_capibara_kernels_compute_what_plain_jax_computes() -> None:
    config = ModularModelConfig(**{**TINY, "num_layers": 2, "mixers": ["ssm", "hyena"],
                                   "hyena_filter_length": None})
    spec = ModelSpec.from_config(config)
    params = init_params(spec, jax.random.key(0))
    batch = {"tokens": tokens()}
    choices = {"scan": ("chunked", {"chunk": 8}), "conv": ("shift_add", {}), "fft": ("fft", {})}
    results = []
    for kernels in (Kernels.plain(spec), Kernels.from_variants(spec, choices)):
        net = HybridNetwork(spec, kernels)
        loss = jax.jit(jax.value_and_grad(
            lambda p: net.loss(p, batch, use_vq=False, threshold=None).total))
        results.append(loss(params))
    (plain_loss, plain_grads), (ours_loss, our_grads) = results
    assert float(ours_loss) == pytest.approx(float(plain_loss), rel=1e-5)
    for a, b in zip(jax.tree.leaves(plain_grads), jax.tree.leaves(our_grads)):
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-6)
