"""`capibara lsp` driven as an editor drives it: a real client over stdio.

One server serves the module; the workspace is a temporary folder with a
``pyproject.toml`` naming a target and a stack, and the golden cases of
tests/golden (whose repository has no ``[tool.capibara]``).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path

from capibara.cli import main as cli
from capibara.config.fields import FIELDS
from capibara.config.fieldtypes import format_value
from capibara.config.legacy import migrate_toml
from capibara.lsp.positions import units
from .editor import Editor, apply

ROOT = Path(__file__).resolve().parents[2]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


#: The golden cases an editor can hold (one that is not UTF-8 never reaches the server as text).
GOLDEN = [p for p in sorted((ROOT / "tests" / "golden").glob("*.toml")) if _text(p) is not None]
PRODUCTION = ROOT / "configs" / "production" / "tpu_v4.toml"

PYPROJECT = """\
[project]
name = "models"

[tool.capibara]
target = "tpu_v4-32"
layers = [["base.toml", "top.toml"]]
"""

BASE = """\
[model]
hidden_size = 1024
num_heads = 16
num_layers = 12
"""

TOP = """\
[model]
hidden_size = 2048
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "base.toml").write_text(BASE)
    (root / "top.toml").write_text(TOP)
    shutil.copy(PRODUCTION, root / "tpu_v4.toml")
    return root


@pytest.fixture(scope="module")
def editor(workspace):
    running = Editor(workspace)
    yield running
    running.close()


def check_json(*args: str) -> list[dict]:
    out = io.StringIO()
    cli(["check", "--no-env", "--message-format", "json", *args], out=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def expected_range(text: str, record: dict) -> types.Range:
    """The protocol range of a JSON diagnostic (1-based character columns) in UTF-16."""
    lines = text.split("\n")

    def at(line: int, column: int) -> types.Position:
        return types.Position(line - 1, units(lines[line - 1][: column - 1]))

    return types.Range(at(record["line"], record["column"]),
                       at(record["end_line"], record["end_column"]))


def assert_same_as_check(shown: list[types.Diagnostic], records: list[dict], path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(shown) == len(records), (path.name, shown, records)
    for diagnostic, record in zip(shown, records):
        assert diagnostic.code == record["code"]
        assert diagnostic.message == record["message"]
        assert diagnostic.severity == (types.DiagnosticSeverity.Error if record["severity"] == "error"
                                       else types.DiagnosticSeverity.Warning)
        if record["file"] == str(path):
            assert diagnostic.range == expected_range(text, record), (path.name, record)
        related = [r.message for r in diagnostic.related_information or []]
        if record["help"]:
            assert f"help: {record['help']}" in related
        secondary = [lab for lab in record["labels"]
                     if (lab["line"], lab["column"]) != (record["line"], record["column"])]
        assert all(lab["message"] in related for lab in secondary if lab["message"])


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_diagnostics_are_those_of_check(editor, path) -> None:
    uri = editor.open(path)
    try:
        assert_same_as_check(editor.published(uri), check_json(str(path)), path)
    finally:
        editor.close_document(uri)


def test_target_from_pyproject_and_the_mesh_fix(editor, workspace) -> None:
    path = workspace / "tpu_v4.toml"
    uri = editor.open(path)
    shown = editor.published(uri)
    assert_same_as_check(shown, check_json("--target", "tpu_v4-32", str(path)), path)
    (mesh,) = [d for d in shown if d.code == "H017"]
    assert (mesh.range.start.line, mesh.range.start.character, mesh.range.end.character) == (16, 13, 19)
    actions = editor.actions(uri, mesh)
    fix = next(a for a in actions if a.kind == types.CodeActionKind.QuickFix)
    assert fix.title == "set `tpu_v4_optimizations.mesh_shape = [4, 4]`" and fix.is_preferred
    (edits,) = fix.edit.changes.values()
    fixed = apply(path.read_text(), edits)
    assert "mesh_shape = [4, 4]\n" in fixed
    editor.replace_all(uri, fixed)
    scratch = workspace / "scratch" / "fixed.toml"
    scratch.parent.mkdir(exist_ok=True)
    scratch.write_text(fixed)
    after = [d.code for d in editor.published(uri)]
    assert "H017" not in after
    assert after == [r["code"] for r in check_json("--target", "tpu_v4-32", str(scratch))]
    explain = next(a for a in actions if a.command is not None)
    assert explain.title == "explain H017"
    text = editor.execute(explain.command)
    assert text.startswith("H017") or "H017" in text.splitlines()[0]
    message = editor.wait_message(lambda m: m.message == text)
    assert message.type == types.MessageType.Info
    editor.close_document(uri)


def test_edit_recheck_and_close(editor, workspace) -> None:
    path = workspace / "tpu_v4.toml"
    uri = editor.open(path)
    editor.published(uri)
    # `hidden_size = 768` -> `hidden_size = 76`: 12 heads no longer divide it
    editor.change(uri, (3, 16), (3, 17), "")
    codes = [d.code for d in editor.published(uri)]
    assert "V001" in codes
    expected = check_json_text(workspace, path.read_text().replace("= 768\n", "= 76\n", 1))
    assert codes == expected
    editor.change(uri, (3, 16), (3, 16), "8")
    assert "H017" in [d.code for d in editor.published(uri)]
    editor.close_document(uri)
    with editor.changed:
        assert editor.changed.wait_for(lambda: not editor.diagnostics[uri][1], 10)


def check_json_text(workspace: Path, text: str) -> list[str]:
    scratch = workspace / "scratch" / "edited.toml"
    scratch.parent.mkdir(exist_ok=True)
    scratch.write_text(text)
    return [r["code"] for r in check_json("--target", "tpu_v4-32", str(scratch))]


def test_positions_count_utf16_code_units(editor, workspace) -> None:
    text = ('# 🦫 capibara, año 2026\n'
            'model = { model_name = "🦫 ñandú 🦫", hidden_size = "big" }\n')
    path = workspace / "emoji.toml"
    path.write_text(text)
    uri = editor.open(path)
    (wrong,) = editor.published(uri)
    assert wrong.code == "S201"
    line = text.splitlines()[1]
    start = line.index('"big"')
    # each 🦫 is two UTF-16 code units, ñ and ú one each
    assert wrong.range.start == types.Position(1, start + 2)
    assert wrong.range.end == types.Position(1, start + 2 + 5)
    assert_same_as_check([wrong], check_json(str(path)), path)
    hover = editor.hover(uri, 1, start + 2 + 2)
    assert "hidden_size" in hover.contents.value and hover.range == wrong.range
    editor.close_document(uri)


def test_hover_every_field(editor, workspace) -> None:
    lines: list[str] = []
    where = {}
    for section in dict.fromkeys(f.section for f in FIELDS):
        lines.append(f"[{section}]")
        for field in (f for f in FIELDS if f.section == section):
            value = field.default if field.default is not None else 1
            where[field.name] = len(lines)
            lines.append(f"{field.key} = {format_value(field.type.to_toml(value))}")
    path = workspace / "every.toml"
    path.write_text("\n".join(lines) + "\n")
    uri = editor.open(path)
    editor.published(uri)
    assert len(where) == len(FIELDS)
    for field in FIELDS:
        key = editor.hover(uri, where[field.name], 1)
        assert key is not None and field.doc in key.contents.value, field.name
        assert field.type.describe() in key.contents.value
        value = editor.hover(uri, where[field.name], len(field.key) + 4)
        assert value is not None and field.doc in value.contents.value, field.name
    section = editor.hover(uri, 0, 2)
    assert "**[model]**" in section.contents.value
    editor.close_document(uri)


def test_hover_shows_the_file_that_wins_and_definition_goes_there(editor, workspace) -> None:
    base, top = workspace / "base.toml", workspace / "top.toml"
    uri = editor.open(base)
    assert editor.published(uri) == []
    hover = editor.hover(uri, 1, 2)
    assert "effective value `2048`" in hover.contents.value
    assert f"{top}:2:15" in hover.contents.value
    target = editor.definition(uri, 1, 2)
    assert target.uri == from_fs_path(str(top))
    assert (target.range.start.line, target.range.start.character) == (1, 14)
    # a key no file above overrides: its own place, and no provenance line
    assert "effective value" not in editor.hover(uri, 2, 2).contents.value
    assert editor.definition(uri, 2, 2).uri == uri
    # the top file is checked with the base below it: 2048 / 16 heads is fine,
    # 2047 is not, and the base's heads are named as the reason
    top_uri = editor.open(top)
    assert editor.published(top_uri) == []
    editor.change(top_uri, (1, 17), (1, 18), "7")
    (odd,) = [d for d in editor.published(top_uri) if d.severity == types.DiagnosticSeverity.Error]
    related = [r.location.uri for r in odd.related_information or []]
    assert from_fs_path(str(base)) in related
    # an unsaved edit of the base reaches the open top file
    editor.change(uri, (2, 12), (2, 14), "1")
    with editor.changed:
        assert editor.changed.wait_for(
            lambda: all(d.severity != types.DiagnosticSeverity.Error
                        for d in editor.diagnostics[top_uri][1]), 10)
    editor.close_document(top_uri)
    editor.close_document(uri)


def test_completion(editor, workspace) -> None:
    path = workspace / "typing.toml"
    uri = editor.open(path, "[sp\n")
    sections = {i.label: i for i in editor.complete(uri, 0, 3)}
    assert {"model", "sparsity", "tpu_v6_features"} <= set(sections)
    assert sections["tpu_v6_features"].label_details.description == "alias section"
    assert sections["sparsity"].text_edit.new_text == "sparsity"
    editor.replace_all(uri, "[performance]\ncompile_mode = \"default\"\n\n")
    keys = {i.label: i for i in editor.complete(uri, 2, 0)}
    assert "compile_mode" not in keys  # already set
    assert keys["cache_optimized"].label_details.description == \
        "alias of [performance] cache_compiled_functions"
    assert "JIT compilation" in keys["enable_jit"].documentation.value
    editor.replace_all(uri, "[sparsity]\nmethod = \n[hardware]\nfallback_cpu = t\n")
    methods = {i.label: i for i in editor.complete(uri, 1, 9)}
    assert list(methods) == ['"mor"', '"topk"', '"magnitude"', '"mixture_of_rookies"']
    assert methods['"mixture_of_rookies"'].label_details.description == 'alias of "mor"'
    booleans = editor.complete(uri, 3, 16)
    assert [i.label for i in booleans] == ["true", "false"]
    assert booleans[0].text_edit.range.start == types.Position(3, 15)
    editor.close_document(uri)


def test_completion_of_settings_in_pyproject(editor, workspace) -> None:
    uri = editor.open(workspace / "pyproject.toml", PYPROJECT.replace(
        'target = "tpu_v4-32"', "target = "))
    names = [i.label for i in editor.complete(uri, 4, 9)]
    assert '"tpu_v4-32"' in names and '"gpu-h100"' in names
    editor.close_document(uri)


def test_fix_misspelled_key_and_legacy_file(editor, workspace) -> None:
    path = workspace / "misspelled.toml"
    text = "[model]\nhiden_size = 1024\n"
    uri = editor.open(path, text)
    (unknown,) = editor.published(uri)
    assert unknown.code == "S102"
    fix = editor.actions(uri, unknown)[0]
    assert fix.title == "replace with `hidden_size`"
    text = apply(text, fix.edit.changes[uri])
    assert text == "[model]\nhidden_size = 1024\n"
    editor.replace_all(uri, text)
    assert editor.published(uri) == []
    editor.close_document(uri)

    legacy = ROOT / "configs" / "legacy" / "v2_tpu_600m.toml"
    path = workspace / "v2.toml"
    shutil.copy(legacy, path)
    uri = editor.open(path)
    warnings = [d for d in editor.published(uri) if d.code in ("L001", "L002", "L003")]
    assert warnings
    migrate = editor.actions(uri, warnings[0])[0]
    migrated = apply(path.read_text(), migrate.edit.changes[uri])
    assert migrated == migrate_toml(path.read_text())[0]
    editor.close_document(uri)


def test_symbols(editor, workspace) -> None:
    uri = editor.open(workspace / "tpu_v4.toml")
    symbols = editor.symbols(uri)
    assert [s.name for s in symbols] == ["model", "jax_config", "tpu_v4_optimizations",
                                         "vector_quantization", "sparsity", "performance"]
    assert [c.name for c in symbols[0].children][:2] == ["model_name", "hidden_size"]
    cache = next(c for c in symbols[-1].children if c.name == "cache_optimized")
    assert cache.detail == "cache_compiled_functions"
    editor.close_document(uri)


def test_bad_settings_are_reported_and_ignored(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.capibara]\ntarget = 32\n')
    (tmp_path / "a.toml").write_text("[model]\nhidden_size = 1024\n")
    other = Editor(tmp_path)
    try:
        uri = other.open(tmp_path / "a.toml")
        assert other.published(uri) == []
        shown = other.wait_message(lambda m: "tool.capibara" in m.message)
        assert shown.type == types.MessageType.Warning
        assert "pyproject.toml:2:1: `target` must be a target name" in shown.message
    finally:
        other.close()


def test_saved_settings_apply_to_open_files(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.capibara]\ntarget = "tpu_v4-32"\n')
    shutil.copy(PRODUCTION, tmp_path / "tpu_v4.toml")
    other = Editor(tmp_path)
    try:
        uri = other.open(tmp_path / "tpu_v4.toml")
        assert "H017" in [d.code for d in other.published(uri)]
        settings = tmp_path / "pyproject.toml"
        settings.write_text('[tool.capibara]\ntarget = "tpu_v4-64"\n')  # 32 chips: [4, 8] fits
        with other.changed:
            other.diagnostics.pop(uri)
        other.save(from_fs_path(str(settings)))
        assert "H017" not in [d.code for d in other.published(uri)]
    finally:
        other.close()
