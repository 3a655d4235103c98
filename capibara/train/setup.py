"""Everything a training job checks before JAX starts: the plan, the data, the run directory.

A config is compiled (the same diagnostics as ``capibara compile``); a plan
is read and verified. The data directory's manifest must fit the plan (its
vocabulary, enough tokens for one ``max_seq_length`` window of each split),
and a run directory that already holds a run must hold one of the same plan.
Every problem is a located diagnostic, raised before any step runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from capibara.diagnostics import ConfigError, Diagnostic, Span

__all__ = ["TrainSetup", "set_up", "RUN_PLAN", "RUN_LOG", "CHECKPOINTS"]

VOCAB_MISMATCH = "D104"
TOO_FEW_TOKENS = "D105"
RUN_DIR_UNUSABLE = "R204"
OTHER_PLAN = "R205"

#: Plan facts about the host that do not change what is trained: a preempted job restarted on
#: a machine whose CPU has other flags, or other memory, resumes its run (a batch or dtype the
#: new host changes is a difference of its own).
HOST_FACTS = frozenset({"target.cpu_features", "target.memory_per_device_gib", "memory.limit"})

#: The run directory's layout.
RUN_PLAN = "train.plan.json"
RUN_LOG = "log.jsonl"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class TrainSetup:
    """A checked job: the plan, the data it reads, where it writes, and the warnings found."""

    plan: Any
    data_dir: Path
    data: Any
    run_dir: Path
    warnings: tuple[Diagnostic, ...] = ()


def _plan_and_config(inputs: Sequence[str | os.PathLike], overrides: Sequence[str],
                     target: str | None, env: Mapping[str, str] | None) -> tuple[Any, Any, list[Diagnostic]]:
    """The plan, the config it came from (``None`` for a plan file) and the warnings."""
    from capibara.cli.plan import is_plan_path

    if len(inputs) == 1 and is_plan_path(str(inputs[0])):
        from capibara.plan import load_plan_file

        if overrides:
            raise ValueError("--set changes a config, not a compiled plan: pass the config")
        return load_plan_file(inputs[0]), None, []
    from capibara.compiler import compile_config
    from capibara.config.sources import resolve_config

    resolved = resolve_config(inputs, env=env, overrides=overrides)
    result = compile_config(resolved.config, target)
    diagnostics = [*resolved.diagnostics, *result.diagnostics]
    if result.plan is None:
        raise ConfigError(diagnostics)
    return result.plan, resolved.config, diagnostics


def _span(config: Any, field: str) -> Span | None:
    if config is None:
        return None
    provenance = config.provenance(field)
    return provenance.span if provenance.explicit else None


def _data_problems(plan: Any, config: Any, data_dir: Path, data: Any) -> list[Diagnostic]:
    found = []
    model_vocab = plan.model.vocab_size
    if data.vocab_size != model_vocab:
        larger = data.vocab_size > model_vocab
        found.append(Diagnostic.error(
            VOCAB_MISMATCH,
            f"the tokenizer of `{data_dir}` has {data.vocab_size} tokens, the model's "
            f"vocabulary {model_vocab}",
            _span(config, "vocab_size"), label=f"the model has {model_vocab}",
            notes=((f"token ids up to {data.vocab_size - 1} would index past the embedding",)
                   if larger else (f"{model_vocab - data.vocab_size} embedding rows would never "
                                   "be trained, and generation could emit ids the tokenizer "
                                   "cannot decode",)),
            help=f"set `model.vocab_size = {data.vocab_size}` (e.g. --set model.vocab_size="
                 f"{data.vocab_size}), or prepare the data with --vocab-size {model_vocab}"))
    seq = plan.model.max_seq_length
    for name in ("train", "eval"):
        split = data.splits.get(name)
        tokens = split.tokens if split is not None else 0
        if tokens < seq:
            found.append(Diagnostic.error(
                TOO_FEW_TOKENS,
                f"the {name} split of `{data_dir}` has {tokens} tokens, fewer than one window "
                f"of `max_seq_length` {seq}",
                _span(config, "max_seq_length"), label=f"windows of {seq} tokens",
                help="give `capibara data prepare` more text, or train with a shorter "
                     "`model.max_seq_length`"))
    return found


def _run_dir_problems(plan: Any, run_dir: Path) -> list[Diagnostic]:
    if run_dir.exists() and not run_dir.is_dir():
        return [Diagnostic.error(
            RUN_DIR_UNUSABLE, f"run directory `{run_dir}` is not a directory",
            help="pass a new or existing directory to --run-dir")]
    recorded = run_dir / RUN_PLAN
    if not recorded.exists():
        return []
    from capibara.plan import diff_plans, load_plan_file

    try:
        previous = load_plan_file(recorded)
    except ConfigError as error:
        return list(error.diagnostics)
    if previous.digest == plan.digest:
        return []
    changes = diff_plans(previous, plan)
    # A config field the plan also carries resolved is listed once, under the plan's path.
    plan_paths = {c.path for c in changes}
    changes = [c for c in changes if c.path not in HOST_FACTS
               and not (c.path.startswith("config.") and c.path.removeprefix("config.") in plan_paths)]
    if not changes:
        return []
    return [Diagnostic.error(
        OTHER_PLAN, f"run directory `{run_dir}` holds a run of another plan",
        notes=[f"this run's plan {plan.digest[:19]}…, the directory's {previous.digest[:19]}…"]
        + [f"`{c.path}`: {c.before!r} there, {c.after!r} here" for c in changes[:20]]
        + ([f"and {len(changes) - 20} more differences"] if len(changes) > 20 else []),
        help="resume with the same plan (or config), or train into a new --run-dir")]


def set_up(inputs: Sequence[str | os.PathLike], *, data: str | os.PathLike,
           run_dir: str | os.PathLike, overrides: Sequence[str] = (), target: str | None = "auto",
           env: Mapping[str, str] | None = os.environ) -> TrainSetup:
    """Check a training job without JAX; :class:`ConfigError` with every problem found."""
    from capibara.data.manifest import read_manifest

    plan, config, diagnostics = _plan_and_config(inputs, overrides, target, env)
    data_dir, run_path = Path(data), Path(run_dir)
    problems: list[Diagnostic] = []
    manifest = None
    try:
        manifest = read_manifest(data_dir)
    except ConfigError as error:
        problems += error.diagnostics
    if manifest is not None:
        problems += _data_problems(plan, config, data_dir, manifest)
    problems += _run_dir_problems(plan, run_path)
    if problems:
        raise ConfigError([*diagnostics, *problems])
    return TrainSetup(plan, data_dir, manifest, run_path, tuple(d for d in diagnostics if not d.is_error))
