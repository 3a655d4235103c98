"""``capibara migrate``: the v3 text of a v2 file, keeping every untouched line.

The rewrite says what the document means in v3; this module turns that into
span edits of the original text, so comments, order and spacing survive, and
checks that the edited text parses to exactly the rewrite.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from capibara.config.legacy.rewrite import (LegacyRewrite, find_legacy_paths, lookup,
                                            rewrite_document)
from capibara.diagnostics import Diagnostic

__all__ = ["migrate_document", "migrate_toml"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    from capibara.config.writer import toml_value

    return key if _BARE_KEY.fullmatch(key) else toml_value(key)


def _toml_inline(value: Any) -> str:
    """A value in TOML syntax, tables as inline tables (for rewriting an inline table)."""
    from capibara.config.writer import toml_value

    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_inline(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    if hasattr(value, "isoformat") and not isinstance(value, (str, int, float)):
        return value.isoformat()
    return toml_value(value)


class _Edit(msgspec.Struct, frozen=True):
    start: int
    end: int
    text: str


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The full lines holding ``text[start:end]``, newline included."""
    line_start = text.rfind("\n", 0, start) + 1
    newline = text.find("\n", end)
    return line_start, len(text) if newline == -1 else newline + 1


def _trailing_comment(text: str, end: int) -> str:
    """The comment after a value on its line (``"# ..."``), or ``""``."""
    newline = text.find("\n", end)
    rest = text[end: len(text) if newline == -1 else newline].strip()
    return rest if rest.startswith("#") else ""


def _owned_by_header(doc: Any, path: tuple, depth: int) -> bool:
    """Whether a header deeper than ``depth`` (``[a.b]``, ``[[a.b]]``) owns ``path``."""
    return any(doc.header_span(path[:k]) is not None for k in range(depth + 1, len(path)))


def _plan_edits(doc: Any, rewrite: LegacyRewrite) -> tuple[list[_Edit], list[str]]:
    """Span edits turning the v2 text into the v3 layout, keeping every untouched line,
    and the new tables to append at the end."""
    text = doc.source.text
    newline = "\r\n" if "\r\n" in text else "\n"
    legacy_paths = find_legacy_paths(doc.value)
    deleted = {path for path in legacy_paths if rewrite.origin.get(path) != path}
    edits: list[_Edit] = []
    comments: dict[tuple[str, ...], str] = {}  # legacy path -> its trailing comment
    inline: set[tuple[str, ...]] = set()  # inline tables rewritten whole

    for path in legacy_paths:
        parent = path[:-1]
        if parent and doc.value_span(parent) is not None:
            inline.add(parent)  # `model = { model_size = "600m" }`
            continue
        value_span = doc.value_span(path)
        if path not in deleted:  # `[hardware] device = "cuda"` becomes "gpu" in place
            edits.append(_Edit(value_span.start, value_span.end,
                               _toml_inline(lookup(rewrite.value, path))))
            continue
        # A key/value owns its lines: TOML puts nothing but a comment after a value.
        start, end = _line_bounds(text, doc.key_span(path).start, value_span.end)
        edits.append(_Edit(start, end, ""))
        if comment := _trailing_comment(text, value_span.end):
            comments[path] = comment

    # New values, grouped by the table that receives them, in the order the rules wrote them.
    by_table: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for new_path, old_path in rewrite.origin.items():
        if new_path != old_path:
            by_table.setdefault(new_path[:-1], []).append(new_path)
    appended: list[str] = []
    for table, paths in by_table.items():
        if doc.value_span(table) is not None:
            inline.add(table)
            continue
        lines = []
        for new_path in paths:
            line = f"{_toml_key(new_path[-1])} = {_toml_inline(lookup(rewrite.value, new_path))}"
            comment = comments.pop(rewrite.origin[new_path], "")
            lines.append(f"{line}  {comment}" if comment else line)
        header = doc.header_span(table)
        block = [value for path, _, value in doc.entries()
                 if path[: len(table)] == table and len(path) > len(table)
                 and path not in deleted and not _owned_by_header(doc, path, len(table))]
        if block:  # after the table's last key; a table made by dotted keys gets dotted keys
            anchor = _line_bounds(text, block[-1].start, max(v.end for v in block))[1]
            if header is None:
                dotted = ".".join(map(_toml_key, table)) + "."
                lines = [dotted + line for line in lines]
        elif header is not None:
            anchor = _line_bounds(text, header.start, header.end)[1]
        else:
            appended.append(f"[{'.'.join(map(_toml_key, table))}]{newline}"
                            + "".join(line + newline for line in lines))
            continue
        lead = newline if anchor == len(text) and not text.endswith("\n") else ""
        edits.append(_Edit(anchor, anchor, lead + "".join(line + newline for line in lines)))

    for table in sorted(inline, key=len):
        span = doc.value_span(table)
        if span is None:
            continue
        edits = [e for e in edits if not span.start <= e.start <= span.end]
        edits.append(_Edit(span.start, span.end, _toml_inline(lookup(rewrite.value, table))))
    return edits, appended


def _apply(text: str, edits: list[_Edit]) -> str:
    out, position = [], 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        out.append(text[position: edit.start])
        out.append(edit.text)
        position = max(position, edit.end)
    out.append(text[position:])
    return "".join(out)


def migrate_document(doc: Any) -> tuple[str, tuple[Diagnostic, ...]]:
    """The v3 text of a parsed v2 document and the rewrite's diagnostics.

    Lines without legacy keys are kept byte for byte (comments included); a
    legacy line's trailing comment moves to the first line that replaces it.
    Raises :class:`~capibara.diagnostics.ConfigError` if the rewrite found an
    error (nothing can be written then).
    """
    from capibara.diagnostics import ConfigError

    rewrite = rewrite_document(doc)
    if any(d.is_error for d in rewrite.diagnostics):
        raise ConfigError(rewrite.diagnostics)
    if not rewrite.changed:
        return doc.source.text, ()
    from capibara import toml

    edits, appended = _plan_edits(doc, rewrite)
    new_text = _apply(doc.source.text, edits)
    if appended:
        newline = "\r\n" if "\r\n" in doc.source.text else "\n"
        kept = new_text.rstrip("\r\n")
        new_text = (kept + newline * 2 if kept.strip() else "") + newline.join(appended)
    # The edits must mean exactly the rewritten document; writing anything else would
    # corrupt the user's file, so a mismatch is a bug and stops here.
    if toml.parse(new_text, doc.source.name).value != rewrite.value:
        raise AssertionError(f"migrating {doc.source.name} produced text that does not match "
                             "its rewrite")
    return new_text, rewrite.diagnostics


def migrate_toml(text: str, source: str = "<string>") -> tuple[str, tuple[Diagnostic, ...]]:
    """``capibara migrate``: v2 TOML text → (v3 TOML text, the rewrite's warnings).

    A v3 file comes back unchanged with no diagnostics.  Raises
    :class:`~capibara.diagnostics.ConfigError` for invalid TOML or an unusable
    legacy value.
    """
    from capibara import toml

    return migrate_document(toml.parse(text, source))
