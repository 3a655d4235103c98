"""What a plan records and the model must honour: quantized weight formats, the
int8 VQ codebook, the dtype and place of saved activations, ``jit = false``.

Tiny shapes (d_model 32, 2 layers, vocab 64, seq 16). The quantize→matmul
oracle is NumPy: the same integer levels computed in float32 as the kernels
compute them, multiplied in float64.
"""

from __future__ import annotations

import dataclasses
import math
import types

import jax
import jax.numpy as jnp
import msgspec
import numpy as np
import pytest
from jax.ad_checkpoint import print_saved_residuals

from capibara.compiler.driver import compile_config
from capibara.diagnostics import ConfigError
from capibara.kernels.linalg import dequantize
from capibara.kernels.vq import quantize_codebook
from capibara.model.facade import (Kernels, Model, ModelSpec, WeightFormat, host_offload_supported,
                                   init_params, make_mesh, quantized_matmul)
from capibara.model.network import Network
from capibara.model.notes import execution_notes, plan_notes
from capibara.config.model_config import ModularModelConfig
from capibara.compiler.model_spec import RunPolicy

TINY = dict(hidden_size=32, num_layers=2, num_heads=4, vocab_size=64, max_seq_length=16,
            warmup_steps=0, decay_steps=1000, learning_rate=3e-3, mixed_precision=False,
            use_bfloat16=False, use_vq=False, use_sparse=False, temperature=0.0)

EPS32 = float(np.finfo(np.float32).eps)

FORMATS = {
    "affine16": WeightFormat("affine", 16),
    "affine8": WeightFormat("affine", 8),
    "affine8_asymmetric": WeightFormat("affine", 8, symmetric=False),
    "affine4": WeightFormat("affine", 4),
    "bitnet_int8": WeightFormat("affine", 8, per_tensor=True),
    "ternary": WeightFormat("ternary"),
}
BLOCK_MATMULS = ("wq", "wk", "wv", "wo", "w_in", "w_out")
#: capibara's integer kernels: int8 x int8 -> int32 for int8-stored weights.
XLA = {"linalg": ("xla", {})}


def tiny_config(**changes) -> ModularModelConfig:
    return ModularModelConfig(**{**TINY, **changes})


def float_spec() -> ModelSpec:
    return ModelSpec.from_config(tiny_config(use_affine_quantization=False))


def with_format(spec: ModelSpec, fmt: WeightFormat) -> ModelSpec:
    return dataclasses.replace(spec, weights=tuple((name, fmt) for name in BLOCK_MATMULS))


TOKENS = jax.random.randint(jax.random.key(1), (2, 16), 0, 64)


# --------------------------------------------------------------------------- the NumPy oracle


def _ties(scaled: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``step`` where ``scaled`` lies within float32 rounding of a half-integer, else 0.

    There the kernel may round to either neighbouring level: XLA computes
    ``w / scale`` as ``w · (1 / scale)``, which differs from NumPy's division by
    a few ulps (both are correct float32; neither is the oracle's business).
    """
    near = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) <= 4 * EPS32 * np.maximum(np.abs(scaled), 1)
    return np.where(near, np.broadcast_to(step, scaled.shape), 0.0)


def numpy_levels(w: np.ndarray, fmt: WeightFormat) -> tuple[np.ndarray, np.ndarray]:
    """The dequantized weight (levels and scales computed in float32, as the
    kernels do) and, per entry, the step it may differ by at a rounding tie."""
    w = w.astype(np.float32)
    if fmt.kind == "ternary":
        scale = np.float32(np.mean(np.abs(w)))
        levels = np.clip(np.round(w / scale), -1, 1).astype(np.float64) * scale
        return levels, _ties(w / scale, np.float64(scale))
    axis = None if fmt.per_tensor else 0
    if fmt.symmetric:
        qmax = 2 ** (fmt.bits - 1) - 1
        qmin, zero = -qmax, np.float32(0)
        scale = np.max(np.abs(w), axis=axis, keepdims=True) / np.float32(qmax)
    else:
        qmin, qmax = -(2 ** (fmt.bits - 1)), 2 ** (fmt.bits - 1) - 1
        lo = np.minimum(np.min(w, axis=axis, keepdims=True), 0)
        hi = np.maximum(np.max(w, axis=axis, keepdims=True), 0)
        scale = (hi - lo) / np.float32(qmax - qmin)
        zero = np.clip(qmin - np.round(lo / scale), qmin, qmax)
    q = np.clip(np.round(w / scale) + zero, qmin, qmax)
    return scale.astype(np.float64) * (q - zero), _ties(w / scale, scale.astype(np.float64))


def numpy_rows(x: np.ndarray, fmt: WeightFormat) -> tuple[np.ndarray, np.ndarray]:
    """The activations an integer kernel multiplies (int8 per row unless the
    weight is 16-bit) and the step each may differ by at a rounding tie."""
    x = x.astype(np.float32)
    if fmt.kind == "affine" and fmt.bits == 16:
        return x.astype(np.float64), np.zeros(x.shape)
    scale = np.max(np.abs(x), axis=-1, keepdims=True) / np.float32(127)
    rows = np.clip(np.round(x / scale), -127, 127) * scale.astype(np.float64)
    return rows, _ties(x / scale, scale.astype(np.float64))


def within_float32_sums(actual, expected, magnitude, terms: int, ties=0.0) -> None:
    """``actual`` within float32 rounding of sums of ``terms`` products whose
    absolute values sum to ``magnitude``, plus ``ties`` (what rounding ties may
    move): the levels are otherwise the same integers, so all that may differ
    is accumulation (int32 sums are exact; float32 sums of ``terms`` products
    lose at most ``terms·eps`` of the absolute sum)."""
    error = np.abs(np.asarray(actual, np.float64) - expected)
    bound = terms * EPS32 * magnitude + ties + 1e-30
    assert np.all(error <= bound), f"worst error {np.max(error / bound):.2f}x the float32 bound"


# --------------------------------------------------------------------------- weight formats


@pytest.mark.parametrize("name", FORMATS)
def test_quantized_matmul_is_numpy_quantize_then_matmul(name) -> None:
    fmt = FORMATS[name]
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (2, 8, 32))
    w = 0.1 * jax.random.normal(kw, (32, 48))
    (rows, row_ties), (levels, level_ties) = numpy_rows(np.asarray(x), fmt), numpy_levels(
        np.asarray(w), fmt)
    expected = rows @ levels
    ties = row_ties @ np.abs(levels) + np.abs(rows) @ level_ties
    spec = with_format(float_spec(), fmt)
    for kernels in (Kernels.from_variants(spec, XLA), Kernels.plain(spec)):
        actual = jax.jit(lambda x, w: quantized_matmul(kernels.matmul, fmt, x, w))(x, w)
        within_float32_sums(actual, expected, np.abs(rows) @ np.abs(levels), 32, ties)
    # the format is really applied: the float product differs by about a level
    assert not np.allclose(expected, np.asarray(x, np.float64) @ np.asarray(w, np.float64),
                           rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["affine8", "affine4", "ternary"])
def test_straight_through_gradients_are_the_float_products_of_the_rounded_operands(name) -> None:
    fmt = FORMATS[name]
    kx, kw, kg = jax.random.split(jax.random.key(2), 3)
    x = jax.random.normal(kx, (2, 8, 32))
    w = 0.1 * jax.random.normal(kw, (32, 48))
    g = jax.random.normal(kg, (2, 8, 48))
    spec = with_format(float_spec(), fmt)
    matmul = Kernels.from_variants(spec, XLA).matmul
    _, vjp = jax.vjp(lambda x, w: quantized_matmul(matmul, fmt, x, w), x, w)
    gx, gw = vjp(g)
    (rows, row_ties), (levels, level_ties) = numpy_rows(np.asarray(x), fmt), numpy_levels(
        np.asarray(w), fmt)
    g64 = np.asarray(g, np.float64)
    # d/dx = g ŵᵀ (through the activation rounding), d/dw = x̂ᵀ g (through the weights')
    within_float32_sums(gx, g64 @ levels.T, np.abs(g64) @ np.abs(levels.T), 48,
                        np.abs(g64) @ level_ties.T)
    flat_rows, flat_g = rows.reshape(-1, 32), g64.reshape(-1, 48)
    within_float32_sums(gw, flat_rows.T @ flat_g, np.abs(flat_rows.T) @ np.abs(flat_g), 16,
                        row_ties.reshape(-1, 32).T @ np.abs(flat_g))
    assert gw.dtype == w.dtype and np.all(np.abs(np.asarray(gw)).sum(0) > 0)


@pytest.fixture(scope="module")
def float_logits() -> tuple[dict, jax.Array]:
    spec = float_spec()
    params = init_params(spec, jax.random.key(0))
    net = Network(spec, Kernels.from_variants(spec, XLA))
    return params, jax.jit(net.forward, static_argnames=("use_vq", "threshold"))(
        params, TOKENS, use_vq=False, threshold=None)


@pytest.mark.parametrize("name", ["affine16", "affine8", "affine4"])
def test_quantized_logits_stay_within_one_level_of_the_float_model(name, float_logits) -> None:
    fmt = FORMATS[name]
    params, reference = float_logits
    spec = with_format(float_spec(), fmt)
    results = []
    for kernels in (Kernels.from_variants(spec, XLA), Kernels.plain(spec)):
        net = Network(spec, kernels)
        forward = jax.jit(net.forward, static_argnames=("use_vq", "threshold"))
        results.append(forward(params, TOKENS, use_vq=False, threshold=None))
    ours, plain = results
    # Every weight and activation moves by at most half a level, 1/(2·qmax) of its
    # column's (row's) largest value; those errors are independent, so through
    # two blocks the logits move by less than one level, and by more than a
    # twentieth of one (measured ~0.4-0.6 levels at 4, 8 and 16 bits).
    level = 1 / (2 ** (fmt.bits - 1) - 1)
    relative = float(jnp.linalg.norm(ours - reference) / jnp.linalg.norm(reference))
    assert level / 20 < relative < level
    # the integer kernels and the float fake quantization multiply the same levels
    # (an int8 activation level may flip where the two disagree in the last bit)
    np.testing.assert_allclose(ours, plain, rtol=0, atol=level * 1e-2 * float(jnp.max(jnp.abs(ours))))


@pytest.mark.parametrize("name", ["affine8", "ternary"])
def test_training_loss_and_inference_logits_quantize_alike(name, float_logits) -> None:
    params, _ = float_logits
    spec = with_format(float_spec(), FORMATS[name])
    net = Network(spec, Kernels.from_variants(spec, XLA))
    logits = jax.jit(net.forward, static_argnames=("use_vq", "threshold"))(
        params, TOKENS, use_vq=False, threshold=None)
    loss = jax.jit(net.loss, static_argnames=("use_vq", "threshold", "remat"))(
        params, {"tokens": TOKENS}, use_vq=False, threshold=None, remat=True)
    log_probs = jax.nn.log_softmax(logits[:, :-1], -1)
    expected = -jnp.mean(jnp.take_along_axis(log_probs, TOKENS[:, 1:, None], -1))
    # quantized once up front (inference) or per layer in the scan (training):
    # the same levels, so float32 summation order is all that differs
    assert float(loss.cross_entropy) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("changes, site_format", [
    (dict(affine_bits=4), FORMATS["affine4"]),
    (dict(use_bitnet=True), FORMATS["ternary"]),
])
def test_a_plans_quantized_model_trains_through_the_straight_through_estimator(
        changes, site_format) -> None:
    model = Model(tiny_config(**changes))
    assert dict(model.spec.weights) == {name: site_format for name in BLOCK_MATMULS}
    grads = jax.jit(jax.grad(lambda p: model._net.loss(p, {"tokens": TOKENS}, use_vq=False,
                                                       threshold=None, train=True).total))(model.params)
    for name in BLOCK_MATMULS:
        g = grads["blocks"][name]
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.min(jnp.abs(g).sum((1, 2)))) > 0, name
    first = float(model.loss(TOKENS).total)
    for _ in range(6):
        metrics = model.train_step(TOKENS)
        assert math.isfinite(float(metrics["grad_norm"])) and float(metrics["grad_norm"]) > 0
    assert float(model.loss(TOKENS).total) < first - 0.1


def test_generation_multiplies_the_weights_quantized_once() -> None:
    spec = with_format(float_spec(), FORMATS["affine8"])
    model = Model.build(spec, Kernels.from_variants(spec, XLA), tiny_config())
    prompt = TOKENS[:, :4]
    generated = model.generate(prompt, 8)
    sequence = generated[:, :12]
    # greedy: each generated token is the argmax of the (quantized) forward at its position
    logits = model.forward(jnp.pad(sequence, ((0, 0), (0, 4))))
    np.testing.assert_array_equal(generated[:, 4:], jnp.argmax(logits[:, 3:11], -1))


# --------------------------------------------------------------------------- plan attrs


def test_weight_formats_read_the_attrs_the_compiler_writes() -> None:
    assert WeightFormat.from_attrs({"weights": "float"}) == WeightFormat()
    assert WeightFormat.from_attrs({"weights": "affine", "bits": 4, "symmetric": False}) == \
        WeightFormat("affine", 4, symmetric=False)
    assert WeightFormat.from_attrs({"weights": "bitnet", "precision": "1.58bit"}) == FORMATS["ternary"]
    assert WeightFormat.from_attrs({"weights": "bitnet", "precision": "int8"}) == FORMATS["bitnet_int8"]
    assert WeightFormat.from_attrs({"weights": "ternary"}) == FORMATS["ternary"]


@pytest.mark.parametrize("attrs, message", [
    ({"weights": "fp4"}, "error[R104]: kernel `blocks.wq` asks for `fp4` weights"),
    ({"weights": "affine", "bits": 2}, "error[R104]: kernel `blocks.wq` asks for 2-bit affine weights"),
    ({"weights": "bitnet", "precision": "int2"},
     "error[R104]: kernel `blocks.wq` asks for BitNet weights at precision `int2`"),
])
def test_a_weight_format_this_capibara_cannot_compute_is_refused(attrs, message) -> None:
    with pytest.raises(ConfigError) as caught:
        WeightFormat.from_attrs(attrs, "kernel `blocks.wq`")
    assert str(caught.value).startswith(message)


# --------------------------------------------------------------------------- the int8 codebook


def test_an_int8_codebook_plan_looks_up_and_outputs_the_int8_codes() -> None:
    model = Model(tiny_config(use_vq=True, vq_precision="int8"))
    assert model.spec.vq_codebook_dtype == "int8"
    assert {k.family: k.implementation for k in model.plan.kernels}["vq"] == "int8"
    model.init_codebook(jax.random.randint(jax.random.key(5), (4, 16), 0, 64))
    params, net = model.params, model._net
    int8_codes = dequantize(quantize_codebook(params["codebook"]))
    assert not np.array_equal(int8_codes, params["codebook"])

    hidden = jax.jit(net.before_bottleneck)(params, TOKENS)
    _, out = jax.jit(net.bottleneck, static_argnums=2)(hidden, params["codebook"], None)
    np.testing.assert_array_equal(out.quantized, int8_codes[out.indices.reshape(-1)])

    # the same network with a float codebook holding those values computes the same
    as_float = Network(dataclasses.replace(model.spec, vq_codebook_dtype=None), model.kernels)
    forward = jax.jit(as_float.forward, static_argnames=("use_vq", "threshold"))
    np.testing.assert_array_equal(model.forward(TOKENS),
                                  forward({**params, "codebook": int8_codes}, TOKENS,
                                          **model._static()))

    # training reaches the float codebook through the rounding
    grads = jax.jit(jax.grad(lambda p: net.loss(p, {"tokens": TOKENS}, use_vq=True,
                                                threshold=None).total))(params)
    assert bool(jnp.all(jnp.isfinite(grads["codebook"]))) and float(jnp.abs(grads["codebook"]).max()) > 0


# --------------------------------------------------------------------------- execution


def saved_block_inputs(net: Network, params, capsys) -> list[str]:
    """The residuals the backward pass keeps that are stacked block inputs [L, B, S, d]."""
    print_saved_residuals(lambda p: net.loss(p, {"tokens": TOKENS}, use_vq=False, threshold=None,
                                             remat=True).total, params)
    lines = capsys.readouterr().out.splitlines()
    return [line.split()[0] for line in lines if "[2,2,16,32]" in line]


@pytest.mark.parametrize("saved, offload, kept", [
    ("float32", False, ["f32[2,2,16,32]"]),
    ("bfloat16", False, ["bf16[2,2,16,32]"]),
    ("bfloat16", True, ["bf16<host>[2,2,16,32]"]),
])
def test_rematerialized_blocks_keep_their_input_in_the_saved_dtype_and_place(
        saved, offload, kept, capsys) -> None:
    spec = float_spec()
    params = init_params(spec, jax.random.key(0))
    net = Network(spec, Kernels.plain(spec), saved_activation_dtype=saved,
               offload_activations=offload)
    assert saved_block_inputs(net, params, capsys) == kept


def test_bfloat16_saved_inputs_change_loss_and_gradients_by_bfloat16_rounding() -> None:
    spec = float_spec()
    params = init_params(spec, jax.random.key(0))
    results = {}
    for saved, remat in (("float32", False), ("float32", True), ("bfloat16", True)):
        net = Network(spec, Kernels.plain(spec), saved_activation_dtype=saved)
        loss = lambda p: net.loss(p, {"tokens": TOKENS}, use_vq=False, threshold=None,
                                  remat=remat).total
        results[saved, remat] = jax.jit(jax.value_and_grad(loss))(params)
    (plain, plain_grads), (f32, f32_grads), (bf16, bf16_grads) = results.values()
    assert float(f32) == float(plain)  # remat recomputes the same float32 block
    # each block reads its input rounded to bf16 (relative 2^-9 per element); the
    # loss moves by far less, the gradients by no more than a few bf16 steps
    assert 0 < abs(float(bf16) - float(plain)) < 2 ** -9 * float(plain)
    for a, b, c in zip(*(jax.tree.leaves(g) for g in (plain_grads, f32_grads, bf16_grads))):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
        assert float(jnp.linalg.norm(c - a)) <= 2 ** -6 * float(jnp.linalg.norm(a))


def test_a_level_3_offloading_plan_trains_with_bfloat16_inputs_in_host_memory() -> None:
    model = Model(tiny_config(memory_optimization_level=3, mixed_precision=True,
                              use_bfloat16=True, activation_offloading=True))
    execution = model.plan.execution
    assert (execution.saved_activation_dtype, execution.offload_activations) == ("bfloat16", True)
    assert model.policy == RunPolicy.from_execution(execution)
    assert model._net.saved_dtype == jnp.bfloat16 and model._net.offload
    assert model.notes == ["execution.offload_activations: on cpu the host memory kept block "
                           "inputs are offloaded to is the device's own memory, so offloading "
                           "saves nothing"]
    first = float(model.train_step(TOKENS)["total"])
    assert math.isfinite(first) and float(model.train_step(TOKENS)["total"]) < first


def test_a_plan_without_jit_runs_op_by_op_and_computes_the_same() -> None:
    config = tiny_config(enable_jit=False)
    eager = Model(config)
    assert eager.plan.execution.jit is False and not eager.policy.jit
    assert any(note.startswith("execution.jit is false") for note in eager.notes)
    jitted = Model(tiny_config())  # the same plan but for `execution.jit`, the same seed
    logits = eager.forward(TOKENS)
    np.testing.assert_allclose(logits, jitted.forward(TOKENS), rtol=1e-5, atol=1e-6)
    assert set(eager.compiled_counts().values()) == {0}
    assert jitted.compiled_counts()["forward"] == 1


# --------------------------------------------------------------------------- notes


class _DeviceWithoutHostMemory:
    """A device of a platform with no ``pinned_host`` memory; none runs in this suite's
    CPU-only environment, and the note is what a user of one would read."""

    platform = "neuron"

    def addressable_memories(self):
        return [types.SimpleNamespace(kind="device")]


def test_notes_say_what_the_platform_or_the_policy_makes_moot() -> None:
    cpu = make_mesh()
    assert host_offload_supported(cpu)
    without = types.SimpleNamespace(devices=np.array([_DeviceWithoutHostMemory()]))
    assert not host_offload_supported(without)
    notes, remat, offload = execution_notes(RunPolicy(remat=True, offload_activations=True), without)
    assert (remat, offload) == (True, False)
    assert notes == ["execution.offload_activations is on, but neuron devices here have no "
                     "`pinned_host` memory to offload to: kept block inputs stay in device memory"]
    notes, remat, offload = execution_notes(
        RunPolicy(remat=False, saved_activation_dtype="bfloat16"), cpu)
    assert (remat, offload) == (False, False)
    assert notes == ["execution.saved_activation_dtype is bfloat16, but without remat "
                     "(`gradient_checkpointing = false`) no block input is kept for the backward "
                     "pass: activations stay in the dtypes they are computed in"]
    notes, remat, offload = execution_notes(RunPolicy(remat=False, offload_activations=True), cpu)
    assert (remat, offload) == (True, True) and len(notes) == 2
    assert execution_notes(RunPolicy(remat=True), cpu) == ([], True, False)


def test_plan_records_the_model_leaves_to_others_are_noted() -> None:
    plan = compile_config(tiny_config(), "tpu_v4-8").plan
    # A sharded plan records the collectives its explicit step calls, or none: nothing to note.
    assert plan_notes(plan) == []
    replace = msgspec.structs.replace
    float16 = replace(plan, precision=replace(plan.precision, compute="float16", loss_scaling=True),
                      execution=replace(plan.execution, cache_compiled=False))
    assert plan_notes(float16) == [
        "execution.cache_compiled is false (`cache_compiled_functions`), but a jitted model keeps "
        "each compiled program in memory for its life anyway (jax.jit's cache)",
        "precision.loss_scaling is on (float16 compute), but the training step does not scale "
        "the loss: small gradients may underflow"]
