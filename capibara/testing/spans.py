"""An oracle for diagnostic spans: inside their source, and on a whole token.

Property tests and fuzz targets ask :func:`span_problems` about every
diagnostic a stage reports::

    from capibara.testing.spans import span_problems

    assert span_problems(diagnostics, documents) == []

Two rules, the second only where a file parsed (so its tokens are known):

1. every span (primary and labels) lies inside its source text, and its
   line and column numbers agree with its character offsets;
2. a span into a parsed file covers exactly one key, value, array element or
   table header as written (``hidden_size``, ``"wav2vec2"``, ``[model]``),
   never half a token or two; and a key span's text is named in the message
   or its labels, so the caret sits under the name the user is told about.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from capibara.diagnostics import Diagnostic, Span

__all__ = ["span_problems", "token_spans"]


def _paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def token_spans(document: Any) -> tuple[dict[tuple[int, int], str], set[tuple[int, int]]]:
    """``({(start, end): key text}, {(start, end) of values and headers})`` of a
    parsed :class:`capibara.toml.Document`."""
    keys: dict[tuple[int, int], str] = {}
    others: set[tuple[int, int]] = set()
    for path in _paths(document.value):
        if not path:
            continue
        key = document.key_span(path)
        if key is not None:
            keys[(key.start, key.end)] = str(path[-1])
        for span in (document.value_span(path), document.header_span(path)):
            if span is not None:
                others.add((span.start, span.end))
    return keys, others


def _inside(span: Span) -> str | None:
    text = span.source.text
    if not 0 <= span.start <= span.end <= len(text):
        return f"offsets {span.start}..{span.end} outside a {len(text)}-character source"
    if (span.line, span.column) != span.source.position(span.start):
        return f"line/column {span.line}:{span.column} disagree with offset {span.start}"
    if (span.end_line, span.end_column) != span.source.position(span.end):
        return f"end {span.end_line}:{span.end_column} disagrees with offset {span.end}"
    return None


def span_problems(diagnostics: Iterable[Diagnostic],
                  documents: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with the spans of ``diagnostics``; empty when nothing is.

    ``documents`` maps a source name to its parsed ``Document``; spans into
    those sources must also sit on whole tokens (rule 2 above).
    """
    problems: list[str] = []
    tokens = {name: token_spans(doc) for name, doc in (documents or {}).items()}
    for d in diagnostics:
        spans = ([d.span] if d.span is not None else []) + [label.span for label in d.labels]
        words = d.message + " " + " ".join(label.message for label in d.labels)
        for span in spans:
            where = f"{d.code} `{d.message}` at {span}"
            bad = _inside(span)
            if bad is not None:
                problems.append(f"{where}: {bad}")
                continue
            if span.source.name not in tokens:
                continue
            keys, others = tokens[span.source.name]
            offsets = (span.start, span.end)
            if offsets in keys:
                if keys[offsets] not in words:
                    problems.append(f"{where}: points at key `{keys[offsets]}`, which it never names")
            elif offsets not in others:
                problems.append(f"{where}: {span.text!r} is not a whole key, value or header")
    return problems
