"""Rules on training, testing and generation settings."""

from __future__ import annotations

import math
from typing import Iterator

from capibara.config.fieldtypes import format_value
from capibara.config.validate.engine import (ERROR, WARNING, Finding, RuleContext, assignment_text,
                                             default_of, field_names, field_path, rule, verb_are)


@rule(50, "V050", ERROR, ("warmup_steps", "decay_steps"))
def warmup_ends_before_decay(ctx: RuleContext) -> Iterator[Finding]:
    """Warmup must end before the schedule does."""
    if ctx.warmup_steps >= ctx.decay_steps:
        yield Finding(
            f"`warmup_steps` {ctx.warmup_steps} is not below `decay_steps` {ctx.decay_steps}",
            ("warmup_steps", "decay_steps"),
            {"warmup_steps": "warmup", "decay_steps": "the whole schedule"},
            help="`decay_steps` is the total schedule length including warmup: raise it or "
                 "shorten the warmup")


@rule(51, "V051", WARNING, ("save_checkpoint_steps", "decay_steps"))
def checkpoint_within_schedule(ctx: RuleContext) -> Iterator[Finding]:
    """A checkpoint interval longer than the schedule saves nothing within it."""
    if ctx.save_checkpoint_steps > ctx.decay_steps:
        yield Finding(
            f"`save_checkpoint_steps` {ctx.save_checkpoint_steps} is longer than the "
            f"{ctx.decay_steps}-step schedule: no checkpoint is saved within it",
            ("save_checkpoint_steps", "decay_steps"), {"save_checkpoint_steps": "too long"},
            help=f"set `{field_path('save_checkpoint_steps')}` to at most {ctx.decay_steps}")


@rule(52, "V052", WARNING, ("use_consensus_distilling", "consensus_num_teachers"))
def consensus_distilling_needs_teachers(ctx: RuleContext) -> Iterator[Finding]:
    """Consensus distilling has no teacher source, and an even panel can tie."""
    if not ctx.use_consensus_distilling:
        return
    yield Finding(
        "`use_consensus_distilling` has no teacher models to distil from: no field names them",
        ("use_consensus_distilling",), {"use_consensus_distilling": "no teachers"},
        help=f"set {assignment_text('use_consensus_distilling', False)} until teacher sources exist",
        notes=("training with it fails; it also costs about 5× the compute",))
    if ctx.consensus_num_teachers % 2 == 0:
        yield Finding(
            f"`consensus_num_teachers` {ctx.consensus_num_teachers} is even: a majority "
            "consensus can tie", ("consensus_num_teachers",),
            {"consensus_num_teachers": "even"},
            help=f"use an odd number, e.g. {ctx.consensus_num_teachers + 1}")


@rule(53, "V053", WARNING, ("beta1", "beta2", "epsilon", "optimizer"))
def optimizer_ignores_settings(ctx: RuleContext) -> Iterator[Finding]:
    """SGD ignores β1, β2 and ε; RMSprop ignores β1."""
    unused = {"sgd": ("beta1", "beta2", "epsilon"), "rmsprop": ("beta1",)}.get(ctx.optimizer, ())
    ignored = [n for n in unused if getattr(ctx.config, n) != default_of(n)]
    if ignored:
        yield Finding(
            f"{field_names(ignored)} {verb_are(ignored)} ignored by `optimizer` {format_value(ctx.optimizer)}",
            (*ignored, "optimizer"), {**{n: "ignored" for n in ignored}, "optimizer": "does not use it"},
            help=f"remove {'them' if len(ignored) > 1 else 'it'}, or use "
                 f"{assignment_text('optimizer', 'adamw')}")


@rule(54, "V054", WARNING, ("beta1", "beta2", "optimizer"))
def adam_convergence(ctx: RuleContext) -> Iterator[Finding]:
    """AdamW needs β1² < √β2 to converge."""
    if ctx.optimizer == "adamw" and ctx.beta1 ** 2 >= math.sqrt(ctx.beta2):
        yield Finding(
            f"`beta1` {format_value(ctx.beta1)} and `beta2` {format_value(ctx.beta2)} break Adam's "
            f"convergence condition β1² < √β2 ({ctx.beta1 ** 2:.4g} ≥ {math.sqrt(ctx.beta2):.4g})",
            ("beta1", "beta2"), {"beta1": "too large for this β2", "beta2": "too small"},
            help="use the defaults (0.9, 0.999) or lower `beta1`")




@rule(55, "V055", WARNING, ("mock_expensive_ops",))
def mocks_are_not_real(ctx: RuleContext) -> Iterator[Finding]:
    """Mocked operations produce outputs that are not real."""
    if ctx.mock_expensive_ops:
        yield Finding(
            "`mock_expensive_ops` is on: expensive operations return mock outputs, not real ones",
            ("mock_expensive_ops",), {"mock_expensive_ops": "mocked"},
            help="never ship this to production; set "
                 f"{assignment_text('mock_expensive_ops', False)} outside tests")


@rule(56, "V056", WARNING, ("temperature",))
def temperature_is_sane(ctx: RuleContext) -> Iterator[Finding]:
    """Sampling temperature above 2 is close to random."""
    if ctx.temperature > 2.0:
        yield Finding(
            f"`temperature` {format_value(ctx.temperature)} gives near-random sampling",
            ("temperature",), {"temperature": "above 2.0"},
            help="use a temperature between 0 (greedy) and 2; 1.0 samples the model as trained")
