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
        where = f"{self.span}: " if self.span is not None else ""
        return f"{where}{self.severity.value}[{self.code}]: {self.message}"


class ConfigError(ValueError):
    """A configuration could not be read, checked or compiled.

    Carries every :class:`Diagnostic` found; ``str(error)`` is their rendered
    text, exactly what ``capibara check`` prints.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(render_all(self.diagnostics))

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)


# --------------------------------------------------------------------------- rendering


def render(diagnostic: Diagnostic) -> str:
    """Render one diagnostic as text, rustc style, with the source lines as written."""
    d = diagnostic
    out = [f"{d.severity.value}[{d.code}]: {d.message}"]
    labels = list(d.labels)
    if d.span is not None and not any(lab.span == d.span for lab in labels):
        labels.insert(0, Label(d.span, ""))
    if d.span is not None:
        lines = [lab.span.line for lab in labels if lab.span.source is d.span.source]
        gutter = len(str(max(lines or [d.span.line])))
        pad = " " * gutter
        out.append(f"{pad}--> {d.span}")
        out.append(f"{pad} |")
        _render_labels(out, labels, d.span, pad)
        out.append(f"{pad} |")
    else:
        pad = ""
    for lab in labels:
        if d.span is None or lab.span.source is not d.span.source:
            out.append(f"{pad}::: {lab.span}" + (f": {lab.message}" if lab.message else ""))
    for note in d.notes:
        out.append(f"{pad} = note: {note}")
    if d.help:
        out.append(f"{pad} = help: {d.help}")
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
        marks = [" "] * len(shown)
        for lab in line_labels:
            start, end = _columns(text, lab.span)
            marks.extend(" " * max(0, end - len(marks)))
            for i in range(start, end):
                marks[i] = "^" if lab.span == primary else "-"
        caret = "".join(marks).rstrip()
        last = line_labels[-1]
        out.append(f"{pad} | {caret}" + (f" {last.message}" if last.message else ""))
        for lab in reversed(line_labels[:-1]):
            if lab.message:
                start, _ = _columns(text, lab.span)
                out.append(f"{pad} | {' ' * start}{lab.message}")
        previous_line = line


def _columns(text: str, span: Span) -> tuple[int, int]:
    """Display columns [start, end) of ``span`` on its first line (at least one wide)."""
    start = len(_visible(text[: span.column - 1]))
    if span.end_line == span.line:
        end = len(_visible(text[: max(span.end_column - 1, span.column)]))
    else:
        end = len(_visible(text))
    return start, max(end, start + 1)


def _visible(text: str) -> str:
    """The line as shown: tabs as four spaces, control characters as their
    Unicode control pictures (U+2400 + code) so an invisible BEL can be seen."""
    return text.replace("\t", "    ").translate(_CONTROL_PICTURES)


_CONTROL_PICTURES = {c: 0x2400 + c for c in range(0x20) if c != 0x09} | {0x7F: 0x2421}


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
    import json  # only --message-format json pays for it

    return json.dumps(record, ensure_ascii=False)
