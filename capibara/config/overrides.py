"""``--set PATH=VALUE``: one field from the command line, in TOML value syntax.

::

    capibara check config.toml --set sparsity.ratio=0.5 --set tpu_mesh_shape=[4,4] \\
        --set 'model_name="capibara_x"' --set sparsity.method=topk

PATH is a flat field name or ``section.key`` (canonical or alias spelling).
VALUE is parsed by ``grammar/override.lark``, which imports the value rules of
``grammar/toml.lark`` and runs the TOML document builder, so a value means what
it would mean in a file; a lone bare word (``topk``) is a string.  Each
argument is its own :class:`~capibara.diagnostics.Source` named
``--set PATH=VALUE``, so every problem points into the argument as typed.
Later arguments win over earlier ones for the same field.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

from lark import Lark, Token
from lark.exceptions import UnexpectedInput

from capibara.toml.builder import DocumentBuilder
from capibara.toml.scalars import CONVERTERS, TomlProblem
from capibara.config.decode import (UNKNOWN_KEY, UNKNOWN_SECTION, DecodedSource, not_utf8,
                                    suggest_key, suggest_section)
from capibara.diagnostics import Diagnostic, Label, Source, Span
from capibara.config.fieldtypes import closest
from capibara.config.values import Assignment, Provenance, check_value, unknown_field
from capibara.resources import lark_parser
from capibara.config.fields import ALIAS_SECTIONS, FIELD_BY_NAME, SECTIONS, Field, all_paths, field_at

__all__ = ["Override", "parse_override", "read_overrides"]

MALFORMED = "S601"


@dataclass(frozen=True, slots=True)
class Override:
    """One parsed ``--set`` argument: the path as written, the value, and their spans."""

    path: str
    path_span: Span
    value: Any
    value_span: Span
    item_spans: tuple[Span, ...] = ()


class _OverrideBuilder(DocumentBuilder):
    """The TOML document builder plus the override's own rule (``start``)."""

    def start(self, children: list) -> tuple:  # type: ignore[override]
        path, value = children
        if type(value) is Token:
            converted = str(value) if value.type == "BARE_WORD" else \
                CONVERTERS[value.type](value, value.start_pos)
            return path, converted, value.start_pos, value.end_pos, ()
        # an array or inline table: (value, (start, end, child records)), as the builder records it
        result, (start, end, records) = value
        # element offsets of an array, so a bad element gets its own span
        offsets = tuple((r[0], r[1]) for r in records) if type(result) is list else ()
        return path, result, start, end, offsets


_lock = threading.Lock()
_parser: tuple[Lark, _OverrideBuilder] | None = None


def _get_parser() -> tuple[Lark, _OverrideBuilder]:
    global _parser
    if _parser is None:
        builder = _OverrideBuilder()
        lark = lark_parser("override.lark", builder)
        builder.read_terminals(lark.terminals)
        _parser = lark, builder
    return _parser


def parse_override(argument: str, flag: str = "--set") -> Override | Diagnostic:
    """Parse one ``PATH=VALUE`` argument; the :class:`Override` or an error diagnostic.

    ``flag`` is the option the argument came with (``--set``, ``--runtime``): it names
    the source and the messages, so the user is pointed at what they typed.
    """
    source = Source(f"{flag} {argument}", argument)
    with _lock:
        lark, builder = _get_parser()
        builder.begin()
        try:
            path, value, start, end, items = lark.parse(argument)
        except UnexpectedInput as error:
            return _syntax_error(source, argument, error, flag)
        except TomlProblem as problem:
            return Diagnostic.error(
                problem.code, problem.message, source.span(problem.start, problem.end),
                label=problem.label, notes=problem.notes, help=problem.help,
                labels=[Label(source.span(s, e), m) for s, e, m in problem.labels])
        finally:
            builder.begin()
    return Override("".join(str(path).split()), source.span(path.start_pos, path.end_pos), value,
                    source.span(start, end), tuple(source.span(s, e) for s, e in items))


def _syntax_error(source: Source, argument: str, error: UnexpectedInput,
                  flag: str) -> Diagnostic:
    equals = argument.find("=")
    if equals < 0:
        return Diagnostic.error(
            MALFORMED, f"`{flag}` needs `PATH=VALUE`", source.span(0, len(argument)),
            label="no `=` here", help=f"for example `{flag} sparsity.ratio=0.5`")
    if not argument[:equals].strip():
        return Diagnostic.error(
            MALFORMED, f"`{flag}` is missing the field before `=`",
            source.span(0, max(equals, 1)),
            label="expected a field", help=f"for example `{flag} sparsity.ratio=0.5`")
    value_start = equals + 1 + (len(argument[equals + 1:]) - len(argument[equals + 1:].lstrip()))
    if value_start >= len(argument):
        return Diagnostic.error(
            MALFORMED, f"`{flag}` is missing the value after `=`", source.span(equals, equals + 1),
            label="expected a value",
            help='write a TOML value such as `0.5`, `true`, `[4, 4]` or `"text"`')
    position = getattr(error, "pos_in_stream", None)
    if isinstance(position, int) and 0 <= position <= equals:
        return Diagnostic.error(
            MALFORMED, f"`{flag}` path is not a field name or `section.key`",
            source.span(0, equals), label="not a path",
            help="write a flat name (`hidden_size`) or `section.key` (`model.hidden_size`)")
    return Diagnostic.error(
        MALFORMED, f"`{flag}` value is not a TOML value", source.span(value_start, len(argument)),
        label="not a TOML value",
        help="write the value as in a TOML file: `0.5`, `true`, `[4, 4]`, or a string in quotes "
             f"(`{flag} 'model.version=\"3.1.0\"'`); a single bare word is taken as a string")


def _field_for(override: Override, flag: str) -> Field | Diagnostic:
    """The field a path names, or the diagnostic that says why it names none."""
    parts = override.path.split(".")
    span = override.path_span
    if len(parts) == 1:
        field = FIELD_BY_NAME.get(parts[0])
        if field is not None:
            return field
        diagnostic = unknown_field(parts[0], span, what="field")
        near = closest(parts[0], list(FIELD_BY_NAME) + list(all_paths()))
        if near and diagnostic.help and "did you mean" not in diagnostic.help:
            return Diagnostic.error(diagnostic.code, diagnostic.message, span, label="no such field",
                                    help=f"did you mean `{near}`?")
        return diagnostic
    if len(parts) == 2:
        section, key = parts
        if section not in SECTIONS and section not in ALIAS_SECTIONS:
            near = suggest_section(section)
            text = span.source.text
            section_span = span.source.span(span.start, span.start + len(section)) \
                if text[span.start:].startswith(section) else span
            return Diagnostic.error(
                UNKNOWN_SECTION, f"unknown section `{section}` in `{flag}`", section_span,
                label="unknown section",
                help=f"did you mean `{near}.{key}`?" if near else
                "the sections are " + ", ".join(f"`{s}`" for s in SECTIONS))
        field = field_at(section, key)
        if field is not None:
            return field
        return Diagnostic.error(
            UNKNOWN_KEY, f"unknown key `{key}` in `[{section}]`",
            span.source.span(span.end - len(key), span.end), label="unknown key",
            help=suggest_key(section, key))
    return unknown_field(override.path, span, what="field")


def read_overrides(arguments: Sequence[str], flag: str = "--set") -> DecodedSource:
    """Decode ``--set`` arguments into assignments (later ones win) and diagnostics;
    ``flag`` names the option they came with in every diagnostic."""
    assignments: dict[str, Assignment] = {}
    diagnostics: list[Diagnostic] = []
    for argument in arguments:
        undecodable = not_utf8(f"{flag} {argument}", argument, f"`{flag}` argument")
        if undecodable is not None:
            diagnostics.append(undecodable)
            continue
        override = parse_override(argument, flag)
        if isinstance(override, Diagnostic):
            diagnostics.append(override)
            continue
        field = _field_for(override, flag)
        if isinstance(field, Diagnostic):
            diagnostics.append(field)
            continue
        provenance = Provenance("set", override.value_span, f"{flag} {argument}")
        items = override.item_spans
        result = check_value(field.name, override.value, provenance,
                             lambda i: items[i] if i < len(items) else None)
        if isinstance(result, Diagnostic):
            diagnostics.append(result)
        else:
            assignments[field.name] = result
    return DecodedSource(assignments, tuple(diagnostics))
