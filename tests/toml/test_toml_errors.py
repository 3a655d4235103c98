"""Invalid TOML: each problem gets its code, the smallest span, words a user
understands, and never an exception other than ConfigError."""

from __future__ import annotations

import re

import pytest

from capibara import toml
from capibara.toml.builder import MAX_NESTING
from capibara.diagnostics import ConfigError, render


def problem(text: str):
    with pytest.raises(ConfigError) as caught:
        toml.loads(text, source="c.toml")
    (diagnostic,) = caught.value.diagnostics
    return diagnostic


# (text, code, text under the primary span, words the message contains)
CASES = [
    ("a = 1 b = 2", "P101", "b", "expected the end of the line after the value"),
    ("a =\nb = 1", "P101", "", "expected a value after `=`"),
    ("hidden size = 768", "P101", "size", "expected `=` after the key `hidden`"),
    ("a = True", "P101", "True", "`True` is not a TOML value"),
    ("a = [1 2]", "P101", "2", "expected `,` or `]` after an array element"),
    ("a = [1, 2", "P101", "[", "array is not closed"),
    ("a = {b = 1,}", "P101", ",", "trailing comma in an inline table"),
    ("[a\nb = 1", "P101", "", "expected `]` to close the table header"),
    ("[[a]\n", "P101", "]", "expected `]]` to close the table header"),
    ("ü = 1", "P101", "ü", "`ü` cannot appear in a bare key"),
    ("a = none", "P101", "none", "`none` is not a TOML value"),
    ('a = "abc', "P102", '"abc', "basic string is not closed"),
    ("a = '''abc\n", "P102", "'''", "multi-line literal string is not closed"),
    ('a = """abc\n', "P102", '"""', "multi-line basic string is not closed"),
    ('a = "C:\\new\\data"', "P103", "\\d", "invalid escape `\\d`"),
    ('a = "\\u12"', "P103", '\\u12"', "`\\u` needs exactly 4 hexadecimal digits"),
    ('a = "\\uD800"', "P103", "\\uD800", "escape `\\uD800` is not a Unicode scalar value"),
    ('a = """x\\e"""', "P103", "\\e", "invalid escape `\\e`"),
    ("a = 1 # bell \x07", "P104", "\x07", "control character U+0007 (bell) in a comment"),
    ('a = "x\x00"', "P104", "\x00", "control character U+0000 (null) in a string"),
    ("a = 1\rb = 2", "P104", "\r", "carriage return without a line feed"),
    ("a = 0123", "P105", "0123", "leading zeros are not allowed"),
    ("a = 1__000", "P105", "1__000", "an underscore must sit between two digits"),
    ("a = 0o8", "P105", "8", "`8` is not an octal digit"),
    ("a = -0x1F", "P105", "-", "hexadecimal integers cannot have a sign"),
    ("a = 1.", "P105", "1.", "a float needs a digit after the decimal point"),
    ("a = NaN", "P105", "NaN", "`NaN` is not a TOML float"),
    ("a = 9223372036854775808", "P106", "9223372036854775808", "does not fit in 64 bits"),
    ("a = -0x1", "P105", "-", "cannot have a sign"),
    ("a = 2023-02-29", "P107", "29", "2023-02-29 is not a date: February 2023 has 28 days"),
    ("a = 2023-13-01", "P107", "13", "month must be between 01 and 12, found 13"),
    ("a = 07:32", "P107", "07:32", "has no seconds"),
    ("a = 1979-05-27T07:32:00+24:00", "P107", "24", "offset hour must be between 00 and 23"),
    ("a = 1\na = 2", "P108", "a", "key `a` is defined twice"),
    ('a = 1\n"a" = 2', "P108", '"a"', "key `a` is defined twice"),
    ("x = {a = 1, a = 2}", "P108", "a", "key `a` is defined twice in this inline table"),
    ("[t]\n[t]", "P109", "[t]", "table `t` is defined twice"),
    ("a.b = 1\n[a]", "P109", "[a]", "table `a` is defined twice"),
    ("[a.b]\n[a]\nb.c = 1", "P109", "b", "dotted key cannot add to table `a.b`"),
    ("a = {b = 1}\na.c = 2", "P110", "a", "`a` is a table written as a value and cannot be extended"),
    ("a = [1]\n[[a]]", "P110", "a", "`a` is an array written as a value"),
    ("a = {b = {c = 1}, b.d = 2}", "P110", "b", "`b` is a table written as a value"),
    ("a = 1\n[a.b]", "P111", "a", "`a` is an integer, not a table"),
    ("a = 1\na.b = 2", "P111", "a", "`a` is an integer, not a table"),
    ("[[a]]\n[a]", "P112", "[a]", "`a` is an array of tables, not a table"),
    ("[a]\n[[a]]", "P112", "[[a]]", "`a` is a table, not an array of tables"),
    ("[[a.b]]\n[a]\nb.c = 1", "P112", "b", "`a.b` is an array of tables"),
    ("a = {b = 1,\nc = 2}", "P114", "\n", "inline table continues on the next line"),
    ("a = {b = 1 # c\n}", "P114", "#", "inline table continues on the next line"),
]


@pytest.mark.parametrize("text,code,under,words", CASES, ids=[c[1] + ":" + c[0] for c in CASES])
def test_problem_is_explained(text: str, code: str, under: str, words: str) -> None:
    diagnostic = problem(text)
    assert diagnostic.code == code
    assert words in diagnostic.message
    assert diagnostic.span.text == under
    assert diagnostic.span.file == "c.toml"


def test_every_p1_code_has_a_case() -> None:
    from capibara.codes import CODES
    covered = {case[1] for case in CASES} | {"P113"}
    assert {c for c in CODES if c.startswith("P1")} == covered


def test_redefinition_points_at_both_places() -> None:
    diagnostic = problem("[model]\nhidden_size = 768\n\n[model]\n")
    assert diagnostic.code == "P109"
    places = [(label.span.line, label.message) for label in diagnostic.labels]
    assert places == [(4, "defined again here"), (1, "first defined here")]
    assert render(diagnostic) == """\
error[P109]: table `model` is defined twice
 --> c.toml:4:1
  |
1 | [model]
  | ------- first defined here
 ...
4 | [model]
  | ^^^^^^^ defined again here
  |
  = help: merge the two sections into one"""


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a=", "}")])
def test_ten_thousand_levels_of_nesting_are_refused_with_a_diagnostic(opener, closer) -> None:
    diagnostic = problem("x = " + opener * 10_000 + "1" + closer * 10_000)
    assert diagnostic.code == "P113"
    assert diagnostic.span.start == 4 + len(opener) * MAX_NESTING


def test_nesting_up_to_the_limit_is_accepted() -> None:
    value = toml.loads("x = " + "[" * MAX_NESTING + "]" * MAX_NESTING)["x"]
    depth = 0
    while value:
        value, depth = value[0], depth + 1
    assert depth == MAX_NESTING - 1


def test_keys_with_too_many_parts_are_refused() -> None:
    assert problem("a" + ".a" * 200 + " = 1").code == "P113"
    assert problem("[" + ".".join(["t"] * 200) + "]").code == "P113"


@pytest.mark.parametrize("text", [
    "a = " + "9" * 5000,  # beyond Python's int-from-string digit limit
    "a = 0x" + "f" * 40,
    "a = 1e99999",  # is inf, as tomllib has it
])
def test_huge_numbers_never_leak_python_exceptions(text: str) -> None:
    try:
        value = toml.loads(text)["a"]
    except ConfigError as error:
        assert error.diagnostics[0].code == "P106"
    else:
        assert value == float("inf")


@pytest.mark.parametrize("text", [
    "\ufeffa = 1", "a = 1\ufeff", "[", "[[", "{", "=", '"', "'", '"""', "'''", "a.", "a = [",
    "a = {", "a = {b", "a = {b =", "[a.", "\\", "a = \\u0041", "a = 1979-02-29T25:61:61",
    "a = 0000-01-01", "\x00", "\r", "a = \"\\U00110000\"", "[a]]", "a = [1,,]", "#\x7f",
])
def test_odd_inputs_raise_only_config_error(text: str) -> None:
    diagnostic = problem(text)
    assert diagnostic.code.startswith("P1")
    assert diagnostic.span is not None


MESSAGE_STYLE = re.compile(r"^[a-z0-9`]")
LARK_WORDS = re.compile(r"__ANON|\b(?:[A-Z]+_)+[A-Z]+\b|\$END|Token\(|UnexpectedToken")


def test_messages_follow_the_house_style() -> None:
    for text, *_ in CASES:
        diagnostic = problem(text)
        assert MESSAGE_STYLE.match(diagnostic.message), diagnostic.message
        assert not diagnostic.message.endswith("."), diagnostic.message
        assert not LARK_WORDS.search(render(diagnostic)), render(diagnostic)
