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
5. freeze: the :class:`~capibara.plan.Plan`, sealed with its digest.

The driver stops after the first stage with an error and reports every
diagnostic found until then. Nothing on this path imports JAX.
"""

from __future__ import annotations

import functools
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from capibara.diagnostics import ConfigError, Diagnostic
from capibara.compiler.lower import Lowered, lower
from capibara.compiler.passes.base import PassContext, PassPipeline
from capibara.compiler.passes.registry import DEFAULT_PIPELINE
from capibara.plan import (Batch, CompilerInfo, Execution, KernelSpec, Plan, TargetInfo, seal)
from capibara.targets import Target, UnknownTarget

__all__ = ["compile", "compile_config", "compile_sources", "CompileResult", "freeze", "one_line",
           "target_diagnostics",
           "STAGES",
           "SERVICE_GROUPS", "RELEVANT_CPU_FEATURES"]

#: The stages ``--print-after`` accepts, in order.
STAGES: tuple[str, ...] = ("lower", *(p.name for p in DEFAULT_PIPELINE))


#: The CPU flags the compiler acts on (bf16/int8 matrix units, vector widths);
#: a plan records only these, so hosts that differ elsewhere compile alike.
RELEVANT_CPU_FEATURES = frozenset({
    "amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512f", "avx512_bf16", "avx512_vnni",
    "avx_vnni", "fma", "asimd", "sve", "sve2", "bf16", "i8mm"})

#: The plan's ``services`` sections: each group's first field switches it on; a
#: group that is off leaves no section. ``security`` is always present.
SERVICE_GROUPS: dict[str, tuple[str, ...]] = {
    "mcp": ("mcp_enabled", "mcp_port", "mcp_auth_required", "mcp_rate_limiting"),
    "meta_loop": ("meta_loop_enabled", "ethics_guard_enabled", "rag_hub_enabled",
                  "elixir_bridge_port"),
    "monitoring": ("monitoring_enabled", "metrics_endpoint", "health_check_interval",
                   "performance_profiling"),
    "security": ("security_level", "structured_logging", "log_level", "audit_logging",
                 "sensitive_data_masking", "api_key_required", "request_encryption",
                 "output_filtering", "content_safety_check"),
}

#: Field names that would hold a credential; their text never reaches a plan.
_SECRET_NAME = re.compile(r"(secret|password|passwd|token|api_key|credential)s?$")


@dataclass
class CompileResult:
    """What one compile produced: the plan (``None`` after an error), every
    diagnostic in stage order, and ``(stage, seconds)`` per stage."""

    plan: Plan | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)

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
    result.plan = freeze(ir, warnings)
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
    when any stage finds an error; warnings are kept in ``plan.warnings``.
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
    return result.plan


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


def one_line(diagnostic: Diagnostic) -> str:
    """``file:line:col: warning[CODE]: message``: how a plan records a warning."""
    return Diagnostic.__str__(diagnostic)


# --------------------------------------------------------------------------- freeze


@functools.cache
def _field_paths() -> tuple[tuple[str, str], ...]:
    """``(flat name, printed path)`` of every field, computed once."""
    from capibara.config.fields import FIELDS

    return tuple((f.name, f.path) for f in FIELDS)


def _recorded_paths(config: Any) -> tuple[tuple[str, str], ...]:
    """The fields a plan records: all, less those marked ``omitted_at_default``
    that hold their default (so plans that do not use a newer field keep their digest)."""
    from capibara.config.fields import FIELD_BY_NAME

    return tuple((name, path) for name, path in _field_paths()
                 if not (FIELD_BY_NAME[name].omitted_at_default
                         and getattr(config, name) == FIELD_BY_NAME[name].default))


@functools.cache
def _secret_fields() -> tuple[str, ...]:
    return tuple(name for name, _ in _field_paths() if _SECRET_NAME.search(name))


def freeze(ir: Lowered, warnings: Sequence[str] = ()) -> Plan:
    """The plan of a fully optimized IR, sealed with its digest."""
    from capibara import __version__
    from capibara.config.fields import FIELDS, RUNTIME_MUTABLE

    config, target = ir.config, ir.target
    assert ir.model is not None and ir.mesh is not None and ir.memory is not None \
        and ir.batch is not None, "freeze needs a fully optimized IR"
    values = {name: getattr(config, name) for name, _ in _field_paths()}
    for name in _secret_fields():
        if isinstance(values[name], str):
            values[name] = "<redacted>"
    effective = {**values, **ir.effective}
    dp = ir.mesh.size("data")
    kernels = tuple(KernelSpec(
        name=use.site, family=use.family, implementation=use.implementation,
        params=dict(use.params), shapes={k: tuple(int(d) for d in v) for k, v in use.shapes.items()},
        dtypes=dict(use.dtypes), attrs=dict(use.attrs), uses=use.uses or (use.site,),
        calls_per_step=use.calls_per_step) for use in ir.kernels)
    runtime = {name: effective[name] for name in sorted(RUNTIME_MUTABLE)}
    runtime["batch_size"] = ir.batch
    services = {group: {name: effective[name] for name in names}
                for group, names in SERVICE_GROUPS.items()
                if group == "security" or effective[names[0]]}
    training = {f.key: effective[f.name] for f in FIELDS if f.section == "training"}
    policy = ir.policy
    plan = Plan(
        compiler=CompilerInfo(version=__version__),
        target=TargetInfo(
            name=target.name, platform=target.platform, device_kind=target.device_kind,
            device_count=target.device_count, memory_per_device_gib=target.memory_per_device_gib,
            native_dtypes=tuple(target.native_dtypes), matmul_tile=tuple(target.matmul_tile),
            cpu_features=tuple(sorted(RELEVANT_CPU_FEATURES & target.cpu_features))),
        model=ir.model, memory=ir.memory, precision=ir.precision, mesh=ir.mesh,
        batch=Batch(global_size=ir.batch, per_device=ir.batch // dp,
                    max_size=config.max_batch_size, adaptive=config.adaptive_batching),
        execution=Execution(remat=policy.remat, donate=policy.donate, loss_chunk=policy.loss_chunk,
                            saved_activation_dtype=policy.saved_activation_dtype,
                            offload_activations=policy.offload_activations,
                            jit=config.enable_jit, cache_compiled=config.cache_compiled_functions),
        kernels=kernels, training=training, runtime=runtime, services=services,
        config={path: values[name] for name, path in _recorded_paths(config)},
        provenance={path: str(config.provenance(name)) for name, path in _recorded_paths(config)},
        decisions=ir.decisions, warnings=tuple(warnings))
    return seal(plan)


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
