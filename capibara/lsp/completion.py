"""Completion: sections, the keys of the table at the cursor, and the values a
field accepts, each with its doc.

The context is read from the line text, not from a parse: while a line is
being typed the file is usually not valid TOML.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Literal, NamedTuple

from lsprotocol import types

from capibara.diagnostics import Source
from capibara.config.fieldtypes import (AutoOr, Bool, Choice, FieldType, IntChoice, Optional, Subset,
                                 format_value)
from capibara.lsp.hover import field_text
from capibara.lsp.positions import UTF16, offsets_range
from capibara.lsp.settings import KEYS as SETTING_KEYS, SETTINGS_FILE
from capibara.config.fields import ALIAS_SECTIONS, FIELD_BY_NAME, SECTIONS, Field, field_at, keys_of

_HEADER = re.compile(r"\s*\[\[?\s*([^\]\[#]*?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


class Context(NamedTuple):
    """Where the cursor is: in a header, at a key or in a value; the table path
    of the last header above; the key path before ``=``; where the word being
    completed starts; and the keys the table already has."""

    kind: Literal["header", "key", "value"]
    table: tuple[str, ...]
    key: tuple[str, ...]
    start: int
    present: frozenset[str]


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in dotted.split(".") if p.strip())


def context_at(text: str, offset: int) -> Context:
    """The completion context of character ``offset`` of ``text``."""
    line_start = text.rfind("\n", 0, offset) + 1
    before = text[line_start:offset]
    lines_above = text[:line_start].splitlines()
    table: tuple[str, ...] = ()
    header_at = 0
    for index in range(len(lines_above) - 1, -1, -1):
        match = _HEADER.match(lines_above[index])
        if match:
            table, header_at = _parts(match.group(1)), index + 1
            break
    lines = text.splitlines()
    here = len(lines_above)
    present = set()
    for index in range(header_at, len(lines)):
        if index > here and _HEADER.match(lines[index]):
            break
        match = _KEY.match(lines[index])
        if match and index != here and _parts(match.group(1)):
            present.add(_parts(match.group(1))[-1])
    stripped = before.lstrip()
    if stripped.startswith("["):
        start = line_start + len(before) - len(stripped) + (2 if stripped.startswith("[[") else 1)
        return Context("header", table, (), start, frozenset(present))
    if "=" in before:
        key, _, value = before.partition("=")
        cut = max(value.rfind("["), value.rfind(","))
        rest = value[cut + 1:]
        start = offset - len(rest.lstrip())
        return Context("value", table, _parts(key), start, frozenset(present))
    return Context("key", table, (), offset - len(stripped), frozenset(present))


def completions(source: Source, offset: int, encoding: str = UTF16) -> list[types.CompletionItem]:
    """The completion items at character ``offset`` of an open file."""
    ctx = context_at(source.text, offset)
    edit_range = offsets_range(source, ctx.start, offset, encoding)
    if source.name.endswith(SETTINGS_FILE):
        raw = _settings_items(ctx)
    elif ctx.kind == "header":
        raw = _section_items()
    elif ctx.kind == "key":
        raw = _key_items(ctx.table[0], ctx.present) if len(ctx.table) == 1 else \
            ([] if ctx.table else [_header_item(s) for s in _section_items()])
    else:
        path = ctx.table + ctx.key
        field = field_at(*path) if len(path) == 2 else None
        raw = _value_items(field.name) if field is not None else []
    return [types.CompletionItem(
        label=item.label, kind=item.kind, detail=item.detail,
        label_details=types.CompletionItemLabelDetails(description=item.note) if item.note else None,
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=item.doc)
        if item.doc else None,
        text_edit=types.TextEdit(range=edit_range, new_text=item.insert or item.label),
        sort_text=f"{index:04d}")
        for index, item in enumerate(raw)]


class Entry(NamedTuple):
    label: str
    kind: types.CompletionItemKind
    detail: str
    doc: str = ""
    note: str = ""  # shown beside the label: "alias of ..."
    insert: str = ""


@cache
def _section_items() -> tuple[Entry, ...]:
    items = [Entry(name, types.CompletionItemKind.Module, doc,
                   "keys: " + ", ".join(f"`{k}`" for k in keys_of(name)))
             for name, doc in SECTIONS.items()]
    items += [Entry(name, types.CompletionItemKind.Module, doc, note="alias section")
              for name, doc in ALIAS_SECTIONS.items()]
    return tuple(items)


def _header_item(section: Entry) -> Entry:
    return section._replace(label=f"[{section.label}]", insert=f"[{section.label}]")


@cache
def _all_keys(section: str) -> tuple[Entry, ...]:
    items = []
    for key in keys_of(section):
        field = field_at(section, key)
        assert field is not None
        canonical = (section, key) == (field.section, field.key)
        items.append(Entry(
            key, types.CompletionItemKind.Property if canonical else types.CompletionItemKind.Reference,
            field.type.describe(), field_text(field),
            "" if canonical else f"alias of [{field.section}] {field.key}", f"{key} = "))
    return tuple(items)


def _key_items(section: str, present: frozenset[str]) -> list[Entry]:
    """The keys of ``section`` whose field no spelling in the table sets yet."""
    taken = {field.name for key in present if (field := field_at(section, key)) is not None}
    return [item for item in _all_keys(section)
            if field_at(section, item.label).name not in taken]  # type: ignore[union-attr]


@cache
def _value_items(name: str) -> tuple[Entry, ...]:
    field = FIELD_BY_NAME[name]
    doc = field_text(field)
    seen: set[str] = set()
    items = []
    for text, note in _values(field.type, field):
        if text not in seen:
            seen.add(text)
            items.append(Entry(text, types.CompletionItemKind.Value, field.type.describe(), doc, note))
    return tuple(items)


def _values(kind: FieldType, field: Field) -> list[tuple[str, str]]:
    """``(TOML text, note)`` of the values worth offering for a type."""
    if isinstance(kind, Bool):
        return [("true", ""), ("false", "")]
    if isinstance(kind, Choice):
        return [(format_value(v), "") for v in kind.values] + \
            [(format_value(a), f"alias of {format_value(v)}") for a, v in kind.aliases.items()]
    if isinstance(kind, IntChoice):
        return [(str(v), "") for v in kind.values]
    if isinstance(kind, Optional):
        none = [(format_value(kind.none_word), "none")] if kind.none_word else []
        return _values(kind.inner, field) + none
    if isinstance(kind, AutoOr):
        return [('"auto"', "detected at run time")] + _values(kind.inner, field)
    if isinstance(kind, Subset):
        return [(format_value(v), "") for v in kind.values]
    if field.default is not None and not isinstance(field.default, list):
        return [(format_value(field.type.to_toml(field.default)), "default")]
    return []


def _settings_items(ctx: Context) -> list[Entry]:
    """In ``pyproject.toml``: the keys of ``[tool.capibara]`` and the target names."""
    if ctx.table != ("tool", "capibara"):
        return []
    if ctx.kind == "key":
        return [Entry(key, types.CompletionItemKind.Property, doc, insert=f"{key} = ")
                for key, doc in SETTING_KEYS.items() if key not in ctx.present]
    if ctx.kind == "value" and ctx.key == ("target",):
        from capibara.targets import CATALOG

        return [Entry(format_value(name), types.CompletionItemKind.Value, target.doc)
                for name, target in CATALOG.items()] + \
            [Entry('"auto"', types.CompletionItemKind.Value, "the host this runs on")]
    return []
