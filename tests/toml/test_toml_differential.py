"""capibara.toml against tomllib on generated documents.

Valid documents must give identical values; mutated documents must be
rejected by both parsers or accepted by both with identical values.  The one
intended difference: TOML requires integers to fit in 64 bits, which tomllib
does not check, so a document tomllib accepts with a larger integer must be
refused with P106.  The example budget comes from the hypothesis profile
(``HYPOTHESIS_PROFILE=long`` for a deeper run).
"""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import example, given

from capibara import toml
from capibara.toml.scalars import INT64_MAX, INT64_MIN
from capibara.diagnostics import ConfigError
from capibara.testing.strategies import same_toml_value, toml_documents, toml_mutations


def _out_of_range(value) -> bool:
    if isinstance(value, dict):
        return any(_out_of_range(item) for item in value.values())
    if isinstance(value, list):
        return any(_out_of_range(item) for item in value)
    return type(value) is int and not INT64_MIN <= value <= INT64_MAX


@given(toml_documents())
@example('a = """\\\r\n  x"""\r\nb = 0x1F\r\n')
@example("t = 1979-05-27 07:32:00.1234567+23:59\nd = 0001-01-01\n")
def test_documents_parse_as_tomllib_parses_them(text: str) -> None:
    expected = tomllib.loads(text)
    assert same_toml_value(toml.loads(text), expected)


@given(toml_mutations())
@example("a = 9223372036854775808")
@example("a = [[[1]]]]")
@example('a = """x""""""')
@example("a = {b = 1,\n}")
@example("x = 1\r\r\ny = 2")
def test_mutations_are_judged_as_tomllib_judges_them(text: str) -> None:
    judge_as_tomllib_does(text)


def judge_as_tomllib_does(text: str) -> None:
    """Both parsers reject ``text``, or both accept it with identical values."""
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        expected = None
    try:
        actual = toml.loads(text)
    except ConfigError as error:
        if expected is not None:
            assert _out_of_range(expected), f"rejected what tomllib accepts:\n{error}"
            assert error.diagnostics[0].code == "P106"
        return
    assert expected is not None, "accepted what tomllib rejects"
    assert same_toml_value(actual, expected)


HAND_PICKED = [
    # where tables may be reopened or extended, and where not
    "[a.b.c]\n[a]\nb.d = 1",
    "[a.b.c]\n[a]\nb.c.d = 1",
    "[a.b.c]\n[a.b]\n[a]\n",
    "[a.b.c]\n[a.b]\n[a.b]\n",
    "a.b = 1\n[a]",
    "a.b = 1\n[a.c]",
    "a.b.c = 1\n[a.b.d]",
    "a.b.c = 1\n[a.b]",
    "[[a]]\nb.c = 1\n[[a]]\nb.c = 2\n[a.b]",
    "[[a]]\n[a.b]\n[[a]]\n[a.b]",
    "[[a]]\n[a.b]\n[a.b]",
    "[[a]]\n[[a.b]]\n[[a]]\n[a.b]",
    "[a]\nx.y = 1\n[[a.b]]\n[a.x]",
    "[a]\nx.y = 1\n[a.x.z]",
    "a = [{}]\n[a.b]",
    "a = []\n[[a]]",
    "[[t.a]]\n[t]\na.x = 1",
    "[t]\na.x = 1\na.y = 2\n[t.a.z]\n",
    "[t]\na.x = 1\n[s]\n[t.a]",
    "x = {a.b = 1, a.c = 2}",
    "x = {a.b = 1, a = 2}",
    "x = {a = {b = 1}, a.c = 2}",
    "x = {a = [1], a.b = 1}",
    "[a]\n[a.b]\n[a]",
    "[a.b]\nc=1\n[a]\nb.d=2",
    "a = 1\n[b]\na = 2",
    "[[a.b]]\n[[a]]",
    "[a]\nb = 1\n[[a.c]]\n[a.c.d]",
    '"a.b" = 1\na.b = 2',
    "a = {}\n[a.b]",
    "[x]\n[x.y.z]\n[x.y]\n[x.y.z.w]",
    "['a']\n[\"a\".b]\n[a.'b'.c]",
    "a.'b.c'.d = 1\na.\"b.c\".e = 2",
    "[a]\n[[a.b]]\nc=1\n[[a.b]]\n[a.b.d]\n[a.b.d.e]",
    "[[a]]\n[[a.b]]\n[a.b.c]\n[[a.b]]\n[a.b.c]",
    "0=0\n0.0=0",
    "[[a]]\n[a.b]\nx=1\n[[a]]\n[a.b]\nx=2",
    # numbers, dates and strings at their edges
    "a=1979-05-27T00:32:00.9999999Z\nb=1979-05-27T00:32:00.1-00:00",
    "a = -0.0\nb = +0.0\nc = -0\nd = 0e0\ne=-nan",
    "a = 1e400\nb = -1e400",
    'a = """\\\n   \n   b"""',
    'a = """a\\  \n b"""',
    "a = '''\n'''",
    'a = """\n"""',
    'a = """""""',
    "a = ''''''''",
]


@pytest.mark.parametrize("text", HAND_PICKED)
def test_hand_picked_documents_are_judged_as_tomllib_judges_them(text: str) -> None:
    judge_as_tomllib_does(text)
