"""Stage 2 for one file: a parsed (and legacy-rewritten) TOML document → checked assignments.

The document's nested dict is walked against the field table: every
``[section] key`` must spell a field (canonically or as an alias), every value
must pass its field's check, and two spellings of one field must agree
(neither silently wins).  Every problem becomes a diagnostic at the span of
the key or value as the user wrote it, and all of them are returned together.

Paths are located in exactly one function, :func:`locate`: a path in the
rewritten layout is mapped back through the legacy rewrite's ``origin`` to the
place it was written.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import msgspec

from capibara.diagnostics import Diagnostic, Label, Source, Span
from capibara.config.fieldtypes import closest, describe_kind, format_value
from capibara.config.values import Assignment, Provenance, check_value
from capibara.config.fields import (ALIAS_SECTIONS, FIELD_BY_NAME, SECTIONS, Field, field_at, keys_of)

__all__ = ["DecodedSource", "decode_document", "locate", "not_utf8", "suggest_key",
           "suggest_section"]

UNKNOWN_SECTION = "S101"
UNKNOWN_KEY = "S102"
OUTSIDE_SECTION = "S105"
ALIAS_CONFLICT = "S301"
NOT_UTF8 = "P002"

#: Unknown keys and sections listed one by one per file; past this many the file is
#: probably not a capibara config, and a "did you mean" for each of 100,000 keys took
#: 51 s (fuzz/hostile.py), so the rest are counted in one diagnostic.
MAX_UNKNOWN_NAMES = 100


class DecodedSource(msgspec.Struct, frozen=True):
    """What one source (a file, the environment, the `--set` arguments) contributes:
    checked values by field name, and its diagnostics."""

    assignments: dict[str, Assignment]
    diagnostics: tuple[Diagnostic, ...]


def _shown(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD: printable, same offsets."""
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def not_utf8(name: str, text: str, what: str) -> Diagnostic | None:
    """The P002 error for a ``--set`` argument or environment entry holding
    bytes that are not UTF-8, or ``None`` when ``text`` is valid.

    Python hands such bytes of ``sys.argv`` and ``os.environ`` over as lone
    surrogates (``surrogateescape``); let through, they would reach the
    config, and writing it as TOML or as a plan would fail (found by fuzzing).
    """
    bad = next((i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff"), None)
    if bad is None:
        return None
    char = ord(text[bad])
    found = f"byte {char - 0xDC00:#04x}" if 0xDC80 <= char <= 0xDCFF else \
        f"a lone surrogate U+{char:04X}"
    source = Source(_shown(name), _shown(text))
    return Diagnostic.error(NOT_UTF8, f"{_shown(what)} is not valid UTF-8: {found}",
                            source.span(bad, bad + 1), label="not UTF-8",
                            help="write the value in UTF-8 (check the terminal's or the "
                                 "script's encoding)")


def locate(doc: Any, origin: Mapping[tuple, tuple], path: tuple,
           part: Literal["key", "value"] = "value") -> tuple[Span | None, bool]:
    """The span of ``path`` (a path of the rewritten layout) in the original text.

    Returns ``(span, moved)``: ``moved`` is true when the legacy rewrite put
    the value there, and the span is then the legacy key's value (or key).
    Paths the rewrite created without a textual origin have no span.
    """
    moved = path in origin
    original = tuple(origin.get(path, path))
    try:
        span = doc.key_span(original) if part == "key" else doc.value_span(original)
    except (KeyError, IndexError, TypeError):
        span = None
    return span, moved


def suggest_section(name: str) -> str | None:
    """The nearest section name (canonical or alias section)."""
    return closest(name, list(SECTIONS) + list(ALIAS_SECTIONS))


def suggest_key(section: str, key: str) -> str:
    """The help for an unknown ``key`` in a known ``section``: the most specific hint."""
    flat = FIELD_BY_NAME.get(key)
    if flat is not None:
        if flat.section == section:
            return f"`{key}` is written `{flat.key}` in `[{section}]`"
        return f"`{key}` is written `{flat.key}` in `[{flat.section}]`"
    elsewhere = [s for s in SECTIONS if s != section and key in keys_of(s)]
    if elsewhere:
        return f"`{key}` belongs in `[{elsewhere[0]}]`"
    near = closest(key, keys_of(section))
    if near:
        return f"did you mean `{near}`?"
    everywhere = closest(key, [f"{s}.{k}" for s in SECTIONS for k in keys_of(s)] + list(FIELD_BY_NAME))
    if everywhere:
        return f"did you mean `{everywhere}`?"
    return f"the keys of `[{section}]` are " + ", ".join(f"`{k}`" for k in keys_of(section))


def _spelled(section: str, key: str) -> str:
    return f"[{section}] {key}"


def decode_document(doc: Any, rewritten: Mapping[str, Any],
                    origin: Mapping[tuple, tuple] | None = None) -> DecodedSource:
    """Check a document's values against the field table.

    ``doc`` is the parsed :class:`capibara.toml.Document` (for spans),
    ``rewritten`` its value after the legacy rewrite and ``origin`` the
    rewrite's map from new paths to legacy paths.
    """
    origin = origin or {}
    diagnostics: list[Diagnostic] = []
    # field name -> [(assignment, key span, spelling)], in document order
    seen: dict[str, list[tuple[Assignment, Span | None, str]]] = {}
    listed = 0  # unknown keys and sections reported one by one
    unlisted: list[tuple] = []  # the paths of those past MAX_UNKNOWN_NAMES

    def too_many(path: tuple) -> bool:
        nonlocal listed
        if listed < MAX_UNKNOWN_NAMES:
            listed += 1
            return False
        unlisted.append(path)
        return True

    for section, table in rewritten.items():
        if section not in SECTIONS and section not in ALIAS_SECTIONS:
            if not too_many((section,)):
                diagnostics.append(_top_level_problem(doc, origin, section, table))
            continue
        if not isinstance(table, dict):
            # a plain value has a value span; `[[section]]` (an array of tables) only a key span
            span = locate(doc, origin, (section,))[0] or locate(doc, origin, (section,), "key")[0]
            diagnostics.append(Diagnostic.error(
                OUTSIDE_SECTION, f"`{section}` must be a table, found {describe_kind(table)}",
                span, label="expected a table",
                help=f"`[{section}]` is one table: write `[{section}]` once and put its keys "
                     "below it"))
            continue
        for key, value in table.items():
            path = (section, key)
            field = field_at(section, key)
            if field is None:
                if too_many(path):
                    continue
                span, _ = locate(doc, origin, path, "key")
                diagnostics.append(Diagnostic.error(
                    UNKNOWN_KEY, f"unknown key `{key}` in `[{section}]`", span,
                    label="unknown key", help=suggest_key(section, key)))
                continue
            span, moved = locate(doc, origin, path)
            key_span, _ = locate(doc, origin, path, "key")
            if moved:
                legacy = origin[path]
                provenance = Provenance("legacy", span, f"legacy `{'.'.join(map(str, legacy))}`")
            else:
                provenance = Provenance("file", span, _spelled(section, key))
            result = check_value(field.name, value, provenance,
                                 lambda i, p=path: locate(doc, origin, p + (i,))[0])
            if isinstance(result, Diagnostic):
                diagnostics.append(result)
                continue
            seen.setdefault(field.name, []).append((result, key_span, _spelled(section, key)))

    if unlisted:
        diagnostics.append(Diagnostic.error(
            UNKNOWN_KEY, f"`{unlisted[0][-1]}` and {len(unlisted) - 1} more unknown keys or "
                         "sections are not listed",
            locate(doc, origin, unlisted[0], "key")[0], label="the first of them",
            help=f"fix the {MAX_UNKNOWN_NAMES} above first; is this file a capibara config?"))

    assignments: dict[str, Assignment] = {}
    for name, spellings in seen.items():
        conflict = _conflict(FIELD_BY_NAME[name], spellings)
        if conflict is not None:
            diagnostics.append(conflict)
            continue
        # Equal spellings are accepted; the canonical one is the provenance when present.
        canonical = _spelled(FIELD_BY_NAME[name].section, FIELD_BY_NAME[name].key)
        chosen = next((a for a, _, s in spellings if s == canonical), spellings[0][0])
        assignments[name] = chosen
    return DecodedSource(assignments, tuple(diagnostics))


def _top_level_problem(doc: Any, origin: Mapping, name: str, value: Any) -> Diagnostic:
    span, _ = locate(doc, origin, (name,), "key")
    flat = FIELD_BY_NAME.get(name)
    if flat is not None and not isinstance(value, dict):
        return Diagnostic.error(
            OUTSIDE_SECTION, f"`{name}` is outside any section", span,
            label="not inside a section",
            help=f"move it under `[{flat.section}]`, written `{flat.key} = {format_value(value)}`"
            if not isinstance(value, (dict, list)) else f"move it under `[{flat.section}]` as `{flat.key}`")
    owners = [s for s in SECTIONS if name in keys_of(s)]
    if owners and not isinstance(value, dict):
        return Diagnostic.error(
            OUTSIDE_SECTION, f"`{name}` is outside any section", span,
            label="not inside a section", help=f"move it under `[{owners[0]}]`")
    near = suggest_section(name)
    return Diagnostic.error(
        UNKNOWN_SECTION, f"unknown section `[{name}]`" if isinstance(value, dict)
        else f"unknown key `{name}` outside any section", span,
        label="unknown section" if isinstance(value, dict) else "unknown key",
        help=f"did you mean `[{near}]`?" if near else
        "the sections are " + ", ".join(f"`[{s}]`" for s in SECTIONS))


def _conflict(field: Field, spellings: list[tuple[Assignment, Span | None, str]]) -> Diagnostic | None:
    first, first_span, first_spelling = spellings[0]
    for other, other_span, other_spelling in spellings[1:]:
        if other.value == first.value:
            continue
        a, b = first.provenance.span, other.provenance.span
        labels = [Label(s, f"{text} = {format_value(v)}") for s, text, v in
                  ((a, first_spelling, first.value), (b, other_spelling, other.value)) if s is not None]
        help = (f"keep one spelling of `{field.name}`; `[{field.section}] {field.key}` is the "
                "canonical one")
        if field.name == "vq_enterprise_mode":
            # The two tpu_v6 keys are one switch; 128 codes alone is the research setup.
            help = ("`enabled` and `adaptive_ml` are one switch (`vq_enterprise_mode`); for 128 "
                    "codes without adaptive ML, set `[vector_quantization] codes = 128` with "
                    "enterprise mode off")
        return Diagnostic.error(
            ALIAS_CONFLICT, f"`{field.name}` is set twice with different values: "
            f"`{first_spelling}` and `{other_spelling}`", b or a, labels=labels, help=help)
    return None
