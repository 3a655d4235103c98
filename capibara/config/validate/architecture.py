"""Rules on the model's shape and the JAX settings."""

from __future__ import annotations

import math
from typing import Iterator

from capibara.config.fieldtypes import format_value
from capibara.config.validate.engine import (DOCUMENTED_HEADS, DOCUMENTED_HIDDEN, DOCUMENTED_LAYERS,
                                             EFFICIENT_HEAD_DIMS, ERROR, WARNING, Finding,
                                             RuleContext, assignment_text, field_names, field_path,
                                             rule, verb_are)


@rule(1, "V001", ERROR, ("num_heads", "hidden_size"))
def head_dim_is_integer(ctx: RuleContext) -> Iterator[Finding]:
    """`hidden_size` must be divisible by `num_heads`."""
    hidden, heads = ctx.hidden_size, ctx.num_heads
    if heads is None or hidden % heads == 0:
        return
    suggestion = hidden // 64 if hidden % 64 == 0 else _nearest_divisor(hidden, heads)
    yield Finding(
        f"`hidden_size` {hidden} is not divisible by `num_heads` {heads}",
        ("num_heads", "hidden_size"),
        {"num_heads": f"{heads} heads", "hidden_size": f"{hidden} does not split into {heads} heads"},
        help=f"set {assignment_text('num_heads', suggestion)} (head dimension {hidden // suggestion})"
             + (", or remove it to derive `hidden_size // 64`" if hidden % 64 == 0 else ""))


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _nearest_divisor(n: int, near: int) -> int:
    return min(divisors(n), key=lambda d: (abs(d - near), d))


@rule(2, "V002", WARNING, ("num_heads", "hidden_size"))
def head_dim_is_efficient(ctx: RuleContext) -> Iterator[Finding]:
    """The head dimension should be 64 or 128."""
    hidden, heads = ctx.hidden_size, ctx.num_heads
    if heads is None or hidden % heads:
        return
    head_dim = hidden // heads
    if head_dim in EFFICIENT_HEAD_DIMS:
        return
    better = [hidden // d for d in EFFICIENT_HEAD_DIMS if hidden % d == 0]
    yield Finding(
        f"head dimension {head_dim} (`hidden_size` {hidden} / `num_heads` {heads}) is legal but "
        "inefficient",
        ("num_heads", "hidden_size"), {"num_heads": f"head dimension {head_dim}"},
        help=(f"set {assignment_text('num_heads', better[0])} (head dimension {hidden // better[0]})"
              if better else "use a hidden size that is a multiple of 64"),
        notes=("64 and 128 are the standard head sizes; multiples of 128 fill the TPU matrix unit",))


@rule(3, "V003", WARNING, ("hidden_size", "num_layers", "num_heads"))
def architecture_is_documented(ctx: RuleContext) -> Iterator[Finding]:
    """Architecture values outside the documented tiers (advisory)."""
    checks = (("hidden_size", DOCUMENTED_HIDDEN), ("num_layers", DOCUMENTED_LAYERS),
              ("num_heads", DOCUMENTED_HEADS))
    for name, documented in checks:
        value = getattr(ctx.config, name)
        # A derived num_heads is outside the tiers only when hidden_size is: one warning is enough.
        if value is None or value in documented or (name == "num_heads" and not ctx.explicit(name)):
            continue
        nearest = min(documented, key=lambda d: (abs(d - value), d))
        yield Finding(
            f"`{name}` {value} is outside the documented values "
            f"{', '.join(map(str, documented))}", (name,), {name: "not a documented value"},
            help=f"the nearest documented value is {nearest}; keep {value} if it is intended",
            notes=("the documented values are advisory: small test models and large migrated "
                   "shapes are fine, but they are not the tuned configurations",))


@rule(4, "V004", ERROR, ("vision_encoder_type", "audio_encoder_type", "multimodal_enabled"))
def encoder_needs_multimodal(ctx: RuleContext) -> Iterator[Finding]:
    """An encoder type requires `multimodal_enabled`."""
    if ctx.multimodal_enabled:
        return
    for name in ("vision_encoder_type", "audio_encoder_type"):
        value = getattr(ctx.config, name)
        if value is not None:
            yield Finding(
                f"`{name}` {format_value(value)} needs `multimodal_enabled`",
                (name, "multimodal_enabled"),
                {name: "an encoder", "multimodal_enabled": "multimodal processing is off"},
                help=f"set {assignment_text('multimodal_enabled', True)}, or remove `{field_path(name)}`")


@rule(5, "V005", ERROR, ("multimodal_enabled", "vision_encoder_type", "audio_encoder_type"))
def multimodal_needs_encoder(ctx: RuleContext) -> Iterator[Finding]:
    """`multimodal_enabled` requires at least one encoder."""
    if ctx.multimodal_enabled and ctx.vision_encoder_type is None and ctx.audio_encoder_type is None:
        from capibara.config.fields import FIELD_BY_NAME

        vision = FIELD_BY_NAME["vision_encoder_type"].type.inner.listing()
        audio = FIELD_BY_NAME["audio_encoder_type"].type.inner.listing()
        yield Finding(
            "`multimodal_enabled` needs a vision or an audio encoder",
            ("multimodal_enabled",), {"multimodal_enabled": "no encoder is set"},
            help=f"set `{field_path('vision_encoder_type')}` ({vision}) or "
                 f"`{field_path('audio_encoder_type')}` ({audio}), or turn multimodal off")




@rule(6, "V006", ERROR, ("jax_backend", "use_jax_native"))
def jax_backend_matches_native(ctx: RuleContext) -> Iterator[Finding]:
    """`use_jax_native` and `jax_backend` must agree."""
    native, backend = ctx.use_jax_native, ctx.jax_backend
    if (native is False and backend == "capibara_jax") or (native is True and backend == "standard"):
        wanted = "standard" if native is False else "capibara_jax"
        yield Finding(
            f"`use_jax_native` {format_value(native)} contradicts `jax_backend` "
            f"{format_value(backend)}",
            ("jax_backend", "use_jax_native"),
            {"jax_backend": f"the {'native' if backend == 'capibara_jax' else 'standard'} backend",
             "use_jax_native": f"{'not ' if native is False else ''}native"},
            help=f"set {assignment_text('jax_backend', wanted)} or remove one of the two: "
                 "either one alone decides the other")


@rule(7, "V007", WARNING, ("fallback_to_standard", "jax_backend"))
def native_backend_without_fallback(ctx: RuleContext) -> Iterator[Finding]:
    """`capibara_jax` without a fallback fails hard where `capibara.jax` is missing."""
    if ctx.jax_backend == "capibara_jax" and not ctx.fallback_to_standard:
        yield Finding(
            "`jax_backend` \"capibara_jax\" with `fallback_to_standard` false fails wherever "
            "`capibara.jax` cannot be imported",
            ("fallback_to_standard", "jax_backend"), {"fallback_to_standard": "no fallback"},
            help=f"set {assignment_text('fallback_to_standard', True)}, or {assignment_text('jax_backend', 'auto')}")


@rule(8, "V008", WARNING, ("compile_mode", "cache_compiled_functions", "enable_jit"))
def compile_settings_without_jit(ctx: RuleContext) -> Iterator[Finding]:
    """`compile_mode` and the compile cache mean nothing without JIT."""
    if ctx.enable_jit:
        return
    ignored = [n for n in ("compile_mode", "cache_compiled_functions") if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{field_names(ignored)} {verb_are(ignored)} ignored: `enable_jit` is false",
            (*ignored, "enable_jit"), {**{n: "ignored" for n in ignored}, "enable_jit": "no JIT"},
            help=f"remove {field_names([field_path(n) for n in ignored])}, or set {assignment_text('enable_jit', True)}")


@rule(9, "V009", WARNING, ("compile_mode", "jax_debug_mode", "trace_execution",
                           "profile_performance"))
def debugging_defeats_aggressive(ctx: RuleContext) -> Iterator[Finding]:
    """Debug instrumentation distorts an aggressive compilation."""
    if ctx.compile_mode != "aggressive":
        return
    on = [n for n in ("jax_debug_mode", "trace_execution", "profile_performance")
          if getattr(ctx.config, n)]
    if on:
        yield Finding(
            f"{field_names(on)} {verb_are(on)} on with `compile_mode` \"aggressive\": debug "
            "instrumentation distorts or defeats the optimizations",
            ("compile_mode", *on), {"compile_mode": "aggressive", **{n: "on" for n in on}},
            help=f"use {assignment_text('compile_mode', 'default')} while debugging or profiling")


#: The kernel families each sequence mixer computes with (beyond linalg).
MIXER_FAMILIES = {"attention": ("attention",), "ssm": ("conv", "scan"), "hyena": ("conv", "fft")}


@rule(59, "V059", ERROR, ("mixers", "num_layers"))
def mixer_pattern_divides_layers(ctx: RuleContext) -> Iterator[Finding]:
    """The `mixers` pattern repeats a whole number of times over the layers."""
    pattern, layers = ctx.mixers, ctx.num_layers
    if layers % len(pattern) == 0:
        return
    fits = [n for n in divisors(layers) if n <= len(pattern)]
    yield Finding(
        f"the `mixers` pattern has {len(pattern)} entries, which does not divide `num_layers` "
        f"{layers}",
        ("mixers", "num_layers"),
        {"mixers": f"{len(pattern)} entries", "num_layers": f"{layers} layers"},
        help=f"use a pattern of {' or '.join(map(str, fits[-2:]))} entries, or a `num_layers` "
             f"that is a multiple of {len(pattern)} (e.g. {layers + len(pattern) - layers % len(pattern)})",
        notes=("block i uses mixer `mixers[i % len(mixers)]`; the pattern must tile the layers "
               "exactly so every repeat has the same blocks",))


@rule(60, "V060", ERROR, ("hyena_filter_length", "max_seq_length", "mixers"))
def hyena_filter_fits_context(ctx: RuleContext) -> Iterator[Finding]:
    """A `hyena` filter is at most `max_seq_length` taps long."""
    length = ctx.hyena_filter_length
    if length is None or "hyena" not in ctx.mixers or length <= ctx.max_seq_length:
        return
    yield Finding(
        f"`hyena_filter_length` {length} is longer than `max_seq_length` {ctx.max_seq_length}",
        ("hyena_filter_length", "max_seq_length"),
        {"hyena_filter_length": f"{length} taps", "max_seq_length": f"{ctx.max_seq_length} tokens"},
        help=f"set {assignment_text('hyena_filter_length', ctx.max_seq_length)}, or remove it "
             "for a filter as long as the context",
        notes=("taps past the context length would never meet a token",))


@rule(61, "V061", WARNING, ("kernel_categories", "mixers", "use_custom_kernels"))
def mixer_families_in_kernel_categories(ctx: RuleContext) -> Iterator[Finding]:
    """`kernel_categories` leaves out a kernel family the `mixers` pattern computes with."""
    if not ctx.use_custom_kernels:
        return
    # Attention's category predates `mixers`: leaving it out is a choice made on its own.
    needed = sorted({family for mixer in ctx.mixers if mixer != "attention"
                     for family in MIXER_FAMILIES[mixer]})
    missing = [family for family in needed if family not in ctx.kernel_categories]
    if not missing:
        return
    users = sorted({m for m in ctx.mixers if set(MIXER_FAMILIES[m]) & set(missing)})
    wanted = list(ctx.kernel_categories) + missing
    yield Finding(
        f"`kernel_categories` leaves out {field_names(missing)}, which the "
        f"{field_names(users)} blocks of `mixers` compute with",
        ("kernel_categories", "mixers"),
        {"kernel_categories": f"no {', '.join(missing)}", "mixers": f"needs {', '.join(needed)}"},
        help=f"set {assignment_text('kernel_categories', wanted)}, or drop "
             f"{field_names(users)} from `mixers`",
        notes=(f"on a TPU those blocks then run the {' and '.join(missing)} family's reference "
               "kernel instead of its tuned one",))
