"""Code actions: a diagnostic's ``help`` applied as an edit where it names one,
and "explain this code".

The help lines are the compiler's fixed templates, so a fix is read from them
rather than restated here: ``set `section.key = VALUE``` (each alternative
its own action), ``did you mean `NAME`?`` at an unknown section, key or enum
value, ``… is written `KEY` in `[section]```, and a v2 key's warning, fixed by
rewriting the file's v2 keys exactly as ``capibara migrate`` writes them.
tests/lsp/test_actions.py applies every fix to the golden cases and checks
that the diagnostic is gone, so a template that changes cannot go unnoticed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from capibara.diagnostics import ConfigError, Diagnostic, Source
from capibara.config.fieldtypes import format_value
from capibara.lsp.analysis import Analysis
from capibara.config.fields import Field, field_at

EXPLAIN_COMMAND = "capibara.explain"

_SET = re.compile(r"(?:set|use) `([A-Za-z0-9_]+)\.([A-Za-z0-9_]+) = ([^`]+)`")
_DID_YOU_MEAN = re.compile(r"did you mean `\[?([^`\]]+)\]?`\?")
_WRITTEN = re.compile(r"is written `([^`]+)` in `\[([^\]]+)\]`")
_LEGACY_RENAMES = {"L001", "L002", "L003"}
_NAME_FIXES = {"S101", "S102"}
_VALUE_FIXES = {"S203"}


class Edit(NamedTuple):
    """Replace ``source.text[start:end]`` with ``text``."""

    source: Source
    start: int
    end: int
    text: str


class Fix(NamedTuple):
    title: str
    edits: tuple[Edit, ...]


def fixes(diagnostic: Diagnostic, analysis: Analysis) -> list[Fix]:
    """The edits that apply ``diagnostic``'s help, best first (none when the help
    is advice rather than an edit)."""
    d = diagnostic
    if d.code in _LEGACY_RENAMES and analysis.here(d):
        return _migration(analysis)
    found: list[Fix] = []
    if d.help and analysis.here(d) and d.span is not None:
        mean = _DID_YOU_MEAN.search(d.help)
        if mean and d.code in _NAME_FIXES and "." not in mean.group(1):
            found.append(Fix(f"replace with `{mean.group(1)}`",
                             (Edit(analysis.source, d.span.start, d.span.end, mean.group(1)),)))
        if mean and d.code in _VALUE_FIXES:
            text = format_value(mean.group(1))
            found.append(Fix(f"replace with `{text}`",
                             (Edit(analysis.source, d.span.start, d.span.end, text),)))
        written = _WRITTEN.search(d.help)
        if written and d.code == "S102" and f"`[{written.group(2)}]`" in d.message:
            found.append(Fix(f"replace with `{written.group(1)}`",
                             (Edit(analysis.source, d.span.start, d.span.end, written.group(1)),)))
    for section, key, value in _SET.findall(d.help or ""):
        field = field_at(section, key)
        edit = _setting(analysis, field, value) if field is not None else None
        if edit is not None:
            found.append(Fix(f"set `{section}.{key} = {value}`", (edit,)))
    return found


def _setting(analysis: Analysis, field: Field, value: str) -> Edit | None:
    """The edit that sets ``field`` to ``value`` (TOML text): where this file
    writes it, else where the stack's winning value is written, else a new line
    in its table here."""
    doc = analysis.document
    if doc is None:
        return None
    for section, key in field.spellings:
        span = doc.value_span((section, key))
        if span is not None:
            return Edit(analysis.source, span.start, span.end, value)
    if analysis.config is not None:
        span = analysis.config.provenance(field.name).span
        if span is not None and span.file in analysis.stack:
            return Edit(span.source, span.start, span.end, value)
    text = analysis.source.text
    line = f"{field.key} = {value}\n"
    ends = [v.end for path, _, v in doc.entries() if path[:1] == (field.section,)]
    header = doc.header_span((field.section,))
    if ends or header is not None:
        anchor = max(ends) if ends else header.end  # type: ignore[union-attr]
        newline = text.find("\n", anchor)
        at = len(text) if newline == -1 else newline + 1
        lead = "" if newline != -1 else "\n"
        return Edit(analysis.source, at, at, lead + line)
    lead = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return Edit(analysis.source, len(text), len(text), f"{lead}[{field.section}]\n{line}")


def _migration(analysis: Analysis) -> list[Fix]:
    """The whole file's v2 keys in v3 spelling, as ``capibara migrate`` writes them."""
    from capibara.config.legacy import migrate_document

    if analysis.document is None:
        return []
    try:
        new_text, _ = migrate_document(analysis.document)
    except ConfigError:
        return []
    old = analysis.source.text
    if new_text == old:
        return []
    start = 0
    limit = min(len(old), len(new_text))
    while start < limit and old[start] == new_text[start]:
        start += 1
    end = 0
    while end < limit - start and old[-1 - end] == new_text[-1 - end]:
        end += 1
    return [Fix("rewrite the v2 keys in v3 spelling (as `capibara migrate`)",
                (Edit(analysis.source, start, len(old) - end, new_text[start:len(new_text) - end]),))]
