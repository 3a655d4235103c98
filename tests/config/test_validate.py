"""Cross-field rules (PARAMS.md §b): the registry, each rule, the seed's examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from capibara.config import ConfigValidator, ModularModelConfig
from capibara.diagnostics import ConfigError, Severity
from capibara.config.fields import FIELD_BY_NAME
from capibara.config.validate import (ENFORCED_ELSEWHERE, RULES, check_config,
                               check_hardware_compatibility, get_validation_errors, resolve_device,
                               suggest_mesh)


def codes(diagnostics) -> list[tuple[str, str]]:
    return [(d.code, d.severity.value) for d in diagnostics]


# --------------------------------------------------------------------------- the registry


def test_every_rule_of_section_b_is_registered_once() -> None:
    assert not set(RULES) & set(ENFORCED_ELSEWHERE)
    assert sorted([*RULES, *ENFORCED_ELSEWHERE]) == list(range(1, 62))


def test_codes_follow_the_c_numbers_and_the_hardware_marks() -> None:
    for number, rule in RULES.items():
        prefix = "H" if rule.scope == "hardware" else "V"
        assert rule.code == f"{prefix}{number:03d}", rule
    hardware = {n for n, r in RULES.items() if r.scope == "hardware"}
    assert hardware == {17, 21, 25, 35, 36}  # the rules §b marks [HW]


def test_rules_name_real_fields_and_have_docs() -> None:
    for rule in RULES.values():
        assert rule.fields and set(rule.fields) <= set(FIELD_BY_NAME), rule.number
        assert rule.doc, f"C{rule.number} has no docstring"


def test_rules_enforced_elsewhere_have_their_codes_in_the_code_table() -> None:
    from capibara.codes import CODES

    for number, (where, code) in ENFORCED_ELSEWHERE.items():
        assert code in CODES, f"C{number} is enforced by {where} as {code}, which is not in CODES"


# --------------------------------------------------------------------------- one case per rule

#: C-number -> (keyword arguments that break the rule, the diagnostics expected, in order).
CONFIG_CASES: dict[int, tuple[dict, list[tuple[str, str]]]] = {
    1: (dict(hidden_size=768, num_heads=10), [("V001", "error"), ("V003", "warning")]),
    2: (dict(num_heads=16), [("V002", "warning")]),
    3: (dict(hidden_size=640, num_layers=7), [("V003", "warning"), ("V003", "warning")]),
    4: (dict(vision_encoder_type="clip"), [("V004", "error")]),
    5: (dict(multimodal_enabled=True), [("V005", "error")]),
    6: (dict(use_jax_native=False, jax_backend="capibara_jax"), [("V006", "error")]),
    7: (dict(fallback_to_standard=False), [("V007", "warning")]),
    8: (dict(enable_jit=False, compile_mode="aggressive"), [("V008", "warning")]),
    9: (dict(compile_mode="aggressive", trace_execution=True), [("V009", "warning")]),
    10: (dict(vq_embedding_dim=512), [("V010", "error")]),
    11: (dict(vq_enterprise_mode=True, use_vq=False), [("V011", "error")]),
    12: (dict(vq_enterprise_mode=True, vq_codes=64), [("V012", "error")]),
    13: (dict(vq_fallback_strategy="gpu"), [("V013", "warning")]),
    14: (dict(use_vq=False, vq_codes=128), [("V014", "warning")]),
    15: (dict(device="cpu", vq_use_tpu_optimizations=True), [("V015", "warning")]),
    16: (dict(device="tpu_v4", vq_precision="float16"), [("V016", "warning")]),
    18: (dict(sharding_strategy="manual"), [("V018", "error")]),
    19: (dict(sharding_strategy="disabled"), [("V019", "error")]),
    20: (dict(model_parallel=True, tpu_mesh_shape=[4, 8]), [("V020", "error")]),
    23: (dict(kernel_categories=[]), [("V023", "warning")]),
    24: (dict(device="gpu", use_tpu_v4_optimizations=True), [("V024", "warning")]),
    26: (dict(mixed_precision=False), [("V026", "warning")]),
    28: (dict(min_sparsity=0.9, max_sparsity=0.5), [("V028", "error")]),
    29: (dict(mor_top_k=9), [("V029", "error")]),
    30: (dict(sparsity_method="topk", mor_top_k=4), [("V030", "warning")]),
    31: (dict(use_bitnet=True, use_affine_quantization=True), [("V031", "error")]),
    32: (dict(affine_bits=4, use_affine_quantization=False), [("V032", "warning")]),
    33: (dict(auto_device_selection=False), [("V033", "error")]),
    34: (dict(hardware_fallback=False, fallback_cpu=True), [("V034", "warning")]),
    37: (dict(device="cpu", gpu_memory_fraction=0.5), [("V037", "warning")]),
    38: (dict(memory_limit_gb=8.0, tpu_memory_limit_gb=16.0), [("V038", "warning")]),
    39: (dict(use_arm_optimizations=True, arm_sve_enabled=False, arm_neon_fallback=False),
         [("V039", "warning")]),
    40: (dict(world_size=2), [("V040", "error")]),
    41: (dict(batch_size=64), [("V041", "error"), ("V042", "warning")]),
    42: (dict(batch_size=16), [("V042", "warning")]),
    43: (dict(mcp_enabled=True, meta_loop_enabled=True, mcp_port=9090), [("V043", "error")]),
    44: (dict(mcp_port=8081), [("V044", "warning")]),
    45: (dict(ethics_guard_enabled=True), [("V045", "warning")]),
    46: (dict(mcp_enabled=True, mcp_auth_required=False), [("V046", "warning")]),
    47: (dict(security_level="high", audit_logging=False), [("V047", "error")]),
    48: (dict(sensitive_data_masking=False, log_level="debug"), [("V048", "warning")]),
    49: (dict(health_check_interval=10), [("V049", "warning")]),
    50: (dict(warmup_steps=10000), [("V050", "error")]),
    51: (dict(save_checkpoint_steps=20000), [("V051", "warning")]),
    52: (dict(use_consensus_distilling=True), [("V052", "warning")]),
    53: (dict(optimizer="sgd", beta1=0.8), [("V053", "warning")]),
    54: (dict(beta1=0.99, beta2=0.9), [("V054", "warning")]),
    55: (dict(mock_expensive_ops=True), [("V055", "warning")]),
    56: (dict(temperature=2.5), [("V056", "warning")]),
    59: (dict(mixers=["ssm", "ssm", "attention", "ssm", "attention"]), [("V059", "error")]),
    60: (dict(mixers=["hyena"], hyena_filter_length=4096), [("V060", "error")]),
    61: (dict(mixers=["ssm", "attention"], kernel_categories=["linalg", "attention"]),
         [("V061", "warning")]),
}

#: C-number -> (keyword arguments, target, expected hardware diagnostics).
HARDWARE_CASES: dict[int, tuple[dict, str, list[tuple[str, str]]]] = {
    17: (dict(tpu_mesh_shape=[4, 8]), "tpu_v4-32", [("H017", "error")]),
    21: (dict(batch_size=20), "tpu_v4-32", [("H021", "error")]),
    22: (dict(async_collective=True), "cpu", [("V022", "warning")]),
    25: (dict(tpu_memory_limit_gb=64.0), "tpu_v4-32", [("H025", "warning")]),
    35: (dict(device="gpu", hardware_fallback=False), "tpu_v4-32", [("H035", "error")]),
    36: (dict(device="gpu", num_gpus=4), "gpu-h100", [("H036", "error")]),
}


@pytest.mark.parametrize("number", sorted(CONFIG_CASES))
def test_rule_fires_on_its_case(number: int) -> None:
    kwargs, expected = CONFIG_CASES[number]
    assert codes(get_validation_errors(ModularModelConfig(**kwargs))) == expected


@pytest.mark.parametrize("number", sorted(HARDWARE_CASES))
def test_hardware_rule_fires_on_its_case(number: int) -> None:
    kwargs, target, expected = HARDWARE_CASES[number]
    check = check_hardware_compatibility(ModularModelConfig(**kwargs), target)
    assert codes(check.diagnostics) == expected
    assert check.compatible == all(severity != "error" for _, severity in expected)


def test_inference_mode_flags_training_settings() -> None:  # C27
    config = ModularModelConfig(learning_rate=1e-3, gradient_checkpointing=False)
    assert get_validation_errors(config) == []
    found = get_validation_errors(config, mode="inference")
    assert codes(found) == [("V027", "warning")]
    assert found[0].fields == ("gradient_checkpointing", "learning_rate")
    assert get_validation_errors(config, mode="train") == []


def test_every_registered_rule_has_a_case() -> None:
    covered = set(CONFIG_CASES) | set(HARDWARE_CASES) | {27}
    assert covered == set(RULES)


@pytest.mark.parametrize("target", ["cpu", "cpu-arm", "gpu", "gpu-h100", "tpu_v4-32",
                                    "tpu_v6e-8"])
def test_defaults_are_quiet_everywhere(target: str) -> None:
    config = ModularModelConfig()
    assert get_validation_errors(config) == []
    check = check_hardware_compatibility(config, target)
    assert check.compatible and check.diagnostics == [] and check.recommendations == []


# --------------------------------------------------------------------------- rule details


def test_mixed_rules_downgrade_their_soft_parts() -> None:
    assert codes(get_validation_errors(ModularModelConfig(mor_top_k=8))) == [("V029", "warning")]
    assert codes(get_validation_errors(ModularModelConfig(device="cpu", auto_device_selection=True))) \
        == [("V033", "warning")]
    assert codes(get_validation_errors(ModularModelConfig(distributed_training=True))) == \
        [("V040", "warning")]
    assert codes(get_validation_errors(ModularModelConfig(mcp_enabled=True, mcp_port=80))) == \
        [("V043", "warning")]


def test_implied_values_do_not_trip_rules_the_user_never_touched() -> None:
    # C31: explicit BitNet turns the default affine quantizer off instead of clashing with it.
    assert get_validation_errors(ModularModelConfig(use_bitnet=True)) == []
    # C12: enterprise mode derives 128 codes.
    assert get_validation_errors(ModularModelConfig(vq_enterprise_mode=True)) == []
    # C47: the high preset fills the switches the user left unset.
    assert get_validation_errors(ModularModelConfig(security_level="high")) == []
    # A24: an ARM flag with an "auto" device is not contradicted by the default TPU flag.
    assert get_validation_errors(ModularModelConfig(use_arm_optimizations=True)) == []


def test_head_count_help_suggests_the_64_wide_split() -> None:
    [error, _] = get_validation_errors(ModularModelConfig(hidden_size=768, num_heads=10))
    assert error.help.startswith("set `model.num_heads = 12` (head dimension 64)")


def test_str_is_the_seeds_field_prefixed_message() -> None:
    [error] = get_validation_errors(ModularModelConfig(vq_embedding_dim=512))
    assert str(error) == "vq_embedding_dim, hidden_size: `vq_embedding_dim` 512 differs from " \
                         "`hidden_size` 768"
    assert f"   - {error}".startswith("   - vq_embedding_dim, hidden_size: ")


def test_fields_without_a_place_are_explained_in_notes() -> None:
    [error] = get_validation_errors(ModularModelConfig(vq_embedding_dim=512))
    assert error.span is None  # built from keywords: nothing to point at
    assert "`hidden_size` is 768 by default" in error.notes


def test_message_style() -> None:
    everything = [d for kwargs, _ in CONFIG_CASES.values()
                  for d in get_validation_errors(ModularModelConfig(**kwargs))]
    for d in everything:
        assert d.message[0].islower() or d.message[0] == "`", d.message
        assert not d.message.endswith("."), d.message
        assert d.help and not d.help.endswith("."), d


def test_suggest_mesh_prefers_a_model_axis_that_divides_the_heads() -> None:
    assert suggest_mesh(16, [4, 8], heads=12, hidden=768) == [4, 4]
    assert suggest_mesh(16, [4, 8]) == [2, 8]
    assert suggest_mesh(8, [4]) == [8]
    assert suggest_mesh(32, [4, 8], heads=12, hidden=768) == [8, 4]
    assert suggest_mesh(16, [2, 2, 8], heads=12, hidden=768) == [4, 4]  # folded to [data, model]


def test_device_resolution_follows_the_fallback_chain() -> None:
    from capibara.targets import get_target

    tpu = get_target("tpu_v4-32")
    assert resolve_device(ModularModelConfig(), tpu) == "tpu_v4"
    assert resolve_device(ModularModelConfig(device="tpu_v6"), tpu) == "tpu_v4"
    assert resolve_device(ModularModelConfig(device="gpu"), tpu) == "cpu"
    assert resolve_device(ModularModelConfig(device="gpu", fallback_cpu=False), tpu) is None
    assert resolve_device(ModularModelConfig(device="tpu_v6", hardware_fallback=False), tpu) is None
    assert resolve_device(ModularModelConfig(device="cpu"), tpu) == "cpu"


# --------------------------------------------------------------------------- the seed's API and examples


def test_check_config_raises_once_with_everything() -> None:
    config = ModularModelConfig(vq_embedding_dim=512, warmup_steps=10000, temperature=3.0)
    with pytest.raises(ConfigError) as caught:
        check_config(config)
    assert [d.code for d in caught.value.diagnostics] == ["V010", "V050", "V056"]
    check_config(ModularModelConfig(temperature=3.0))  # warnings alone do not raise


def test_validate_full_config_never_raises() -> None:
    result = ConfigValidator().validate_full_config(
        ModularModelConfig(vq_embedding_dim=512, temperature=3.0))
    assert not result.is_valid
    assert [e.code for e in result.errors] == ["V010"]
    assert [w.code for w in result.warnings] == ["V056"]
    assert all(d.severity is Severity.ERROR for d in result.errors)


SEED_EXAMPLES = {
    "research": dict(model_name="capibara_research", hidden_size=1024, num_layers=24, use_vq=True,
                     vq_codes=128, use_tpu_v4_optimizations=True, sparsity_ratio=0.5,
                     monitoring_enabled=True, performance_profiling=True),
    "production": dict(model_name="capibara_production", hidden_size=768, num_layers=12,
                       use_vq=True, vq_codes=64, use_arm_optimizations=True, sparsity_ratio=0.65,
                       batch_size=32, mixed_precision=True),
    "enterprise": dict(model_name="capibara_enterprise", hidden_size=2048, num_layers=36,
                       use_vq=True, vq_codes=128, vq_enterprise_mode=True,
                       use_tpu_v4_optimizations=True, mcp_enabled=True, meta_loop_enabled=True,
                       monitoring_enabled=True, security_level="high"),
    "intro": dict(model_name="capibara_enterprise", hidden_size=768, use_jax_native=True,
                  use_vq=True, vq_codes=64, use_tpu_v4_optimizations=True),
}


@pytest.mark.parametrize("name", sorted(SEED_EXAMPLES))
def test_seed_examples_are_valid(name: str) -> None:
    """PARAMS.md §d.5: every example validates; the production one only hears that its
    batch size is a starting size under adaptive batching (C42)."""
    config = ModularModelConfig(**SEED_EXAMPLES[name])
    result = ConfigValidator().validate_full_config(config)
    assert result.is_valid, [str(e) for e in result.errors]
    expected_warnings = ["V042"] if name == "production" else []
    assert [w.code for w in result.warnings] == expected_warnings
    assert config.hidden_size % config.num_heads == 0
    assert config.vq_embedding_dim == config.hidden_size


def test_seed_examples_resolve_as_section_d5_says() -> None:
    research = ModularModelConfig(**SEED_EXAMPLES["research"])
    enterprise = ModularModelConfig(**SEED_EXAMPLES["enterprise"])
    assert research.num_heads == 16 and research.vq_embedding_dim == 1024
    assert enterprise.num_heads == 32 and enterprise.vq_embedding_dim == 2048
    assert enterprise.api_key_required and enterprise.request_encryption
    assert enterprise.mcp_port != enterprise.elixir_bridge_port


def test_production_example_on_an_arm_host_is_quiet_and_elsewhere_is_told() -> None:
    config = ModularModelConfig(**SEED_EXAMPLES["production"])
    assert check_hardware_compatibility(config, "cpu-arm").diagnostics == []
    on_tpu = check_hardware_compatibility(config, "tpu_v4-32")
    assert on_tpu.compatible
    assert [str(w) for w in on_tpu.warnings] == [
        "use_arm_optimizations, device: `use_arm_optimizations` is ignored on tpu_v4: it applies "
        "to ARM CPUs"]


def test_seed_tpu_mesh_on_a_v4_32_slice_recommends_4_by_4() -> None:
    config = ModularModelConfig(tpu_mesh_shape=[4, 8])
    check = ConfigValidator().check_hardware_compatibility(config, "tpu_v4-32")
    assert not check.compatible
    assert check.detected_device == "tpu_v4"
    assert check.recommendations == [
        'set `tpu_mesh_shape = [4, 4]`, or "auto" to derive it: 16 devices detected on `tpu_v4-32`']
    assert check_hardware_compatibility(config, "tpu_v4-64").compatible


def test_unknown_target_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=re.escape("unknown target `tpu_v5-8`")):
        check_hardware_compatibility(ModularModelConfig(), "tpu_v5-8")


def test_host_detection_is_the_default_target(monkeypatch) -> None:
    from capibara import targets

    monkeypatch.setenv("CAPIBARA_HOST_TARGET", "tpu_v4-32")
    targets.detect_host.cache_clear()
    try:
        check = check_hardware_compatibility(ModularModelConfig(tpu_mesh_shape=[4, 8]))
        assert check.target.name == "tpu_v4-32" and not check.compatible
    finally:
        targets.detect_host.cache_clear()


def test_runtime_update_is_revalidated_in_full() -> None:
    config = ModularModelConfig()
    with pytest.raises(ConfigError, match="V041"):
        config.update_runtime_settings({"batch_size": 64})
    assert config.batch_size == "auto"


# --------------------------------------------------------------------------- the bundled files

ROOT = Path(__file__).resolve().parents[2]


def _file_config(relative: str) -> ModularModelConfig:
    from capibara.config.sources import resolve_config

    return resolve_config([ROOT / "configs" / relative], env=None).config


@pytest.mark.parametrize("relative, warnings", [
    ("production/tpu_v4.toml", []),
    ("development/development.toml", ["V055"]),  # §d.2: mock_expensive_ops (C55)
    ("specialized/arm_axion_inference.toml", []),
    ("specialized/tpu_v6_vq_v33.toml", []),
    ("examples/research.toml", []),
    ("examples/production_cost_effective.toml", ["V042"]),
    ("examples/enterprise_premium.toml", []),
])
def test_bundled_configs_validate_as_the_seed_says(relative: str, warnings: list[str]) -> None:
    result = ConfigValidator().validate_full_config(_file_config(relative))
    assert result.is_valid, [str(e) for e in result.errors]
    assert [w.code for w in result.warnings] == warnings


def test_seed_production_file_on_a_v4_32_slice() -> None:
    """A18: the seed's `mesh_shape = [4, 8]` needs 32 devices; a v4-32 slice has 16."""
    check = ConfigValidator().check_hardware_compatibility(
        _file_config("production/tpu_v4.toml"), "tpu_v4-32")
    assert not check.compatible and check.detected_device == "tpu_v4"
    [error] = check.errors
    assert error.code == "H017" and error.span.text == "[4, 8]"
    assert error.help == 'set `tpu_v4_optimizations.mesh_shape = [4, 4]`, or "auto" to derive it'
    assert check.recommendations == [
        'set `tpu_mesh_shape = [4, 4]`, or "auto" to derive it: 16 devices detected on `tpu_v4-32`']
