"""Spans, diagnostics and their rendering.

Every stage of the pipeline reports problems as :class:`Diagnostic` values that
point at :class:`Span`\\ s of the source exactly as the user wrote it.  Stages
never print; the CLI (or ``str(ConfigError)``) renders them once, rustc style::

    error[P101]: expected a value after `=`
     --> configs/production/tpu_v4.toml:3:13
      |
    3 | model_name =
      |             ^ expected a value
      |
      = help: write a value such as `"text"`, `42`, `true` or `[1, 2]`

The table of codes with their explanations lives in :mod:`capibara.codes`.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Sequence

__all__ = [
    "Source",
    "Span",
    "Label",
    "Severity",
    "Diagnostic",
    "ConfigError",
    "render",
    "render_all",
    "to_json",
    "escape",
    "display_width",
]


class Source:
    """A named source text (a file, an env var, a ``--set`` argument).

    Sources compare by identity: two spans are equal only when they point into
    the same source object.
    """

    __slots__ = ("name", "text", "_line_starts")

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self._line_starts: list[int] | None = None

    def __repr__(self) -> str:
        return f"Source({self.name!r})"

    @property
    def line_starts(self) -> list[int]:
        """Character offsets where each line starts (index 0 is line 1)."""
        if self._line_starts is None:
            starts = [0]
            find = self.text.find
            pos = find("\n")
            while pos != -1:
                starts.append(pos + 1)
                pos = find("\n", pos + 1)
            self._line_starts = starts
        return self._line_starts

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line`` without its line ending."""
        starts = self.line_starts
        if not 1 <= line <= len(starts):
            return ""
        begin = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[begin:end].rstrip("\r")

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset; columns count characters."""
        starts = self.line_starts
        index = bisect.bisect_right(starts, offset) - 1
        return index + 1, offset - starts[index] + 1

    def byte_offset(self, offset: int) -> int:
        """UTF-8 byte offset of a character offset."""
        if self.text.isascii():
            return offset
        return len(self.text[:offset].encode("utf-8", "surrogatepass"))

    def span(self, start: int, end: int) -> "Span":
        """The span of characters ``text[start:end]``."""
        line, column = self.position(start)
        end_line, end_column = self.position(end)
        return Span(self, line, column, end_line, end_column, start, end)


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a :class:`Source`.

    ``line``/``column`` are 1-based and count characters; ``end_line`` and
    ``end_column`` point just past the last character (so a one-character span
    on column 5 ends at column 6).  ``start``/``end`` are character offsets
    into ``source.text``; :attr:`byte_start` and :attr:`byte_end` give UTF-8
    byte offsets.
    """

    source: Source
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int

    @property
    def file(self) -> str:
        return self.source.name

    @property
    def byte_start(self) -> int:
        return self.source.byte_offset(self.start)

    @property
    def byte_end(self) -> int:
        return self.source.byte_offset(self.end)

    @property
    def text(self) -> str:
        """The source text the span covers."""
        return self.source.text[self.start : self.end]

    def __str__(self) -> str:
        return f"{self.source.name}:{self.line}:{self.column}"


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Label:
    """A span with a short message printed beside its carets."""

    span: Span
    message: str = ""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a configuration.

    ``span`` is the primary location (``None`` for problems that have no place
    in a file, such as an unknown environment variable whose name is then in
    the message).  ``labels`` annotate the primary span (a label whose span is
    ``span``) and any secondary places, e.g. the first definition of a table
    defined twice.  ``notes`` are extra facts, ``help`` is the suggested fix.
    """

    code: str
    severity: Severity
    message: str
    span: Span | None = None
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None

    @classmethod
    def error(cls, code: str, message: str, span: Span | None = None, *,
              label: str = "", labels: Iterable[Label] = (), notes: Iterable[str] = (),
              help: str | None = None) -> "Diagnostic":
        return cls._make(Severity.ERROR, code, message, span, label, labels, notes, help)

    @classmethod
    def warning(cls, code: str, message: str, span: Span | None = None, *,
                label: str = "", labels: Iterable[Label] = (), notes: Iterable[str] = (),
                help: str | None = None) -> "Diagnostic":
        return cls._make(Severity.WARNING, code, message, span, label, labels, notes, help)

    @classmethod
    def _make(cls, severity, code, message, span, label, labels, notes, help):
        all_labels = tuple(labels)
        if span is not None and label:
            all_labels = (Label(span, label),) + all_labels
        return cls(code, severity, message, span, all_labels, tuple(notes), help)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        """One line: ``file:line:col: error[CODE]: message``, as the seed prints errors."""
        where = f"{escape(str(self.span))}: " if self.span is not None else ""
        return f"{where}{self.severity.value}[{self.code}]: {escape(self.message)}"


class ConfigError(ValueError):
    """A configuration could not be read, checked or compiled.

    Carries every :class:`Diagnostic` found; ``str(error)`` is their rendered
    text, errors first (the first line says what stopped), then the warnings.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        ordered = [d for d in self.diagnostics if d.is_error] + \
            [d for d in self.diagnostics if not d.is_error]
        super().__init__(render_all(ordered))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)


# --------------------------------------------------------------------------- rendering


def render(diagnostic: Diagnostic) -> str:
    """Render one diagnostic as text, rustc style, with the source lines as written.

    Everything in it that a user wrote (keys, values, file names) passes through
    :func:`escape`, so no input can send control sequences to a terminal.
    """
    d = diagnostic
    out = [f"{d.severity.value}[{d.code}]: {escape(d.message)}"]
    labels = list(d.labels)
    if d.span is not None and not any(lab.span == d.span for lab in labels):
        labels.insert(0, Label(d.span, ""))
    if d.span is not None:
        lines = [lab.span.line for lab in labels if lab.span.source is d.span.source]
        gutter = len(str(max(lines or [d.span.line])))
        pad = " " * gutter
        out.append(f"{pad}--> {escape(str(d.span))}")
        out.append(f"{pad} |")
        _render_labels(out, labels, d.span, pad)
        out.append(f"{pad} |")
    else:
        pad = ""
    for lab in labels:
        if d.span is None or lab.span.source is not d.span.source:
            out.append(f"{pad}::: {escape(str(lab.span))}"
                       + (f": {escape(lab.message)}" if lab.message else ""))
    for note in d.notes:
        out.append(f"{pad} = note: {escape(note)}")
    if d.help:
        out.append(f"{pad} = help: {escape(d.help)}")
    return "\n".join(out)


def _render_labels(out: list[str], labels: list[Label], primary: Span, pad: str) -> None:
    same_source = sorted(
        (lab for lab in labels if lab.span.source is primary.source),
        key=lambda lab: (lab.span.line, lab.span.column),
    )
    by_line: dict[int, list[Label]] = {}
    for lab in same_source:
        by_line.setdefault(lab.span.line, []).append(lab)
    previous_line = None
    for line, line_labels in by_line.items():
        if previous_line is not None and line > previous_line + 1:
            out.append(f"{pad}...")
        text = primary.source.line_text(line)
        shown = _visible(text)
        out.append(f"{str(line).rjust(len(pad))} | {shown}".rstrip())
        # Several labels on one line share it: carets on one row, the messages of
        # all but the last on rows of their own below (rustc does the same).
        # Carets count terminal columns, so a CJK character or an emoji takes two.
        marks = [" "] * display_width(shown)
        for lab in line_labels:
            start, end = _columns(text, lab.span)
            marks.extend(" " * max(0, end - len(marks)))
            for i in range(start, end):
                marks[i] = "^" if lab.span == primary else "-"
        caret = "".join(marks).rstrip()
        last = line_labels[-1]
        out.append(f"{pad} | {caret}" + (f" {escape(last.message)}" if last.message else ""))
        for lab in reversed(line_labels[:-1]):
            if lab.message:
                start, _ = _columns(text, lab.span)
                out.append(f"{pad} | {' ' * start}{escape(lab.message)}")
        previous_line = line


def _columns(text: str, span: Span) -> tuple[int, int]:
    """Display columns [start, end) of ``span`` on its first line (at least one wide)."""
    start = display_width(_visible(text[: span.column - 1]))
    if span.end_line == span.line:
        end = display_width(_visible(text[: max(span.end_column - 1, span.column)]))
    else:
        end = display_width(_visible(text))
    return start, max(end, start + 1)


def _visible(text: str) -> str:
    """The line as shown: tabs as four spaces, everything else as :func:`escape` shows it."""
    return escape(text.replace("\t", "    "))


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide and full-width characters (CJK, most emoji)
    two, combining marks and other zero-width characters none, the rest one."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """User-controlled text made safe to print for people: the one function for it.

    C0 control characters (newline and tab included) show as their Unicode
    control pictures (U+2400 + code, so ESC is ␛ and BEL ␇), DEL as ␡; C1
    controls (which some terminals obey like ESC [), the bidirectional
    overrides that can reorder what a line seems to say, and lone surrogates
    (undecodable bytes of a file name) show as ``\\x9b`` / ``\\u202e`` escapes.
    Printable text, CJK and emoji included, is unchanged. ``keep_newlines`` keeps
    the line breaks of a block of lines (a plan summary) and escapes within them.
    """
    if keep_newlines:
        return "\n".join(escape(line) for line in text.split("\n"))
    if text.isascii() and text.isprintable():
        return text
    return text.translate(_ESCAPES)


class _EscapeTable(dict):
    """``str.translate`` table: the fixed pictures, and escapes computed on first sight."""

    def __missing__(self, code: int) -> int | str:
        if 0x80 <= code <= 0x9F:
            shown: int | str = f"\\x{code:02x}"
        elif 0xD800 <= code <= 0xDFFF or code in _BIDI_CONTROLS:
            shown = f"\\u{code:04x}"
        else:
            shown = code  # printable, or harmless (other format characters are zero-width)
        self[code] = shown
        return shown


_BIDI_CONTROLS = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})
_ESCAPES = _EscapeTable({c: 0x2400 + c for c in range(0x20)} | {0x7F: 0x2421})


def render_all(diagnostics: Iterable[Diagnostic]) -> str:
    """Render several diagnostics separated by blank lines."""
    return "\n\n".join(render(d) for d in diagnostics)


def to_json(diagnostic: Diagnostic) -> str:
    """One JSON object for ``--message-format json``."""
    span = diagnostic.span
    record = {
        "code": diagnostic.code,
        "severity": diagnostic.severity.value,
        "message": diagnostic.message,
        "file": span.file if span else None,
        "line": span.line if span else None,
        "column": span.column if span else None,
        "end_line": span.end_line if span else None,
        "end_column": span.end_column if span else None,
        "help": diagnostic.help,
        "labels": [
            {"file": lab.span.file, "line": lab.span.line, "column": lab.span.column,
             "end_line": lab.span.end_line, "end_column": lab.span.end_column,
             "message": lab.message}
            for lab in diagnostic.labels
        ],
        "notes": list(diagnostic.notes),
    }
    # JSON escapes C0 controls itself; DEL, C1, bidi controls and lone surrogates too,
    # so a tool that prints a line of it cannot be steered by the input.
    import json  # only --message-format json pays for it

    text = json.dumps(record, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
