"""The plan's memory estimate, term by term, against what the compiler computes.

Each test builds the optimized IR of a config (kernels selected, batch
bound) and asks the estimate again with one policy or size changed, so the
terms are checked against the parameter count and tensor sizes the compiler
itself derives. ``tests/model/test_memory_estimate.py`` checks the total
against XLA's account of the compiled step.
"""

from __future__ import annotations

from msgspec.structs import replace

import pytest

from capibara.compiler.lower import lower
from capibara.compiler.memory import OPTIMIZER_SLOTS, estimate_memory
from capibara.compiler.model_shape import local_parameters
from capibara.compiler.passes.registry import optimize
from capibara.config.model_config import ModularModelConfig
from capibara.plan import Mesh
from capibara.targets import CATALOG

SMALL = dict(hidden_size=256, num_layers=4, num_heads=4, max_seq_length=256, vocab_size=512,
             batch_size=4)


def optimized(target: str = "cpu", **fields):
    ir, diagnostics = lower(ModularModelConfig(**{**SMALL, **fields}), CATALOG[target])
    ir, more = optimize(ir)
    assert not [d for d in diagnostics + more if d.is_error]
    return ir


def estimate(ir, batch: int | None = None, *, mesh: Mesh | None = None, **policy):
    return estimate_memory(ir.config, ir.model, mesh=mesh or ir.mesh, model_axis=ir.model_axis,
                           per_device_batch=batch or ir.batch // ir.mesh.size("data"),
                           precision=ir.precision, policy=replace(ir.policy, **policy),
                           kernels=ir.kernels, platform=ir.target.platform, limit=None)


def test_the_plan_records_the_estimate_of_its_own_batch() -> None:
    ir = optimized()
    assert ir.memory == estimate(ir)


@pytest.mark.parametrize("fields, params, param_bytes", [
    (dict(), "float32", 4),                                             # float32 master weights
    (dict(mixed_precision=False, use_bfloat16=True), "bfloat16", 2),    # bfloat16 weights
])
@pytest.mark.parametrize("optimizer", ["adamw", "rmsprop", "sgd"])
def test_weights_state_and_gradients_follow_the_parameter_count(fields, params, param_bytes,
                                                                optimizer) -> None:
    ir = optimized("cpu-amx", optimizer=optimizer, **fields)
    assert ir.precision.params == params
    memory = estimate(ir)
    count = local_parameters(ir.model, 1)
    assert count == ir.model.parameter_count
    assert memory.weights == count * param_bytes
    # optax keeps the moments in the weights' dtype; gradients come out in float32
    assert memory.optimizer_state == OPTIMIZER_SLOTS[optimizer] * count * param_bytes
    assert memory.gradients == count * 4


def test_optimizer_sharding_splits_the_state_over_the_data_axis() -> None:
    ir = optimized("tpu_v4-8", optimizer_sharding=True, batch_size=8)
    memory = estimate(ir)
    whole = estimate(ir, mesh=Mesh(shape=(1, 1), axes=("data", "model")))
    data = ir.mesh.size("data")
    assert data > 1 and memory.optimizer_state * data == pytest.approx(whole.optimizer_state,
                                                                        rel=1e-6)


def test_model_parallelism_splits_the_weights() -> None:
    whole = optimized("tpu_v4-8", hidden_size=512, num_heads=8, batch_size=8)
    split = optimized("tpu_v4-8", hidden_size=512, num_heads=8, batch_size=8, model_parallel=True)
    assert split.model_axis > 1
    assert estimate(split).weights < estimate(whole).weights / 2


def test_without_donation_the_new_weights_and_state_lend_their_buffers() -> None:
    ir = optimized(memory_optimization_level=1)
    donated, kept = estimate(ir, donate=True), estimate(ir, donate=False)
    resident = donated.weights + donated.optimizer_state + donated.gradients
    step = donated.activations + donated.workspace
    assert (donated.update_copies, kept.update_copies) == (1, 2)
    assert donated.total == resident + step
    assert kept.total == resident + max(step, donated.weights + donated.optimizer_state)


def test_remat_keeps_one_block_input_per_layer() -> None:
    config = dict(use_vq=False, use_sparse=False)
    four, six = optimized(num_layers=4, **config), optimized(num_layers=6, **config)
    tokens = 4 * 256
    assert estimate(six).activations - estimate(four).activations == 2 * tokens * 256 * 4
    # level 3 keeps them in the compute dtype
    low = estimate(six, saved_activation_dtype="bfloat16").activations
    assert estimate(six).activations - low == 6 * tokens * 256 * 2


def test_without_remat_every_block_keeps_its_residuals() -> None:
    sizes = [estimate(optimized(num_layers=n, use_vq=False), remat=False).activations
             for n in (2, 4, 6)]
    per_two_layers = sizes[1] - sizes[0]
    assert sizes[2] - sizes[1] == per_two_layers
    remat = estimate(optimized(num_layers=6, use_vq=False)).activations
    assert sizes[2] > remat


def test_a_scan_of_one_block_is_unrolled_and_adds_its_working_set() -> None:
    """With VQ, two layers run as two scans of one block; XLA unrolls both, and each
    block's recomputation may run before the backward pass reaches it."""
    scanned, unrolled = optimized(num_layers=2, use_vq=False), optimized(num_layers=2, use_vq=True)
    kept = 2 * 4 * 256 * 256 * 4
    working = estimate(scanned).activations - kept
    assert estimate(unrolled).activations == kept + 2 * working
    # four layers: two scans of two blocks, one working set at a time
    assert estimate(optimized(num_layers=4, use_vq=True)).activations == 2 * kept + working


def test_the_vq_split_copies_the_block_parameters() -> None:
    without, with_vq = optimized(use_vq=False), optimized(use_vq=True)
    blocks = ir_block_parameters(with_vq)
    assert estimate(with_vq).workspace - estimate(without).workspace == pytest.approx(
        blocks * 4, rel=0.01)


def ir_block_parameters(ir) -> int:
    model = ir.model
    return model.parameter_count - model.vocab_size * model.hidden_size - model.hidden_size \
        - (model.vq_codes or 0) * (model.vq_embedding_dim or 0)


def test_the_loss_chunk_bounds_the_head() -> None:
    """A large vocabulary makes the head the largest working set: whole logits grow with the
    batch, chunks of ``loss_chunk`` tokens do not."""
    ir = optimized(vocab_size=16384, use_vq=False, use_sparse=False)
    chunked = [estimate(ir, b).activations for b in (8, 16)]
    whole = [estimate(ir, b, loss_chunk=None).activations for b in (8, 16)]
    kept = 8 * 256 * 4 * 256 * 4  # 8 more samples' block inputs
    assert chunked[1] - chunked[0] < whole[1] - whole[0]
    assert chunked[1] - chunked[0] >= kept


def test_offloaded_inputs_leave_the_device_except_on_a_cpu() -> None:
    cpu, tpu = optimized(activation_offloading=True), optimized("tpu_v4-8", activation_offloading=True,
                                                               batch_size=8)
    assert estimate(cpu).activations == estimate(cpu, offload_activations=False).activations
    assert estimate(tpu).activations < estimate(tpu, offload_activations=False).activations


def test_reference_attention_counts_its_scores() -> None:
    ir = optimized(compile_mode="conservative")
    attention = next(u for u in ir.kernels if u.family == "attention")
    assert attention.implementation == "reference"
    blocked = optimized()
    assert next(u for u in blocked.kernels if u.family == "attention").implementation != "reference"
    assert estimate(ir).activations > estimate(blocked).activations


def test_memory_grows_with_the_batch() -> None:
    ir = optimized()
    totals = [estimate(ir, b).total for b in (1, 2, 4, 8)]
    assert totals == sorted(totals) and len(set(totals)) == 4


def test_off_the_cpu_unrolled_blocks_hold_one_working_set_at_a_time() -> None:
    hybrid = dict(mixers=["ssm", "attention"], num_layers=4, hidden_size=512, num_heads=8,
                  max_seq_length=128, use_vq=False, use_sparse=False, batch_size=8)
    cpu, tpu = optimized("cpu", **hybrid), optimized("tpu_v4-8", **hybrid)
    on_cpu = estimate(cpu, 1).activations
    # the CPU counts all four blocks; a TPU the largest (an ssm block) once
    assert estimate(tpu, 1).activations < on_cpu / 2


def test_without_a_limit_the_batch_stays_within_what_a_plan_records() -> None:
    """A catalog CPU knows no memory limit; the estimate must still fit the plan's domain."""
    from capibara.compiler.driver import compile_config
    from capibara.plan.types import MAX_ELEMENTS

    big = dict(hidden_size=768, num_layers=12, num_heads=12, max_seq_length=2048,
               gradient_checkpointing=False)
    plan = compile_config(ModularModelConfig(**big, max_batch_size=127462), "cpu-arm").plan
    assert plan is not None and plan.memory.limit is None
    assert plan.memory.total <= MAX_ELEMENTS < estimate(optimized("cpu-arm", **big),
                                                        plan.batch.per_device + 1).total
    explicit = compile_config(ModularModelConfig(**big, batch_size=127462, max_batch_size=127462),
                              "cpu-arm")
    assert [d.code for d in explicit.diagnostics if d.is_error] == ["H204"]
