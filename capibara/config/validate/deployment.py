"""Rules on devices, memory, ARM, ranks and batching."""

from __future__ import annotations

from typing import Any, Iterator

from capibara.config.fieldtypes import format_value
from capibara.config.validate.engine import (ERROR, TPU_DEVICES, WARNING, Finding, RuleContext,
                                             assignment_text, field_names, field_path, rule,
                                             verb_are)


@rule(33, "V033", ERROR, ("auto_device_selection", "device"))
def device_selection_agrees(ctx: RuleContext) -> Iterator[Finding]:
    """`auto_device_selection` says the same as `device == "auto"`."""
    if not ctx.explicit("auto_device_selection"):
        return
    if ctx.config.device == "auto" and not ctx.auto_device_selection:
        yield Finding(
            "`auto_device_selection` is false but `device` is \"auto\"",
            ("auto_device_selection", "device"),
            {"auto_device_selection": "no automatic selection", "device": "select automatically"},
            help=f"name a device, e.g. {assignment_text('device', 'tpu_v4')}, or remove "
                 f"`{field_path('auto_device_selection')}`")
    elif ctx.config.device != "auto" and ctx.explicit("device") and ctx.auto_device_selection:
        yield Finding(
            f"`auto_device_selection` is true but `device` is {format_value(ctx.config.device)}: "
            "the named device wins", ("auto_device_selection", "device"),
            {"auto_device_selection": "ignored", "device": "this device is used"},
            help=f"remove `{field_path('auto_device_selection')}`, or {assignment_text('device', 'auto')}",
            severity=WARNING)


@rule(34, "V034", WARNING, ("fallback_cpu", "hardware_fallback"))
def cpu_fallback_needs_fallback(ctx: RuleContext) -> Iterator[Finding]:
    """`fallback_cpu` only acts within `hardware_fallback`."""
    if ctx.fallback_cpu and ctx.explicit("fallback_cpu") and not ctx.hardware_fallback:
        yield Finding(
            "`fallback_cpu` has no effect: `hardware_fallback` is false",
            ("fallback_cpu", "hardware_fallback"),
            {"fallback_cpu": "no effect", "hardware_fallback": "no fallback at all"},
            help=f"set {assignment_text('hardware_fallback', True)}, or remove `{field_path('fallback_cpu')}`")


@rule(37, "V037", WARNING, ("num_gpus", "gpu_memory_fraction", "gpu_memory_growth", "device"))
def gpu_settings_without_gpu(ctx: RuleContext) -> Iterator[Finding]:
    """GPU settings are ignored on an explicit non-GPU device."""
    device = ctx.config.device
    if not ctx.explicit("device") or device in ("gpu", "auto"):
        return
    ignored = [n for n in ("num_gpus", "gpu_memory_fraction", "gpu_memory_growth")
               if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{field_names(ignored)} {verb_are(ignored)} ignored on `device` {format_value(device)}",
            (*ignored, "device"), {**{n: "GPU only" for n in ignored}, "device": "not a GPU"},
            help=f"remove {'them' if len(ignored) > 1 else 'it'}")


@rule(38, "V038", WARNING, ("memory_limit_gb", "tpu_memory_limit_gb", "gpu_memory_fraction"))
def several_memory_caps(ctx: RuleContext) -> Iterator[Finding]:
    """Several memory caps at once: the smallest applies."""
    if ctx.memory_limit_gb is None or not ctx.explicit("memory_limit_gb"):
        return
    device = ctx.config.device if ctx.explicit("device") else "auto"
    others = []
    if ctx.explicit("tpu_memory_limit_gb") and device in ("auto", *TPU_DEVICES):
        others.append("tpu_memory_limit_gb")
    if ctx.explicit("gpu_memory_fraction") and device in ("auto", "gpu"):
        others.append("gpu_memory_fraction")
    if others:
        yield Finding(
            f"`memory_limit_gb` and {field_names(others)} both cap device memory: the smallest "
            "limit applies", ("memory_limit_gb", *others),
            {"memory_limit_gb": "a general cap", **{n: "another cap" for n in others}},
            help="keep the one cap you mean",
            notes=("on TPU the limit is min(`tpu_memory_limit_gb`, `memory_limit_gb`); on GPU "
                   "min(`memory_limit_gb`, `gpu_memory_fraction` × physical memory)",))


def _is_arm(target: Any) -> bool:
    return "arm" in target.name or bool({"sve", "asimd"} & set(target.cpu_features))


@rule(39, "V039", WARNING, ("use_arm_optimizations", "arm_sve_enabled", "arm_neon_fallback",
                            "device"), scope="device")
def arm_settings_need_arm(ctx: RuleContext) -> Iterator[Finding]:
    """ARM optimizations need an ARM CPU, and at least one vector path."""
    if not ctx.use_arm_optimizations:
        return
    if ctx.explicit("use_arm_optimizations"):
        if ctx.device is not None and ctx.device != "cpu":
            yield Finding(
                f"`use_arm_optimizations` is ignored on {ctx.device}: it applies to ARM CPUs", ("use_arm_optimizations", "device"),
                {"use_arm_optimizations": "ARM CPU only", "device": "not a CPU"},
                help=f"remove `{field_path('use_arm_optimizations')}` for this device")
        elif ctx.target is not None and ctx.device == "cpu" and not _is_arm(ctx.target):
            yield Finding(
                f"`use_arm_optimizations` is ignored: `{ctx.target.name}` is not an ARM CPU",
                ("use_arm_optimizations",), {"use_arm_optimizations": "ARM CPU only"},
                help="use this config on an ARM host (e.g. Google Axion), or remove "
                     f"`{field_path('use_arm_optimizations')}`")
    if not ctx.arm_sve_enabled and not ctx.arm_neon_fallback:
        yield Finding(
            "`arm_sve_enabled` and `arm_neon_fallback` are both false: only the scalar path is "
            "left", ("arm_sve_enabled", "arm_neon_fallback", "use_arm_optimizations"),
            {"arm_sve_enabled": "no SVE", "arm_neon_fallback": "no NEON"},
            help=f"set {assignment_text('arm_neon_fallback', True)} at least")


@rule(40, "V040", ERROR, ("local_rank", "world_size", "distributed_training"))
def ranks_fit_world(ctx: RuleContext) -> Iterator[Finding]:
    """`0 <= local_rank < world_size`, and `world_size > 1` means distributed training."""
    if ctx.local_rank >= ctx.world_size:
        yield Finding(
            f"`local_rank` {ctx.local_rank} is not below `world_size` {ctx.world_size}",
            ("local_rank", "world_size"),
            {"local_rank": f"rank {ctx.local_rank}", "world_size": f"ranks 0–{ctx.world_size - 1}"},
            help=f"use a rank from 0 to {ctx.world_size - 1}, or raise `world_size`")
    if not ctx.distributed_training and ctx.world_size > 1:
        yield Finding(
            f"`world_size` {ctx.world_size} needs `distributed_training`",
            ("world_size", "distributed_training"),
            {"world_size": f"{ctx.world_size} processes", "distributed_training": "off"},
            help=f"set {assignment_text('distributed_training', True)}, or {assignment_text('world_size', 1)}")
    elif ctx.distributed_training and ctx.world_size == 1:
        yield Finding(
            "`distributed_training` with `world_size` 1 runs a single process",
            ("distributed_training", "world_size"), {"distributed_training": "one process"},
            help=f"set `{field_path('world_size')}` to the number of processes", severity=WARNING)


@rule(41, "V041", ERROR, ("batch_size", "max_batch_size"))
def batch_within_maximum(ctx: RuleContext) -> Iterator[Finding]:
    """An int `batch_size` must not exceed `max_batch_size`."""
    batch = ctx.batch_size
    if isinstance(batch, int) and batch > ctx.max_batch_size:
        yield Finding(
            f"`batch_size` {batch} is above `max_batch_size` {ctx.max_batch_size}",
            ("batch_size", "max_batch_size"),
            {"batch_size": "too large", "max_batch_size": "the maximum"},
            help=f"set {assignment_text('batch_size', ctx.max_batch_size)} or raise `max_batch_size`")


@rule(42, "V042", WARNING, ("batch_size", "adaptive_batching"))
def adaptive_batch_is_a_start(ctx: RuleContext) -> Iterator[Finding]:
    """With adaptive batching an int batch size is only the starting size."""
    batch = ctx.batch_size
    if ctx.adaptive_batching and isinstance(batch, int):
        yield Finding(
            f"`batch_size` {batch} is only the starting size: `adaptive_batching` adjusts it "
            f"within [1, {ctx.max_batch_size}]", ("batch_size", "adaptive_batching"),
            {"batch_size": "starting size"},
            help=f"set {assignment_text('adaptive_batching', False)} to keep it fixed")
