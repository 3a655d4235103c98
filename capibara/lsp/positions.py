"""Positions as the protocol counts them: 0-based lines and code units.

capibara's spans count characters; the protocol counts code units of the
encoding the client and server agreed on (UTF-16 unless the client offers
another), so a character outside the Basic Multilingual Plane (an emoji) is
two units and every non-ASCII character moves later columns in UTF-8.
"""

from __future__ import annotations

from lsprotocol import types

from capibara.diagnostics import Source, Span

UTF8 = types.PositionEncodingKind.Utf8
UTF16 = types.PositionEncodingKind.Utf16
UTF32 = types.PositionEncodingKind.Utf32


def units(text: str, encoding: str = UTF16) -> int:
    """How many code units ``text`` takes in ``encoding``."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def position(source: Source, offset: int, encoding: str = UTF16) -> types.Position:
    """The protocol position of character ``offset`` of ``source``."""
    line, column = source.position(offset)
    start = offset - column + 1
    return types.Position(line=line - 1, character=units(source.text[start:offset], encoding))


def span_range(span: Span, encoding: str = UTF16) -> types.Range:
    """The protocol range of a span."""
    return offsets_range(span.source, span.start, span.end, encoding)


def offsets_range(source: Source, start: int, end: int, encoding: str = UTF16) -> types.Range:
    """The protocol range of characters ``source.text[start:end]``."""
    return types.Range(start=position(source, start, encoding), end=position(source, end, encoding))


def offset(source: Source, where: types.Position, encoding: str = UTF16) -> int:
    """The character offset of a protocol position (clamped to its line, as the
    protocol asks of a column past the end)."""
    starts = source.line_starts
    if where.line >= len(starts):
        return len(source.text)
    begin = starts[where.line]
    line = source.line_text(where.line + 1)
    if encoding == UTF32 or line.isascii():
        return begin + min(where.character, len(line))
    counted = 0
    for index, char in enumerate(line):
        if counted >= where.character:
            return begin + index
        counted += units(char, encoding)
    return begin + len(line)
