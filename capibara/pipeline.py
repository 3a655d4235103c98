"""The stage sequence: parse → schema-check → legacy-rewrite → validate.

Stages never print; each returns a value and diagnostics. This module runs
them in order, stops after a stage with errors, and hands every diagnostic to
the caller (the CLI renders them once).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from capibara.diagnostics import Diagnostic

#: The process environment, as the CLI passes it (``--no-env`` passes None).
ENVIRON: Mapping[str, str] = os.environ


def check(files: Sequence[str], *, env: Mapping[str, str] | None = ENVIRON,
          overrides: Sequence[str] = (), target: str | None = None,
          runtime_updates: Sequence[str] = ()) -> list[Diagnostic]:
    """Run every check on layered config files; return all diagnostics.

    Stages: parse and schema-check each source (with the legacy rewrite), then
    the cross-field rules, then, when ``target`` names a machine, lowering and
    optimization for it (:func:`capibara.compiler.target_diagnostics`: the
    hardware rules, the lowering's checks, the passes' warnings and the
    memory estimate), without writing a plan. ``runtime_updates`` (``PATH=VALUE``, as ``--set``) are
    then applied as ``config.update_runtime_settings`` would apply them to a
    live model, to check that they are allowed. Raises :class:`ConfigError` when the sources cannot be
    turned into a config at all (the error carries every diagnostic found).
    """
    from capibara.sources import resolve_config
    from capibara.validate import get_validation_errors

    resolved = resolve_config(files, env=env, overrides=overrides)
    diagnostics: list[Diagnostic] = list(resolved.diagnostics)
    diagnostics += get_validation_errors(resolved.config)
    if target is not None:
        from capibara.compiler import target_diagnostics

        diagnostics += target_diagnostics(resolved.config, target)
    if runtime_updates:
        diagnostics += _runtime_update_errors(resolved.config, runtime_updates)
    return diagnostics


def _runtime_update_errors(config, arguments: Sequence[str]) -> list[Diagnostic]:
    """What ``config.update_runtime_settings`` says of these ``PATH=VALUE`` updates."""
    from capibara.diagnostics import ConfigError
    from capibara.overrides import read_overrides

    decoded = read_overrides(arguments)
    if any(d.is_error for d in decoded.diagnostics):
        return list(decoded.diagnostics)
    try:
        config.update_runtime_settings({name: a.value for name, a in decoded.assignments.items()})
    except ConfigError as refused:
        return list(refused.diagnostics)
    return list(decoded.diagnostics)
