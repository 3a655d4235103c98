"""The field table against PARAMS.md §1, and the single-field checks of every type."""

from __future__ import annotations

import pytest

from capibara.config.fieldtypes import ValueProblem
from capibara.config.fields import (ALIAS_SECTIONS, ENV_VARS, FIELD_BY_NAME, FIELDS, RUNTIME_MUTABLE,
                             SECTIONS, explain_field, field_at, keys_of)

# PARAMS.md §1.11, transcribed independently of the table: every (section, key) the seed's
# TOML files show, and the field it maps to.
SEED_TOML_KEYS = {
    ("model", "model_name"): "model_name", ("model", "hidden_size"): "hidden_size",
    ("model", "num_layers"): "num_layers", ("model", "num_heads"): "num_heads",
    ("model", "vocab_size"): "vocab_size", ("model", "max_seq_length"): "max_seq_length",
    ("jax_config", "use_jax_native"): "use_jax_native", ("jax_config", "backend"): "jax_backend",
    ("jax_config", "fallback_to_standard"): "fallback_to_standard",
    ("jax_config", "debug_mode"): "jax_debug_mode",
    ("tpu_v4_optimizations", "enabled"): "use_tpu_v4_optimizations",
    ("tpu_v4_optimizations", "mesh_shape"): "tpu_mesh_shape",
    ("tpu_v4_optimizations", "use_bfloat16"): "use_bfloat16",
    ("tpu_v4_optimizations", "async_collective"): "async_collective",
    ("tpu_v4_optimizations", "memory_limit_gb"): "tpu_memory_limit_gb",
    ("vector_quantization", "enabled"): "use_vq", ("vector_quantization", "codes"): "vq_codes",
    ("vector_quantization", "embedding_dim"): "vq_embedding_dim",
    ("vector_quantization", "adaptive_threshold"): "vq_adaptive_threshold",
    ("vector_quantization", "use_tpu_optimizations"): "vq_use_tpu_optimizations",
    ("vector_quantization", "precision"): "vq_precision",
    ("sparsity", "enabled"): "use_sparse", ("sparsity", "ratio"): "sparsity_ratio",
    ("sparsity", "method"): "sparsity_method",
    ("performance", "mixed_precision"): "mixed_precision",
    ("performance", "compile_mode"): "compile_mode",
    ("performance", "cache_optimized"): "cache_compiled_functions",
    ("hardware", "device"): "device", ("hardware", "fallback_cpu"): "fallback_cpu",
    ("hardware", "memory_limit_gb"): "memory_limit_gb",
    ("testing", "enable_comprehensive_tests"): "enable_comprehensive_tests",
    ("testing", "mock_expensive_ops"): "mock_expensive_ops",
    ("testing", "fast_startup"): "fast_startup",
    ("arm_optimizations", "enabled"): "use_arm_optimizations",
    ("arm_optimizations", "sve_vectorization"): "arm_sve_enabled",
    ("arm_optimizations", "neon_fallback"): "arm_neon_fallback",
    ("arm_optimizations", "uma_memory_optimized"): "arm_uma_memory",
    ("tpu_v6_features", "enabled"): "vq_enterprise_mode",
    ("tpu_v6_features", "vq_codes"): "vq_codes",
    ("tpu_v6_features", "adaptive_ml"): "vq_enterprise_mode",
    ("tpu_v6_features", "cost_management"): "vq_cost_management",
}

# PARAMS.md §1.12: the seed's 20 variables plus the 4 systematic spellings (A14).
SEED_ENV = {
    "CAPIBARA_USE_JAX_NATIVE": "use_jax_native", "CAPIBARA_JAX_BACKEND": "jax_backend",
    "CAPIBARA_JAX_DEBUG": "jax_debug_mode", "CAPIBARA_DEVICE": "device",
    "CAPIBARA_TPU_MESH": "tpu_mesh_shape", "CAPIBARA_GPU_MEMORY_FRACTION": "gpu_memory_fraction",
    "CAPIBARA_ARM_OPTIMIZATIONS": "use_arm_optimizations", "CAPIBARA_USE_VQ": "use_vq",
    "CAPIBARA_VQ_CODES": "vq_codes", "CAPIBARA_VQ_ADAPTIVE_THRESHOLD": "vq_adaptive_threshold",
    "CAPIBARA_USE_SPARSITY": "use_sparse", "CAPIBARA_SPARSITY_RATIO": "sparsity_ratio",
    "CAPIBARA_MIXED_PRECISION": "mixed_precision", "CAPIBARA_COMPILE_MODE": "compile_mode",
    "CAPIBARA_MCP_ENABLED": "mcp_enabled", "CAPIBARA_META_LOOP_ENABLED": "meta_loop_enabled",
    "CAPIBARA_MONITORING_ENABLED": "monitoring_enabled", "CAPIBARA_LOG_LEVEL": "log_level",
    "CAPIBARA_DEBUG_MODE": "debug_mode", "CAPIBARA_FAST_STARTUP": "fast_startup",
    "CAPIBARA_JAX_DEBUG_MODE": "jax_debug_mode", "CAPIBARA_TPU_MESH_SHAPE": "tpu_mesh_shape",
    "CAPIBARA_USE_ARM_OPTIMIZATIONS": "use_arm_optimizations", "CAPIBARA_USE_SPARSE": "use_sparse",
    # capibara's own: the block pattern, the one model-shape choice worth an environment switch
    "CAPIBARA_MIXERS": "mixers",
}

# PARAMS.md §c: the runtime-mutable fields.
SEED_RUNTIME = {
    "batch_size", "max_batch_size", "adaptive_batching", "temperature", "use_vq",
    "vq_adaptive_threshold", "vq_cost_management", "log_level", "structured_logging",
    "audit_logging", "sensitive_data_masking", "monitoring_enabled", "performance_profiling",
    "health_check_interval", "output_filtering", "content_safety_check", "trace_execution",
    "profile_performance", "jax_debug_mode", "debug_mode",
}

# PARAMS.md §1 headings: how many fields each ID prefix has.
IDS_PER_GROUP = {"M": 17, "J": 9, "V": 13, "T": 14, "S": 15, "H": 19, "X": 21, "R": 18, "N": 5}


def test_there_are_131_fields_with_unique_names_ids_and_paths() -> None:
    assert len(FIELDS) == 131
    assert len(FIELD_BY_NAME) == 131
    assert len({f.id for f in FIELDS}) == 131
    assert len({f.path for f in FIELDS}) == 131
    for prefix, count in IDS_PER_GROUP.items():
        ids = sorted(int(f.id[1:]) for f in FIELDS if f.id[0] == prefix)
        assert ids == list(range(1, count + 1)), prefix


def test_every_seed_toml_key_maps_to_its_field() -> None:
    for (section, key), name in SEED_TOML_KEYS.items():
        field = field_at(section, key)
        assert field is not None and field.name == name, (section, key)


def test_sections_are_the_canonical_layout_and_aliases_are_only_documented_ones() -> None:
    assert {f.section for f in FIELDS} == set(SECTIONS)
    alias_spellings = {a for f in FIELDS for a in f.aliases}
    assert alias_spellings == {("performance", "cache_optimized"), ("tpu_v6_features", "vq_codes"),
                               ("tpu_v6_features", "enabled"), ("tpu_v6_features", "adaptive_ml"),
                               ("tpu_v6_features", "cost_management")}
    assert {s for s, _ in alias_spellings} - set(SECTIONS) == set(ALIAS_SECTIONS)
    assert keys_of("tpu_v6_features") == ["vq_codes", "enabled", "adaptive_ml", "cost_management"]


def test_prefix_rule_gives_the_proposed_keys() -> None:
    # §0.3.2: a proposed key is the kwarg name minus its section's prefix.
    prefixes = {"vector_quantization": "vq_", "tpu_v4_optimizations": "tpu_", "sparsity": "sparsity_",
                "jax_config": "jax_", "arm_optimizations": "arm_"}
    renamed = {name for name in SEED_TOML_KEYS.values()}
    for f in FIELDS:
        if f.name in renamed or f.key == "enabled":
            continue
        prefix = prefixes.get(f.section, "")
        expected = f.name[len(prefix):] if prefix and f.name.startswith(prefix) else f.name
        assert f.key == expected, f.name


def test_env_vars_are_exactly_the_seed_names_and_the_systematic_aliases() -> None:
    assert {var: f.name for var, f in ENV_VARS.items()} == SEED_ENV
    # the seed's spelling comes first (it is the one documented)
    assert FIELD_BY_NAME["use_sparse"].env[0] == "CAPIBARA_USE_SPARSITY"
    assert FIELD_BY_NAME["tpu_mesh_shape"].env[0] == "CAPIBARA_TPU_MESH"


def test_runtime_mutable_list_is_section_c() -> None:
    assert RUNTIME_MUTABLE == SEED_RUNTIME


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_every_default_passes_its_own_check_and_has_a_doc(field) -> None:
    assert field.doc and not field.doc.endswith(".")
    if field.default is None:
        assert field.derived or field.type.check(None, field.name) is None
    else:
        assert field.type.check(field.default, field.name) == field.default


# ------------------------------------------------------------------- single-field checks


def problem(name: str, value):
    field = FIELD_BY_NAME[name]
    with pytest.raises(ValueProblem) as info:
        field.type.check(value, name)
    return info.value


@pytest.mark.parametrize("name, value, code", [
    ("use_vq", 1, "S201"),              # 0/1 are not booleans (§0.3.7)
    ("use_vq", "true", "S201"),
    ("hidden_size", True, "S201"),      # bool is an int subclass, refused
    ("hidden_size", 768.0, "S201"),     # int fields refuse floats
    ("hidden_size", 0, "S202"),
    ("sparsity_ratio", 0.951, "S202"),
    ("sparsity_ratio", float("nan"), "S202"),
    ("gpu_memory_fraction", 0.0, "S202"),   # (0, 1]
    ("beta1", 1.0, "S202"),                 # [0, 1)
    ("mcp_port", 65536, "S202"),
    ("memory_optimization_level", 4, "S202"),
    ("vq_codes", 96, "S203"),
    ("affine_bits", 2, "S203"),
    ("sparsity_method", "rookies", "S203"),
    ("log_level", "verbose", "S203"),
    ("batch_size", "big", "S203"),
    ("tpu_mesh_shape", [], "S202"),
    ("tpu_mesh_shape", [4, 0], "S202"),
    ("tpu_mesh_shape", [4, 8.0], "S201"),
    ("kernel_categories", ["fft", "fft"], "S205"),
    ("kernel_categories", ["fft", "gemm"], "S203"),
    ("version", "3.0", "S204"),
    ("metrics_endpoint", "metrics", "S204"),
    ("model_name", "", "S204"),
    ("vision_encoder_type", "resnet", "S203"),
])
def test_bad_values_are_refused_with_their_code(name, value, code) -> None:
    assert problem(name, value).code == code


@pytest.mark.parametrize("name, value, canonical", [
    ("sparsity_method", "mixture_of_rookies", "mor"),
    ("sparsity_method", "MoR", "mor"),
    ("log_level", "debug", "DEBUG"),
    ("device", "TPU_V4", "tpu_v4"),
    ("bitnet_precision", "1.58b", "1.58bit"),
    ("learning_rate", 1, 1.0),              # float fields take ints
    ("batch_size", "AUTO", "auto"),
    ("batch_size", 16, 16),
    ("tpu_mesh_shape", (4, 4), [4, 4]),
    ("vision_encoder_type", "none", None),  # A46: "none" stands for None
    ("gradient_clip_norm", "none", None),
    ("kernel_categories", ["FFT", "linalg"], ["fft", "linalg"]),
])
def test_accepted_spellings_are_stored_in_canonical_form(name, value, canonical) -> None:
    field = FIELD_BY_NAME[name]
    result = field.type.check(value, name)
    assert result == canonical and type(result) is type(canonical)


def test_enum_messages_list_both_spellings_and_suggest() -> None:
    p = problem("sparsity_method", "mixture_of_rookie")
    assert "`mor` (also `mixture_of_rookies`)" in p.message
    assert p.help == "did you mean `mixture_of_rookies`?"


@pytest.mark.parametrize("name, text, value", [
    ("use_vq", "TRUE", True), ("use_vq", "0", False), ("use_vq", "off", False),
    ("use_vq", " yes ", True),
    ("vq_codes", "128", 128),
    ("sparsity_ratio", "5e-1", 0.5),
    ("tpu_mesh_shape", "4,8", [4, 8]), ("tpu_mesh_shape", "4 x 8", [4, 8]),
    ("tpu_mesh_shape", "[4, 8]", [4, 8]), ("tpu_mesh_shape", "auto", "auto"),
    ("log_level", "warning", "WARNING"),
])
def test_environment_text_is_parsed_by_the_field_type(name, text, value) -> None:
    field = FIELD_BY_NAME[name]
    assert field.type.check(field.type.parse_env(text, name), name) == value


@pytest.mark.parametrize("name, text", [
    ("use_vq", "maybe"), ("vq_codes", "64.0"), ("vq_codes", "sixty-four"),
    ("sparsity_ratio", "half"), ("tpu_mesh_shape", "4;8"),
])
def test_bad_environment_text_is_a_type_error(name, text) -> None:
    with pytest.raises(ValueProblem) as info:
        FIELD_BY_NAME[name].type.parse_env(text, name)
    assert info.value.code == "S201"


def test_explain_field_reads_the_table() -> None:
    text = explain_field("vq_codes")
    assert text.startswith("vq_codes (V2): number of quantization codes")
    assert "[tpu_v6_features] vq_codes" in text and "CAPIBARA_VQ_CODES" in text
    assert explain_field("sparsity.method") == explain_field("sparsity_method")
    with pytest.raises(KeyError):
        explain_field("no_such_field")


def test_explain_field_shows_derivations_and_runtime() -> None:
    heads = explain_field("num_heads")
    assert "derived   `hidden_size // 64`" in heads and "default" not in heads
    assert "default   none" in explain_field("memory_limit_gb")
    assert "may change at run time" in explain_field("temperature")
