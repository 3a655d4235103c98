"""Rendering of diagnostics: source lines as written, carets under the span."""

from __future__ import annotations

import json

from capibara.diagnostics import ConfigError, Diagnostic, Label, Source, render, to_json

TEXT = "[model]\nhidden_size = 96\n\tcodes = \"é\"\n[model]\n"


def test_render_points_at_the_span_with_help() -> None:
    src = Source("cfg.toml", TEXT)
    value = TEXT.index("96")
    d = Diagnostic.error("S203", "`hidden_size` is odd", src.span(value, value + 2),
                         label="expected 64 or 128", help="use 768")
    assert render(d) == (
        "error[S203]: `hidden_size` is odd\n"
        " --> cfg.toml:2:15\n"
        "  |\n"
        "2 | hidden_size = 96\n"
        "  |               ^^ expected 64 or 128\n"
        "  |\n"
        "  = help: use 768")


def test_secondary_labels_and_tabs_and_non_ascii() -> None:
    src = Source("cfg.toml", TEXT)
    second = TEXT.rindex("[model]")
    first = TEXT.index("[model]")
    d = Diagnostic.error("P110", "table `model` is defined twice", src.span(second, second + 7),
                         label="second definition",
                         labels=[Label(src.span(first, first + 7), "first defined here")])
    text = render(d)
    assert "1 | [model]\n  | ------- first defined here" in text
    assert "...\n4 | [model]\n  | ^^^^^^^ second definition" in text
    quote = TEXT.index('"é"')
    d2 = Diagnostic.error("X", "m", src.span(quote, quote + 3))
    assert "3 |     codes = \"é\"\n  |             ^^^" in render(d2)


def test_span_positions_and_byte_offsets() -> None:
    src = Source("x", "a = \"é\"\r\nb = 1\n")
    b = src.text.index("b")
    span = src.span(b, b + 1)
    assert (span.line, span.column, span.end_line, span.end_column) == (2, 1, 2, 2)
    assert span.start == 9 and span.byte_start == 10  # é is two bytes in UTF-8
    assert src.line_text(1) == 'a = "é"'


def test_json_format_and_config_error() -> None:
    src = Source("f.toml", "a = 1\n")
    d = Diagnostic.warning("W1", "hm", src.span(4, 5), help="do x")
    record = json.loads(to_json(d))
    assert record == {"code": "W1", "severity": "warning", "message": "hm", "file": "f.toml",
                      "line": 1, "column": 5, "end_line": 1, "end_column": 6, "help": "do x",
                      "labels": [], "notes": []}
    err = ConfigError([d, Diagnostic.error("E1", "bad")])
    assert isinstance(err, ValueError)
    assert [x.code for x in err.errors] == ["E1"]
    # errors first: the first line says what stopped, the warnings follow
    assert str(err).startswith("error[E1]: bad\n\nwarning[W1]: hm\n --> f.toml:1:5")
    assert str(Diagnostic.error("E1", "bad", src.span(0, 1))) == "f.toml:1:1: error[E1]: bad"


def test_labels_on_one_line_share_it_and_control_characters_show() -> None:
    src = Source("t.toml", "a = {x = 1, x = 2}\nb = \"\x07\"\n")
    first, second = src.text.index("x"), src.text.rindex("x = 2")
    d = Diagnostic.error("P108", "twice", src.span(second, second + 1), label="again",
                         labels=[Label(src.span(first, first + 1), "first")])
    assert render(d).splitlines()[3:6] == [
        "1 | a = {x = 1, x = 2}",
        "  |      -      ^ again",
        "  |      first"]
    bell = src.text.index("\x07")
    assert '2 | b = "␇"' in render(Diagnostic.error("P104", "bell", src.span(bell, bell + 1)))
