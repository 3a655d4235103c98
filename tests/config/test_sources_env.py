"""Environment variables: typed parsing, spellings, conflicts, unknown names, precedence."""

from __future__ import annotations

import pytest

from capibara.diagnostics import ConfigError, render
from capibara.config.sources import resolve_config

SEED_ENV_BLOCK = {  # the seed's `export` block, verbatim values (L385–L414)
    "CAPIBARA_USE_JAX_NATIVE": "true", "CAPIBARA_JAX_BACKEND": "capibara_jax",
    "CAPIBARA_JAX_DEBUG": "false", "CAPIBARA_DEVICE": "auto", "CAPIBARA_TPU_MESH": "4,8",
    "CAPIBARA_GPU_MEMORY_FRACTION": "0.8", "CAPIBARA_ARM_OPTIMIZATIONS": "false",
    "CAPIBARA_USE_VQ": "true", "CAPIBARA_VQ_CODES": "64", "CAPIBARA_VQ_ADAPTIVE_THRESHOLD": "0.5",
    "CAPIBARA_USE_SPARSITY": "true", "CAPIBARA_SPARSITY_RATIO": "0.65",
    "CAPIBARA_MIXED_PRECISION": "true", "CAPIBARA_COMPILE_MODE": "default",
    "CAPIBARA_MCP_ENABLED": "true", "CAPIBARA_META_LOOP_ENABLED": "true",
    "CAPIBARA_MONITORING_ENABLED": "true", "CAPIBARA_LOG_LEVEL": "INFO",
    "CAPIBARA_DEBUG_MODE": "false", "CAPIBARA_FAST_STARTUP": "false",
}


def test_the_seeds_env_block_sets_twenty_fields() -> None:
    resolved = resolve_config(env={**SEED_ENV_BLOCK, "PATH": "/usr/bin", "HOME": "/root"})
    c = resolved.config
    assert resolved.diagnostics == ()
    assert len(c.explicit_fields) == 20
    assert c.tpu_mesh_shape == [4, 8] and c.mcp_enabled is True and c.vq_codes == 64
    p = c.provenance("use_sparse")
    assert (p.kind, p.detail, p.span.text) == ("env", "CAPIBARA_USE_SPARSITY", "true")
    assert p.span.source.name == "$CAPIBARA_USE_SPARSITY"


def test_env_none_ignores_the_environment() -> None:
    assert resolve_config(env=None).config.explicit_fields == frozenset()


def test_systematic_spelling_works_and_equal_spellings_agree() -> None:
    c = resolve_config(env={"CAPIBARA_USE_SPARSE": "off", "CAPIBARA_TPU_MESH_SHAPE": "2x2",
                            "CAPIBARA_TPU_MESH": "[2, 2]"}).config
    assert c.use_sparse is False and c.tpu_mesh_shape == [2, 2]
    assert c.provenance("tpu_mesh_shape").detail == "CAPIBARA_TPU_MESH"  # the seed's name


def test_two_spellings_with_different_values_are_an_error_with_both_places() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(env={"CAPIBARA_USE_SPARSITY": "true", "CAPIBARA_USE_SPARSE": "0"})
    (d,) = info.value.diagnostics
    assert d.code == "S301"
    assert {lab.span.source.name for lab in d.labels} == {"$CAPIBARA_USE_SPARSITY",
                                                          "$CAPIBARA_USE_SPARSE"}


def test_empty_value_counts_as_unset() -> None:
    assert resolve_config(env={"CAPIBARA_VQ_CODES": ""}).config.explicit_fields == frozenset()


def test_bad_values_point_into_the_variable_and_all_are_reported() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(env={"CAPIBARA_USE_VQ": "maybe", "CAPIBARA_VQ_CODES": "96",
                            "CAPIBARA_TPU_MESH": "4;8", "CAPIBARA_LOG_LEVEL": "loud"})
    codes = sorted(d.code for d in info.value.diagnostics)
    assert codes == ["S201", "S201", "S203", "S203"]
    vq = next(d for d in info.value.diagnostics if d.span.source.name == "$CAPIBARA_VQ_CODES")
    assert vq.span.text == "96" and vq.span.column == len("CAPIBARA_VQ_CODES=") + 1
    assert "1 | CAPIBARA_VQ_CODES=96" in render(vq)


def test_unknown_variable_is_a_warning_with_a_suggestion() -> None:
    resolved = resolve_config(env={"CAPIBARA_VQ_CODE": "128", "CAPIBARA_HIDDEN_SIZE": "1",
                                   "CAPIBARA_TRACEBACK": "1", "CAPIBARA_ZZZ": "1"})
    by_name = {d.span.source.name: d for d in resolved.diagnostics}
    assert set(by_name) == {"$CAPIBARA_VQ_CODE", "$CAPIBARA_HIDDEN_SIZE", "$CAPIBARA_ZZZ"}
    assert all(not d.is_error and d.code == "S104" for d in by_name.values())
    assert by_name["$CAPIBARA_VQ_CODE"].help == "did you mean `CAPIBARA_VQ_CODES`?"
    assert "--set model.hidden_size=" in by_name["$CAPIBARA_HIDDEN_SIZE"].help
    assert resolved.config.vq_codes == 64


def test_keywords_beat_env() -> None:
    c = resolve_config(env={"CAPIBARA_VQ_CODES": "128"}, keywords={"vq_codes": 64}).config
    assert c.vq_codes == 64 and c.provenance("vq_codes").kind == "keyword"
