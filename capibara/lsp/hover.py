"""Hover: what a section, key or value means, from the field table, and where
the value that counts in the end comes from."""

from __future__ import annotations

from functools import cache

from capibara.config.fieldtypes import format_value
from capibara.config.legacy import LEGACY_KEYS, LEGACY_TABLES
from capibara.lsp.analysis import Analysis
from capibara.lsp.convert import uri_of
from capibara.lsp.lookup import Item, item_at
from capibara.config.fields import ALIAS_SECTIONS, FIELD_BY_NAME, SECTIONS, Field, explain_field, keys_of


def hover_text(analysis: Analysis, offset: int) -> tuple[str, Item] | None:
    """Markdown for the item at ``offset``, and the item; ``None`` over nothing known."""
    if analysis.document is None:
        return None
    item = item_at(analysis.document, offset)
    if item is None:
        return None
    if item.field is not None:
        return field_text(item.field) + effective_value(analysis, item.field), item
    if item.section is not None:
        return section_text(item.section), item
    name = item.path[-1]
    if name in LEGACY_KEYS and tuple(item.path[:-1]) in LEGACY_TABLES:
        rule = LEGACY_KEYS[name]
        return (f"**`{name}`** (v2): {rule.doc}\n\n`capibara migrate` rewrites it in v3 keys; "
                f"`capibara explain {rule.code}` says how"), item
    return None


@cache
def _field_text(name: str) -> str:
    field = FIELD_BY_NAME[name]
    facts = explain_field(field.name).splitlines()[2:]
    return f"**{field.name}** ({field.id}): {field.doc}\n\n```text\n" + "\n".join(facts) + "\n```\n"


def field_text(field: Field) -> str:
    """The field's doc and its facts, as ``capibara explain FIELD`` prints them."""
    return _field_text(field.name)


def section_text(name: str) -> str:
    doc = SECTIONS.get(name) or ALIAS_SECTIONS[name]
    keys = ", ".join(f"`{k}`" for k in keys_of(name))
    return f"**[{name}]**: {doc}\n\nkeys: {keys}\n"


def effective_value(analysis: Analysis, field: Field) -> str:
    """Where the value of ``field`` that the stack ends with comes from, when that
    is not simply this key (a file above, a default, a derivation)."""
    config = analysis.config
    if config is None:
        return ""
    provenance = config.provenance(field.name)
    value = format_value(field.type.to_toml(getattr(config, field.name)))
    span = provenance.span
    if span is not None and span.file == analysis.path:
        return ""
    if span is not None:
        link = f"[{span}]({uri_of(span.file)}#L{span.line})"
        return f"\neffective value `{value}`, set in {link} ({provenance.detail}), which wins here\n"
    detail = f": {provenance.detail}" if provenance.detail else ""
    return f"\neffective value `{value}` ({provenance.kind}{detail})\n"
