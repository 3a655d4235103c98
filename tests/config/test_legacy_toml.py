"""The legacy-rewrite stage for TOML files and `capibara migrate` (span edits, atomic write)."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from capibara import toml
from capibara.config import ConfigMigrator
from capibara.diagnostics import ConfigError, render
from capibara.config.legacy import (LEGACY_KEYS, find_legacy_paths, migrate_toml, rewrite_document,
                             write_migrated)
from capibara.config.model_config import ConfigWarning
from capibara.config.sources import resolve_config

ROOT = Path(__file__).resolve().parents[2]
V3_CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.toml") if "legacy" not in p.parts)
LEGACY_CONFIGS = sorted((ROOT / "configs" / "legacy").glob("*.toml"))


def rewrite(text: str, name: str = "v2.toml"):
    return rewrite_document(toml.parse(text, name))


# --------------------------------------------------------------------------- the rewrite stage


@pytest.mark.parametrize("path", V3_CONFIGS, ids=lambda p: p.name)
def test_a_v3_document_passes_through_untouched(path: Path) -> None:
    doc = toml.parse_file(path)
    result = rewrite_document(doc)
    assert result.value is doc.value  # not even copied: this runs on every compile
    assert result.origin == {} and result.diagnostics == ()


def test_seed_legacy_keys_move_to_their_v3_homes() -> None:
    text = 'model_size = "600m"\nuse_quantum = true\ndevice = "tpu_v4"\n'
    result = rewrite(text)
    assert result.value == {
        "model": {"hidden_size": 2048, "num_layers": 12, "num_heads": 32,
                  "model_name": "capibara_600m"},
        "vector_quantization": {"enabled": True},
        "hardware": {"device": "tpu_v4"},
        "tpu_v4_optimizations": {"enabled": True},
    }
    assert result.origin[("model", "num_heads")] == ("model_size",)
    assert result.origin[("tpu_v4_optimizations", "enabled")] == ("device",)
    assert [d.code for d in result.diagnostics] == ["L001", "L002", "L003"]
    assert all(not d.is_error for d in result.diagnostics)


def test_each_warning_points_at_the_old_key_with_the_new_spelling() -> None:
    text = '[model]\nvocab_size = 50000\nuse_quantum = false\n'
    [warning] = rewrite(text).diagnostics
    assert (warning.span.line, warning.span.column, warning.span.text) == (3, 1, "use_quantum")
    assert warning.help == "write `enabled = false` under `[vector_quantization]` instead"
    assert warning.message == "`[model] use_quantum` is the v2 name of `use_vq`"


def test_the_document_is_not_mutated() -> None:
    doc = toml.parse('use_quantum = true\n[model]\nhidden_size = 512\n', "v2.toml")
    before = repr(doc.value)
    rewrite_document(doc)
    assert repr(doc.value) == before


def test_explicit_v3_keys_win_over_implied_ones() -> None:
    text = 'model_size = "600m"\ndevice = "gpu"\n[model]\nnum_layers = 24\n' \
           '[tpu_v4_optimizations]\nenabled = true\n'
    value = rewrite(text).value
    assert value["model"] == {"num_layers": 24, "hidden_size": 2048, "num_heads": 32,
                              "model_name": "capibara_600m"}
    assert value["tpu_v4_optimizations"] == {"enabled": True}


def test_v2_device_names_are_rewritten_in_place_in_hardware() -> None:
    result = rewrite('[hardware]\ndevice = "CUDA"\n')
    assert result.value["hardware"] == {"device": "gpu"}
    [warning] = result.diagnostics
    assert warning.code == "L003" and warning.span.text == '"CUDA"'
    assert rewrite('[hardware]\ndevice = "gpu"\n').diagnostics == ()


@pytest.mark.parametrize("text, code, spanned", [
    ('model_size = "650m"\n', "L010", '"650m"'),
    ('model_size = 600\n', "L011", "600"),
    ('use_quantum = "yes"\n', "L011", '"yes"'),
    ('device = "tpu_v5"\n', "L011", '"tpu_v5"'),
    ('use_quantum = true\n[vector_quantization]\nenabled = false\n', "L012", "true"),
    ('device = "cpu"\n[hardware]\ndevice = "cuda"\n', "L012", '"cuda"'),
])
def test_unusable_legacy_values_are_errors_at_the_value(text: str, code: str, spanned: str) -> None:
    errors = [d for d in rewrite(text).diagnostics if d.is_error]
    assert [e.code for e in errors] == [code]
    assert errors[0].span.text == spanned


def test_a_contradiction_is_reported_once_with_both_places() -> None:
    result = rewrite('use_quantum = true\n[vector_quantization]\nenabled = false\n')
    [error] = result.diagnostics
    assert [label.span.text for label in error.labels] == ["true", "false"]
    assert "`use_quantum` is the v2 spelling of `[vector_quantization] enabled`" in error.notes


def test_legacy_keys_are_found_only_where_v2_kept_them() -> None:
    value = {"model_size": "1", "model": {"device": "x"}, "hardware": {"device": "tpu"},
             "training": {"use_quantum": True}}
    assert find_legacy_paths(value) == [("model_size",), ("model", "device"), ("hardware", "device")]


# --------------------------------------------------------------------------- through the schema stage


def test_a_legacy_file_resolves_to_what_the_dict_migrator_gives() -> None:
    resolved = resolve_config([ROOT / "configs/legacy/v2_tpu_600m.toml"], env=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        migrated = ConfigMigrator().migrate_from_legacy(
            {"model_size": "600m", "use_quantum": True, "device": "tpu_v4"})
    assert resolved.config == migrated
    assert resolved.config.explicit_fields == migrated.explicit_fields
    provenance = resolved.config.provenance("num_heads")
    assert provenance.kind == "legacy" and provenance.span.text == '"600m"'
    assert [d.code for d in resolved.diagnostics] == ["L001", "L002", "L003"]


@pytest.mark.parametrize("path", LEGACY_CONFIGS, ids=lambda p: p.name)
def test_bundled_legacy_configs_resolve_and_validate(path: Path) -> None:
    from capibara.config.validate import get_validation_errors

    resolved = resolve_config([path], env=None)
    assert {d.code[0] for d in resolved.diagnostics} == {"L"}
    assert not any(d.is_error for d in get_validation_errors(resolved.config))


# --------------------------------------------------------------------------- capibara migrate

SEED_FILE = '''# CapibaraGPT v2.x
model_size = "600m"
use_quantum = true  # será migrado a use_vq
device = "tpu"

[model]
vocab_size = 50000  # keep me

[hardware]
fallback_cpu = true
'''


def test_migrate_keeps_untouched_lines_and_moves_comments() -> None:
    new, diagnostics = migrate_toml(SEED_FILE, "seed.toml")
    assert [d.code for d in diagnostics] == ["L001", "L002", "L003"]
    assert new == '''# CapibaraGPT v2.x

[model]
vocab_size = 50000  # keep me
hidden_size = 2048
num_layers = 12
num_heads = 32
model_name = "capibara_600m"

[hardware]
fallback_cpu = true
device = "tpu_v4"

[vector_quantization]
enabled = true  # será migrado a use_vq

[tpu_v4_optimizations]
enabled = true
'''


def test_migrated_text_is_v3_and_migrating_again_changes_nothing() -> None:
    new, _ = migrate_toml(SEED_FILE, "seed.toml")
    assert find_legacy_paths(toml.loads(new)) == []
    assert migrate_toml(new, "seed.toml") == (new, ())


@pytest.mark.parametrize("text, expected", [
    ('model = { model_size = "125m", device = "gpu" }\nhardware = {fallback_cpu = false}\n',
     'model = { hidden_size = 768, num_layers = 12, num_heads = 12, model_name = "capibara_125m" }\n'
     'hardware = { fallback_cpu = false, device = "gpu" }\n\n[tpu_v4_optimizations]\nenabled = false\n'),
    ('model.model_size = "350m"\nmodel.vocab_size = 1000\n[hardware]\ndevice = "cuda"\n',
     'model.vocab_size = 1000\nmodel.hidden_size = 1024\nmodel.num_layers = 24\n'
     'model.num_heads = 16\nmodel.model_name = "capibara_350m"\n[hardware]\ndevice = "gpu"\n\n'
     '[tpu_v4_optimizations]\nenabled = false\n'),
    ('[model]\r\nuse_quantum = false\r\n\r\n[vector_quantization]\r\ncodes = 64\r\n',
     '[model]\r\n\r\n[vector_quantization]\r\ncodes = 64\r\nenabled = false\r\n'),
    ('use_quantum = true', '[vector_quantization]\nenabled = true\n'),
])
def test_migrate_handles_inline_tables_dotted_keys_and_crlf(text: str, expected: str) -> None:
    new, _ = migrate_toml(text, "v2.toml")
    assert new == expected


def test_migrate_refuses_to_write_a_contradiction() -> None:
    with pytest.raises(ConfigError, match="L012"):
        migrate_toml('use_quantum = true\n[vector_quantization]\nenabled = false\n')


def test_migrate_of_a_v3_file_is_the_identity() -> None:
    for path in V3_CONFIGS:
        text = path.read_text()
        assert migrate_toml(text, str(path)) == (text, ())


# Documents in every layout a v2 file may use: the legacy keys at the top level, in a
# [model] header table, as dotted keys or in an inline table, among v3 keys and comments.
_LEGACY_VALUES = {"model_size": st.sampled_from(['"125m"', '"600M"', '"1.3b"', '"7b"']),
                  "use_quantum": st.sampled_from(["true", "false"]),
                  "device": st.sampled_from(['"tpu"', '"tpu_v4"', '"cuda"', '"cpu"', '"auto"'])}


@st.composite
def v2_documents(draw) -> str:
    keys = draw(st.lists(st.sampled_from(sorted(LEGACY_KEYS)), min_size=1, max_size=3,
                         unique=True))
    items = [(key, draw(_LEGACY_VALUES[key])) for key in keys]
    layout = draw(st.sampled_from(["top", "header", "dotted", "inline"]))
    comment = draw(st.sampled_from(["", "  # v2"]))
    lines = ["# a v2 file"]
    if layout == "top":
        lines += [f"{k} = {v}{comment}" for k, v in items]
    elif layout == "dotted":
        lines += [f"model.{k} = {v}{comment}" for k, v in items]
    elif layout == "inline":
        lines.append("model = { " + ", ".join(f"{k} = {v}" for k, v in items) + " }")
    extra = draw(st.sampled_from(["", "[sparsity]\nratio = 0.5\n", "[hardware]\nfallback_cpu = true\n",
                                  "[vector_quantization]\ncodes = 128  # keep\n"]))
    if layout == "header":
        lines += ["[model]", "vocab_size = 32000"] + [f"{k} = {v}{comment}" for k, v in items]
    body = "\n".join(lines) + "\n"
    if layout in ("top", "dotted", "inline"):
        return body + "\n" + extra
    return extra + "\n" + body


@given(v2_documents())
def test_migrate_means_what_the_rewrite_means(text: str) -> None:
    new, diagnostics = migrate_toml(text, "v2.toml")
    assert toml.loads(new) == rewrite(text).value
    assert migrate_toml(new, "v2.toml") == (new, ())
    kept = [line for line in text.splitlines()
            if line and not any(key in line for key in LEGACY_KEYS) and "{" not in line]
    assert all(line in new.splitlines() for line in kept)
    assert _resolve_text(text) == _resolve_text(new)


def _resolve_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "c.toml"
        path.write_text(text)
        return resolve_config([path], env=None).config


def test_write_migrated_is_atomic_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text(SEED_FILE)
    os.chmod(path, 0o640)
    changed, diagnostics = write_migrated(path)
    assert changed and [d.code for d in diagnostics] == ["L001", "L002", "L003"]
    assert path.read_text() == migrate_toml(SEED_FILE, str(path))[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.toml"]  # no temporary left
    mtime = path.stat().st_mtime_ns
    assert write_migrated(path) == (False, ())
    assert path.stat().st_mtime_ns == mtime  # a v3 file is not rewritten


def test_write_migrated_leaves_a_bad_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    text = 'model_size = "650m"\n'
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        write_migrated(path)
    assert "L010" in render(caught.value.diagnostics[0])
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]
