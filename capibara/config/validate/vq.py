"""Rules on vector quantization."""

from __future__ import annotations

from typing import Iterator

from capibara.config.fieldtypes import format_value
from capibara.config.validate.engine import (ERROR, TPU_DEVICES, WARNING, Finding, RuleContext,
                                             assignment_text, field_names, field_path, fields_in,
                                             rule, verb_are)


@rule(10, "V010", ERROR, ("vq_embedding_dim", "hidden_size", "use_vq"))
def vq_dim_matches_hidden(ctx: RuleContext) -> Iterator[Finding]:
    """With VQ, `vq_embedding_dim` must equal `hidden_size` (no projection exists)."""
    dim, hidden = ctx.vq_embedding_dim, ctx.hidden_size
    if ctx.use_vq and dim is not None and dim != hidden:
        yield Finding(
            f"`vq_embedding_dim` {dim} differs from `hidden_size` {hidden}",
            ("vq_embedding_dim", "hidden_size"),
            {"vq_embedding_dim": f"codebook vectors of size {dim}",
             "hidden_size": f"hidden states of size {hidden}"},
            help=f"remove `{field_path('vq_embedding_dim')}` to derive it from `hidden_size`, "
                 f"or set it to {hidden}",
            notes=("codebook vectors replace hidden states, so both must have the same size; "
                   "no projection between them exists",))


@rule(11, "V011", ERROR, ("vq_enterprise_mode", "use_vq"))
def enterprise_needs_vq(ctx: RuleContext) -> Iterator[Finding]:
    """`vq_enterprise_mode` requires `use_vq`."""
    if ctx.vq_enterprise_mode and not ctx.use_vq:
        yield Finding(
            "`vq_enterprise_mode` needs vector quantization, but `use_vq` is false",
            ("vq_enterprise_mode", "use_vq"),
            {"vq_enterprise_mode": "needs VQ", "use_vq": "VQ is off"},
            help=f"set {assignment_text('use_vq', True)}, or turn enterprise mode off")


@rule(12, "V012", ERROR, ("vq_codes", "vq_enterprise_mode"))
def enterprise_needs_128_codes(ctx: RuleContext) -> Iterator[Finding]:
    """Enterprise mode means 128 codes."""
    if ctx.vq_enterprise_mode and ctx.vq_codes != 128:
        yield Finding(
            f"`vq_enterprise_mode` needs 128 codes, but `vq_codes` is {ctx.vq_codes}",
            ("vq_codes", "vq_enterprise_mode"),
            {"vq_codes": "enterprise mode needs 128", "vq_enterprise_mode": "enterprise mode"},
            help=f"set {assignment_text('vq_codes', 128)} (or remove it: enterprise mode derives 128); "
                 "for 64 codes, turn enterprise mode off")


@rule(13, "V013", WARNING, ("vq_cost_management", "vq_fallback_strategy", "vq_enterprise_mode"))
def enterprise_settings_without_enterprise(ctx: RuleContext) -> Iterator[Finding]:
    """Enterprise sub-settings have no effect without enterprise mode."""
    if ctx.vq_enterprise_mode or not ctx.use_vq:  # without VQ, V014 already says it
        return
    ignored = [n for n in ("vq_cost_management", "vq_fallback_strategy") if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{field_names(ignored)} {verb_are(ignored)} ignored: `vq_enterprise_mode` is false",
            (*ignored, "vq_enterprise_mode"), {n: "no effect" for n in ignored},
            help=f"remove {field_names([field_path(n) for n in ignored])}, or set "
                 f"{assignment_text('vq_enterprise_mode', True)}")


@rule(14, "V014", WARNING, fields_in("vector_quantization", excluding=("vq_enterprise_mode",)))
def vq_settings_without_vq(ctx: RuleContext) -> Iterator[Finding]:
    """VQ sub-settings are ignored while `use_vq` is false."""
    if ctx.use_vq:
        return
    subs = fields_in("vector_quantization", excluding=("use_vq", "vq_enterprise_mode"))
    ignored = [n for n in subs if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{field_names(ignored)} {verb_are(ignored)} ignored: `use_vq` is false",
            (*ignored, "use_vq"), {**{n: "ignored" for n in ignored}, "use_vq": "VQ is off"},
            help=f"remove {'them' if len(ignored) > 1 else 'it'}, or set {assignment_text('use_vq', True)}")


@rule(15, "V015", WARNING, ("vq_use_tpu_optimizations", "vq_use_simd", "device"))
def vq_hardware_flags_match_device(ctx: RuleContext) -> Iterator[Finding]:
    """VQ's TPU and SIMD paths are ignored on the other kind of device."""
    if not ctx.explicit("device"):
        return  # an "auto" device gates these flags silently
    device = ctx.config.device
    if device in ("gpu", "cpu") and ctx.vq_use_tpu_optimizations and \
            ctx.explicit("vq_use_tpu_optimizations"):
        yield Finding(
            f"`vq_use_tpu_optimizations` is ignored on `device` {format_value(device)}",
            ("vq_use_tpu_optimizations", "device"),
            {"vq_use_tpu_optimizations": "TPU only", "device": "not a TPU"},
            help=f"remove `{field_path('vq_use_tpu_optimizations')}`")
    if device in TPU_DEVICES and ctx.vq_use_simd and ctx.explicit("vq_use_simd"):
        yield Finding(
            f"`vq_use_simd` is ignored on `device` {format_value(device)}",
            ("vq_use_simd", "device"), {"vq_use_simd": "CPU only", "device": "a TPU"},
            help=f"remove `{field_path('vq_use_simd')}`")


@rule(16, "V016", WARNING, ("vq_precision", "device"), scope="device")
def vq_float16_on_tpu(ctx: RuleContext) -> Iterator[Finding]:
    """float16 codebooks on a TPU are slow."""
    if ctx.use_vq and ctx.vq_precision == "float16" and ctx.device in TPU_DEVICES:
        yield Finding(
            f"`vq_precision` \"float16\" is slow on {ctx.device}: TPUs compute in bfloat16",
            ("vq_precision", "device"), {"vq_precision": "slow on TPU"},
            help=f"use {assignment_text('vq_precision', 'bfloat16')}")
