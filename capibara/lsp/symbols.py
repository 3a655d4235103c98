"""Document symbols (sections and their keys) and go-to-definition from a key
to the place that sets the value the stack ends with."""

from __future__ import annotations

from lsprotocol import types

from capibara.diagnostics import Span
from capibara.lsp.analysis import Analysis
from capibara.lsp.convert import location
from capibara.lsp.lookup import item_at
from capibara.lsp.positions import UTF16, offsets_range, span_range
from capibara.config.fields import ALIAS_SECTIONS, SECTIONS, field_at


def document_symbols(analysis: Analysis, encoding: str = UTF16) -> list[types.DocumentSymbol]:
    """One symbol per top-level table or key, the tables holding their keys."""
    doc = analysis.document
    if doc is None:
        return []
    children: dict[str, list[types.DocumentSymbol]] = {}
    ends: dict[str, int] = {}
    for path, key, value in doc.entries():
        if len(path) != 2 or not all(isinstance(p, str) for p in path):
            continue
        field = field_at(*path)
        children.setdefault(path[0], []).append(types.DocumentSymbol(
            name=path[1], kind=types.SymbolKind.Property,
            detail=field.name if field is not None and field.name != path[1] else None,
            range=offsets_range(analysis.source, key.start, value.end, encoding),
            selection_range=span_range(key, encoding)))
        ends[path[0]] = max(ends.get(path[0], 0), value.end)
    symbols = []
    for name, value in doc.value.items():
        head: Span | None = doc.header_span((name,)) or doc.key_span((name,))
        if head is None:
            continue
        if isinstance(value, dict):
            end = max(ends.get(name, head.end), head.end)
            symbols.append(types.DocumentSymbol(
                name=name, kind=types.SymbolKind.Namespace,
                detail=SECTIONS.get(name) or ALIAS_SECTIONS.get(name),
                range=offsets_range(analysis.source, head.start, end, encoding),
                selection_range=span_range(head, encoding), children=children.get(name, [])))
        else:
            value_span = doc.value_span((name,))
            end = value_span.end if value_span is not None else head.end
            symbols.append(types.DocumentSymbol(
                name=name, kind=types.SymbolKind.Property,
                range=offsets_range(analysis.source, head.start, end, encoding),
                selection_range=span_range(head, encoding)))
    return symbols


def definition(analysis: Analysis, offset: int, encoding: str = UTF16) -> types.Location | None:
    """Where the value of the field under the cursor is set in the end: this key,
    or the file above it in its stack that overrides it."""
    if analysis.document is None or analysis.config is None:
        return None
    item = item_at(analysis.document, offset)
    field = item.field if item is not None else None
    if field is None:
        return None
    span = analysis.config.provenance(field.name).span
    return location(span, encoding) if span is not None else None
