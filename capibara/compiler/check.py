"""``capibara check``: the compile stages short of freezing a plan.

resolve (parse each source, rewrite legacy keys, decode into fields, layer
files < environment < ``--set``) → validate (cross-field rules) → with a
target, lower and the passes (:func:`capibara.compiler.driver.target_diagnostics`)
→ the runtime updates and checkpoints the caller names. Unlike the compile
driver, check keeps going after a stage with errors, so one run reports every
problem it can find. Stages never print; the CLI renders the diagnostics once.
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Mapping, Sequence

from capibara.diagnostics import Diagnostic

if TYPE_CHECKING:
    from capibara.config.model_config import ModularModelConfig

#: The process environment, as the CLI passes it (``--no-env`` passes None).
ENVIRON: Mapping[str, str] = os.environ


def check(files: Sequence[str], *, env: Mapping[str, str] | None = ENVIRON,
          overrides: Sequence[str] = (), target: str | None = None,
          runtime_updates: Sequence[str] = (), checkpoints: Sequence[str] = (),
          mode: str | None = None, buffers: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Run every check on layered config files; return all diagnostics.

    Stages: parse and schema-check each source (with the legacy rewrite), then
    the cross-field rules, then, when ``target`` names a machine, lowering and
    optimization for it (:func:`capibara.compiler.driver.target_diagnostics`: the
    hardware rules, the lowering's checks, the passes' warnings and the
    memory estimate), without writing a plan. ``runtime_updates`` (``PATH=VALUE``, as ``--set``) are
    then applied as ``config.update_runtime_settings`` would apply them to a
    live model, to check that they are allowed. ``mode`` (``"train"`` or
    ``"inference"``) enables the rules that depend on what the config is for. ``checkpoints`` (directories) are
    verified and compared with the parameters the config implies
    (:func:`capibara.model.checkpoint.check_checkpoint`). Raises :class:`ConfigError` when the sources cannot be
    turned into a config at all (the error carries every diagnostic found).
    ``buffers`` maps some of ``files`` to the text an editor holds for them
    (``capibara lsp``), checked instead of what is on disk.

    Most configs checked are clean, and saying so needs no places: the check
    first runs on the files' values alone (:func:`is_clean`), which loads no
    parser, and runs again with every place only when there is something to say.
    """
    if not (runtime_updates or checkpoints or buffers) and is_clean(
            files, env=env, overrides=overrides, target=target, mode=mode):
        return []
    return check_config(files, env=env, overrides=overrides, target=target,
                        runtime_updates=runtime_updates, checkpoints=checkpoints, mode=mode,
                        buffers=buffers)[0]


def is_clean(files: Sequence[str], *, env: Mapping[str, str] | None = ENVIRON,
             overrides: Sequence[str] = (), target: str | None = None,
             mode: str | None = None) -> bool:
    """Whether :func:`check` has nothing at all to say of these sources, found
    from their values alone (no spans, so no TOML parser is loaded).

    Which diagnostics the stages give never depends on where a value was
    written, only their places do; so a run without places that finds nothing
    means the full run finds nothing (tests/test_check_clean.py holds the two to
    that). ``--set`` arguments are TOML values read by the full parser: with
    any, the answer is ``False`` and :func:`check` runs the full way.
    """
    from capibara.config.sources import resolve_config
    from capibara.config.validate import get_validation_errors
    from capibara.diagnostics import ConfigError

    if overrides:
        return False
    try:
        resolved = resolve_config(files, env=env, spans=False)
    except ConfigError:
        return False
    if resolved.diagnostics or get_validation_errors(resolved.config, mode=mode):
        return False
    if target is not None:
        from capibara.compiler.driver import target_diagnostics

        return not target_diagnostics(resolved.config, target)
    return True


def check_config(files: Sequence[str], *, env: Mapping[str, str] | None = ENVIRON,
                 overrides: Sequence[str] = (), target: str | None = None,
                 runtime_updates: Sequence[str] = (), checkpoints: Sequence[str] = (),
                 mode: str | None = None, buffers: Mapping[str, str] | None = None,
                 ) -> tuple[list[Diagnostic], "ModularModelConfig"]:
    """:func:`check`, also returning the config it checked (whose
    ``provenance`` says where each value came from)."""
    from capibara.config.sources import resolve_config
    from capibara.config.validate import get_validation_errors

    resolved = resolve_config(files, env=env, overrides=overrides, buffers=buffers)
    diagnostics: list[Diagnostic] = list(resolved.diagnostics)
    diagnostics += get_validation_errors(resolved.config, mode=mode)
    if target is not None:
        from capibara.compiler.driver import target_diagnostics

        diagnostics += target_diagnostics(resolved.config, target)
    if runtime_updates:
        diagnostics += _runtime_update_errors(resolved.config, runtime_updates)
    if checkpoints:
        diagnostics += _checkpoint_errors(resolved.config, checkpoints,
                                          compare=not any(d.is_error for d in diagnostics))
    return diagnostics, resolved.config


def _checkpoint_errors(config, paths: Sequence[str], *, compare: bool) -> list[Diagnostic]:
    """Each checkpoint's problems; its parameter shapes are compared with the
    config's only when the config itself has no errors."""
    from capibara.model.checkpoint import check_checkpoint
    from capibara.compiler.model_spec import ModelSpec

    shapes = ModelSpec.from_config(config).parameter_shapes() if compare else None
    return [d for path in paths for d in check_checkpoint(path, shapes)]


def _runtime_update_errors(config, arguments: Sequence[str]) -> list[Diagnostic]:
    """What ``config.update_runtime_settings`` says of these ``PATH=VALUE`` updates."""
    from capibara.diagnostics import ConfigError
    from capibara.config.overrides import read_overrides

    from capibara.compiler.model_spec import live_update_diagnostics

    decoded = read_overrides(arguments, flag="--runtime")
    if any(d.is_error for d in decoded.diagnostics):
        return list(decoded.diagnostics)
    built = copy.copy(config)
    try:
        config.update_runtime_settings({name: a.value for name, a in decoded.assignments.items()})
    except ConfigError as refused:
        return list(refused.diagnostics)
    # what a model built from the config refuses beyond the config's own rules (a model without codebooks cannot turn VQ on)
    return list(decoded.diagnostics) + live_update_diagnostics(built, config)
