"""``capibara train PLAN_OR_CONFIG... --data DIR --run-dir DIR``: a resumable training job.

    capibara train CONFIG... --data DIR --run-dir DIR [--steps N] [--set PATH=VALUE]
    capibara train ... --coordinator HOST:PORT --num-processes N --process-id I

Exits 0 when it reached its last step, 1 for diagnostics (printed before
any step runs), 2 for usage errors, and 128 + the signal number when SIGINT
or SIGTERM stopped it (after saving a checkpoint: the same command resumes
it). See :mod:`capibara.train`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, TextIO

from capibara.cli.output import print_diagnostics
from capibara.diagnostics import ConfigError, escape

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2

from capibara.cli.data import _positive


def add_verb(verbs: Any, add_config_inputs: Callable[[argparse.ArgumentParser], None],
             add_message_format: Callable[[argparse.ArgumentParser], None]) -> None:
    train = verbs.add_parser("train", help="train a plan (or config) on prepared data, "
                                           "resuming from the run directory's checkpoints")
    add_config_inputs(train)
    train.add_argument("--data", required=True, metavar="DIR", help="a `capibara data prepare` output")
    train.add_argument("--run-dir", required=True, metavar="DIR",
                       help="checkpoints, log.jsonl, train.plan.json and config.toml go here")
    train.add_argument("--steps", type=_positive, metavar="N",
                       help="train up to step N (default: `training.decay_steps`)")
    train.add_argument("--log-every", type=_positive, default=10, metavar="N")
    train.add_argument("--eval-every", type=_positive, metavar="N",
                       help="held-out loss every N steps (default: `training.save_checkpoint_steps`)")
    train.add_argument("--eval-batches", type=_positive, default=4, metavar="N")
    train.add_argument("--seed", type=int, default=0, help="the data shuffling seed")
    train.add_argument("--show-memory", action="store_true",
                       help="print the plan's memory estimate beside XLA's analysis of the "
                            "compiled step (compiles the step once more)")
    train.add_argument("--coordinator", metavar="HOST:PORT",
                       help="join a jax.distributed job whose process 0 listens here")
    train.add_argument("--num-processes", type=_positive, metavar="N")
    train.add_argument("--process-id", type=int, metavar="I")
    add_message_format(train)
    train.set_defaults(run=run_train)


def _join(args: argparse.Namespace) -> None:
    import jax

    # CPU devices of different processes talk through gloo (jax's CPU collectives).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                               process_id=args.process_id)


def run_train(args: argparse.Namespace, out: TextIO) -> int:
    import signal

    from capibara.cli.plan import is_plan_path
    from capibara.train.setup import set_up

    distributed = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in distributed) and not all(v is not None for v in distributed):
        sys.stderr.write("error: --coordinator, --num-processes and --process-id go together\n")
        return EXIT_USAGE
    if args.process_id is not None and not 0 <= args.process_id < args.num_processes:
        sys.stderr.write(f"error: --process-id {args.process_id} is not in 0..{args.num_processes - 1}\n")
        return EXIT_USAGE
    if args.overrides and any(is_plan_path(f) for f in args.files):
        sys.stderr.write("error: --set changes a config, not a compiled plan: pass the config\n")
        return EXIT_USAGE
    from capibara.compiler import check as pipeline

    try:
        setup = set_up(args.files, data=args.data, run_dir=args.run_dir, overrides=args.overrides,
                       target=args.target or "auto", env=None if args.no_env else pipeline.ENVIRON)
    except ConfigError as error:
        print_diagnostics(error.diagnostics, args.message_format, sys.stderr)
        return EXIT_ERRORS
    if args.message_format == "human" and setup.warnings:
        sys.stderr.write(f"{len(setup.warnings)} warning{'s' if len(setup.warnings) != 1 else ''} "
                         f"(see `capibara check`)\n")
    if args.coordinator:
        _join(args)
    from capibara.train.loop import run

    start = time.perf_counter()
    try:
        result = run(setup, steps=args.steps, log_every=args.log_every,
                     eval_every=args.eval_every, eval_batches=args.eval_batches, seed=args.seed,
                     out=sys.stderr, show_memory=args.show_memory)
    except ConfigError as error:
        print_diagnostics(error.diagnostics, args.message_format, sys.stderr)
        return EXIT_ERRORS
    finally:
        if args.coordinator:
            import jax

            jax.distributed.shutdown()
    seconds = time.perf_counter() - start
    plan = setup.plan
    out.write(f"plan       {plan.digest[:19]}… (mesh {list(plan.mesh.shape)}, batch "
              f"{plan.batch.global_size} × {plan.model.max_seq_length} tokens)\n")
    where = f"resumed at step {result.start_step}" if result.start_step else "from scratch"
    out.write(f"trained    steps {result.start_step} → {result.step} ({where}) in {seconds:.1f} s\n")
    if result.losses:
        out.write(f"loss       {result.losses[0][1]:.4f} → {result.losses[-1][1]:.4f}\n")
    if result.eval_losses:
        out.write(f"eval loss  {result.eval_losses[-1][1]:.4f} at step {result.eval_losses[-1][0]}\n")
    out.write(f"run        {escape(args.run_dir)} (capibara report {escape(args.run_dir)})\n")
    if result.stopped_by:
        number = int(getattr(signal, result.stopped_by))
        out.write(f"stopped    by {result.stopped_by} at step {result.step}, checkpoint saved; "
                  "run the same command to resume\n")
        return 128 + number
    return EXIT_OK
