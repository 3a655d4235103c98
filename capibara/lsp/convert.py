"""capibara diagnostics as protocol diagnostics.

The message, code and severity are the ones ``capibara check`` prints; the
primary span becomes the range, secondary labels become related locations
with their label, and the notes and the ``help`` line become related entries
at the primary range (as rustc's notes are shown in editors). A diagnostic
whose place is in another file of the stack, or in no file, is shown at the
top of the open file with its own place as the first related location.
"""

from __future__ import annotations

import os

from lsprotocol import types
from pygls.uris import from_fs_path

from capibara.diagnostics import Diagnostic, Severity, Span
from capibara.lsp.analysis import Analysis
from capibara.lsp.positions import UTF16, span_range

SOURCE = "capibara"

_SEVERITY = {Severity.ERROR: types.DiagnosticSeverity.Error,
             Severity.WARNING: types.DiagnosticSeverity.Warning,
             Severity.NOTE: types.DiagnosticSeverity.Information}

_TOP = types.Range(start=types.Position(line=0, character=0),
                   end=types.Position(line=0, character=0))


def uri_of(path: str) -> str:
    """The ``file:`` URI of a path as a span names it."""
    return from_fs_path(os.path.abspath(path)) or path


def location(span: Span, encoding: str = UTF16) -> types.Location:
    return types.Location(uri=uri_of(span.file), range=span_range(span, encoding))


def to_protocol(diagnostic: Diagnostic, analysis: Analysis, encoding: str = UTF16,
                index: int | None = None) -> types.Diagnostic:
    """One diagnostic for the open file of ``analysis``; ``index`` (its place in
    ``analysis.diagnostics``) travels in ``data`` so an action finds it again."""
    d = diagnostic
    related: list[types.DiagnosticRelatedInformation] = []
    if analysis.here(d):
        where = span_range(d.span, encoding)
        primary = types.Location(uri=uri_of(analysis.path), range=where)
    else:
        where = _TOP
        primary = location(d.span, encoding) if d.span is not None else \
            types.Location(uri=uri_of(analysis.path), range=_TOP)
        if d.span is not None:
            related.append(types.DiagnosticRelatedInformation(location=primary, message=str(d.span)))
    for label in d.labels:
        if label.span != d.span:
            related.append(types.DiagnosticRelatedInformation(
                location=location(label.span, encoding), message=label.message or str(label.span)))
    for note in d.notes:
        related.append(types.DiagnosticRelatedInformation(location=primary, message=f"note: {note}"))
    if d.help:
        related.append(types.DiagnosticRelatedInformation(location=primary, message=f"help: {d.help}"))
    return types.Diagnostic(range=where, message=d.message, severity=_SEVERITY[d.severity],
                            code=d.code, source=SOURCE, related_information=related or None,
                            data=index)


def published(analysis: Analysis, encoding: str = UTF16) -> list[types.Diagnostic]:
    """Every diagnostic of the check, as the open file shows them."""
    return [to_protocol(d, analysis, encoding, i) for i, d in enumerate(analysis.diagnostics)]
