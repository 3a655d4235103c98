"""The legacy-rewrite stage: a parsed v2 TOML document in the v3 layout.

:func:`rewrite_document` applies :data:`~.rules.LEGACY_KEYS` to a parsed
document, remembers where each moved value came from (so the schema stage
points at the original text) and warns once per rule at the old key.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import msgspec

from capibara.config.fieldtypes import format_value, join_words
from capibara.config.legacy.rules import (LEGACY_CONFLICT, LEGACY_KEYS, LEGACY_TABLES,
                                          V2_ONLY_DEVICES, LegacyKey, LegacyValueError,
                                          canonical, same)
from capibara.diagnostics import Diagnostic, Label

__all__ = ["LegacyRewrite", "rewrite_document", "find_legacy_paths", "lookup", "MISSING"]


class LegacyRewrite(msgspec.Struct, frozen=True):
    """The result of :func:`rewrite_document`.

    ``value`` is the document's nested dict in the v3 layout (the document's
    own dict, untouched, when nothing was legacy); ``origin`` maps each path
    the rewrite wrote to the legacy path its value came from, so the schema
    stage can point at the original text; ``diagnostics`` holds one warning
    per applied rule (or an error when a legacy value is unusable).
    """

    value: dict[str, Any]
    origin: dict[tuple[str, ...], tuple[str, ...]] = msgspec.field(default_factory=dict)
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.origin) or bool(self.diagnostics)


def lookup(tree: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in a nested dict, or :data:`MISSING`."""
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return MISSING
        tree = tree[part]
    return tree


#: What :func:`lookup` returns for a path the tree does not hold.
MISSING = object()


def find_legacy_paths(value: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Paths of legacy entries in a parsed document (empty for a v3 document).

    This runs on every compile, so it only looks where legacy keys can be: a
    handful of dict lookups.
    """
    found: list[tuple[str, ...]] = []
    for table_path in LEGACY_TABLES:
        table = lookup(value, table_path)
        if isinstance(table, dict):
            for key in LEGACY_KEYS:
                if key in table:
                    found.append(table_path + (key,))
    device_path = canonical("device")
    device = lookup(value, device_path)
    if isinstance(device, str) and device.lower() in V2_ONLY_DEVICES:
        found.append(device_path)
    return found


class _Tree:
    """A copy-on-write view of the document's nested dict: tables on written paths
    are copied once, everything else is shared with the original."""

    def __init__(self, original: dict[str, Any]) -> None:
        self.root = dict(original)
        self._copied: set[tuple[str, ...]] = {()}

    def _table(self, path: tuple[str, ...], create: bool) -> dict[str, Any] | None:
        table = self.root
        for depth, part in enumerate(path):
            prefix = path[: depth + 1]
            child = table.get(part, MISSING)
            if child is MISSING:
                if not create:
                    return None
                child = {}
                table[part] = child
                self._copied.add(prefix)
            elif not isinstance(child, dict):
                return None
            elif prefix not in self._copied:
                child = dict(child)
                table[part] = child
                self._copied.add(prefix)
            table = child
        return table

    def set(self, path: tuple[str, ...], value: Any) -> bool:
        table = self._table(path[:-1], create=True)
        if table is None:
            return False
        table[path[-1]] = value
        return True

    def delete(self, path: tuple[str, ...]) -> None:
        table = self._table(path[:-1], create=False)
        if table is not None:
            table.pop(path[-1], None)


def _help_for(assignments: Iterable[tuple[tuple[str, str], Any]]) -> str:
    """``write `a = 1` and `b = 2` under `[model]` and `c = true` under `[x]```."""
    by_section: dict[str, list[str]] = {}
    for (section, key), value in assignments:
        by_section.setdefault(section, []).append(f"`{key} = {format_value(value)}`")
    parts = [f"{join_words(items)} under `[{section}]`" for section, items in by_section.items()]
    return "write " + join_words(parts)


def _spelled(path: tuple[str, ...]) -> str:
    """How a path reads in a message: ``[model] model_size`` or a top-level ``model_size``."""
    if len(path) == 1:
        return f"`{path[0]}`"
    return f"`[{'.'.join(path[:-1])}] {path[-1]}`"


def rewrite_document(doc: Any) -> LegacyRewrite:
    """Rewrite a parsed TOML document's legacy (v2) keys into the v3 layout.

    ``doc`` is a :class:`capibara.toml.Document` (its ``.value`` and
    ``key_span``/``value_span`` are used).  A v3 document returns its own value
    with no origin and no diagnostics.  Each applied rule warns at the legacy
    key with the v3 spelling under ``help``; an unusable legacy value, or one
    that contradicts the v3 key beside it, is an error at the value.
    """
    value: dict[str, Any] = doc.value
    legacy_paths = find_legacy_paths(value)
    if not legacy_paths:
        return LegacyRewrite(value)
    legacy_paths.sort(key=lambda path: _start(doc, path))
    tree = _Tree(value)
    origin: dict[tuple[str, ...], tuple[str, ...]] = {}
    diagnostics: list[Diagnostic] = []
    # path written by a rule -> (value, the legacy path that wrote it, implied?)
    written: dict[tuple[str, ...], tuple[Any, tuple[str, ...], bool]] = {}
    legacy_set = set(legacy_paths)

    for old_path in legacy_paths:
        rule = LEGACY_KEYS[old_path[-1]]
        raw = lookup(value, old_path)
        if old_path not in written:  # an in-place value (`[hardware] device`) may hold a rewrite
            tree.delete(old_path)
        try:
            translation = rule.translate(raw)
        except LegacyValueError as problem:
            diagnostics.append(Diagnostic.error(
                problem.code, problem.message, doc.value_span(old_path), label=problem.label,
                help=problem.help))
            continue
        applied: list[tuple[tuple[str, str], Any]] = []
        conflicts: list[Diagnostic] = []
        for assignment in translation.assignments:
            new_path = canonical(assignment.field)
            if new_path in written:
                earlier, earlier_path, earlier_implied = written[new_path]
                if same(earlier, assignment.value):
                    continue
                if not assignment.implied:
                    conflicts.append(_conflict(doc, old_path, raw, earlier_path, earlier, new_path))
                elif earlier_implied and earlier_path[-1] == old_path[-1] and not any(
                        c.span == doc.value_span(old_path) for c in conflicts):
                    # the same v2 key twice (top level and `[model]`) with different values:
                    # neither is explicit, so neither may silently win
                    conflicts.append(_conflict(doc, old_path, raw, earlier_path,
                                               lookup(value, earlier_path), old_path))
                continue
            existing = lookup(value, new_path)
            if existing is not MISSING and new_path not in legacy_set:
                if assignment.implied:
                    continue  # the v3 key the user wrote wins over what the legacy key implies
                if not same(existing, assignment.value):
                    conflicts.append(_conflict(doc, old_path, raw, new_path, existing, new_path))
                    continue
            if tree.set(new_path, assignment.value):
                written[new_path] = (assignment.value, old_path, assignment.implied)
                origin[new_path] = old_path
                applied.append((new_path, assignment.value))
        # A contradiction is the one thing to say about this key: no rename advice beside it.
        diagnostics.extend(conflicts or
                           [_renamed(doc, rule, old_path, raw, applied, translation.notes)])

    # A table that only dotted legacy keys made (`model.use_quantum = true`) is gone with
    # them, exactly as it is gone from the migrated text; a `[model]` header stays.
    for table in {path[:-1] for path in legacy_paths if len(path) > 1}:
        if lookup(tree.root, table) == {} and doc.header_span(table) is None \
                and doc.value_span(table) is None:
            tree.delete(table)
    return LegacyRewrite(tree.root, origin, tuple(diagnostics))


def _start(doc: Any, path: tuple[str, ...]) -> int:
    span = doc.key_span(path)
    return span.start if span is not None else 0


def _renamed(doc: Any, rule: LegacyKey, old_path: tuple[str, ...], raw: Any,
             applied: list[tuple[tuple[str, str], Any]], notes: tuple[str, ...]) -> Diagnostic:
    if rule.also_v3 and old_path == canonical(rule.key):
        # `[hardware] device = "cuda"`: the key is v3, only the value is a v2 name.
        message = f"{format_value(raw)} is a v2 device name"
        span, label = doc.value_span(old_path), "v2 device name"
        new_value = applied[0][1] if applied else raw
        help = f"write `device = {format_value(new_value)}`"
        rest = [item for item in applied if item[0] != old_path]
        if rest:
            help += "; v2 also implied " + _help_for(rest).removeprefix("write ")
    else:
        message = rule.message.format(key=_spelled(old_path))
        span, label = doc.key_span(old_path), "v2 key"
        help = (_help_for(applied) + " instead" if applied else
                "delete it: the v3 keys beside it already say everything it said")
    return Diagnostic.warning(rule.code, message, span, label=label, notes=notes, help=help)


def _conflict(doc: Any, old_path: tuple[str, ...], raw: Any, other_path: tuple[str, ...],
              found: Any, new_path: tuple[str, ...]) -> Diagnostic:
    other_span = doc.value_span(other_path)
    labels = [Label(other_span, f"this says {format_value(found)}")] if other_span else []
    notes = () if old_path == new_path else (
        f"{_spelled(old_path)} is the v2 spelling of {_spelled(new_path)}",)
    return Diagnostic.error(
        LEGACY_CONFLICT,
        f"{_spelled(old_path)} = {format_value(raw)} contradicts {_spelled(other_path)} = "
        f"{format_value(found)}", doc.value_span(old_path), label="the v2 setting",
        labels=labels, notes=notes,
        help=f"delete {_spelled(old_path)}, or make the two agree")
