"""Values with their origin: :class:`Provenance`, :class:`Assignment`, the
single-field check every source runs, and the errors a config raises.

The file, environment, ``--set``, legacy and keyword sources all produce
assignments through :func:`check_value`, so a value is judged the same way
wherever it was written.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Literal, Mapping

import msgspec

from capibara.config.fieldtypes import OUT_OF_RANGE, ValueProblem, closest, format_value
from capibara.config.fields import FIELD_BY_NAME
from capibara.diagnostics import ConfigError, Diagnostic, Span

__all__ = ["Provenance", "Assignment", "UnknownFieldError", "ConfigWarning", "check_value",
           "check_keywords", "raise_for", "unknown_field"]

ProvenanceKind = Literal["default", "file", "env", "set", "keyword", "legacy", "derived", "runtime"]

#: Kinds that count as "set explicitly": a value the user gave wins over any derivation.
EXPLICIT_KINDS = frozenset({"file", "env", "set", "keyword", "legacy", "runtime"})

UNKNOWN_FIELD = "S103"
UNDERIVABLE = "S401"
NOT_RUNTIME_MUTABLE = "S501"


class Provenance(msgspec.Struct, frozen=True):
    """Where a field's value came from.

    ``kind`` is one of ``default``, ``file``, ``env``, ``set``, ``keyword``,
    ``legacy``, ``derived``, ``runtime``.  ``span`` points at the value as the
    user wrote it: in a file, in the text of a ``--set`` argument, or in an
    environment variable (each its own :class:`~capibara.diagnostics.Source`).
    ``detail`` says more: the key as written (``[tpu_v6_features] vq_codes``),
    the variable name, the legacy key, or how the value was derived.
    """

    kind: ProvenanceKind
    span: Span | None = None
    detail: str = ""

    @property
    def explicit(self) -> bool:
        return self.kind in EXPLICIT_KINDS

    def __str__(self) -> str:
        where = f" {self.span}" if self.span is not None else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind}{where}{detail}"


_DEFAULT = Provenance("default")


class Assignment(msgspec.Struct, frozen=True):
    """A checked value for one field, with its provenance: what every source produces."""

    name: str
    value: Any
    provenance: Provenance


class UnknownFieldError(ConfigError, TypeError, KeyError):
    """A name that is no field (keyword argument, runtime-update key).

    A :class:`ConfigError` (so a ``ValueError``), and also a ``TypeError`` and a
    ``KeyError``, so code written against either Python convention catches it.
    """

    # KeyError's __str__ would print the repr of the rendered text; keep the text.
    __str__ = BaseException.__str__


class ConfigWarning(UserWarning):
    """A warning diagnostic surfaced through the Python API (``warnings.warn``)."""


# --------------------------------------------------------------------------- single values


def unknown_field(name: str, span: Span | None = None, *, what: str = "field") -> Diagnostic:
    """The S103 diagnostic for a name that is no field, with the nearest name."""
    near = closest(name, list(FIELD_BY_NAME), cutoff=0.7)
    return Diagnostic.error(
        UNKNOWN_FIELD, f"unknown {what} `{name}`", span, label="no such field",
        help=f"did you mean `{near}`?" if near else "`capibara explain FIELD` describes a "
             "field; `capibara schema` lists them all")


def check_value(name: str, value: Any, provenance: Provenance,
                item_span: Callable[[int], Span | None] | None = None) -> Assignment | Diagnostic:
    """Check one value of field ``name``; an :class:`Assignment` or the diagnostic.

    The diagnostic points at ``provenance.span``, or at the offending element
    of a list when ``item_span`` can locate it.
    """
    field = FIELD_BY_NAME[name]
    try:
        checked = field.type.check(value, name)
    except ValueProblem as problem:
        span = provenance.span
        if problem.item is not None and item_span is not None:
            span = item_span(problem.item) or span
        help = problem.help
        if problem.code == OUT_OF_RANGE and field.default is not None:
            default = f"the default is {format_value(field.type.to_toml(field.default))}"
            help = f"{help}; {default}" if help else default
        return Diagnostic.error(problem.code, problem.message, span, label=problem.label, help=help)
    return Assignment(name, checked, provenance)


def check_keywords(values: Mapping[str, Any], kind: ProvenanceKind = "keyword", *,
                   detail: str = "keyword argument",
                   what: str = "keyword argument") -> tuple[dict[str, Assignment], list[Diagnostic]]:
    """Check Python-typed values by flat name; every problem, none dropped."""
    assignments: dict[str, Assignment] = {}
    diagnostics: list[Diagnostic] = []
    provenance = Provenance(kind, None, detail)
    for name, value in values.items():
        if name not in FIELD_BY_NAME:
            diagnostics.append(unknown_field(name, what=what))
            continue
        if value is None and FIELD_BY_NAME[name].derived is not None \
                and FIELD_BY_NAME[name].default is None:
            continue  # None asks for the derived value (num_heads=None), like omitting it
        result = check_value(name, value, provenance)
        if isinstance(result, Diagnostic):
            diagnostics.append(result)
        else:
            assignments[name] = result
    return assignments, diagnostics


def raise_for(diagnostics: Iterable[Diagnostic]) -> None:
    """Raise one error carrying every diagnostic, if any is an error."""
    diagnostics = list(diagnostics)
    if not any(d.is_error for d in diagnostics):
        return
    if any(d.code == UNKNOWN_FIELD and d.is_error for d in diagnostics):
        raise UnknownFieldError(diagnostics)
    raise ConfigError(diagnostics)
