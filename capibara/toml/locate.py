"""Where each key, value and header of a text :mod:`tomllib` has accepted was written.

Most documents :func:`capibara.toml.parse` reads are valid: for those,
:mod:`tomllib` gives the values and :func:`locate` finds the places, the
same :class:`~capibara.toml.positions.Positions` the full parser's builder
records, without loading lark or its grammar (benchmarks/cold_start.py: the
parser's import and first parse were a third of a cold ``capibara compile``).
The full parser still reads every text tomllib refuses, and says why.

The scan trusts the text to be valid TOML 1.0, so it only needs to find
where each token ends, not to check it; tests/toml/test_toml_locate.py holds
its positions equal to the full parser's. A text that is not what it expects
gives ``None`` (the caller then parses the full way) rather than wrong places.
"""

from __future__ import annotations

import re
import tomllib

from capibara.toml.positions import Header, Positions

__all__ = ["locate"]

# Few and small patterns, as compiling them is part of every cold parse (benchmarks/cold_start.py);
# those of multi-line strings and of a date-time with a space are compiled when one is met.
# blank space between statements and inside arrays: spaces, line ends, comments
_BLANK = re.compile(r"[ \t\r\n]*+(?:#[^\n]*+[ \t\r\n]*+)*+").match
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]++").match
_BASIC_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*+"').match
# any other scalar: a number, boolean or date-time, up to the blank space, comma or bracket after it
_BARE_SCALAR = re.compile(r"[^ \t\r\n,\]}#]++").match
_LATER: dict[str, re.Pattern[str]] = {}
_LATER_PATTERNS = {
    '"""': r'"""(?:[^"\\]|\\[\s\S]|"{1,2}+(?!"))*+"{3,5}',
    "'''": r"'''(?:[^']|'{1,2}+(?!'))*+'{3,5}",
    # the time of a date-time written with a space: `1979-05-27 07:32:00`
    " ": r" [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?",
}


def _later(kind: str) -> re.Pattern[str]:
    pattern = _LATER.get(kind)
    if pattern is None:
        pattern = _LATER[kind] = re.compile(_LATER_PATTERNS[kind])
    return pattern


def _spaces(text: str, at: int) -> int:
    """Where the spaces and tabs from ``at`` end."""
    while text[at:at + 1] in (" ", "\t"):
        at += 1
    return at


def _after(text: str, at: int, sign: str) -> int | None:
    """Where the blanks after ``sign`` end, when ``sign`` follows ``at`` (after blanks)."""
    at = _spaces(text, at)
    return _spaces(text, at + 1) if text.startswith(sign, at) else None


class _NotAsExpected(Exception):
    """The text is not the valid TOML the scan expects."""


def locate(text: str) -> Positions | None:
    """The positions of every key/value pair and header of ``text``, which
    :func:`tomllib.loads` must have accepted (within capibara's nesting limit);
    ``None`` when the text does not read as such."""
    try:
        return _Scan(text).document()
    except (_NotAsExpected, IndexError, ValueError):
        return None


class _Scan:
    """One pass over one document, statement by statement."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.positions = Positions()
        # the arrays of tables met so far (by resolved path) and how many tables each has
        self.arrays: dict[tuple, int] = {}

    def document(self) -> Positions:
        text, positions = self.text, self.positions
        keys, offsets, children = positions.keys, positions.offsets, positions.children
        end = len(text)
        at = 0
        while True:
            at = _BLANK(text, at).end()
            if at >= end:
                return positions
            if text[at] == "[":
                at = self.header(at)
                continue
            parts, part_offsets, bare, at = self.key(at)
            at = _expect(_after(text, at, "="))
            value_end, inner = self.value(at)
            if inner is not None:
                children[len(keys)] = inner
            offsets += part_offsets
            offsets += (at, value_end)
            # as the builder records them: a lone bare key as a str, any other as its parts
            keys.append(parts[0] if bare else parts)
            at = value_end

    def header(self, start: int) -> int:
        text = self.text
        array = text.startswith("[[", start)
        at = _spaces(text, start + (2 if array else 1))
        parts, offsets, _, at = self.key(at)
        at = _spaces(text, at)
        close = "]]" if array else "]"
        if not text.startswith(close, at):
            raise _NotAsExpected
        end = at + len(close)
        path: list = []
        for name in parts[:-1]:
            path.append(name)
            tables = self.arrays.get(tuple(path))
            if tables is not None:  # an array of tables: the header is inside its last table
                path.append(tables - 1)
        path.append(parts[-1])
        if array:
            tables = self.arrays[tuple(path)] = self.arrays.get(tuple(path), 0) + 1
            path.append(tables - 1)
        positions = self.positions
        positions.headers.append(
            Header(tuple(path), parts, offsets, start, end, len(positions.keys)))
        return end

    def key(self, at: int) -> tuple[tuple[str, ...], tuple[int, ...], bool, int]:
        """The parts of the (dotted) key at ``at``, their offsets flattened,
        whether it is one bare part, and where it ends."""
        text = self.text
        parts: list[str] = []
        offsets: list[int] = []
        while True:
            first = text[at]
            if first == '"':
                end = _expect(_BASIC_STRING(text, at)).end()
                part = text[at:end]
                # tomllib unescapes it, exactly as it unescaped the key of the value
                part = tomllib.loads(f"k = {part}")["k"] if "\\" in part else part[1:-1]
            elif first == "'":
                end = text.index("'", at + 1) + 1
                part = text[at + 1:end - 1]
            else:
                end = _expect(_BARE_KEY(text, at)).end()
                part = text[at:end]
            parts.append(part)
            offsets += (at, end)
            dot = _after(text, end, ".")
            if dot is None:
                bare = len(parts) == 1 and first not in "\"'"
                return tuple(parts), tuple(offsets), bare, end
            at = dot

    def value(self, at: int) -> tuple[int, tuple | None]:
        """Where the value at ``at`` ends, and for an array its elements'
        records, for an inline table its entries (``None`` for a scalar)."""
        text = self.text
        first = text[at]
        if first == "[":
            return self.array(at)
        if first == "{":
            return self.inline_table(at)
        if first == '"':
            if text.startswith('"""', at):
                return _expect(_later('"""').match(text, at)).end(), None
            return _expect(_BASIC_STRING(text, at)).end(), None
        if first == "'":
            if text.startswith("'''", at):
                return _expect(_later("'''").match(text, at)).end(), None
            return text.index("'", at + 1) + 1, None
        end = _expect(_BARE_SCALAR(text, at)).end()
        if end - at == 10 and text[at + 4] == "-" and text.startswith(" ", end):
            # a date, and maybe the time after a space
            time = _later(" ").match(text, end)
            if time is not None:
                end = time.end()
        return end, None

    def array(self, start: int) -> tuple[int, tuple]:
        text = self.text
        records: list[tuple] = []
        at = start + 1
        while True:
            at = _BLANK(text, at).end()
            if text[at] == "]":
                return at + 1, tuple(records)
            end, inner = self.value(at)
            records.append((at, end, inner))
            at = _BLANK(text, end).end()
            if text[at] == ",":
                at += 1
            elif text[at] != "]":
                raise _NotAsExpected

    def inline_table(self, start: int) -> tuple[int, tuple]:
        text = self.text
        entries: list[tuple] = []
        at = _spaces(text, start + 1)
        if text[at] == "}":
            return at + 1, ()
        while True:
            parts, offsets, _, at = self.key(at)
            at = _expect(_after(text, at, "="))
            end, inner = self.value(at)
            entries.append((parts, offsets, (at, end, inner)))
            at = _spaces(text, end)
            if text[at] == "}":
                return at + 1, tuple(entries)
            if text[at] != ",":
                raise _NotAsExpected
            at = _spaces(text, at + 1)


def _expect(found):
    """``found`` (a match, an offset), unless it is ``None``: the text is not as expected."""
    if found is None:
        raise _NotAsExpected
    return found
