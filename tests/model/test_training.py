"""Training: schedules and optimizers as the config asks, the model's train step,
gradient checkpointing, and checkpoints that resume training exactly."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from capibara.model import training
from capibara.diagnostics import ConfigError
from capibara.model.facade import Kernels, Model, ModelSpec
from capibara.config.model_config import ModularModelConfig

TINY = dict(hidden_size=64, num_layers=2, num_heads=4, vocab_size=128, max_seq_length=32,
            mor_num_experts=4, warmup_steps=0, decay_steps=1000, learning_rate=3e-3)


def tiny_config(**changes) -> ModularModelConfig:
    return ModularModelConfig(**{**TINY, **changes})


def build(config: ModularModelConfig, seed: int = 0) -> Model:
    spec = ModelSpec.from_config(config)
    return Model.build(spec, Kernels.plain(spec), config, seed=seed)


BATCH = jax.random.randint(jax.random.key(3), (4, 32), 0, 128)


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("kind", ["linear", "cosine", "polynomial"])
def test_schedule_warms_up_then_decays_to_zero_at_decay_steps(kind) -> None:
    config = ModularModelConfig(lr_scheduler=kind, learning_rate=1e-3, warmup_steps=100,
                                decay_steps=1100)
    lr = training.learning_rate_schedule(config)
    assert float(lr(0)) == 0.0
    assert math.isclose(float(lr(50)), 5e-4, rel_tol=1e-5)
    assert math.isclose(float(lr(100)), 1e-3, rel_tol=1e-5)
    assert math.isclose(float(lr(600)), 5e-4, rel_tol=1e-4)  # half way down: both shapes cross 1/2
    assert float(lr(1100)) == pytest.approx(0.0, abs=1e-12)
    quarter = float(lr(350))
    expected = 1e-3 * (0.5 * (1 + math.cos(math.pi / 4)) if kind == "cosine" else 0.75)
    assert math.isclose(quarter, expected, rel_tol=1e-4)


def test_no_warmup_starts_at_the_peak() -> None:
    lr = training.learning_rate_schedule(ModularModelConfig(warmup_steps=0, learning_rate=2e-4))
    assert math.isclose(float(lr(0)), 2e-4, rel_tol=1e-6)


# --------------------------------------------------------------------------- optimizers

PARAMS = {"w": jnp.full((3, 4), 2.0), "blocks": {"attn_norm": jnp.ones((2, 4))}}


def one_update(config, grads):
    optimizer = training.make_optimizer(config)
    updates, _ = optimizer.update(grads, optimizer.init(PARAMS), PARAMS)
    return updates


def constant(**fields) -> ModularModelConfig:
    return ModularModelConfig(warmup_steps=0, decay_steps=10**9, lr_scheduler="linear", **fields)


def test_weight_decay_shrinks_weights_but_not_norm_scales() -> None:
    zero = jax.tree.map(jnp.zeros_like, PARAMS)
    updates = one_update(constant(optimizer="sgd", learning_rate=0.5, weight_decay=0.1), zero)
    np.testing.assert_allclose(updates["w"], -0.5 * 0.1 * 2.0)
    np.testing.assert_array_equal(updates["blocks"]["attn_norm"], 0.0)


@pytest.mark.parametrize("clip, norm", [(1.0, 1.0), (None, 100.0)])
def test_gradients_are_clipped_by_global_norm(clip, norm) -> None:
    grads = {"w": jnp.zeros((3, 4)).at[0, 0].set(60.0), "blocks": {"attn_norm": jnp.zeros((2, 4)).at[0, 0].set(80.0)}}
    config = constant(optimizer="sgd", learning_rate=1.0, weight_decay=0.0, gradient_clip_norm=clip)
    assert float(optax.tree.norm(one_update(config, grads))) == pytest.approx(norm, rel=1e-6)


def test_adamw_first_step_moves_each_weight_by_the_learning_rate() -> None:
    grads = {"w": jnp.linspace(-3, 3, 12).reshape(3, 4) + 0.1, "blocks": {"attn_norm": jnp.ones((2, 4))}}
    config = constant(optimizer="adamw", learning_rate=1e-2, weight_decay=0.0, gradient_clip_norm=None)
    updates = one_update(config, grads)
    # Adam's first step is m/sqrt(v) = sign(g) (bias-corrected), whatever the scale
    np.testing.assert_allclose(updates["w"], -1e-2 * jnp.sign(grads["w"]), rtol=1e-4)


def test_rmsprop_uses_beta2_as_its_decay() -> None:
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), PARAMS)
    config = constant(optimizer="rmsprop", learning_rate=1e-2, weight_decay=0.0, beta2=0.9,
                      epsilon=1e-8, gradient_clip_norm=None)
    updates = one_update(config, grads)
    # v = (1 - rho) g², update = -lr g / sqrt(v)
    np.testing.assert_allclose(updates["w"], -1e-2 / math.sqrt(0.1), rtol=1e-4)


# --------------------------------------------------------------------------- the model's step


def test_loss_decreases_on_a_repeated_batch() -> None:
    model = build(tiny_config())
    losses = [float(model.train_step(BATCH)["cross_entropy"]) for _ in range(8)]
    assert losses[-1] < losses[0] - 0.5, losses
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert model.step == 8
    assert model.compiled_counts()["train_step"] == 1


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    common = dict(optimizer="sgd", learning_rate=0.5, weight_decay=0.0, gradient_clip_norm=None)
    plain = build(tiny_config(gradient_checkpointing=False, **common))
    remat = build(tiny_config(gradient_checkpointing=True, **common))
    start = jax.tree.map(np.asarray, plain.params)
    a, b = plain.train_step(BATCH), remat.train_step(BATCH)
    assert float(a["grad_norm"]) == pytest.approx(float(b["grad_norm"]), rel=1e-5)
    for before, x, y in zip(jax.tree.leaves(start), jax.tree.leaves(plain.params),
                            jax.tree.leaves(remat.params)):
        np.testing.assert_allclose(y - before, x - before, rtol=1e-4, atol=1e-7)
    # and the flag really changes the program: the backward pass recomputes the blocks
    loss = lambda remat_flag: jax.make_jaxpr(jax.grad(lambda p: remat._net.loss(
        p, {"tokens": BATCH}, use_vq=True, threshold=0.5, remat=remat_flag).total))(start)
    assert "remat" in str(loss(True)) and "remat" not in str(loss(False))


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_resume_training_exactly(tmp_path) -> None:
    config = tiny_config(save_checkpoint_steps=2, keep_checkpoint_max=2)
    first = build(config)
    first.checkpoint_to(tmp_path)
    for _ in range(5):
        first.train_step(BATCH)
    first.wait_for_checkpoints()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["2", "4"]
    after_five = jax.tree.map(np.asarray, first.params)
    sixth = float(first.train_step(BATCH)["total"])
    first.close_checkpoints()  # one writer per directory: the resumed model takes it over

    resumed = build(config, seed=7)
    resumed.checkpoint_to(tmp_path)
    assert resumed.restore_checkpoint(step=4) == 4
    resumed.train_step(BATCH)
    for x, y in zip(jax.tree.leaves(after_five), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-7)
    # Adam's moments came back too: the next step matches the uninterrupted run
    assert float(resumed.train_step(BATCH)["total"]) == pytest.approx(sixth, rel=1e-6)


def test_a_checkpoint_from_another_shape_is_refused(tmp_path) -> None:
    small = build(tiny_config(use_vq=False, use_sparse=False))
    small.checkpoint_to(tmp_path)
    small.save_checkpoint()
    small.close_checkpoints()
    wide = build(tiny_config(use_vq=False, use_sparse=False, hidden_size=32, num_heads=2))
    wide.checkpoint_to(tmp_path)
    with pytest.raises(ConfigError) as caught:
        wide.restore_checkpoint()
    text = str(caught.value)
    assert "error[R201]: checkpoint" in text and "does not match the model" in text
    assert "`['params']['embed']` has shape (128, 64) in the checkpoint, the model expects (128, 32)" in text
    assert wide.step == 0
