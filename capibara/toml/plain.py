"""A TOML file's values without their places, for a check that only asks "is it clean?".

``capibara check`` first reads each file this way: :mod:`tomllib` (already
paid for by any Python that reads TOML) gives the values, and lark, the
grammar and its lexer are not loaded at all. The values are those
:func:`capibara.toml.loads` gives: tests/test_toml_differential.py holds the
two parsers to that, and the one intended difference, capibara's own limits
(64-bit integers, :data:`~capibara.toml.limits.MAX_NESTING`), is checked here.
Whenever this module cannot vouch for a text it returns ``None`` and the
caller parses the full way, which finds the problem and its place.
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any, Iterator, Sequence

from capibara.diagnostics import Source, Span
from capibara.toml.limits import MAX_NESTING
from capibara.toml.reading import read_text, shown_name

__all__ = ["PlainDocument", "parse_plain", "plain_value", "read_plain"]

_INT64 = (-(1 << 63), (1 << 63) - 1)
# A line with more dots than a key may have parts: tomllib's time and memory grow with the
# square of a key's parts (10,000: 2.7 s and 370 MiB, fuzz/hostile.py), and the full parser
# refuses such a key at once; a string or number that holds the dots costs only that parser.
_MANY_PARTS = re.compile(rf"^(?:[^.\n]*+\.){{{MAX_NESTING}}}", re.M).search


class PlainDocument:
    """The values of a TOML document, with no places: every span is ``None``.

    It answers what :class:`capibara.toml.Document` answers, so the stages
    after the parse take either.
    """

    __slots__ = ("source", "value")

    def __init__(self, source: Source, value: dict[str, Any]) -> None:
        self.source = source
        self.value = value

    def key_span(self, path: Sequence[str | int]) -> Span | None:
        return None

    def value_span(self, path: Sequence[str | int]) -> Span | None:
        return None

    def header_span(self, path: Sequence[str | int]) -> Span | None:
        return None

    def entries(self) -> Iterator[tuple[tuple, Span, Span]]:
        return iter(())


def parse_plain(text: str, source: str = "<string>") -> PlainDocument | None:
    """The values of ``text`` when it is valid TOML within capibara's limits, else ``None``."""
    value = plain_value(text)
    return None if value is None else PlainDocument(Source(source, text), value)


def plain_value(text: str) -> dict[str, Any] | None:
    """What :func:`tomllib.loads` makes of ``text`` when it is valid TOML within
    capibara's limits (so that the full parser would accept it too), else ``None``."""
    if _MANY_PARTS(text):
        return None
    try:
        value = tomllib.loads(text)
    except (ValueError, RecursionError):  # TOMLDecodeError, or an integer past int()'s digit limit
        return None
    return value if _within_limits(value) else None


def read_plain(path: str | os.PathLike[str]) -> PlainDocument | None:
    """:func:`parse_plain` of a file (``None`` as well when it cannot be read)."""
    name = os.fspath(path)
    try:
        text = read_text(name)
    except Exception:  # the full parse reads it again and says why it cannot
        return None
    return parse_plain(text, shown_name(name))


def _within_limits(value: dict[str, Any]) -> bool:
    """No integer beyond 64 bits and nothing nested deeper than MAX_NESTING.

    Depth counts every table and array level, which bounds both the bracket
    nesting and the parts of a key the full parser limits; a document past
    the bound is left to the full parser, which says which limit it breaks.
    """
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if type(item) is int:
            if not _INT64[0] <= item <= _INT64[1]:
                return False
        elif isinstance(item, (dict, list)):
            if depth > MAX_NESTING:
                return False
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True
