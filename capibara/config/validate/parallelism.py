"""Rules on TPU meshes, parallelism, precision and the run mode."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

from capibara.config.fieldtypes import format_value
from capibara.config.validate.architecture import divisors
from capibara.config.validate.engine import (ERROR, TPU_DEVICES, WARNING, Finding, RuleContext,
                                             assignment_text, default_of, field_names, field_path,
                                             fields_in, rule, verb_are)


def mesh_of(ctx: RuleContext) -> list[int] | None:
    """The explicit ``tpu_mesh_shape``, or ``None`` while "auto"."""
    mesh = ctx.tpu_mesh_shape
    return list(mesh) if isinstance(mesh, list) else None


#: Meshes larger than any machine (the biggest TPU pods have a few thousand chips) get no
#: suggestion: enumerating their factorizations would take longer than it helps.
_MAX_SUGGESTED_DEVICES = 1 << 16


def _factorizations(n: int, rank: int) -> Iterator[tuple[int, ...]]:
    """Every ordered ``rank``-tuple of positive integers whose product is ``n``."""
    if rank == 1:
        yield (n,)
        return
    for first in divisors(n):
        for rest in _factorizations(n // first, rank - 1):
            yield (first, *rest)


def suggest_mesh(devices: int, like: Sequence[int], *, heads: int | None = None,
                 hidden: int | None = None) -> list[int]:
    """A mesh of ``len(like)`` axes (at most two) whose product is ``devices``, closest to ``like``.

    The last axis is the model axis (meshes are ``[data, model]``); shapes whose
    model axis divides ``heads`` and ``hidden`` are preferred, then the
    one nearest to ``like`` in log scale.  For 16 devices like ``[4, 8]`` with
    12 heads this is ``[4, 4]``: ``[2, 8]`` is as near but 8 does not divide 12.
    """
    if len(like) > 2:  # capibara meshes are [data] or [data, model]: fold the extra axes
        like = [math.prod(like[:-1]), like[-1]]
    rank = max(len(like), 1)
    shapes = [list(s) for s in _factorizations(devices, rank)]

    def fits(shape: list[int]) -> bool:
        model = shape[-1] if rank > 1 else 1
        return all(v is None or v % model == 0 for v in (heads, hidden))

    def distance(shape: list[int]) -> float:
        return sum(abs(math.log2(a) - math.log2(max(b, 1))) for a, b in zip(shape, like))

    return min(shapes, key=lambda s: (not fits(s), distance(s), s))


@rule(18, "V018", ERROR, ("sharding_strategy", "tpu_mesh_shape"))
def manual_sharding_needs_mesh(ctx: RuleContext) -> Iterator[Finding]:
    """Manual sharding needs an explicit mesh."""
    if ctx.sharding_strategy == "manual" and mesh_of(ctx) is None:
        yield Finding(
            "`sharding_strategy` \"manual\" needs an explicit `tpu_mesh_shape`, not \"auto\"",
            ("sharding_strategy", "tpu_mesh_shape"),
            {"sharding_strategy": "manual", "tpu_mesh_shape": "no mesh given"},
            help=f"set `{field_path('tpu_mesh_shape')}` (e.g. `[4, 4]` for 16 devices), or "
                 f"{assignment_text('sharding_strategy', 'auto')}")


@rule(19, "V019", ERROR, ("model_parallel", "optimizer_sharding", "sharding_strategy"))
def disabled_sharding_excludes_sharded_features(ctx: RuleContext) -> Iterator[Finding]:
    """`sharding_strategy = "disabled"` rules out model parallelism and optimizer sharding."""
    if ctx.sharding_strategy != "disabled":
        return
    on = [n for n in ("model_parallel", "optimizer_sharding") if getattr(ctx.config, n)]
    if on:
        yield Finding(
            f"{field_names(on)} {'needs' if len(on) == 1 else 'need'} sharding, but "
            "`sharding_strategy` is \"disabled\"",
            (*on, "sharding_strategy"),
            {**{n: "needs sharding" for n in on}, "sharding_strategy": "sharding is off"},
            help="set " + " and ".join(assignment_text(n, False) for n in on) + ", or use "
                 f"{assignment_text('sharding_strategy', 'auto')}")


@rule(20, "V020", ERROR, ("tpu_mesh_shape", "num_heads", "hidden_size", "vocab_size",
                          "model_parallel"))
def model_axis_divides_model(ctx: RuleContext) -> Iterator[Finding]:
    """With model parallelism the model axis must divide heads and hidden size."""
    mesh = mesh_of(ctx)
    if not ctx.model_parallel or mesh is None or len(mesh) < 2 or mesh[-1] == 1:
        return
    axis = mesh[-1]
    bad = [n for n in ("num_heads", "hidden_size")
           if getattr(ctx.config, n) is not None and getattr(ctx.config, n) % axis]
    if bad:
        devices = math.prod(mesh)
        better = suggest_mesh(devices, mesh, heads=ctx.num_heads, hidden=ctx.hidden_size) \
            if devices <= _MAX_SUGGESTED_DEVICES else None
        yield Finding(
            f"the model axis of `tpu_mesh_shape` {format_value(mesh)} ({axis}) does not divide "
            + " and ".join(f"`{n}` {getattr(ctx.config, n)}" for n in bad),
            ("tpu_mesh_shape", *bad, "model_parallel"),
            {"tpu_mesh_shape": f"model axis {axis}",
             **{n: f"not divisible by {axis}" for n in bad}},
            help=(f"set {assignment_text('tpu_mesh_shape', better)} (same device count), or turn "
                  "`model_parallel` off" if better else
                  f"use a model axis that divides {field_names(bad)}, or turn `model_parallel` off"),
            notes=("tensor parallelism splits attention heads and hidden features across the "
                   "model axis, so each device needs a whole share",))
    elif ctx.vocab_size % axis:
        yield Finding(
            f"the model axis of `tpu_mesh_shape` {format_value(mesh)} ({axis}) does not divide "
            f"`vocab_size` {ctx.vocab_size}: the embedding is padded",
            ("tpu_mesh_shape", "vocab_size"),
            {"tpu_mesh_shape": f"model axis {axis}", "vocab_size": f"not divisible by {axis}"},
            help=f"use a vocabulary size that is a multiple of {axis}", severity=WARNING)


@rule(22, "V022", WARNING, ("optimizer_sharding", "async_collective", "distributed_training"),
      scope="device")
def multi_device_features_on_one_device(ctx: RuleContext) -> Iterator[Finding]:
    """Sharding and collectives do nothing on one device."""
    if ctx.target is None or ctx.target.device_count != 1:
        return
    on = [n for n in ("optimizer_sharding", "async_collective", "distributed_training")
          if getattr(ctx.config, n) and ctx.explicit(n)]
    if on:
        yield Finding(
            f"{field_names(on)} {'does' if len(on) == 1 else 'do'} nothing on one device "
            f"(`{ctx.target.name}`)", tuple(on), {n: "one device" for n in on},
            help=f"remove {field_names([field_path(n) for n in on])} for single-device runs")


@rule(23, "V023", WARNING, ("kernel_categories", "use_custom_kernels"))
def kernel_categories_need_custom_kernels(ctx: RuleContext) -> Iterator[Finding]:
    """Kernel categories only matter with custom kernels, and an empty list selects none."""
    categories = ctx.kernel_categories
    if not ctx.use_custom_kernels and ctx.explicit("kernel_categories") and \
            sorted(categories) != sorted(default_of("kernel_categories")):
        yield Finding(
            "`kernel_categories` is ignored: `use_custom_kernels` is false",
            ("kernel_categories", "use_custom_kernels"),
            {"kernel_categories": "ignored", "use_custom_kernels": "custom kernels off"},
            help=f"remove `{field_path('kernel_categories')}`, or set {assignment_text('use_custom_kernels', True)}")
    elif ctx.use_custom_kernels and categories == []:
        yield Finding(
            "`use_custom_kernels` is on but `kernel_categories` is empty: no custom kernel runs",
            ("kernel_categories", "use_custom_kernels"), {"kernel_categories": "no categories"},
            help=f"list the categories to use, or set {assignment_text('use_custom_kernels', False)}")


@rule(24, "V024", WARNING, ("use_tpu_v4_optimizations", "device", "hardware_fallback"))
def tpu_v4_flag_matches_device(ctx: RuleContext) -> Iterator[Finding]:
    """TPU v4 optimizations set explicitly for an explicit non-v4 device."""
    if not (ctx.use_tpu_v4_optimizations and ctx.explicit("use_tpu_v4_optimizations")
            and ctx.explicit("device")):
        return
    device = ctx.config.device
    if device in ("gpu", "cpu"):
        yield Finding(
            f"`use_tpu_v4_optimizations` is ignored on `device` {format_value(device)}",
            ("use_tpu_v4_optimizations", "device"),
            {"use_tpu_v4_optimizations": "TPU v4 only", "device": "not a TPU"},
            help=f"remove `{field_path('use_tpu_v4_optimizations')}`")
    elif device == "tpu_v6" and not ctx.hardware_fallback:
        yield Finding(
            "`use_tpu_v4_optimizations` never applies: `device` is \"tpu_v6\" and "
            "`hardware_fallback` is false, so the TPU v4 fallback cannot happen",
            ("use_tpu_v4_optimizations", "device", "hardware_fallback"),
            {"use_tpu_v4_optimizations": "used only on fallback to TPU v4"},
            help=f"remove `{field_path('use_tpu_v4_optimizations')}`, or set "
                 f"{assignment_text('hardware_fallback', True)}")


@rule(26, "V026", WARNING, ("mixed_precision", "use_bfloat16", "device"), scope="device")
def precision_combinations(ctx: RuleContext) -> Iterator[Finding]:
    """Pure bf16 training, or fp16 compute on a TPU."""
    if not ctx.mixed_precision and ctx.use_bfloat16:
        yield Finding(
            "`mixed_precision` is false with `use_bfloat16` on: weights and compute are pure "
            "bfloat16, which risks unstable training",
            ("mixed_precision", "use_bfloat16"),
            {"mixed_precision": "no fp32 master weights", "use_bfloat16": "bfloat16"},
            help=f"set {assignment_text('mixed_precision', True)} to keep fp32 master weights")
    if ctx.mixed_precision and not ctx.use_bfloat16 and ctx.device in TPU_DEVICES:
        yield Finding(
            f"`mixed_precision` without `use_bfloat16` computes in float16 on {ctx.device}, "
            "which TPUs run slowly",
            ("use_bfloat16", "mixed_precision", "device"), {"use_bfloat16": "float16 instead"},
            help=f"set {assignment_text('use_bfloat16', True)}")


#: Fields that matter only when training: the memory-for-training switches and [training].
def _training_fields() -> tuple[str, ...]:
    return ("gradient_checkpointing", "activation_offloading", "optimizer_sharding",
            *fields_in("training"))


@rule(27, "V027", WARNING, _training_fields())
def training_settings_in_inference(ctx: RuleContext) -> Iterator[Finding]:
    """Training settings are ignored in inference mode."""
    if ctx.mode != "inference":
        return
    ignored = [n for n in _training_fields() if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{field_names(ignored)} {verb_are(ignored)} ignored in inference mode",
            tuple(ignored), {n: "training only" for n in ignored},
            help=f"remove {'them' if len(ignored) > 1 else 'it'} from inference configs, or "
                 "compile in training mode")
