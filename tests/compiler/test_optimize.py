"""Stage 5: the passes, each on its own and through the pipeline."""

from __future__ import annotations

import io

import msgspec
import pytest

import capibara.cli.app as cli

from capibara.compiler import check as pipeline
from capibara.compiler.driver import STAGES, compile_config
from capibara.compiler.lower import lower
from capibara.config.model_config import ModularModelConfig
from capibara.compiler.passes.base import Pass, PassContext, PassPipeline
from capibara.compiler.passes.registry import DEFAULT_PIPELINE, PASSES, describe, optimize
from capibara.compiler.passes.resolve_batch import MEMORY_HEADROOM
from capibara.targets import CATALOG, get_target


def compiled(target: str = "tpu_v4-8", **fields):
    result = compile_config(ModularModelConfig(**fields), get_target(target)
                            if target not in CATALOG else CATALOG[target])
    return result


def plan_of(target: str = "tpu_v4-8", **fields):
    result = compiled(target, **fields)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    return result.plan


def impl(plan, family: str) -> tuple[str, dict]:
    (spec,) = [k for k in plan.kernels if k.family == family]
    return spec.implementation, spec.params


# --------------------------------------------------------------------------- the pipeline


def test_passes_are_frozen_named_and_registered_once() -> None:
    names = [p.name for p in DEFAULT_PIPELINE]
    assert names == list(PASSES) and len(set(names)) == len(names)
    for p in DEFAULT_PIPELINE:
        assert isinstance(p, msgspec.Struct) and p.__struct_config__.frozen
        assert p.__doc__ and p.__doc__.strip()
        with pytest.raises(AttributeError):
            p.option = 1
    assert STAGES == ("lower", *names)


def test_callback_runs_after_every_pass_in_order() -> None:
    ir, _ = lower(ModularModelConfig(hidden_size=256, num_layers=2), CATALOG["tpu_v4-8"])
    seen = []
    optimize(ir, callback=lambda name, value, seconds: seen.append((name, seconds >= 0)))
    assert seen == [(p.name, True) for p in DEFAULT_PIPELINE]


def test_pipeline_stops_after_a_pass_with_errors() -> None:
    class Fails(Pass, frozen=True):
        name = "fails"

        def apply(self, ir, ctx):
            from capibara.diagnostics import Diagnostic
            ctx.diagnostics.append(Diagnostic.error("H204", "boom"))
            return ir

    ir, _ = lower(ModularModelConfig(), CATALOG["tpu_v4-8"])
    seen = []
    PassPipeline((Fails(), *DEFAULT_PIPELINE), lambda n, v, s: seen.append(n)).run(ir, PassContext())
    assert seen == ["fails"]


def test_every_decision_names_a_pass() -> None:
    plan = plan_of(hidden_size=256, num_layers=2)
    assert {d.pass_ for d in plan.decisions} <= {"lower", *PASSES}
    assert all(d.reason for d in plan.decisions)


# --------------------------------------------------------------------------- resolve-mesh


def test_auto_mesh_is_data_parallel_over_every_device() -> None:
    assert plan_of("tpu_v4-32").mesh.shape == (16, 1)
    assert plan_of("gpu-h100x8", num_gpus=8).mesh.shape == (8, 1)
    assert plan_of("gpu-h100x8").mesh.shape == (1, 1)  # num_gpus = 1 uses one


def test_auto_mesh_with_model_parallelism_divides_the_heads() -> None:
    plan = plan_of("tpu_v4-32", model_parallel=True)  # 12 heads: 8 does not divide, 4 does
    assert plan.mesh.shape == (4, 4)
    assert plan.kernel("blocks.attention").shapes["q"][2] == 3  # 12 heads over 4 devices


def test_unused_model_axis_warns() -> None:
    result = compiled("tpu_v4-32", tpu_mesh_shape=[4, 4])
    assert "O102" in [d.code for d in result.diagnostics]
    assert "O102" not in [d.code for d in compiled("tpu_v4-32", tpu_mesh_shape=[4, 4],
                                                   model_parallel=True).diagnostics]


# --------------------------------------------------------------------------- prune-disabled


def test_disabled_features_leave_no_kernel_and_no_section() -> None:
    plan = plan_of(use_vq=False, use_sparse=False)
    families = {k.family for k in plan.kernels}
    assert "vq" not in families and "moe" not in families
    assert plan.model.vq_codes is None and plan.precision.vq_codebook is None
    assert plan.model.num_experts is None
    assert {k.name for k in plan.kernels if k.family == "linalg"} >= {"blocks.w_in"}


def test_settings_without_effect_on_the_target_warn() -> None:
    result = compiled("cpu", use_custom_kernels=True, gpu_memory_fraction=0.5)
    warned = {d.message.split("`")[1] for d in result.diagnostics if d.code == "O101"}
    assert warned == {"use_custom_kernels", "gpu_memory_fraction"}
    # Switching a TPU-only feature off on a CPU is harmless: no warning.
    assert "O101" not in [d.code for d in compiled("cpu", use_custom_kernels=False).diagnostics]


def test_named_device_leaves_these_warnings_to_the_validator() -> None:
    result = compiled("cpu", device="cpu", gpu_memory_fraction=0.5)
    assert "O101" not in [d.code for d in result.diagnostics]
    assert "V037" in [d.code for d in result.diagnostics]


def test_conservative_mode_warns_about_kernel_settings() -> None:
    result = compiled(compile_mode="conservative", kernel_categories=["attention"])
    assert "O103" in [d.code for d in result.diagnostics]


# --------------------------------------------------------------------------- precision


def test_bf16_compute_stays_where_matrix_units_run_it() -> None:
    for target in ("tpu_v4-8", "gpu-h100", "cpu-amx", "cpu-arm"):
        assert plan_of(target).precision.compute == "bfloat16", target
    plain = plan_of("cpu")
    assert plain.precision.compute == "float32"
    assert any(d.path == "precision.compute" for d in plain.decisions)


def test_vq_auto_precision_follows_the_target() -> None:
    assert plan_of("tpu_v4-8").precision.vq_codebook == "bfloat16"
    assert plan_of("cpu-amx").precision.vq_codebook == "float32"
    assert plan_of("cpu-arm", vq_precision="int8").precision.vq_codebook == "int8"


def test_float16_gets_loss_scaling_on_gpu() -> None:
    p = plan_of("gpu-h100", use_bfloat16=False).precision
    assert (p.compute, p.loss_scaling) == ("float16", True)


# --------------------------------------------------------------------------- select-kernels


@pytest.mark.parametrize("target, expected", [
    ("tpu_v4-8", ("pallas_tpu", {"block_q": 128, "block_kv": 128})),
    ("tpu_v6e-8", ("pallas_tpu", {"block_q": 256, "block_kv": 256})),
    ("gpu-h100", ("cudnn", {})),
    ("cpu-amx", ("cpu_bf16", {"block_q": 512, "block_kv": 512})),
    ("cpu", ("cpu_blocked", {"block_q": 512, "block_kv": 512, "compute_dtype": "float32"})),
])
def test_attention_by_target(target: str, expected) -> None:
    assert impl(plan_of(target), "attention") == expected


def test_attention_tiles_follow_the_sequence() -> None:
    assert impl(plan_of("cpu-amx", max_seq_length=256), "attention")[1]["block_q"] == 256
    assert impl(plan_of("cpu-amx", max_seq_length=3072), "attention")[1]["block_q"] == 512
    assert impl(plan_of("cpu-amx", max_seq_length=1152), "attention")[1]["block_q"] == 128


def test_attention_without_a_tile_falls_back_to_reference_with_the_reason() -> None:
    plan = plan_of("cpu-amx", max_seq_length=1001)
    assert impl(plan, "attention") == ("reference", {})
    (decision,) = [d for d in plan.decisions if d.path == "kernels.blocks.attention.implementation"]
    assert "1001 has no power-of-two tile" in decision.reason


def test_tpu_tiles_are_whole_lane_rows() -> None:
    assert impl(plan_of("tpu_v6e-8", max_seq_length=2176), "attention")[1]["block_q"] == 128
    assert impl(plan_of("tpu_v4-8", max_seq_length=100), "attention")[1]["block_q"] == 100
    assert impl(plan_of("tpu_v4-8", max_seq_length=1000), "attention")[0] == "reference"


def test_cudnn_needs_half_precision() -> None:
    plan = plan_of("gpu-h100", mixed_precision=False, use_bfloat16=False)
    assert impl(plan, "attention")[0] == "reference"


def test_aggressive_takes_larger_tiles_and_donates() -> None:
    default = plan_of("tpu_v4-8", memory_optimization_level=0)
    aggressive = plan_of("tpu_v4-8", memory_optimization_level=0, compile_mode="aggressive")
    assert impl(aggressive, "attention")[1]["block_q"] == 4 * impl(default, "attention")[1]["block_q"]
    assert not default.execution.donate and aggressive.execution.donate
    assert impl(aggressive, "vq")[1]["block_rows"] == 2 * impl(default, "vq")[1]["block_rows"]


def test_conservative_keeps_reference_kernels() -> None:
    plan = plan_of("tpu_v4-8", compile_mode="conservative")
    assert {k.implementation for k in plan.kernels} == {"reference"}
    linalg = next(k for k in plan.kernels if k.family == "linalg")
    assert linalg.params["compute_dtype"] == "bfloat16"  # the precision policy still holds


def test_custom_kernel_switches_on_tpu() -> None:
    assert impl(plan_of(use_custom_kernels=False), "attention")[0] == "reference"
    assert impl(plan_of(kernel_categories=["linalg"]), "attention")[0] == "reference"
    assert impl(plan_of(use_tpu_v4_optimizations=False), "attention")[0] == "reference"
    assert impl(plan_of(use_custom_kernels=False), "vq")[0] == "xla"  # not a custom category


def test_vq_and_moe_selection() -> None:
    # CPU blocks stay cache-sized (1024 rows measured fastest); TPUs take 4096
    assert impl(plan_of("cpu-arm", vq_precision="int8"), "vq") == ("int8", {"block_rows": 1024})
    assert impl(plan_of("tpu_v4-8"), "vq")[1]["block_rows"] == 4096
    assert impl(plan_of("cpu-amx", vq_use_simd=False), "vq")[0] == "reference"
    assert impl(plan_of(), "moe") == ("dispatch", {"capacity_factor": 1.25})
    assert impl(plan_of(mor_load_balancing=False), "moe") == ("dispatch", {"capacity_factor": 2.0})
    assert impl(plan_of(mor_num_experts=2, mor_top_k=2), "moe")[0] == "reference"


#: A model the explicit step can split (float block weights; dense MLP unless said).
SPLITTABLE = dict(hidden_size=256, num_layers=2, max_seq_length=256, model_parallel=True,
                  use_affine_quantization=False)


def collectives(plan) -> dict[str, tuple]:
    return {k.name: (k.attrs["op"], k.attrs["axes"], k.implementation, tuple(k.uses),
                     k.calls_per_step) for k in plan.kernels if k.family == "collective"}


def step_decision(plan):
    (decision,) = [d for d in plan.decisions if d.pass_ == "sharded-step"
                   and d.path == "execution.sharded_step"]
    return decision


def test_the_explicit_step_records_the_collectives_it_calls() -> None:
    # Optimizer state replicated: the explicit step measured faster on cpu.
    plan = plan_of("cpu-amxx8", **SPLITTABLE, optimizer_sharding=False, use_sparse=False)
    assert plan.mesh.shape == (2, 4)
    assert step_decision(plan).after == "explicit"
    assert "benchmarks/sharded_step.py" in step_decision(plan).reason
    found = collectives(plan)
    assert found["grads.all_reduce"][:2] == ("all_reduce", ["data"])
    # q, k, v per layer gather the rows into the projection; wo and w_out reduce-scatter
    assert found["blocks.attention_in"][0::3] == ("all_gather_matmul", ("blocks.attention_in",))
    assert found["blocks.attention_in"][4] == 3 * 2
    assert found["blocks.mlp_in"][0::3] == ("all_gather_matmul", ("blocks.mlp_in",))
    assert found["blocks.attention_out"][0::3] == ("reduce_scatter",
                                                   ("blocks.attention_out", "blocks.mlp_out"))
    spec = plan.kernel("blocks.attention_in")
    rows = plan.batch.per_device * 256 // 4  # tokens per data shard over the 4-way model axis
    assert dict(spec.shapes) == {"x": (rows, 256), "w": (256, 64)}
    assert plan.kernel("blocks.attention_out").shapes["x"] == (rows * 4, 256)
    # Rookies gather the rows for the router instead of the MLP's collective matmul
    mor = collectives(plan_of("cpu-amxx8", **SPLITTABLE, optimizer_sharding=False))
    assert "blocks.mlp_in" not in mor and mor["blocks.moe_in"][0] == "all_gather"


def test_automatic_partitioning_records_no_collectives() -> None:
    # ZeRO-1 on cpu: XLA's partitioning reduce-scatters onto the split state (measured).
    plan = plan_of("cpu-amxx8", **SPLITTABLE)
    decision = step_decision(plan)
    assert (decision.before, decision.after) == ("auto", "automatic")
    assert "optimizer state split over data" in decision.reason
    assert not collectives(plan)
    dropped = {d.path for d in plan.decisions if d.pass_ == "sharded-step" and d.after is None}
    assert {"kernels.grads.all_reduce", "kernels.blocks.attention_in"} <= dropped
    # not measured on TPU: XLA's partitioning, with the reason
    tpu = step_decision(plan_of("tpu_v4-32", hidden_size=256, num_layers=2))
    assert tpu.after == "automatic" and "not measured on TPUs" in tpu.reason
    # one device: no collective, no choice to make
    assert not [d for d in plan_of("cpu", hidden_size=256, num_layers=2).decisions
                if d.pass_ == "sharded-step"]


def test_auto_trains_automatically_what_the_explicit_step_cannot_split() -> None:
    plan = plan_of("cpu-amxx8", **{**SPLITTABLE, "use_affine_quantization": True},
                   optimizer_sharding=False)
    assert step_decision(plan).after == "automatic"
    assert "quantized" in step_decision(plan).reason and not collectives(plan)
    # data parallelism alone splits nothing: quantized weights train explicitly
    data_only = plan_of("cpux8", hidden_size=256, num_layers=2, optimizer_sharding=False)
    assert step_decision(data_only).after == "explicit"
    assert set(collectives(data_only)) == {"grads.all_reduce"}


def test_manual_sharding_asks_for_the_explicit_step() -> None:
    plan = plan_of("tpu_v4-8", **SPLITTABLE, sharding_strategy="manual", tpu_mesh_shape=[2, 2])
    assert (step_decision(plan).before, step_decision(plan).after) == ("manual", "explicit")
    assert {"grads.all_reduce", "blocks.attention_in"} <= set(collectives(plan))
    refused = compiled("tpu_v4-8", **SPLITTABLE, sharding_strategy="manual",
                       tpu_mesh_shape=[2, 2], mixers=["attention", "hyena"])
    assert refused.plan is None
    assert [d.code for d in refused.diagnostics if d.is_error] == ["O104"]


def test_a_config_with_errors_reaches_the_sharded_step_and_is_reported(capsys) -> None:
    # `capibara check` runs every stage; heads that do not divide the width are V001's
    # to report, not a crash of the step's choice.
    status, text = run("check", "--no-env", "--target", "cpux8", "--set", "model.hidden_size=2047",
                       "--set", "model.num_heads=16", "--set",
                       "tpu_v4_optimizations.model_parallel=true", "--set",
                       "tpu_v4_optimizations.optimizer_sharding=false",
                       "configs/development/development.toml")
    assert status == 1, text
    assert "error[V001]" in text + capsys.readouterr().err


def test_collective_variants_by_size() -> None:
    cpu = plan_of("cpu-amxx8", **SPLITTABLE, optimizer_sharding=False, use_sparse=False)
    assert cpu.kernel("grads.all_reduce").implementation == "decomposed"  # megabytes of gradients
    # One sample's rows are kilobytes: the ring does not pay; reduce-scatter is one primitive.
    assert cpu.kernel("blocks.attention_in").implementation == "reference"
    assert cpu.kernel("blocks.attention_out").implementation == "reference"
    tpu = plan_of("tpu_v4-8", **SPLITTABLE, sharding_strategy="manual", tpu_mesh_shape=[2, 2])
    assert tpu.kernel("grads.all_reduce").implementation == "reference"


def test_two_phase_all_reduce_only_where_it_runs_in_place() -> None:
    donating = plan_of("cpux8", hidden_size=256, num_layers=2, memory_optimization_level=1,
                       optimizer_sharding=False)
    assert donating.execution.donate
    assert donating.kernel("grads.all_reduce").implementation == "decomposed"
    keeping = compiled("cpux8", hidden_size=256, num_layers=2, memory_optimization_level=0,
                       optimizer_sharding=False)
    assert not keeping.plan.execution.donate
    assert keeping.plan.kernel("grads.all_reduce").implementation == "reference"
    (why,) = [d.reason for d in keeping.plan.decisions
              if d.path == "kernels.grads.all_reduce.implementation"]
    assert "not donated" in why


# --------------------------------------------------------------------------- resolve-batch


def test_auto_batch_is_capped_by_max_batch_size() -> None:
    plan = plan_of("tpu_v4-32", hidden_size=256, num_layers=2)
    assert (plan.batch.global_size, plan.batch.per_device) == (32, 2)


def test_auto_batch_is_the_largest_that_fits() -> None:
    config = dict(hidden_size=1024, num_layers=12, max_batch_size=1024, memory_limit_gb=8.0)
    plan = plan_of("cpu-amx", **config)
    assert plan.memory.total <= plan.memory.limit * MEMORY_HEADROOM
    bigger = compiled("cpu-amx", **config, batch_size=plan.batch.global_size + 1)
    assert "H204" in [d.code for d in bigger.diagnostics]


def test_explicit_batch_that_does_not_fit_is_an_error_with_a_batch_that_does() -> None:
    result = compiled("cpu-amx", hidden_size=1024, batch_size=32, memory_limit_gb=8.0)
    (error,) = [d for d in result.diagnostics if d.is_error]
    assert error.code == "H204" and "deployment.batch_size = " in error.help
    suggested = int(error.help.split("deployment.batch_size = ")[1].split("`")[0])
    assert plan_of("cpu-amx", hidden_size=1024, batch_size=suggested, memory_limit_gb=8.0)


def test_model_too_large_for_one_sample() -> None:
    result = compiled("gpu-h100", hidden_size=4096, num_layers=48)
    assert [d.code for d in result.diagnostics if d.is_error] == ["H204"]


def test_batch_must_split_across_an_auto_mesh() -> None:
    result = compiled("tpu_v4-32", batch_size=20, max_batch_size=32)
    assert "H021" in [d.code for d in result.diagnostics]


def test_max_batch_below_the_replicas() -> None:
    assert "H205" in [d.code for d in compiled("tpu_v4-32", max_batch_size=8).diagnostics]


def test_batch_binds_every_shape() -> None:
    plan = plan_of("tpu_v4-32", hidden_size=256, num_layers=2, max_seq_length=128)
    assert plan.kernel("blocks.attention").shapes["q"] == (2, 128, 4, 64)
    assert plan.kernel("blocks.moe").shapes["x"] == (2 * 128, 256)


# --------------------------------------------------------------------------- dedupe-kernels


def test_mlp_projections_merge_when_model_parallelism_makes_them_square() -> None:
    plan = plan_of("tpu_v4-32", model_parallel=True, use_sparse=False)  # 4d / 4 = d
    assert plan.kernel("blocks.w_in").uses == ("blocks.w_in", "blocks.w_out")


def test_identical_projections_share_one_spec() -> None:
    plan = plan_of(hidden_size=256, num_layers=3)
    spec = plan.kernel("blocks.wq")
    assert spec.uses == ("blocks.wq", "blocks.wk", "blocks.wv", "blocks.wo")
    assert spec.calls_per_step == 4 * 3
    signatures = [(k.family, k.implementation, str(k.params), str(k.shapes), str(k.dtypes),
                   str(k.attrs)) for k in plan.kernels]
    assert len(signatures) == len(set(signatures))


def test_different_shapes_are_not_merged() -> None:
    plan = plan_of("tpu_v4-16", model_parallel=True, use_sparse=False, num_heads=6)
    assert plan.mesh.shape == (4, 2)
    names = {k.name for k in plan.kernels if k.family == "linalg"}
    assert {"blocks.wq", "blocks.w_in", "blocks.w_out", "logits"} <= names


# --------------------------------------------------------------------------- CLI


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def test_print_after_and_time_stages(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "ENVIRON", {})
    status, text = run("compile", "configs/development/development.toml", "--target", "tpu_v4-8",
                       "-o", str(tmp_path / "d.plan.json"), "--print-after", "select-kernels",
                       "--time-stages")
    assert status == 0
    after = text.split("// after select-kernels\n")[1]
    assert "attention/pallas_tpu {block_q=128, block_kv=128}" in after
    assert "[B,2048,8,64]" in after  # the batch is still symbolic
    timed = text.split("stage times\n")[1].splitlines()
    assert [line.split()[0] for line in timed] == ["resolve", "validate", *STAGES, "freeze",
                                                    "write", "total"]


def test_describe_shows_the_ir() -> None:
    ir, _ = lower(ModularModelConfig(), CATALOG["tpu_v4-8"])
    text = describe(ir)
    assert "mesh       auto" in text and "attention/reference" in text
