"""Rules on the machine: whether it has the devices, memory and GPUs the config names.

These are the validator's ``scope="hardware"`` rules: they need a target, so
``check_config`` skips them and the compiler's hardware stage
(:mod:`capibara.compiler.hardware`) and ``ConfigValidator.check_hardware_compatibility``
run them. :func:`resolve_device` is the one reading of ``device`` and its
fallback chain on a machine.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

from capibara.config.fieldtypes import format_value
from capibara.config.validate.engine import (ERROR, TPU_DEVICES, WARNING, Finding, RuleContext,
                                             assignment_text, rule)
from capibara.config.validate.parallelism import mesh_of, suggest_mesh


def _fallback_chain(requested: str, config: Any) -> list[str]:
    from capibara.targets import FALLBACK_CHAIN

    chain = list(FALLBACK_CHAIN[FALLBACK_CHAIN.index(requested) + 1:])
    return chain if config.fallback_cpu else [d for d in chain if d != "cpu"]


def resolve_device(config: Any, target: Any) -> str | None:
    """The device ``config`` runs on when ``target`` is the machine, or ``None``.

    ``"auto"`` takes the target's device (tpu_v6 > tpu_v4 > gpu > cpu is the
    target's own kind).  A named device that is absent falls back along
    tpu_v6 → tpu_v4 → gpu → cpu when ``hardware_fallback`` allows (cpu only
    with ``fallback_cpu``); the host CPU is always present.
    """
    requested, present = config.device, target.seed_device
    if requested == "auto":
        return present
    if requested in (present, "cpu"):
        return requested
    if not config.hardware_fallback:
        return None
    for device in _fallback_chain(requested, config):
        if device in (present, "cpu"):
            return device
    return None


@rule(17, "H017", ERROR, ("tpu_mesh_shape", "device"), scope="hardware")
def mesh_matches_device_count(ctx: RuleContext) -> Iterator[Finding]:
    """An explicit TPU mesh must cover exactly the devices present."""
    mesh = mesh_of(ctx)
    if mesh is None or ctx.device not in TPU_DEVICES:
        return
    devices = ctx.target.device_count
    if math.prod(mesh) == devices:
        return
    better = suggest_mesh(devices, mesh, heads=ctx.num_heads, hidden=ctx.hidden_size)
    yield Finding(
        f"`tpu_mesh_shape` {format_value(mesh)} needs {math.prod(mesh)} devices, but "
        f"`{ctx.target.name}` has {devices}",
        ("tpu_mesh_shape",), {"tpu_mesh_shape": f"{math.prod(mesh)} devices"},
        help=f"set {assignment_text('tpu_mesh_shape', better)}, or \"auto\" to derive it",
        notes=_slice_note(ctx.target))


def _slice_note(target: Any) -> tuple[str, ...]:
    if getattr(target, "cores_per_device", 1) > 1:
        return (f"`{target.name}` counts TensorCores; JAX sees its {target.device_count} chips "
                f"({target.cores_per_device} cores each) as {target.device_count} devices",)
    return ()


def _data_parallel_degree(ctx: RuleContext) -> int | None:
    if not ctx.data_parallel:
        return 1
    mesh = mesh_of(ctx)
    if mesh is not None:
        return mesh[0]
    if ctx.model_parallel:
        return None  # "auto" with a model axis: the lowering picks the split
    return ctx.target.device_count


@rule(21, "H021", ERROR, ("batch_size", "tpu_mesh_shape", "data_parallel"), scope="hardware")
def batch_splits_across_replicas(ctx: RuleContext) -> Iterator[Finding]:
    """An int batch must give every data-parallel replica a whole, non-empty share."""
    batch = ctx.batch_size
    degree = _data_parallel_degree(ctx)
    if not isinstance(batch, int) or degree is None or degree <= 1:
        return
    if batch % degree == 0 and batch >= degree:
        return
    fixed = max(degree, (batch // degree) * degree)
    via = "the data axis of `tpu_mesh_shape`" if mesh_of(ctx) else f"the devices of `{ctx.target.name}`"
    yield Finding(
        f"`batch_size` {batch} does not split across {degree} data-parallel replicas "
        f"({via})",
        ("batch_size", "tpu_mesh_shape"), {"batch_size": f"not a multiple of {degree}"},
        help=f"set {assignment_text('batch_size', fixed)} (a multiple of {degree}), or \"auto\"")


@rule(25, "H025", WARNING, ("tpu_memory_limit_gb", "memory_limit_gb", "device"), scope="hardware")
def memory_limits_within_physical(ctx: RuleContext) -> Iterator[Finding]:
    """Memory limits above the physical memory have no effect."""
    physical = ctx.target.memory_per_device_gib
    if physical is None:
        return
    limits = []
    if ctx.device in TPU_DEVICES and ctx.explicit("tpu_memory_limit_gb"):
        limits.append("tpu_memory_limit_gb")
    if ctx.memory_limit_gb is not None and ctx.explicit("memory_limit_gb"):
        limits.append("memory_limit_gb")
    for name in limits:
        value = getattr(ctx.config, name)
        if value > physical:
            yield Finding(
                f"`{name}` {format_value(value)} GiB exceeds the {physical:g} GiB per device of "
                f"`{ctx.target.name}`: the limit has no effect",
                (name,), {name: f"more than {physical:g} GiB"},
                help=f"set {assignment_text(name, float(physical))} or less, or remove it")


@rule(35, "H035", ERROR, ("device", "hardware_fallback", "fallback_cpu"), scope="hardware")
def device_is_present(ctx: RuleContext) -> Iterator[Finding]:
    """A named device must be present, or reachable by fallback."""
    requested = ctx.config.device
    if requested == "auto" or requested in (ctx.target.seed_device, "cpu"):
        return
    resolved = ctx.device
    where = f"`{ctx.target.name}` has no {requested} device"
    if resolved is None:
        chain = " → ".join([requested, *_fallback_chain(requested, ctx.config)])
        yield Finding(
            f"`device` {format_value(requested)} is not present: {where}",
            ("device", "hardware_fallback"),
            {"device": "not present", "hardware_fallback": "no fallback"},
            help=f"set {assignment_text('device', 'auto')}, or {assignment_text('hardware_fallback', True)}"
                 if not ctx.hardware_fallback else f"set {assignment_text('device', 'auto')}",
            notes=(f"the fallback chain {chain} reaches nothing present",)
            if ctx.hardware_fallback else ())
    else:
        yield Finding(
            f"`device` {format_value(requested)} is not present: {where}, so it falls back to "
            f"{format_value(resolved)}", ("device",), {"device": f"runs on {resolved}"},
            help=f"set {assignment_text('device', resolved)} (or \"auto\") to say what runs",
            severity=WARNING)


@rule(36, "H036", ERROR, ("num_gpus", "device", "data_parallel", "model_parallel"),
      scope="hardware")
def gpus_are_present_and_used(ctx: RuleContext) -> Iterator[Finding]:
    """`num_gpus` must not exceed the GPUs present, and extra GPUs need parallelism."""
    if ctx.device != "gpu":
        return
    present = ctx.target.device_count
    if ctx.num_gpus > present:
        yield Finding(
            f"`num_gpus` {ctx.num_gpus} is more than the {present} GPU"
            f"{'s' if present != 1 else ''} of `{ctx.target.name}`",
            ("num_gpus",), {"num_gpus": f"{present} present"},
            help=f"set {assignment_text('num_gpus', present)}")
    elif ctx.num_gpus > 1 and not ctx.data_parallel and not ctx.model_parallel:
        yield Finding(
            f"`num_gpus` {ctx.num_gpus} with neither data nor model parallelism: all but one "
            "GPU sit idle", ("num_gpus", "data_parallel", "model_parallel"),
            {"num_gpus": "idle GPUs"},
            help=f"set {assignment_text('data_parallel', True)}, or {assignment_text('num_gpus', 1)}", severity=WARNING)
