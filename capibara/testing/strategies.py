"""Hypothesis strategies for TOML documents, and a strict way to compare values.

``toml_documents()`` draws valid TOML 1.0 text that exercises every kind of
value and every way of writing it: basic, literal and multi-line strings with
all escapes and line-ending backslashes, integers in four bases with
underscores, special floats, the four date/time kinds, nested arrays, inline
tables, dotted and quoted keys, tables, arrays of tables, comments, blank
lines and CRLF line ends.  ``toml_mutations()`` draws such a document with a
few characters deleted, inserted, replaced or lines duplicated: mostly invalid
text, near valid text.  Use them to compare a parser against an oracle::

    import tomllib
    from hypothesis import given
    from capibara import toml
    from capibara.testing.strategies import same_toml_value, toml_documents

    @given(toml_documents())
    def test_same_as_tomllib(text):
        assert same_toml_value(toml.loads(text), tomllib.loads(text))
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from typing import Any

from hypothesis import strategies as st

__all__ = ["mutations_of", "same_toml_value", "toml_documents", "toml_mutations"]

# ---------------------------------------------------------------- keys

_BARE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
# Key text: mostly bare-able, sometimes with spaces, dots, quotes, non-ASCII.
_KEY_CHARS = st.sampled_from(list(_BARE) + list(" .'\"#=[]\\é漢字🦫\t"))
_key_names = st.one_of(
    st.text(st.sampled_from(list(_BARE)), min_size=1, max_size=8),
    st.text(_KEY_CHARS, min_size=0, max_size=8),
)

_SIMPLE_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r",
                   '"': '\\"', "\\": "\\\\"}


@st.composite
def _escape(draw: st.DrawFn, char: str) -> str:
    """One way to write ``char`` inside a basic string."""
    options = []
    if char in _SIMPLE_ESCAPES:
        options.append(_SIMPLE_ESCAPES[char])
    elif char >= " " and char != "\x7f":
        options.append(char)
    options.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08X}")
    options.append(f"\\U{ord(char):08x}")
    return draw(st.sampled_from(options))


@st.composite
def _key(draw: st.DrawFn, name: str) -> str:
    """``name`` written as a TOML key: bare, basic-quoted or literal-quoted."""
    styles = ["basic"]
    if name and all(c in _BARE for c in name):
        styles.append("bare")
    if "'" not in name and all(c >= " " or c == "\t" for c in name) and "\x7f" not in name:
        styles.append("literal")
    style = draw(st.sampled_from(styles))
    if style == "bare":
        return name
    if style == "literal":
        return f"'{name}'"
    return '"' + "".join(draw(_escape(c)) for c in name) + '"'


def _dotted(draw: st.DrawFn, names: list[str]) -> str:
    separators = st.sampled_from([".", " . ", ".\t", " ."])
    out = draw(_key(names[0]))
    for name in names[1:]:
        out += draw(separators) + draw(_key(name))
    return out


# ---------------------------------------------------------------- scalars

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _underscored(digits: str, draw: st.DrawFn) -> str:
    """Insert single underscores between some digits."""
    if len(digits) < 2 or not draw(st.booleans()):
        return digits
    cuts = draw(st.sets(st.integers(1, len(digits) - 1), max_size=3))
    out = []
    for index, digit in enumerate(digits):
        if index in cuts:
            out.append("_")
        out.append(digit)
    return "".join(out)


@st.composite
def _integer(draw: st.DrawFn) -> str:
    value = draw(st.one_of(_INT64, st.integers(-1000, 1000)))
    base = draw(st.sampled_from(["dec", "dec", "hex", "oct", "bin"]))
    if base == "dec" or value < 0:
        sign = "-" if value < 0 else draw(st.sampled_from(["", "", "+"]))
        return sign + _underscored(str(abs(value)), draw)
    digits = {"hex": f"{value:x}", "oct": f"{value:o}", "bin": f"{value:b}"}[base]
    if base == "hex" and draw(st.booleans()):
        digits = digits.upper()
    return {"hex": "0x", "oct": "0o", "bin": "0b"}[base] + _underscored(digits, draw)


@st.composite
def _float(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["repr", "digits", "digits", "special"]))
    if kind == "special":
        return draw(st.sampled_from(["", "+", "-"])) + draw(st.sampled_from(["inf", "nan"]))
    if kind == "repr":  # Python's own spellings (`1e+16`, `5e-324`) are valid TOML
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    sign = draw(st.sampled_from(["", "-", "+"]))
    whole = str(draw(st.integers(0, 10**6)))
    fraction = draw(st.none() | st.text(st.sampled_from("0123456789"), min_size=1, max_size=6))
    exponent = draw(st.none() | st.integers(-30, 30))
    if fraction is None and exponent is None:
        fraction = "0"
    text = sign + _underscored(whole, draw)
    if fraction is not None:
        text += "." + _underscored(fraction, draw)
    if exponent is not None:
        text += draw(st.sampled_from(["e", "E"])) + (
            draw(st.sampled_from(["", "+"])) + str(exponent) if exponent >= 0 else str(exponent))
    return text


@st.composite
def _datetime(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["offset", "local", "date", "time"]))
    day = draw(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
    moment = draw(st.times())
    fraction = ""
    if draw(st.booleans()):
        fraction = "." + draw(st.text(st.sampled_from("0123456789"), min_size=1, max_size=9))
    clock = f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}"
    if kind == "time":
        return clock
    text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
    if kind == "date":
        return text
    text += draw(st.sampled_from(["T", "t", " "])) + clock
    if kind == "offset":
        zone = draw(st.one_of(
            st.sampled_from(["Z", "z"]),
            st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                      st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59))))
        text += zone
    return text


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | \
    st.text(st.sampled_from(list("ab \t\"'\\\n\r#=[]{}é🦫\x00\x7f\x1b")), max_size=12)


@st.composite
def _basic_string(draw: st.DrawFn) -> str:
    text = draw(_TEXT)
    return '"' + "".join(draw(_escape(c)) for c in text) + '"'


@st.composite
def _literal_string(draw: st.DrawFn) -> str:
    text = draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                        max_size=12).filter(lambda t: "'" not in t) |
                st.text(st.sampled_from(list("ab \t\"\\#é")), max_size=12))
    return f"'{text}'"


@st.composite
def _ml_basic_string(draw: st.DrawFn, newline: str) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        piece = draw(st.sampled_from(["text", "escape", "newline", "quotes", "continuation"]))
        if piece == "text":
            parts.append(draw(st.text(st.sampled_from(list("ab \té漢\\#'")), max_size=6))
                         .replace("\\", "\\\\"))
        elif piece == "escape":
            parts.append(draw(_escape(draw(_TEXT.filter(bool).map(lambda t: t[0])))))
        elif piece == "newline":
            parts.append(newline)
        elif piece == "quotes":
            parts.append(draw(st.sampled_from(['"', '""'])) + "x")
        else:  # a line-ending backslash and the blank space it eats
            parts.append("\\" + draw(st.sampled_from(["", " ", "\t "])) + newline
                         + draw(st.sampled_from(["", "  ", newline + "\t"])))
    body = "".join(parts)
    lead = draw(st.sampled_from(["", newline]))
    tail = draw(st.sampled_from(["", '"', '""']))
    if body.endswith("\\") and not body.endswith("\\\\"):
        body += "x"
    return '"""' + lead + body + tail + '"""'


@st.composite
def _ml_literal_string(draw: st.DrawFn, newline: str) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        piece = draw(st.sampled_from(["text", "newline", "quotes"]))
        if piece == "text":
            parts.append(draw(st.text(st.sampled_from(list("ab \té漢\\#\"")), max_size=6)))
        elif piece == "newline":
            parts.append(newline)
        else:
            parts.append(draw(st.sampled_from(["'", "''"])) + "x")
    lead = draw(st.sampled_from(["", newline]))
    tail = draw(st.sampled_from(["", "'", "''"]))
    return "'''" + lead + "".join(parts) + tail + "'''"


def _scalar(newline: str) -> st.SearchStrategy[str]:
    return st.one_of(
        _integer(), _float(), st.sampled_from(["true", "false"]), _datetime(),
        _basic_string(), _literal_string(), _ml_basic_string(newline),
        _ml_literal_string(newline))


# ---------------------------------------------------------------- containers


@st.composite
def _comment(draw: st.DrawFn) -> str:
    text = draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                        max_size=10) | st.sampled_from(["", " x = 1", " [t]", "\t#"]))
    return "#" + text


@st.composite
def _array_gap(draw: st.DrawFn, newline: str) -> str:
    """Blank space inside an array: spaces, line ends, comments."""
    pieces = draw(st.lists(st.sampled_from(["", " ", "\t", "newline", "comment"]), max_size=3))
    out = []
    for piece in pieces:
        if piece == "newline":
            out.append(newline)
        elif piece == "comment":
            out.append(draw(_comment()) + newline)
        else:
            out.append(piece)
    return "".join(out)


def _value(newline: str, depth: int) -> st.SearchStrategy[str]:
    if depth <= 0:
        return _scalar(newline)
    return st.one_of(_scalar(newline), _scalar(newline), _array(newline, depth - 1),
                     _inline_table(newline, depth - 1))


@st.composite
def _array(draw: st.DrawFn, newline: str, depth: int) -> str:
    items = draw(st.lists(_value(newline, depth), max_size=4))
    out = "[" + draw(_array_gap(newline))
    for index, item in enumerate(items):
        out += item + draw(_array_gap(newline))
        if index < len(items) - 1 or draw(st.booleans()):
            out += "," + draw(_array_gap(newline))
    return out + "]"


@st.composite
def _inline_table(draw: st.DrawFn, newline: str, depth: int) -> str:
    names = draw(st.lists(_key_names, max_size=4, unique=True))
    entries = []
    for name in names:
        # A dotted key makes a table of its own first part, so parts are drawn
        # below the unique first part and never collide.
        more = draw(st.lists(_key_names, max_size=2))
        value = draw(_value(newline, depth))
        spaces = draw(st.sampled_from(["=", " = ", "\t=  "]))
        entries.append(_dotted(draw, [name, *more]) + spaces + value)
    gap = st.sampled_from(["", " ", "\t"])
    if not entries:
        return "{" + draw(gap) + "}"
    body = (draw(gap) + "," + draw(gap)).join(entries)
    return "{" + draw(gap) + body + draw(gap) + "}"


# ---------------------------------------------------------------- documents


@st.composite
def _keyvals(draw: st.DrawFn, newline: str, taken: set[str]) -> list[str]:
    """Key/value lines of one table, their first key parts kept out of ``taken``."""
    names = draw(st.lists(_key_names.filter(lambda n: n not in taken), max_size=4, unique=True))
    taken.update(names)
    lines = []
    for name in names:
        more = draw(st.lists(_key_names, max_size=2))
        line = draw(st.sampled_from(["", " ", "\t"])) + _dotted(draw, [name, *more])
        line += draw(st.sampled_from([" = ", "=", "  =\t"])) + draw(_value(newline, 2))
        if draw(st.integers(0, 3)) == 0:
            line += draw(st.sampled_from([" ", "\t", ""])) + draw(_comment())
        lines.append(line)
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(["", "  ", "\t"])) + draw(st.just("") | _comment()))
    return lines


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    """Valid TOML 1.0 documents (``str``) covering every kind of value and layout.

    Keys never collide and tables are defined once, so ``tomllib`` accepts
    every document drawn; integers fit in 64 bits.
    """
    newline = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    lines: list[str] = []
    root_names: set[str] = set()
    lines += draw(_keyvals(newline, root_names))
    for _ in range(draw(st.integers(0, 4))):
        # Each table lives under a fresh first key part, so headers never clash.
        first = draw(_key_names.filter(lambda n: n not in root_names))
        root_names.add(first)
        path = [first, *draw(st.lists(_key_names, max_size=2))]
        array = draw(st.booleans())
        repeats = draw(st.integers(1, 3)) if array else 1
        for _ in range(repeats):
            header = _dotted(draw, path)
            space = draw(st.sampled_from(["", " ", "\t"]))
            header = f"[[{space}{header}{space}]]" if array else f"[{space}{header}{space}]"
            if draw(st.integers(0, 3)) == 0:
                header += " " + draw(_comment())
            lines.append(draw(st.sampled_from(["", " "])) + header)
            lines += draw(_keyvals(newline, set()))
    if draw(st.integers(0, 3)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(_comment()))
    text = newline.join(lines)
    return text + draw(st.sampled_from(["", newline, newline + newline]))


_MUTATION_CHARS = st.sampled_from(list(
    "\"'[]{}=,.#\\ \t\n\r_-+:0123456789abeEfilnrsTtuxZz\x00\x08\x0b\x0c\x1f\x7f\ufeffé漢"))


@st.composite
def mutations_of(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> str:
    """A text drawn from ``texts`` after one to three small edits: deleting,
    inserting or replacing characters (TOML's punctuation, digits, letters of
    keywords, control characters, non-ASCII) or duplicating a line."""
    text = draw(texts)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        at = draw(st.integers(0, len(text)))
        if kind == "delete" and text:
            size = draw(st.integers(1, 3))
            text = text[:at] + text[at + size:]
        elif kind == "insert":
            text = text[:at] + draw(st.text(_MUTATION_CHARS, min_size=1, max_size=3)) + text[at:]
        elif kind == "replace" and at < len(text):
            text = text[:at] + draw(_MUTATION_CHARS) + text[at + 1:]
        elif kind == "duplicate":
            lines = text.split("\n")
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index])
            text = "\n".join(lines)
    return text


def toml_mutations() -> st.SearchStrategy[str]:
    """A :func:`toml_documents` document after :func:`mutations_of`'s small
    edits. Most results are invalid, many only just."""
    return mutations_of(toml_documents())


# ---------------------------------------------------------------- comparing


def same_toml_value(a: Any, b: Any) -> bool:
    """Whether two parsed TOML values are identical: same types all the way
    down (``1`` is not ``1.0`` nor ``True``), NaN equal to NaN, date-times
    with equal offsets."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_toml_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_toml_value(x, y) for x, y in zip(a, b))
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, time):
        return a == b and a.tzinfo == b.tzinfo
    return a == b
