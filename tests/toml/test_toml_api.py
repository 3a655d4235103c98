"""The front door of capibara.toml: loads/load/parse/parse_file, files and
their encodings, format_path, and the shared parser."""

from __future__ import annotations

import doctest
import threading
import tomllib
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from capibara import toml

from capibara.toml import document as _document, keypath as _toml_path
from capibara.diagnostics import ConfigError
from capibara.testing.strategies import same_toml_value

SAMPLE = """\
int = -17
hex = 0xDEAD_beef
float = 6.02e23
special = [inf, -inf, nan]
bool = true
odt = 1979-05-27T07:32:00.999999-07:00
ldt = 1979-05-27 07:32:00
ld = 1979-05-27
lt = 00:32:00.5
basic = "tab\\there \\u00e9 \\U0001F9AB"
literal = 'C:\\path'
multi = \"\"\"
  one \\
  two\"\"\"
"""


def test_loads_returns_what_tomllib_returns() -> None:
    value = toml.loads(SAMPLE)
    assert same_toml_value(value, tomllib.loads(SAMPLE))
    assert value["odt"] == datetime(1979, 5, 27, 7, 32, 0, 999999,
                                    tzinfo=timezone(timedelta(hours=-7)))
    assert type(value["ld"]) is date and type(value["lt"]) is time
    assert value["ldt"].tzinfo is None and value["basic"] == "tab\there é 🦫"
    assert value["multi"] == "  one two"
    assert type(value["int"]) is int and type(value["float"]) is float


def test_load_and_parse_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(SAMPLE, encoding="utf-8")
    assert same_toml_value(toml.load(path), toml.loads(SAMPLE))
    doc = toml.parse_file(str(path))
    assert doc.source.name == str(path) and doc.value["int"] == -17


def test_missing_file_is_p001(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        toml.load(tmp_path / "absent.toml")
    assert caught.value.diagnostics[0].code == "P001"
    assert "absent.toml" in caught.value.diagnostics[0].message


def test_directory_is_p003(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        toml.parse_file(tmp_path)
    assert caught.value.diagnostics[0].code == "P003"


def test_invalid_utf8_is_p002_at_the_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('ok = "é"\nname = "Capibará"\n'.encode("utf-8")[:19] + b"\xe1\"\n")
    with pytest.raises(ConfigError) as caught:
        toml.load(path)
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.code == "P002"
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 10)
    assert diagnostic.span.byte_start == 19
    assert "0xe1" in diagnostic.message


def test_a_leading_bom_is_allowed_in_files_only(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfa = 1\n")
    assert toml.load(path) == {"a": 1}
    with pytest.raises(ConfigError):  # as tomllib.loads: text is not a file
        toml.loads("\ufeffa = 1")


def test_parse_wants_text() -> None:
    with pytest.raises(TypeError):
        toml.parse(b"a = 1")  # type: ignore[arg-type]


def test_source_names_the_text_in_diagnostics() -> None:
    with pytest.raises(ConfigError) as caught:
        toml.loads("a = ", source="$CAPIBARA_X")
    assert str(caught.value).splitlines()[1].strip() == "--> $CAPIBARA_X:1:5"


@pytest.mark.parametrize("path,text", [
    (("model", "hidden_size"), "model.hidden_size"),
    (("tpu_v4_optimizations", "mesh_shape", 1), "tpu_v4_optimizations.mesh_shape[1]"),
    (("products", 0, "name"), "products[0].name"),
    (("site", "google.com"), 'site."google.com"'),
    (("", 'say "hi"', "tab\there", "é"), '"".' + '"say \\"hi\\""."tab\\there"."é"'),
    (("matrix", 0, 1), "matrix[0][1]"),
    ((), ""),
])
def test_format_path(path, text) -> None:
    assert toml.format_path(path) == text


def test_format_path_round_trips_through_toml() -> None:
    path = ("a b", "c.d", "e'f", "1", "x\\y")
    assert toml.loads(f"{toml.format_path(path)} = 1") == {
        "a b": {"c.d": {"e'f": {"1": {"x\\y": 1}}}}}


def test_the_parser_is_built_once_per_process() -> None:
    assert _document._get_parser() is _document._get_parser()


def test_parses_from_many_threads() -> None:
    texts = [f"[t{i}]\nvalue = {i}\nitems = [{i}, {i + 1}]\n" for i in range(40)]
    results: dict[int, dict] = {}

    def work(index: int) -> None:
        for _ in range(20):
            results[index] = toml.loads(texts[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[i] == {f"t{i}": {"value": i, "items": [i, i + 1]}} for i in range(40))


def test_a_failed_parse_leaves_the_parser_ready() -> None:
    with pytest.raises(ConfigError):
        toml.loads("a = [1, {b = ")
    assert toml.loads("a = 1") == {"a": 1}


def test_the_examples_in_the_docstrings_hold() -> None:
    for module in (toml, _toml_path):
        assert doctest.testmod(module).failed == 0
