"""Diagnostics about fields, placed where the fields were written.

The compiler's stages name fields by their flat name; these helpers print a
field's TOML path and place a diagnostic at its span, through the one function
that does that for the validator too
(:func:`capibara.config.validate.report.field_diagnostic`).

Imports no JAX.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from capibara.config.fields import FIELD_BY_NAME
from capibara.diagnostics import Diagnostic, Severity, Span

__all__ = ["path_of", "field_span", "field_diagnostic"]


def path_of(name: str) -> str:
    """The printed path of field ``name`` (``model.hidden_size``); plan paths pass through."""
    f = FIELD_BY_NAME.get(name)
    return f.path if f is not None else name


def field_span(config: Any, name: str) -> Span | None:
    """Where field ``name`` was written, if it came from text."""
    return config.provenance(name).span


def field_diagnostic(code: str, message: str, config: Any, names: Sequence[str],
                     labels: Mapping[str, str], *, help: str | None = None,
                     notes: Sequence[str] = (), warning: bool = False) -> Diagnostic:
    """A diagnostic about fields, placed by the one function that does that
    (:func:`capibara.config.validate.report.field_diagnostic`)."""
    from capibara.config.validate.report import field_diagnostic as placed

    severity = Severity.WARNING if warning else Severity.ERROR
    return placed(code, severity, message, config, names, labels, help=help, notes=notes)
