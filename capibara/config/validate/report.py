"""Findings to diagnostics: the one step from field names to places, and the pure API pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from capibara.config.fieldtypes import format_value
from capibara.config.validate.engine import RULES, Finding, Rule, RuleContext
from capibara.config.validate.typical import UNUSUAL_VALUE, unusual_values
from capibara.diagnostics import ConfigError, Diagnostic, Label, Severity, Span


@dataclass(frozen=True, slots=True)
class FieldDiagnostic(Diagnostic):
    """A diagnostic about named fields.  ``str()`` is the seed's form,
    ``"<field>[, <field>]: <message>"``, so ``print(f"   - {error}")`` reads well;
    :func:`capibara.diagnostics.render` shows it with its source lines."""

    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{', '.join(self.fields)}: {self.message}"


def _origin_note(config: Any, name: str) -> str | None:
    """Where a field without a span got its value, for the notes."""
    provenance = config.provenance(name)
    value = format_value(getattr(config, name))
    kind, detail = provenance.kind, provenance.detail
    if kind == "default":
        return f"`{name}` is {value} by default"
    if kind == "derived":
        return f"`{name}` = {value} is derived" + (f" ({detail})" if detail else "")
    if kind == "keyword":
        return None  # the caller wrote it in Python: nothing to point at, nothing to add
    return f"`{name}` = {value} comes from {detail or kind}"


def field_diagnostic(code: str, severity: Severity, message: str, config: Any,
                     fields: Sequence[str], labels: Mapping[str, str] | None = None, *,
                     help: str | None = None, notes: Sequence[str] = ()) -> FieldDiagnostic:
    """A diagnostic about named fields, placed where they were written.

    The first field that came from text (a file, ``--set``, an environment
    variable) is the primary span and the others are labelled beside theirs
    (``labels`` gives each one's text); a field with no text (a default, a
    derived value) is named in a note saying where its value came from. Every
    stage that speaks about fields (the rules, lowering, the passes) goes
    through here.
    """
    labels = labels or {}
    spans: dict[str, Span] = {}
    origin: list[str] = []
    for name in fields:
        span = config.provenance(name).span if _is_field(name) else None
        if span is not None:
            spans[name] = span
        elif _is_field(name):
            note = _origin_note(config, name)
            if note:
                origin.append(note)
    primary = next((n for n in fields if n in spans), None)
    secondary = tuple(Label(spans[n], labels.get(n, "")) for n in fields
                      if n in spans and n != primary)
    span = spans.get(primary) if primary else None
    all_labels = ((Label(span, labels.get(primary, "")),) if span else ()) + secondary
    return FieldDiagnostic(code, severity, message, span, all_labels,
                           tuple(origin) + tuple(notes), help, tuple(fields))


def _to_diagnostic(rule: Rule, finding: Finding, config: Any) -> FieldDiagnostic:
    return field_diagnostic(rule.code, finding.severity or rule.severity, finding.message,
                            config, finding.fields, finding.labels, help=finding.help,
                            notes=finding.notes)


def _is_field(name: str) -> bool:
    from capibara.config.fields import FIELD_BY_NAME

    return name in FIELD_BY_NAME


def run_rules(rules: Iterable[Rule], ctx: RuleContext) -> list[FieldDiagnostic]:
    return [_to_diagnostic(r, finding, ctx.config) for r in rules for finding in r.check(ctx)]


def _config_rules() -> list[Rule]:
    return [r for _, r in sorted(RULES.items()) if r.scope != "hardware"]


def explicit_device(config: Any) -> str | None:
    return None if config.device == "auto" else config.device


def get_validation_errors(config: Any, *, mode: str | None = None) -> list[FieldDiagnostic]:
    """Every cross-field problem of ``config`` that needs no hardware: errors and
    warnings, in rule order, then the values set far outside their usual range
    (S206).  ``mode`` (``"train"``/``"inference"``) enables the training-only rule."""
    ctx = RuleContext(config, explicit_device(config), None, mode)
    unusual = [field_diagnostic(UNUSUAL_VALUE, Severity.WARNING, f.message, config, f.fields,
                                f.labels, help=f.help) for f in unusual_values(config)]
    return run_rules(_config_rules(), ctx) + unusual


def check_config(config: Any, *, mode: str | None = None) -> None:
    """Raise one :class:`ConfigError` carrying every diagnostic if any is an error."""
    diagnostics = get_validation_errors(config, mode=mode)
    if any(d.is_error for d in diagnostics):
        raise ConfigError(diagnostics)
