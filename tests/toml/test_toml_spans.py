"""Spans point at exactly what they name, in any file: CRLF line ends,
multi-line strings, non-ASCII text (columns count characters, byte offsets
count UTF-8 bytes)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given

from capibara import toml
from capibara.testing.strategies import same_toml_value, toml_documents

def value_at(value, path):
    for part in path:
        value = value[part]
    return value


def check_entries(doc: toml.Document) -> int:
    """Each entry's key text is that key, and its value text parses back to that value."""
    count = 0
    previous = -1
    for path, key, value in doc.entries():
        assert key.start > previous, "entries come in document order"
        previous = key.start
        assert key.source is doc.source and value.source is doc.source
        assert toml.loads(f"{key.text} = 1") == {path[-1]: 1}
        assert same_toml_value(toml.loads(f"x = {value.text}")["x"], value_at(doc.value, path))
        assert doc.key_span(path) == key and doc.value_span(path) == value
        count += 1
    return count


@given(toml_documents())
def test_every_entry_of_generated_documents_points_at_its_text(text: str) -> None:
    check_entries(toml.parse(text))


def test_every_entry_of_the_benchmark_config(shared_dir: Path) -> None:
    bench_config = shared_dir / "bench" / "ml_config.toml"
    doc = toml.parse(bench_config.read_text(encoding="utf-8"), str(bench_config))
    assert check_entries(doc) > 80


DOC = """\
# a comment
title = "capibara"   # trailing comment
[model]
hidden_size = 768
attention.rope.theta = 10_000.0
'quoted key' = { a = 1, b.c = [1, 2, { d = "x" }] }
mesh_shape = [
  4,   # data
  8,   # model
]
notes = \"\"\"
first line
  second line\"\"\"

[[products]]
name = "Hammer"

[[ products ]]
name = "Nail"
site."google.com" = true
"""


def test_spans_of_keys_values_and_headers() -> None:
    doc = toml.parse(DOC, "config.toml")
    assert doc.key_span(("title",)).text == "title"
    value = doc.value_span(("title",))
    assert (value.text, value.line, value.column) == ('"capibara"', 2, 9)
    assert str(value) == "config.toml:2:9"
    assert doc.header_span(("model",)).text == "[model]"
    assert doc.key_span(("model",)).text == "model"
    # a dotted key: each part has its own span
    assert doc.key_span(("model", "attention")).text == "attention"
    assert doc.key_span(("model", "attention", "rope")).text == "rope"
    assert doc.key_span(("model", "attention", "rope", "theta")).text == "theta"
    assert doc.value_span(("model", "attention", "rope", "theta")).text == "10_000.0"
    assert doc.value_span(("model", "attention")) is None  # a table, not a value
    # inside inline tables and arrays
    assert doc.key_span(("model", "quoted key")).text == "'quoted key'"
    assert doc.value_span(("model", "quoted key", "b", "c", 2, "d")).text == '"x"'
    assert doc.key_span(("model", "quoted key", "b", "c", 2, "d")).text == "d"
    assert doc.value_span(("model", "quoted key", "b", "c", 1)).text == "2"
    mesh = doc.value_span(("model", "mesh_shape", 1))
    assert (mesh.text, mesh.line, mesh.column) == ("8", 9, 3)
    assert doc.value_span(("model", "mesh_shape")).text.startswith("[") \
        and doc.value_span(("model", "mesh_shape")).end_line == 10
    notes = doc.value_span(("model", "notes"))
    assert notes.text.startswith('"""') and notes.text.endswith('"""')
    assert (notes.line, notes.end_line) == (11, 13)
    # arrays of tables: one header per table
    assert doc.header_span(("products", 0)).text == "[[products]]"
    assert doc.header_span(("products", 1)).text == "[[ products ]]"
    assert doc.key_span(("products",)).text == "products"
    assert doc.value_span(("products", 1, "name")).text == '"Nail"'
    assert doc.key_span(("products", 1, "site", "google.com")).text == '"google.com"'
    assert doc.key_span(("nope",)) is None and doc.header_span(("products", 2)) is None
    # paths may be any sequence
    assert doc.value_span(["model", "hidden_size"]) == doc.value_span(("model", "hidden_size"))


def test_entries_cover_inline_tables_and_arrays_of_tables_in_order() -> None:
    paths = [toml.format_path(path) for path, _, _ in toml.parse(DOC).entries()]
    assert paths == [
        "title", "model.hidden_size", "model.attention.rope.theta", 'model."quoted key"',
        'model."quoted key".a', 'model."quoted key".b.c', 'model."quoted key".b.c[2].d',
        "model.mesh_shape", "model.notes", "products[0].name", "products[1].name",
        'products[1].site."google.com"',
    ]


def test_crlf_lines_and_columns() -> None:
    text = DOC.replace("\n", "\r\n")
    doc = toml.parse(text)
    assert doc.value == toml.parse(DOC).value
    mesh = doc.value_span(("model", "mesh_shape", 1))
    assert (mesh.text, mesh.line, mesh.column) == ("8", 9, 3)
    notes = doc.value_span(("model", "notes"))
    assert notes.text == text[notes.start:notes.end] and (notes.line, notes.end_line) == (11, 13)
    assert doc.source.line_text(9) == "  8,   # model"


def test_non_ascii_columns_count_characters_and_bytes_count_utf8() -> None:
    text = '"naïve" = "café 🦫"\n"ключ" = 1\n'
    doc = toml.parse(text)
    value = doc.value_span(("naïve",))
    assert (value.text, value.column, value.end_column) == ('"café 🦫"', 11, 19)
    assert value.byte_start == len('"naïve" = '.encode()) == 11
    assert value.byte_end == len('"naïve" = "café 🦫"'.encode())
    key = doc.key_span(("ключ",))
    assert (key.text, key.line, key.column, key.byte_start) == (
        '"ключ"', 2, 1, len('"naïve" = "café 🦫"\n'.encode()))


def test_bom_is_not_part_of_the_source(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeffa = 1\n".encode())
    doc = toml.parse_file(path)
    assert doc.value == {"a": 1}
    assert (doc.key_span(("a",)).line, doc.key_span(("a",)).column) == (1, 1)
