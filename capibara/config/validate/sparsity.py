"""Rules on sparsity, Mixture of Rookies and weight quantization."""

from __future__ import annotations

from typing import Iterator

from capibara.config.fieldtypes import format_value
from capibara.config.validate.engine import (ERROR, WARNING, Finding, RuleContext, assignment_text,
                                             field_names, rule, verb_are)


@rule(28, "V028", ERROR, ("min_sparsity", "max_sparsity", "sparsity_ratio", "adaptive_sparsity"))
def sparsity_range_is_ordered(ctx: RuleContext) -> Iterator[Finding]:
    """`min_sparsity <= max_sparsity`, and with adaptive sparsity the ratio lies between."""
    low, high, ratio = ctx.min_sparsity, ctx.max_sparsity, ctx.sparsity_ratio
    if low > high:
        yield Finding(
            f"`min_sparsity` {format_value(low)} is above `max_sparsity` {format_value(high)}",
            ("min_sparsity", "max_sparsity"),
            {"min_sparsity": "the lower bound", "max_sparsity": "the upper bound"},
            help="swap them, or make `min_sparsity` at most `max_sparsity`")
    elif ctx.use_sparse and ctx.adaptive_sparsity and not low <= ratio <= high:
        yield Finding(
            f"`sparsity_ratio` {format_value(ratio)} is outside the adaptive range "
            f"[{format_value(low)}, {format_value(high)}]",
            ("sparsity_ratio", "min_sparsity", "max_sparsity"),
            {"sparsity_ratio": "the target", "min_sparsity": "lower bound",
             "max_sparsity": "upper bound"},
            help=f"pick a ratio between {format_value(low)} and {format_value(high)}, or move the "
                 "bound",
            notes=("adaptive sparsity ramps from `min_sparsity` to the target and clamps "
                   "adjustments to [`min_sparsity`, `max_sparsity`]",))


@rule(29, "V029", ERROR, ("mor_top_k", "mor_num_experts", "use_sparse", "sparsity_method"))
def mor_routing_is_possible(ctx: RuleContext) -> Iterator[Finding]:
    """Mixture of Rookies cannot route to more experts than exist."""
    if not ctx.use_sparse or ctx.sparsity_method != "mor":
        return
    top_k, experts = ctx.mor_top_k, ctx.mor_num_experts
    if top_k > experts:
        yield Finding(
            f"`mor_top_k` {top_k} routes to more experts than `mor_num_experts` {experts}",
            ("mor_top_k", "mor_num_experts"),
            {"mor_top_k": f"{top_k} per token", "mor_num_experts": f"only {experts}"},
            help=f"set {assignment_text('mor_top_k', min(2, experts))} or raise `mor_num_experts`")
    elif top_k == experts:
        yield Finding(
            f"`mor_top_k` {top_k} equals `mor_num_experts`: every token uses every expert, so "
            "routing gives no sparsity",
            ("mor_top_k", "mor_num_experts"), {"mor_top_k": "all experts"},
            help="route to fewer experts than exist (the default is 2 of 8)", severity=WARNING)


@rule(30, "V030", WARNING, ("mor_num_experts", "mor_top_k", "mor_load_balancing",
                            "sparsity_method", "use_sparse"))
def mor_settings_without_mor(ctx: RuleContext) -> Iterator[Finding]:
    """`mor_*` settings are ignored unless sparsity uses Mixture of Rookies."""
    if ctx.use_sparse and ctx.sparsity_method == "mor":
        return
    ignored = [n for n in ("mor_num_experts", "mor_top_k", "mor_load_balancing")
               if ctx.explicit(n)]
    if not ignored:
        return
    if ctx.use_sparse:
        why, other = f"`sparsity_method` is {format_value(ctx.sparsity_method)}", "sparsity_method"
    else:
        why, other = "`use_sparse` is false", "use_sparse"
    yield Finding(
        f"{field_names(ignored)} {verb_are(ignored)} ignored: {why}", (*ignored, other),
        {**{n: "ignored" for n in ignored}, other: "not Mixture of Rookies"},
        help=f"remove {'them' if len(ignored) > 1 else 'it'}, or use "
             f"{assignment_text('sparsity_method', 'mor')}")


@rule(31, "V031", ERROR, ("use_affine_quantization", "use_bitnet"))
def one_weight_quantizer(ctx: RuleContext) -> Iterator[Finding]:
    """BitNet and affine quantization are mutually exclusive weight quantizers."""
    if ctx.use_bitnet and ctx.use_affine_quantization:
        yield Finding(
            "`use_bitnet` and `use_affine_quantization` are both on: they are alternative weight "
            "quantizers", ("use_affine_quantization", "use_bitnet"),
            {"use_affine_quantization": "affine", "use_bitnet": "BitNet"},
            help=f"set {assignment_text('use_affine_quantization', False)} (or leave it unset: "
                 "`use_bitnet = true` turns it off)")


@rule(32, "V032", WARNING, ("bitnet_precision", "affine_bits", "affine_symmetric", "use_bitnet",
                            "use_affine_quantization"))
def quantizer_settings_without_quantizer(ctx: RuleContext) -> Iterator[Finding]:
    """Quantizer sub-settings are ignored while their switch is off."""
    groups = (("use_bitnet", ("bitnet_precision",)),
              ("use_affine_quantization", ("affine_bits", "affine_symmetric")))
    for switch, subs in groups:
        ignored = [n for n in subs if ctx.explicit(n)]
        if ignored and not getattr(ctx.config, switch):
            yield Finding(
                f"{field_names(ignored)} {verb_are(ignored)} ignored: `{switch}` is false",
                (*ignored, switch), {**{n: "ignored" for n in ignored}, switch: "off"},
                help=f"remove {'them' if len(ignored) > 1 else 'it'}, or set "
                     f"{assignment_text(switch, True)}")
