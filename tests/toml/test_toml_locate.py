"""The two readers of capibara.toml.parse agree: for every text tomllib accepts,
the scan of :mod:`capibara.toml.locate` finds exactly the places the full
parser's builder records (every key part, value, array element, inline-table
entry and header), and tomllib's values are the full parser's, key order
included. ``parse`` takes the scan's word for valid texts, so this is what
keeps its spans right; the full parser still reads every invalid text.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import example, given

from capibara import toml
from capibara.diagnostics import ConfigError, Source
from capibara.testing.strategies import same_toml_value, toml_documents, toml_mutations
from capibara.toml import document
from capibara.toml.locate import locate
from capibara.toml.plain import plain_value

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(os.environ.get("CAPIBARA_TOML_TEST_DIR") or ROOT.parent / "shared" / "toml-test")


def full_parse(text: str) -> toml.Document:
    return document._parse_fully(Source("<string>", text))


def same_order(a, b) -> bool:
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_order(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return all(same_order(x, y) for x, y in zip(a, b))
    return True


def headers(positions) -> list[tuple]:
    return [(h.path, h.parts, h.offsets, h.start, h.end, h.first_entry)
            for h in positions.headers]


def agree(text: str) -> None:
    """``text`` is valid: the scan's places and tomllib's values are the full parser's."""
    value = plain_value(text)
    assert value is not None, "tomllib refused it (or it is past capibara's limits)"
    full = full_parse(text)
    assert same_toml_value(value, full.value) and same_order(value, full.value)
    located = locate(text)
    assert located is not None, "the scan could not read a valid text"
    assert list(located.walk()) == list(full._positions.walk())
    assert headers(located) == headers(full._positions)


@given(toml_documents())
@example('a = """\\\r\n  x"""\r\nb = 0x1F\r\n')
@example("t = 1979-05-27 07:32:00.1234567+23:59\nd = 0001-01-01\n")
def test_generated_documents_are_located_as_the_full_parser_locates_them(text: str) -> None:
    agree(text)


@given(toml_mutations())
def test_mutated_documents_tomllib_accepts_are_located_alike(text: str) -> None:
    if plain_value(text) is not None:
        agree(text)


HAND_PICKED = [
    "",
    "# only a comment\n",
    "a = 1",
    "a=1#c\nb=[]#c\nc={}#c",
    # keys: bare, quoted, escaped, dotted with blanks, digits that look like floats
    '"a b" = 1\n\'c.d\' = 2\n"\\u00e9\\n" = 3\n"" = 4',
    "a . b\t.\tc = 1\nx.'y z'.\"w\" = 2",
    "0=0\n1.0=0\n1.2.3 = 4",
    # headers: blanks inside brackets, arrays of tables nested and reopened
    "[ a . b ]\nx = 1\n[\ta.'c' ]\n",
    "[[a]]\n[[a.b]]\n[a.b.c]\n[[a.b]]\n[a.b.c]\n[[a]]\n[[a.b]]\nx=1",
    "[a]\n[[a.b]]\nc=1\n[[a.b]]\n[a.b.d]\n[a.b.d.e]",
    "[a.b.c]\n[a]\nb.d = 1",
    'x = 0\n[[ "p q" ]]\ny = 1\n[[ "p q" ]]\ny = 2',
    # strings at their edges: quotes before the closing delimiter, escapes, line ends
    'a = """""""\nb = """a""""\nc = """a\\""""\nd = """\\\n  x\\\n"""',
    "a = ''''''''\nb = '''a''''\nc = '''\n'''",
    "a = \"\\\"#,]}\"\nb = '#,]}'\nc = [\"]\", '}', \"\"\"],\"\"\"]",
    'a = """a\\  \n b"""',
    # date-times with a space, and dates followed by blanks and comments
    "a = 1979-05-27 07:32:00\nb = 1979-05-27 # c\nc = [1979-05-27 , 1979-05-27 07:32:00Z]",
    "a=1979-05-27T00:32:00.9999999Z\nb=1979-05-27t00:32:00.1-00:00\nc=07:32:00.5",
    "a = -0.0\nb = +inf\nc = -nan\nd = 0x1_F \ne = 1_000\nf = 6.626e-34\ng = 0b1\nh = 0o7",
    # arrays and inline tables: nested, empty, trailing commas, comments and line ends
    "a = [ [ 1, [2] ], { b = [3, { c = 4 }] }, [], {} ]",
    "a = [\n  1, # one\n  2,\n  # nothing\n]\nb = [\r\n 1\r\n ,2\r\n]\r\n",
    "a = { b.c = 1, d = { e.f.g = [1, 2] }, 'h i' = \"j\" }",
    "a = {b=1,c={}}\nd = {  }\ne = [{},{x=1},[{y=[]}]]",
    "a = [[[[[[[[[[1]]]]]]]]]]",
    # CRLF throughout and non-ASCII text
    "[t]\r\nk = 'v'\r\n[[u]]\r\nw = \"é漢\"\r\n",
    "\"é\" = 1\n'漢' = \"字\"",
]


@pytest.mark.parametrize("text", HAND_PICKED)
def test_hand_picked_documents_are_located_alike(text: str) -> None:
    agree(text)


def _repository_configs() -> list[tuple[str, str]]:
    """(name, text) of each valid TOML file of the repository (configs, golden inputs)."""
    found = []
    for path in sorted(ROOT.glob("**/*.toml")):
        if ".venv" in path.parts:
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:  # the golden inputs of P002 and D103
            continue
        if plain_value(text) is not None:
            found.append((str(path.relative_to(ROOT)), text))
    return found


REPOSITORY_CONFIGS = _repository_configs()


@pytest.mark.parametrize("text", [text for _, text in REPOSITORY_CONFIGS],
                         ids=[name for name, _ in REPOSITORY_CONFIGS])
def test_every_valid_toml_file_of_the_repository_is_located_alike(text: str) -> None:
    agree(text)


def test_the_valid_cases_of_toml_test_are_located_alike() -> None:
    cases = sorted((SUITE / "valid").glob("**/*.toml"))
    if not cases:
        pytest.skip(f"toml-test suite not found at {SUITE}")
    checked = 0
    for case in cases:
        text = case.read_bytes().decode("utf-8")
        if plain_value(text) is None:  # past capibara's limits (64-bit integers)
            continue
        agree(text)
        checked += 1
    assert checked > 100


def test_an_invalid_text_is_explained_by_the_full_parser() -> None:
    with pytest.raises(ConfigError) as caught:
        toml.parse("a = 1\na = 2\n", "twice.toml")
    assert caught.value.diagnostics[0].code == "P108"
    assert str(caught.value.diagnostics[0].span) == "twice.toml:2:1"


def test_the_scan_refuses_what_it_cannot_read() -> None:
    assert locate("a = ") is None
    assert locate("[a\n") is None
    assert locate("a = [1 2]") is None


@pytest.mark.parametrize("text, code", [
    ("a = " + "9" * 5000, "P106"),  # tomllib raises ValueError: past int()'s digit limit
    ("a" + ".a" * 128 + " = 1", "P113"),  # 129 parts: tomllib would take time and memory
])
def test_texts_tomllib_cannot_take_go_to_the_full_parser(text: str, code: str) -> None:
    assert plain_value(text) is None
    with pytest.raises(ConfigError) as caught:
        toml.parse(text)
    assert caught.value.diagnostics[0].code == code


def test_a_string_full_of_dots_is_still_read() -> None:
    text = 'a = "' + "." * 200 + '"\n'
    assert plain_value(text) is None  # left to the full parser, which reads it
    assert toml.parse(text).value == {"a": "." * 200}
