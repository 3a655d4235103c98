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

from hypothesis import example, given

from capibara import toml
from capibara._toml_scalars import INT64_MAX, INT64_MIN
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
