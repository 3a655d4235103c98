"""Stage 4: lowering a config for a target (model facts, memory, hardware rules)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from capibara.compiler.kernel_uses import kernel_uses
from capibara.compiler.lower import lower
from capibara.compiler.model_shape import model_shape
from capibara.compiler.policy import memory_limit_bytes, memory_policy, requested_precision
from capibara.config.model_config import ModularModelConfig
from capibara.plan import Mesh
from capibara.targets import CATALOG, GIB, get_target


def codes(diagnostics) -> list[str]:
    return [d.code for d in diagnostics]


# --------------------------------------------------------------------------- model facts


@pytest.mark.parametrize("hidden, layers, approx", [
    (768, 12, 109.5e6), (1024, 24, 334.8e6), (2048, 12, 669.5e6), (2048, 36, 1877.4e6)])
def test_parameter_counts_match_params_md(hidden: int, layers: int, approx: float) -> None:
    """PARAMS.md §d.5/§e.2 tiers (12·L·d² + V·d), with VQ and dense MLP off."""
    shape = model_shape(ModularModelConfig(hidden_size=hidden, num_layers=layers, use_vq=False,
                                           use_sparse=False))
    assert abs(shape.parameter_count - approx) / approx < 0.001


@given(d=st.sampled_from([64, 128, 256, 512, 768]), layers=st.integers(1, 12),
       experts=st.integers(1, 8), vq=st.booleans(), mor=st.booleans())
def test_parameter_count_is_the_convention_plus_extras(d, layers, experts, vq, mor) -> None:
    config = ModularModelConfig(hidden_size=d, num_layers=layers, use_vq=vq, use_sparse=mor,
                                mor_num_experts=experts, mor_top_k=1)
    shape = model_shape(config)
    expected = 12 * layers * d * d + 32000 * d + 2 * layers * d + d
    if vq:
        expected += 64 * d
    if mor:
        # Rookies split the MLP width: the router is extra, and any width lost to rounding.
        expected += layers * d * experts - 2 * layers * d * (4 * d - experts * (4 * d // experts))
    assert shape.parameter_count == expected
    assert shape.head_dim * shape.num_heads == d


def test_rookies_split_the_mlp() -> None:
    shape = model_shape(ModularModelConfig(mor_num_experts=8, mor_top_k=2))
    assert (shape.num_experts, shape.experts_per_token, shape.expert_ffn_dim) == (8, 2, 384)
    dense = model_shape(ModularModelConfig(use_sparse=False))
    assert (dense.num_experts, dense.expert_ffn_dim) == (None, None)


@pytest.mark.parametrize("mixed, bf16, expected", [
    (True, True, ("float32", "bfloat16", False)),
    (True, False, ("float32", "float16", True)),
    (False, True, ("bfloat16", "bfloat16", False)),
    (False, False, ("float32", "float32", False)),
])
def test_requested_precision(mixed: bool, bf16: bool, expected) -> None:
    p = requested_precision(ModularModelConfig(mixed_precision=mixed, use_bfloat16=bf16))
    assert (p.params, p.compute, p.loss_scaling) == expected
    assert p.accumulation == "float32"


@pytest.mark.parametrize("level, donate, chunk, saved", [
    (0, False, None, "float32"), (1, True, None, "float32"), (2, True, 1024, "float32"),
    (3, True, 1024, "bfloat16")])
def test_memory_levels(level: int, donate: bool, chunk, saved: str) -> None:
    policy = memory_policy(ModularModelConfig(memory_optimization_level=level))
    assert (policy.donate, policy.loss_chunk, policy.saved_activation_dtype) == (donate, chunk, saved)


def test_flags_win_over_levels() -> None:
    policy = memory_policy(ModularModelConfig(memory_optimization_level=3,
                                              gradient_checkpointing=False,
                                              activation_offloading=True))
    assert not policy.remat and policy.offload_activations


# --------------------------------------------------------------------------- memory


def test_memory_limit_is_the_smallest_cap() -> None:
    v4 = CATALOG["tpu_v4-8"]
    assert memory_limit_bytes(ModularModelConfig(), v4) == 32 * GIB
    assert memory_limit_bytes(ModularModelConfig(tpu_memory_limit_gb=16.0), v4) == 16 * GIB
    assert memory_limit_bytes(ModularModelConfig(memory_limit_gb=8.0), v4) == 8 * GIB
    h100 = CATALOG["gpu-h100"]
    assert memory_limit_bytes(ModularModelConfig(gpu_memory_fraction=0.5), h100) == 40 * GIB
    assert memory_limit_bytes(ModularModelConfig(), CATALOG["cpu"]) is None
    assert memory_limit_bytes(ModularModelConfig(memory_limit_gb=4.0), CATALOG["cpu"]) == 4 * GIB


# --------------------------------------------------------------------------- lower


def test_lowering_starts_from_reference_kernels_with_symbolic_batch() -> None:
    ir, diagnostics = lower(ModularModelConfig(), CATALOG["tpu_v4-8"])
    assert diagnostics == []
    assert {use.implementation for use in ir.kernels} == {"reference"}
    attention = next(u for u in ir.kernels if u.family == "attention")
    assert attention.shapes["q"] == ("B", "S", "Hl", "Dh")
    assert ir.mesh is None and ir.batch is None and ir.model is None


def test_every_feature_has_kernel_uses() -> None:
    families = {use.family for use in kernel_uses(ModularModelConfig())}
    assert families == {"attention", "linalg", "moe", "vq", "collective"}


def test_explicit_tpu_mesh_is_taken_as_written() -> None:
    ir, diagnostics = lower(ModularModelConfig(tpu_mesh_shape=[4, 4]), CATALOG["tpu_v4-32"])
    assert not any(d.is_error for d in diagnostics)
    assert ir.mesh == Mesh(shape=(4, 4), axes=("data", "model"))
    one_d, _ = lower(ModularModelConfig(tpu_mesh_shape=[16]), CATALOG["tpu_v4-32"])
    assert one_d.mesh.shape == (16, 1)


def test_seed_mesh_on_v4_32_is_the_validators_h017() -> None:
    _, diagnostics = lower(ModularModelConfig(tpu_mesh_shape=[4, 8]), CATALOG["tpu_v4-32"])
    (error,) = [d for d in diagnostics if d.is_error]
    assert error.code == "H017" and "`tpu_v4_optimizations.mesh_shape = [4, 4]`" in error.help


def test_mesh_with_three_axes_is_refused() -> None:
    _, diagnostics = lower(ModularModelConfig(tpu_mesh_shape=[2, 2, 4]), CATALOG["tpu_v4-32"])
    assert "H201" in codes(diagnostics)


def test_float16_compute_is_emulated_on_cpus() -> None:
    config = ModularModelConfig(use_bfloat16=False)
    assert "H202" in codes(lower(config, CATALOG["cpu-amx"])[1])
    assert "H202" not in codes(lower(config, CATALOG["gpu-h100"])[1])
    # On a TPU the validator says it (V026), once.
    on_tpu = codes(lower(config, CATALOG["tpu_v4-8"])[1])
    assert "H202" not in on_tpu and "V026" in on_tpu


def test_int8_codebooks_warn_only_where_int8_is_not_native() -> None:
    config = ModularModelConfig(vq_precision="int8")
    assert "H202" in codes(lower(config, CATALOG["cpu"])[1])
    assert "H202" not in codes(lower(config, CATALOG["cpu-arm"])[1])


def test_enterprise_vq_without_fallback_needs_tpu_v6() -> None:
    config = ModularModelConfig(vq_enterprise_mode=True, vq_fallback_strategy="none")
    assert "H203" in codes(lower(config, CATALOG["tpu_v4-8"])[1])
    assert "H203" not in codes(lower(config, CATALOG["tpu_v6e-8"])[1])


def test_enterprise_vq_fallback_is_a_decision() -> None:
    ir, diagnostics = lower(ModularModelConfig(vq_enterprise_mode=True), CATALOG["tpu_v4-8"])
    assert not any(d.is_error for d in diagnostics)
    assert ir.effective == {"vq_enterprise_mode": False, "vq_cost_management": False}
    assert any(d.path == "vector_quantization.enterprise_mode" for d in ir.decisions)


def test_hardware_fallback_to_the_host_cpu_is_said() -> None:
    # no target named: the config's device is sought on this host (which has no TPU v4)
    config = ModularModelConfig(device="tpu_v4")
    ir, diagnostics = lower(config, None)
    assert ir.target.platform == "cpu"
    assert "H035" in codes(diagnostics) and "H207" not in codes(diagnostics)


def test_absent_device_without_fallback_is_an_error() -> None:
    _, diagnostics = lower(ModularModelConfig(device="tpu_v6", hardware_fallback=False), None)
    assert [d.code for d in diagnostics if d.is_error] == ["H035"]


def test_a_named_target_wins_over_device() -> None:
    config = ModularModelConfig(device="gpu")
    ir, diagnostics = lower(config, CATALOG["tpu_v4-8"])
    assert ir.machine.name == ir.target.name == "tpu_v4-8"
    assert "H207" in codes(diagnostics) and "H035" not in codes(diagnostics)
    assert not [d for d in ir.decisions if d.path == "hardware.device"]
    _, refused = lower(ModularModelConfig(device="tpu_v6", hardware_fallback=False),
                       get_target("gpu-h100"))
    assert not [d for d in refused if d.is_error] and "H207" in codes(refused)


def test_more_rookies_than_mlp_width_is_refused() -> None:
    config = ModularModelConfig(hidden_size=64, mor_num_experts=257)
    assert "H206" in codes(lower(config, CATALOG["cpu"])[1])
    assert "H206" not in codes(lower(config.replace(mor_num_experts=256), CATALOG["cpu"])[1])
    assert "H206" not in codes(lower(config.replace(use_sparse=False), CATALOG["cpu"])[1])
