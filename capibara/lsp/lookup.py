"""What is under the cursor: a section, a key or a value, and the field it spells."""

from __future__ import annotations

from typing import Literal, NamedTuple

from capibara.diagnostics import Span
from capibara.config.fields import ALIAS_SECTIONS, SECTIONS, Field, field_at
from capibara.toml import Document

Part = Literal["header", "key", "value"]


class Item(NamedTuple):
    """A path of the document, the part of it at the cursor, and that part's span."""

    path: tuple
    part: Part
    span: Span

    @property
    def field(self) -> Field | None:
        """The field a ``(section, key)`` path spells (canonically or as an alias)."""
        if len(self.path) == 2 and all(isinstance(p, str) for p in self.path):
            return field_at(*self.path)
        return None

    @property
    def section(self) -> str | None:
        """The section a one-part path names."""
        if len(self.path) == 1 and (self.path[0] in SECTIONS or self.path[0] in ALIAS_SECTIONS):
            return self.path[0]
        return None


def item_at(doc: Document, offset: int) -> Item | None:
    """The innermost header, key or value of ``doc`` holding character ``offset``
    (a cursor just after the last character still counts)."""
    found: list[Item] = []

    def consider(path: tuple, part: Part, span: Span | None) -> None:
        if span is not None and span.start <= offset <= span.end:
            found.append(Item(path, part, span))

    for path, key, value in doc.entries():
        consider(path, "key", key)
        consider(path, "value", value)
        for depth in range(1, len(path)):  # the parts of a dotted key, `model.hidden_size`
            consider(path[:depth], "key", doc.key_span(path[:depth]))
    for name in doc.value:
        consider((name,), "header", doc.header_span((name,)))
    if not found:
        return None
    return min(found, key=lambda item: (item.span.end - item.span.start, item.part != "key"))
