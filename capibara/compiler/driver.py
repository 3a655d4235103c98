"""The compile driver: config → lowered → optimized → frozen plan.

    plan = capibara.compile("configs/production/tpu_v4.toml", target="tpu_v4-32")
    plan = capibara.compile(config, target="cpu")              # a ModularModelConfig
    plan = capibara.compile(["base.toml", "arm.toml"], overrides={"batch_size": 8})

Stages, each timed (``--time-stages``) and each a place ``--print-after``
can look (``lower`` and every pass of :mod:`capibara.compiler.passes`):

1. resolve: files, ``CAPIBARA_*`` environment, keywords and ``--set`` → config
   (:func:`capibara.config.sources.resolve_config`; legacy keys are rewritten there);
2. validate: cross-field rules (:func:`capibara.config.validate.get_validation_errors`);
3. lower: config × target (:func:`capibara.compiler.lower.lower`);
4. the optimization passes;
5. freeze: the :class:`~capibara.plan.Plan`, sealed with its digest
   (:func:`capibara.plan.freezer.freeze`).

The driver stops after the first stage with an error and reports every
diagnostic found until then. Nothing on this path imports JAX.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping, Sequence

import msgspec

from capibara.diagnostics import ConfigError, Diagnostic
from capibara.compiler.ir import Lowered
from capibara.compiler.lower import lower
from capibara.compiler.passes.base import PassContext, PassPipeline
from capibara.compiler.passes.registry import DEFAULT_PIPELINE
from capibara.plan import Plan
from capibara.plan.freezer import RELEVANT_CPU_FEATURES, SERVICE_GROUPS, freeze
from capibara.targets import Target, UnknownTarget

__all__ = ["compile", "compile_config", "compile_sources", "CompileResult", "freeze", "one_line",
           "target_diagnostics",
           "STAGES",
           "SERVICE_GROUPS", "RELEVANT_CPU_FEATURES"]

#: The stages ``--print-after`` accepts, in order.
STAGES: tuple[str, ...] = ("lower", *(p.name for p in DEFAULT_PIPELINE))


class CompileResult(msgspec.Struct):
    """What one compile produced: the plan (``None`` after an error), every
    diagnostic in stage order, and ``(stage, seconds)`` per stage."""

    plan: Plan | None
    diagnostics: list[Diagnostic] = msgspec.field(default_factory=list)
    timings: list[tuple[str, float]] = msgspec.field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


#: Called after ``lower`` and after each pass with (stage, IR, seconds).
StageCallback = Callable[[str, Lowered, float], None]


def compile_sources(paths: Sequence[str | os.PathLike[str]], *, target: Target | str | None = None,
                    env: Mapping[str, str] | None = os.environ, overrides: Sequence[str] = (),
                    keywords: Mapping[str, Any] | None = None,
                    callback: StageCallback | None = None) -> CompileResult:
    """Resolve config sources (as :func:`capibara.config.sources.resolve_config`) and compile them."""
    from capibara.config.sources import resolve_config

    start = time.perf_counter()
    try:
        resolved = resolve_config(paths, env=env, overrides=overrides, keywords=keywords)
    except ConfigError as error:
        return CompileResult(None, list(error.diagnostics), [("resolve", time.perf_counter() - start)])
    result = compile_config(resolved.config, target, callback=callback)
    result.diagnostics[:0] = resolved.diagnostics
    result.timings.insert(0, ("resolve", time.perf_counter() - start - sum(t for _, t in result.timings)))
    return result


def compile_config(config: Any, target: Target | str | None = None, *,
                   callback: StageCallback | None = None) -> CompileResult:
    """Validate, lower, optimize and freeze a config; never raises for bad input."""
    from capibara.config.validate import get_validation_errors

    result = CompileResult(None)
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.timings.append((stage, now - clock))
        clock = now

    result.diagnostics.extend(get_validation_errors(config))
    lap("validate")
    if result.has_errors:
        return result
    try:
        ir, found = lower(config, target)
    except UnknownTarget as unknown:
        result.diagnostics.append(unknown.diagnostic())
        return result
    result.diagnostics.extend(found)
    lap("lower")
    if callback is not None:
        callback("lower", ir, result.timings[-1][1])
    if result.has_errors:
        return result

    def timed(stage: str, value: Lowered, seconds: float) -> None:
        result.timings.append((stage, seconds))
        if callback is not None:
            callback(stage, value, seconds)

    ctx = PassContext()
    ir = PassPipeline(DEFAULT_PIPELINE, timed).run(ir, ctx)
    result.diagnostics.extend(ctx.diagnostics)
    clock = time.perf_counter()
    if result.has_errors:
        return result
    warnings = tuple(one_line(d) for d in result.diagnostics if not d.is_error)
    result.plan = freeze(ir, warnings, recorded_only_note(config) + sparsity_note(config))
    lap("freeze")
    return result


def compile(config_or_paths: Any, *, target: Target | str | None = None,
            overrides: Mapping[str, Any] | Sequence[str] | None = None,
            env: Mapping[str, str] | None = os.environ) -> Plan:
    """Compile a config into a :class:`~capibara.plan.Plan`.

    ``config_or_paths``: a ``ModularModelConfig``, a TOML path, or a list of
    paths layered in order. ``target``: a catalog name (``"tpu_v4-32"``,
    ``"gpu-h100"``, ``"cpu"``, ``"auto"``), a :class:`~capibara.targets.Target`,
    or ``None`` for the config's ``device`` on this host. ``overrides``: flat
    field names with Python values, or ``--set`` strings (``"model.hidden_size=1024"``).
    ``env``: the ``CAPIBARA_*`` variables to apply to paths (``None`` ignores them).

    Raises :class:`~capibara.diagnostics.ConfigError` with every diagnostic
    when any stage finds an error. Warnings are issued as
    :class:`~capibara.config.values.ConfigWarning` (as ``from_toml`` issues
    them) and kept in ``plan.warnings``.
    """
    if isinstance(config_or_paths, (str, os.PathLike)):
        config_or_paths = [config_or_paths]
    keywords: Mapping[str, Any] | None = None
    sets: Sequence[str] = ()
    if isinstance(overrides, Mapping):
        keywords = overrides
    elif overrides:
        sets = list(overrides)
    if isinstance(config_or_paths, (list, tuple)):
        result = compile_sources(config_or_paths, target=target, env=env, overrides=sets,
                                 keywords=keywords)
    else:
        config = config_or_paths
        if keywords or sets:
            config = _apply_overrides(config, keywords, sets)
        result = compile_config(config, target)
    if result.plan is None:
        raise ConfigError(result.diagnostics)
    _warn(result.diagnostics)
    return result.plan


def _warn(diagnostics: Sequence[Diagnostic]) -> None:
    """The Python API's one policy for warnings: ``warnings.warn`` each, as ConfigWarning."""
    import warnings

    from capibara.config.values import ConfigWarning
    from capibara.diagnostics import render

    for diagnostic in diagnostics:
        if not diagnostic.is_error:
            warnings.warn(render(diagnostic), ConfigWarning, stacklevel=3)


def _apply_overrides(config: Any, keywords: Mapping[str, Any] | None, sets: Sequence[str]) -> Any:
    from capibara.config.model_config import build_config, check_keywords, raise_for
    from capibara.config.overrides import read_overrides

    layers = [config.explicit_assignments()]
    if keywords:
        assignments, problems = check_keywords(keywords)
        raise_for(problems)
        layers.append(assignments)
    if sets:
        decoded = read_overrides(sets)
        raise_for(decoded.diagnostics)
        layers.append(decoded.assignments)
    return build_config(*layers)


def recorded_only_note(config: Any) -> tuple[str, ...]:
    """The one sentence naming the recorded-only fields ``config`` switches on (none: empty)."""
    from capibara.config.fields import recorded_only_switched_on

    names = recorded_only_switched_on(config)
    if not names:
        return ()
    return (f"recorded only, no effect: {', '.join(names)} "
            "(`capibara explain FIELD` says why)",)


def sparsity_note(config: Any) -> tuple[str, ...]:
    """What feed-forward sparsity buys: zeros, not time (XLA's matmuls are dense everywhere)."""
    from capibara.compiler.kernel_uses import sparsity_record

    record = sparsity_record(config)
    if record is None:
        return ()
    if record["method"] == "magnitude":
        what = ("magnitude pruning zeroes the feed-forward weights but they are still stored "
                "and multiplied whole: no time or memory is saved, and each training step "
                "pays for the pruning")
    else:
        what = ("top-k keeps the largest activations of each token, but the matmul after it "
                "is still dense, so the selection only adds time")
    return (f"sparsity.method = \"{record['method']}\": {what} (XLA computes dense matmuls; "
            "benchmarks/sparsity.py measures it)",)


def one_line(diagnostic: Diagnostic) -> str:
    """``file:line:col: warning[CODE]: message``: how a plan records a warning."""
    return Diagnostic.__str__(diagnostic)


def target_diagnostics(config: Any, target: Target | str | None = None) -> list[Diagnostic]:
    """What lowering and optimizing ``config`` for ``target`` report, without
    validating first or freezing a plan: the hardware rules (``H0xx``, from the
    validator's hardware check), the lowering's own (``H2xx``) and the passes'
    (``O1xx``, and the memory check). ``capibara check --target T`` reports these
    after the cross-field rules."""
    try:
        ir, found = lower(config, target)
    except UnknownTarget as unknown:
        return [unknown.diagnostic()]
    if any(d.is_error for d in found):
        return found
    ctx = PassContext()
    PassPipeline(DEFAULT_PIPELINE).run(ir, ctx)
    return found + ctx.diagnostics
