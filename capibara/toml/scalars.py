"""Scalar TOML values: token text to Python value.

The grammar (``grammar/toml.lark``) has already checked each token's shape, so
the converters here only do what a regular expression cannot: decode escapes,
check that an integer fits in 64 bits and that a date exists, and build the
same Python objects ``tomllib`` builds.  A value that cannot be converted raises
:class:`TomlProblem` with character offsets into the parsed text; the caller,
who knows the :class:`~capibara.diagnostics.Source`, turns it into a diagnostic.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable

__all__ = ["TomlProblem", "CONVERTERS", "unescape", "INT64_MIN", "INT64_MAX"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class TomlProblem(Exception):
    """A problem at characters ``[start, end)`` of the text being parsed.

    ``labels`` are secondary places as ``(start, end, message)``.  This is the
    parser's internal currency: :func:`capibara.toml.parse` turns it into a
    :class:`~capibara.diagnostics.ConfigError` in exactly one place.
    """

    def __init__(self, code: str, message: str, start: int, end: int, *,
                 label: str = "", help: str | None = None,
                 labels: tuple[tuple[int, int, str], ...] = (),
                 notes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.start = start
        self.end = end
        self.label = label
        self.help = help
        self.labels = labels
        self.notes = notes


# ------------------------------------------------------------------ strings

_SIMPLE_ESCAPES = {
    "b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\",
}

# The lexer has already rejected malformed escapes, so every backslash here
# starts one of these.  `\r\n` is the raw line ending of a CRLF file inside a
# multi-line string: like tomllib, the value holds `\n`.
_ESCAPE = re.compile(
    r'\\(?:([btnfr"\\])|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|[ \t]*\r?\n(?:[ \t]|\r?\n)*)|\r\n'
)


def unescape(raw: str, offset: int) -> str:
    """Decode the escapes of basic-string text ``raw`` found at ``offset``."""

    def replace(match: re.Match[str]) -> str:
        text = match.group()
        if text == "\r\n":
            return "\n"
        simple = match.group(1)
        if simple is not None:
            return _SIMPLE_ESCAPES[simple]
        digits = match.group(2) or match.group(3)
        if digits is None:
            return ""  # a line-ending backslash eats the line end and the indentation
        codepoint = int(digits, 16)
        if 0xD800 <= codepoint <= 0xDFFF or codepoint > 0x10FFFF:
            start = offset + match.start()
            kind = "a surrogate" if codepoint <= 0xDFFF else "beyond U+10FFFF"
            raise TomlProblem(
                "P103", f"escape `{text}` is not a Unicode scalar value",
                start, start + len(text), label=f"{kind}",
                help="write the character itself, or escape a code point in "
                     "U+0000..U+D7FF or U+E000..U+10FFFF")
        return chr(codepoint)

    return _ESCAPE.sub(replace, raw)


def _basic_string(token: str, start: int) -> str:
    text = token[1:-1]
    if "\\" in text:
        return unescape(text, start + 1)
    return text


def _multiline_body(token: str) -> tuple[str, int]:
    """The text between the delimiters, less a line end right after the opening one."""
    text = token[3:-3]
    if text[:1] == "\n":
        return text[1:], 4
    if text[:2] == "\r\n":
        return text[2:], 5
    return text, 3


def _ml_basic_string(token: str, start: int) -> str:
    text, skipped = _multiline_body(token)
    if "\\" in text or "\r" in text:
        return unescape(text, start + skipped)
    return text


def _literal_string(token: str, start: int) -> str:
    return token[1:-1]


def _ml_literal_string(token: str, start: int) -> str:
    text = _multiline_body(token)[0]
    if "\r" in text:
        return text.replace("\r\n", "\n")
    return text


# ------------------------------------------------------------------ numbers

def _integer(token: str, start: int) -> int:
    try:
        value = int(token, 0)
    except ValueError:
        # Python refuses decimal strings over 4300 digits: far out of range anyway.
        value = None
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        raise TomlProblem(
            "P106", f"integer `{_shorten(token)}` does not fit in 64 bits",
            start, start + len(token), label="out of range",
            help=f"TOML integers are between {INT64_MIN} and {INT64_MAX}; "
                 "write a float (`1e20`) or a string for larger numbers")
    return value


def _float(token: str, start: int) -> float:
    # Python's float() accepts TOML's underscores, `inf` and `nan` as they are.
    return float(token)


def _boolean(token: str, start: int) -> bool:
    return token[0] == "t"


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------ dates and times

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July",
           "August", "September", "October", "November", "December")
_TIMEZONES: dict[str, timezone] = {"Z": timezone.utc, "z": timezone.utc}


def _field(text: str, begin: int, end: int, low: int, high: int, name: str,
           offset: int, help: str | None = None) -> int:
    value = int(text[begin:end])
    if not low <= value <= high:
        raise TomlProblem(
            "P107", f"{name} must be between {low:0{end - begin}d} and "
                    f"{high:0{end - begin}d}, found {text[begin:end]}",
            offset + begin, offset + end, label=f"not a valid {name}", help=help)
    return value


def _time_fields(text: str, at: int, offset: int) -> tuple[int, int, int, int, int]:
    """Hour, minute, second, microsecond of ``HH:MM:SS[.frac]`` at ``text[at:]``,
    and the index just past it.  Digits beyond microseconds are dropped, as
    tomllib drops them."""
    hour = _field(text, at, at + 2, 0, 23, "hour", offset)
    minute = _field(text, at + 3, at + 5, 0, 59, "minute", offset)
    second = _field(text, at + 6, at + 8, 0, 59, "second", offset,
                    help="leap seconds (`60`) are not supported")
    end = at + 8
    micro = 0
    if text[end:end + 1] == ".":
        digits_end = end + 1
        while digits_end < len(text) and text[digits_end].isdigit():
            digits_end += 1
        micro = int(text[end + 1:min(digits_end, end + 7)].ljust(6, "0"))
        end = digits_end
    return hour, minute, second, micro, end


def _offset(text: str, offset: int) -> timezone:
    zone = _TIMEZONES.get(text)
    if zone is None:
        hours = _field(text, 1, 3, 0, 23, "offset hour", offset)
        minutes = _field(text, 4, 6, 0, 59, "offset minute", offset)
        sign = -1 if text[0] == "-" else 1
        zone = timezone(timedelta(hours=sign * hours, minutes=sign * minutes))
        _TIMEZONES[text] = zone
    return zone


def _datetime(token: str, offset: int) -> date | datetime | time:
    text = str(token)
    if text[2] == ":":
        hour, minute, second, micro, _ = _time_fields(text, 0, offset)
        return time(hour, minute, second, micro)
    year = int(text[0:4])
    month = _field(text, 5, 7, 1, 12, "month", offset)
    days = _DAYS_IN_MONTH[month - 1]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        days = 29
    day = int(text[8:10])
    if day == 0:
        raise TomlProblem("P107", f"{text[:10]} is not a date: days start at 01",
                          offset + 8, offset + 10, label="day 00",
                          help=f"the first day of the month is {text[:8]}01")
    if not 1 <= day <= days:
        raise TomlProblem(
            "P107", f"{text[:10]} is not a date: {_MONTHS[month - 1]} {year} has {days} days",
            offset + 8, offset + 10, label="no such day")
    if year == 0:
        raise TomlProblem("P107", "year 0000 is not supported", offset, offset + 4,
                          label="year 0000", help="Python dates start at year 0001")
    if len(text) == 10:
        return date(year, month, day)
    hour, minute, second, micro, end = _time_fields(text, 11, offset)
    zone = _offset(text[end:], offset + end) if end < len(text) else None
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)


CONVERTERS: dict[str, Callable[[str, int], Any]] = {
    "BASIC_STRING": _basic_string,
    "ML_BASIC_STRING": _ml_basic_string,
    "LITERAL_STRING": _literal_string,
    "ML_LITERAL_STRING": _ml_literal_string,
    "INTEGER": _integer,
    "FLOAT": _float,
    "BOOLEAN": _boolean,
    "DATETIME": _datetime,
}
"""Terminal name -> function from that token's text and offset to its value."""
