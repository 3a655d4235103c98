"""Nothing a user controls reaches the terminal raw: keys, values, paths, env values,
arguments all pass through `capibara.diagnostics.escape` before they are printed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from capibara.diagnostics import Diagnostic, Source, display_width, escape, render, to_json

#: retitle the terminal, ring, clear the screen; a C1 CSI; a right-to-left override
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"
#: the same as a TOML basic string spells it
HOSTILE_TOML = "\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u202e"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def assert_safe(text: str) -> None:
    for char in RAW:
        assert char not in text, (char, text)


def test_escape_shows_controls_as_pictures_and_escapes() -> None:
    assert escape(HOSTILE) == "␛]0;pwned␇␛[2J\\x9b31m\\u202e"
    assert escape("tab\there\nnew") == "tab␉here␊new"
    assert escape("a\nb\x1b", keep_newlines=True) == "a\nb␛"
    assert escape("漢字 😀 ok") == "漢字 😀 ok"
    assert escape("bad \udcff byte") == "bad \\udcff byte"


@pytest.mark.parametrize("text", [
    f'[model]\n"{HOSTILE_TOML}" = 1\n',                   # unknown key
    f'["{HOSTILE_TOML}"]\nx = 1\n',                        # unknown section
    f'"{HOSTILE_TOML}" = 1\n',                             # key outside any section
    f'[model]\nhidden_size = "{HOSTILE_TOML}"\n',         # wrong type, value in the message
    f'[sparsity]\nmethod = "{HOSTILE_TOML}"\n',           # not one of the choices
    f'model_size = "{HOSTILE_TOML}"\n',                    # legacy value
    f'[model]\nmodel_name = "a{HOSTILE}"\n',               # raw control characters in a string
    f'[model]\n"{HOSTILE_TOML}" = 1\n"{HOSTILE_TOML}" = 2\n',  # key defined twice
])
def test_config_diagnostics_never_print_controls_raw(tmp_path: Path, run, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    for fmt in ("human", "json"):
        status, out = run("check", path, "--message-format", fmt)
        assert status == 1, out
        assert_safe(out)


def test_an_unknown_quoted_key_shows_its_controls_as_pictures(tmp_path: Path, run) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[model]\n"{HOSTILE_TOML}" = 1\n')
    status, out = run("check", path)
    assert "error[S102]: unknown key `␛]0;pwned␇␛[2J\\x9b31m\\u202e` in `[model]`" in out


def test_a_hostile_file_name_is_escaped_everywhere(tmp_path: Path, run) -> None:
    bad = tmp_path / f"x{HOSTILE}.toml"
    assert_safe(run("check", bad)[1])                      # not found
    bad.write_text("[model]\nhidden_size = \n")
    status, out = run("check", bad)                        # syntax error: `--> file:line:col`
    assert status == 1 and f"--> {tmp_path}/x␛]0;pwned␇" in out
    assert_safe(out)
    bad.write_text('[model]\nhidden_size = 64\nnum_heads = 4\n')
    assert_safe(run("check", bad)[1])                      # `ok: file`
    legacy = tmp_path / f"v2{HOSTILE}.toml"
    legacy.write_text('use_quantum = true\n')
    status, out = run("migrate", "--write", legacy)        # `migrated file`
    assert status == 0 and "migrated" in out
    assert_safe(out)
    status, out = run("compile", bad, "--target", "cpu", "-o", tmp_path / f"p{HOSTILE}.json")
    assert status == 0, out
    assert_safe(out)                                       # `compiled file → plan`


def test_set_and_runtime_arguments_are_escaped(tmp_path: Path, run) -> None:
    for argv in (["--set", f"{HOSTILE}=1"], ["--set", f"model.{HOSTILE}=1"],
                 ["--set", f"{HOSTILE}.x=1"], ["--set", f"model.hidden_size={HOSTILE}"],
                 ["--set", f'model.hidden_size="{HOSTILE_TOML}"'], ["--runtime", f"{HOSTILE}=1"],
                 ["--set", HOSTILE]):
        status, out = run("check", "development/development.toml", *argv)
        assert status == 1, (argv, out)
        assert_safe(out)


def test_environment_names_and_values_are_escaped(monkeypatch, run) -> None:
    from capibara.compiler import check as pipeline

    monkeypatch.setattr(pipeline, "ENVIRON", {
        "CAPIBARA_VQ_CODES": HOSTILE, f"CAPIBARA_{HOSTILE}": "1"})
    status, out = run("check", "development/development.toml")
    assert status == 1 and "error[S201]" in out and "warning[S104]" in out
    assert_safe(out)


def test_other_verbs_escape_what_they_echo(tmp_path: Path, run) -> None:
    assert_safe(run("explain", HOSTILE)[1])
    assert_safe(run("compile", "development/development.toml", "--print-after", HOSTILE)[1])
    status, out = run("compile", "development/development.toml", "--target", "cpu",
                      "-o", tmp_path / "d.plan.json")
    assert status == 0, out
    status, out = run("explain", tmp_path / "d.plan.json", f"model.{HOSTILE}")
    assert status == 2
    assert_safe(out)


def test_json_lines_escape_del_c1_bidi_and_surrogates() -> None:
    source = Source(f"f{HOSTILE}\udcff\x7f", "x = 1\n")
    line = to_json(Diagnostic.error("P101", f"k{HOSTILE}\x7f", source.span(0, 1)))
    assert_safe(line)
    assert "\x7f" not in line and "\udcff" not in line
    assert json.loads(line)["message"] == f"k{HOSTILE}\x7f"


def test_carets_follow_display_width_after_wide_characters() -> None:
    for prefix in ("名前", "😀😀", "ｆｕｌｌ", "e\u0301"):
        text = f'k = "{prefix}" x\n'
        source = Source("c.toml", text)
        start = text.index("x")
        rendered = render(Diagnostic.error("P101", "m", source.span(start, start + 1), label="here"))
        line, carets = rendered.splitlines()[3:5]
        column = display_width(line.split(" | ", 1)[1][: line.split(" | ", 1)[1].index("x")])
        assert carets.split(" | ", 1)[1].index("^") == column, rendered
    assert display_width("名前😀e\u0301a") == 8


_UNSAFE = {*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), "\u202e", "\u2066"} - {"\n"}


@given(text=st.text(), name=st.text(), message=st.text(), note=st.text(),
       start=st.integers(0, 40), length=st.integers(0, 5))
def test_no_rendering_lets_a_control_character_through(text, name, message, note, start,
                                                       length) -> None:
    source = Source(name, text)
    start = min(start, len(text))
    span = source.span(start, min(len(text), start + length))
    diagnostic = Diagnostic.error("P101", message, span, label=note, notes=[note], help=note,
                                  labels=[])
    for shown in (render(diagnostic), str(diagnostic), to_json(diagnostic)):
        assert not _UNSAFE & set(shown), shown
