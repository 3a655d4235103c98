"""What every verb prints the same way: diagnostics, as people or tools read them."""

from __future__ import annotations

from typing import Sequence, TextIO

from capibara.diagnostics import Diagnostic, render, to_json


def print_diagnostics(diagnostics: Sequence[Diagnostic], fmt: str, out: TextIO) -> None:
    """``diagnostics`` rendered for people (with a count) or as JSON lines (``fmt="json"``)."""
    if fmt == "json":
        for d in diagnostics:
            out.write(to_json(d) + "\n")
        return
    for d in diagnostics:
        out.write(render(d) + "\n\n")
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if errors or warnings:
        parts = [f"{n} {word}{'' if n == 1 else 's'}"
                 for n, word in ((errors, "error"), (warnings, "warning")) if n]
        out.write(f"{' and '.join(parts)} emitted\n")
