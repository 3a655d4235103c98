"""Freezing: the compiler's fully optimized IR becomes a sealed :class:`Plan`,
and a plan gives back the config it was compiled from.

:func:`freeze` is the compiler's last stage (:mod:`capibara.compiler.driver`
calls it); it reads the IR (:class:`capibara.compiler.ir.Lowered`) by its
attributes, so the plan package needs nothing from the compiler.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from capibara.plan.codec import seal
from capibara.plan.types import (Batch, CompilerInfo, Execution, KernelSpec, Origin, Plan,
                                 TargetInfo)

__all__ = ["freeze", "config_of_plan", "origin_of", "SERVICE_GROUPS", "RELEVANT_CPU_FEATURES"]

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

@functools.cache
def _field_paths() -> tuple[tuple[str, str], ...]:
    """``(flat name, printed path)`` of every field, computed once."""
    from capibara.config.fields import FIELDS

    return tuple((f.name, f.path) for f in FIELDS)


def origin_of(provenance: Any) -> Origin:
    """The plan's record of a config value's :class:`~capibara.config.values.Provenance`."""
    span = provenance.span
    if span is None:
        return Origin(kind=provenance.kind, detail=provenance.detail)
    return Origin(kind=provenance.kind, file=span.file, line=span.line, column=span.column,
                  detail=provenance.detail)


def freeze(ir: Any, warnings: Sequence[str] = (), notes: Sequence[str] = ()) -> Plan:
    """The plan of a fully optimized IR, sealed with its digest; ``notes`` say what it
    records that nothing acts on."""
    from capibara import __version__
    from capibara.config.fields import FIELDS, RUNTIME_MUTABLE

    config, target = ir.config, ir.target
    assert ir.model is not None and ir.mesh is not None and ir.memory is not None \
        and ir.batch is not None and ir.loss is not None, "freeze needs a fully optimized IR"
    # No field holds a credential (`api_key_required` is a switch; the key never
    # enters a config), so every value is recorded as resolved.
    values = {name: getattr(config, name) for name, _ in _field_paths()}
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
                            jit=config.enable_jit, cache_compiled=config.cache_compiled_functions,
                            shard_optimizer_state=policy.shard_optimizer_state),
        loss=ir.loss, kernels=kernels, training=training, runtime=runtime, services=services,
        config={path: values[name] for name, path in _field_paths()},
        provenance={path: origin_of(config.provenance(name)) for name, path in _field_paths()},
        decisions=ir.decisions, warnings=tuple(warnings), notes=tuple(notes))
    return seal(plan)


def config_of_plan(plan: Plan) -> Any:
    """The ``ModularModelConfig`` a plan was compiled from: its resolved values,
    with the fields its provenance marks as set explicitly passed as keywords
    (so derived values are derived again and explicitness-based rules agree).
    A loaded plan has every field (:func:`capibara.plan.validate.validate_plan`)."""
    from capibara.config.fields import FIELDS
    from capibara.config.model_config import ModularModelConfig

    default = Origin(kind="default")
    explicit = {f.name: plan.config[f.path] for f in FIELDS
                if plan.provenance.get(f.path, default).explicit}
    return ModularModelConfig(**explicit)
