"""Files, layering, precedence and provenance (capibara.config.sources), with property tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from capibara import toml
from capibara.diagnostics import ConfigError
from capibara.config.fieldtypes import (AutoOr, Bool, Choice, Float, Int, IntChoice, IntList, Optional,
                                 Subset, Text)
from capibara.config.model_config import ModularModelConfig
from capibara.config.fields import FIELD_BY_NAME, FIELDS, Field
from capibara.config.sources import resolve_config, resolve_path
from capibara.testing.config_strategies import configs, field_values
from capibara.config.writer import toml_value

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = sorted((ROOT / "configs").rglob("*.toml"))


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------- bundled configs


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_bundled_config_decodes_cleanly(path: Path) -> None:
    resolved = resolve_config([path], env=None)
    if path.parent.name == "legacy":  # v2 files: only the legacy stage's warnings
        assert resolved.diagnostics and all(
            d.code.startswith("L") and not d.is_error for d in resolved.diagnostics)
    else:
        assert resolved.diagnostics == ()
    assert resolved.config.explicit_fields  # each file sets something


def test_production_preset_resolves_as_params_d1_says() -> None:
    c = resolve_config([ROOT / "configs/production/tpu_v4.toml"], env=None).config
    assert (c.jax_backend, c.tpu_mesh_shape, c.tpu_memory_limit_gb) == ("capibara_jax", [4, 8], 32.0)
    assert (c.sparsity_method, c.compile_mode, c.cache_compiled_functions) == ("mor", "aggressive", True)
    p = c.provenance("cache_compiled_functions")
    assert (p.kind, p.detail, p.span.text, p.span.line) == (
        "file", "[performance] cache_optimized", "true", 37)
    assert c.provenance("num_heads").kind == "file"
    assert c.provenance("vocab_size").span.text == "32000"


def test_tpu_v6_alias_section_resolves() -> None:
    c = resolve_config([ROOT / "configs/specialized/tpu_v6_vq_v33.toml"], env=None).config
    assert (c.vq_enterprise_mode, c.vq_codes, c.vq_cost_management, c.device) == (True, 128, True, "auto")
    assert c.provenance("vq_codes").detail == "[tpu_v6_features] vq_codes"


SEED_EXAMPLES = {
    "research": dict(model_name="capibara_research", hidden_size=1024, num_layers=24, use_vq=True,
                     vq_codes=128, use_tpu_v4_optimizations=True, sparsity_ratio=0.5,
                     monitoring_enabled=True, performance_profiling=True),
    "production_cost_effective": dict(
        model_name="capibara_production", hidden_size=768, num_layers=12, use_vq=True, vq_codes=64,
        use_arm_optimizations=True, sparsity_ratio=0.65, batch_size=32, mixed_precision=True),
    "enterprise_premium": dict(
        model_name="capibara_enterprise", hidden_size=2048, num_layers=36, use_vq=True, vq_codes=128,
        vq_enterprise_mode=True, use_tpu_v4_optimizations=True, mcp_enabled=True,
        meta_loop_enabled=True, monitoring_enabled=True, security_level="high"),
}


@pytest.mark.parametrize("name", SEED_EXAMPLES)
def test_example_files_are_the_seeds_python_examples(name: str) -> None:
    from_file = resolve_config([ROOT / f"configs/examples/{name}.toml"], env=None).config
    from_python = ModularModelConfig(**SEED_EXAMPLES[name])
    assert from_file == from_python
    assert from_file.explicit_fields == from_python.explicit_fields


def test_enterprise_example_derivations() -> None:
    c = ModularModelConfig(**SEED_EXAMPLES["enterprise_premium"])
    assert (c.num_heads, c.vq_embedding_dim, c.api_key_required, c.request_encryption) == (
        32, 2048, True, True)


# ------------------------------------------------------------------- paths (A47)


def test_seed_path_and_short_path_find_the_bundled_preset(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for path in ("capibara/config/configs_toml/production/tpu_v4.toml", "production/tpu_v4.toml",
                 "configs/production/tpu_v4.toml"):
        config = ModularModelConfig.from_toml(path, env=None)
        assert config.model_name == "capibara_tpu_v4"
        assert config.provenance("model_name").span.source.name.endswith(
            os.path.join("production", "tpu_v4.toml"))


def test_a_local_file_wins_over_the_preset(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "production").mkdir()
    write(tmp_path / "production", "tpu_v4.toml", '[model]\nmodel_name = "mine"\n')
    assert ModularModelConfig.from_toml("production/tpu_v4.toml", env=None).model_name == "mine"


def test_missing_file_lists_the_places_tried(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    found, tried = resolve_path("capibara/config/configs_toml/prodution/tpu_v4.toml")
    assert found is None and len(tried) == 3
    with pytest.raises(ConfigError) as info:
        ModularModelConfig.from_toml("prodution/tpu_v4.toml", env=None)
    (d,) = info.value.diagnostics
    assert d.code == "P001" and "tried" in d.help and "prodution" in d.help


# ------------------------------------------------------------------- layering and precedence


def test_later_files_win_key_by_key_and_provenance_names_the_file(tmp_path) -> None:
    base = write(tmp_path, "base.toml", "[model]\nhidden_size = 1024\nnum_layers = 24\n"
                                        "[vector_quantization]\ncodes = 64\n")
    overlay = write(tmp_path, "overlay.toml", "[tpu_v6_features]\nvq_codes = 128\n"
                                              "[model]\nnum_layers = 36\n")
    c = resolve_config([base, overlay], env=None).config
    assert (c.hidden_size, c.num_layers, c.vq_codes) == (1024, 36, 128)
    assert c.provenance("hidden_size").span.source.name == base
    assert c.provenance("num_layers").span.source.name == overlay


def test_precedence_file_env_keyword_set(tmp_path) -> None:
    path = write(tmp_path, "c.toml", "[vector_quantization]\ncodes = 64\nadaptive_threshold = 0.1\n"
                                     "[sparsity]\nratio = 0.1\n[performance]\ncompile_mode = \"aggressive\"\n")
    env = {"CAPIBARA_VQ_CODES": "128", "CAPIBARA_VQ_ADAPTIVE_THRESHOLD": "0.2",
           "CAPIBARA_SPARSITY_RATIO": "0.2"}
    c = resolve_config([path], env=env, keywords={"vq_adaptive_threshold": 0.3,
                                                  "sparsity_ratio": 0.3},
                       overrides=["sparsity.ratio=0.4"]).config
    assert c.compile_mode == "aggressive" and c.provenance("compile_mode").kind == "file"
    assert c.vq_codes == 128 and c.provenance("vq_codes").kind == "env"
    assert c.vq_adaptive_threshold == 0.3 and c.provenance("vq_adaptive_threshold").kind == "keyword"
    assert c.sparsity_ratio == 0.4 and c.provenance("sparsity_ratio").kind == "set"


def test_errors_from_every_source_arrive_together(tmp_path) -> None:
    bad = write(tmp_path, "bad.toml", "[vector_quantization]\ncodes = 96\n[modle]\nx = 1\n")
    broken = write(tmp_path, "broken.toml", "[model\n")
    with pytest.raises(ConfigError) as info:
        resolve_config([bad, broken, tmp_path / "missing.toml"],
                       env={"CAPIBARA_USE_VQ": "maybe", "CAPIBARA_XYZ": "1"},
                       keywords={"hiden_size": 1}, overrides=["sparsity.ratio=2.0"])
    codes = [d.code for d in info.value.diagnostics]
    assert codes[:2] == ["S203", "S101"] and codes[3] == "P001"
    assert codes[4:] == ["S201", "S104", "S103", "S202"]
    assert codes[2].startswith("P")


def test_legacy_file_is_rewritten_with_provenance_at_the_old_keys(tmp_path) -> None:
    path = write(tmp_path, "v2.toml", 'model_size = "600m"\nuse_quantum = true\ndevice = "tpu_v4"\n')
    resolved = resolve_config([path], env=None)
    c = resolved.config
    assert (c.hidden_size, c.num_layers, c.num_heads, c.model_name) == (2048, 12, 32, "capibara_600m")
    assert (c.use_vq, c.device, c.use_tpu_v4_optimizations) == (True, "tpu_v4", True)
    assert c.vq_embedding_dim == 2048
    p = c.provenance("hidden_size")
    assert p.kind == "legacy" and p.span.text == '"600m"' and "model_size" in p.detail
    assert {d.code for d in resolved.diagnostics} == {"L001", "L002", "L003"}
    assert not any(d.is_error for d in resolved.diagnostics)


def test_alias_conflict_in_one_file_has_two_labels(tmp_path) -> None:
    path = write(tmp_path, "c.toml", "[performance]\ncache_optimized = true\n"
                                     "cache_compiled_functions = false\n")
    with pytest.raises(ConfigError) as info:
        resolve_config([path], env=None)
    (d,) = info.value.diagnostics
    assert d.code == "S301" and [lab.span.text for lab in d.labels] == ["true", "false"]


def test_equal_alias_spellings_are_accepted(tmp_path) -> None:
    path = write(tmp_path, "c.toml", "[vector_quantization]\ncodes = 128\n"
                                     "[tpu_v6_features]\nvq_codes = 128\nenabled = true\nadaptive_ml = true\n")
    c = resolve_config([path], env=None).config
    assert c.vq_codes == 128 and c.provenance("vq_codes").detail == "[vector_quantization] codes"


@pytest.mark.parametrize("text, code", [
    ("hidden_size = 1024\n", "S105"),
    ("model = 3\n", "S105"),
    ("[model.extra]\nx = 1\n", "S102"),
    ("[[model]]\nhidden_size = 1\n", "S105"),
    ("[zzz]\n", "S101"),
    ("zzz = 1\n", "S101"),
])
def test_layout_mistakes(tmp_path, text, code) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config([write(tmp_path, "c.toml", text)], env=None)
    assert [d.code for d in info.value.diagnostics] == [code]
    assert info.value.diagnostics[0].span is not None


def test_from_toml_applies_env_and_overrides_and_warns(tmp_path) -> None:
    path = write(tmp_path, "c.toml", "[vector_quantization]\ncodes = 64\n")
    with pytest.warns(UserWarning, match="CAPIBARA_VQ_CODE"):
        c = ModularModelConfig.from_toml(path, env={"CAPIBARA_VQ_CODE": "1"}, sparsity_ratio=0.5)
    assert c.sparsity_ratio == 0.5 and c.vq_codes == 64


# ------------------------------------------------------------------- properties


def _resolve_text(text: str, **kwargs):
    with tempfile.TemporaryDirectory() as tmp:
        return resolve_config([write(Path(tmp), "c.toml", text)], **kwargs)


@given(configs())
def test_to_toml_from_toml_round_trip(kwargs) -> None:
    config = ModularModelConfig(**kwargs)
    back = _resolve_text(config.to_toml(), env=None).config
    assert back == config
    assert back.explicit_fields == config.explicit_fields
    full = _resolve_text(config.to_toml(full=True), env=None).config
    assert full == config


def _corruptions(field: Field) -> list[tuple[str, str]]:
    """(bad TOML value text, expected code) for one field."""
    kind = field.type.inner if isinstance(field.type, (Optional, AutoOr)) else field.type
    bad = [("{}", "S201")] if not isinstance(kind, Bool) else [('"yes"', "S201")]
    if isinstance(kind, (Int, Float)) and kind.minimum is not None:
        bad.append((toml_value(kind.minimum - 1), "S202"))
    if isinstance(kind, (Int, Float)) and kind.maximum is not None:
        bad.append((toml_value(kind.maximum + 1), "S202"))
    if isinstance(kind, (Choice, Subset)):
        bad.append(('"zzz"' if isinstance(kind, Choice) else '["zzz"]', "S203"))
    if isinstance(kind, IntChoice):
        bad.append(("3", "S203"))
    if isinstance(kind, IntList):
        bad.append(("[0]", "S202"))
    if isinstance(kind, Text) and kind.pattern != r"[\s\S]+":
        bad.append(('"?"', "S204"))
    return bad


@given(configs(), st.data())
def test_corrupting_one_field_gives_its_code_at_its_span(kwargs, data) -> None:
    config = ModularModelConfig(**kwargs)
    text = config.to_toml(full=True)
    doc = toml.parse(text)
    field = data.draw(st.sampled_from(FIELDS))
    bad, code = data.draw(st.sampled_from(_corruptions(field)))
    span = doc.value_span((field.section, field.key))
    corrupted = text[:span.start] + bad + text[span.end:]
    with pytest.raises(ConfigError) as info:
        _resolve_text(corrupted, env=None)
    (d,) = info.value.diagnostics
    assert d.code == code
    start = d.span.start
    assert span.start <= start and d.span.end <= span.start + len(bad)
    if bad not in ("[0]", '["zzz"]'):  # list problems point at the element inside
        assert (start, d.span.end) == (span.start, span.start + len(bad))


ENV_FIELDS = sorted({f.name for f in FIELDS if f.env})


def _env_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


@given(st.sampled_from(ENV_FIELDS), st.data())
def test_precedence_laws_env_beats_file_and_set_beats_env(name, data) -> None:
    field = FIELD_BY_NAME[name]
    a, b, c = (field.type.check(data.draw(field_values(field)), name) for _ in range(3))
    text = f"[{field.section}]\n{field.key} = {toml_value(field.type.to_toml(a))}\n"
    env = {field.env[-1]: _env_text(b)}
    override = f"{field.path}={toml_value(field.type.to_toml(c))}"
    assert getattr(_resolve_text(text, env=None).config, name) == a
    assert getattr(_resolve_text(text, env=env).config, name) == b
    with_set = _resolve_text(text, env=env, overrides=[override]).config
    assert getattr(with_set, name) == c and with_set.provenance(name).kind == "set"
