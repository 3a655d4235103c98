"""``capibara data prepare``, ``capibara train`` and ``capibara report``.

    capibara data prepare TEXT... -o DIR (--vocab-size N | --tokenizer MODEL)
    capibara train PLAN_OR_CONFIG... --data DIR --run-dir DIR [--steps N] [--set PATH=VALUE]
    capibara train ... --coordinator HOST:PORT --num-processes N --process-id I
    capibara report RUN_DIR

``train`` exits 0 when it reached its last step, 1 for diagnostics (printed
before any step runs), 2 for usage errors, and 128 + the signal number when
SIGINT or SIGTERM stopped it (after saving a checkpoint: the same command
resumes it).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, TextIO

from capibara.diagnostics import ConfigError

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def add_verbs(verbs: Any, add_config_inputs: Callable[[argparse.ArgumentParser], None],
              add_message_format: Callable[[argparse.ArgumentParser], None]) -> None:
    data = verbs.add_parser("data", help="prepare training data (tokenizer, token files)")
    steps = data.add_subparsers(dest="data_verb", required=True, parser_class=type(data))
    prepare = steps.add_parser("prepare", help="train a SentencePiece tokenizer on text files "
                                               "(or take one) and write token files + manifest")
    prepare.add_argument("texts", nargs="+", metavar="TEXT", help="UTF-8 text files")
    prepare.add_argument("-o", "--output", required=True, metavar="DIR")
    source = prepare.add_mutually_exclusive_group(required=True)
    source.add_argument("--vocab-size", type=_positive, metavar="N",
                        help="train a tokenizer of N pieces (the config's `model.vocab_size`)")
    source.add_argument("--tokenizer", metavar="MODEL", help="an existing SentencePiece .model file")
    prepare.add_argument("--eval-fraction", type=_fraction, default=0.05, metavar="F",
                         help="share of the tokens held out for evaluation (default 0.05)")
    add_message_format(prepare)
    prepare.set_defaults(run=run_prepare)

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

    report = verbs.add_parser("report", help="summarize a training run's loss curve")
    report.add_argument("run_dir", metavar="RUN_DIR")
    add_message_format(report)
    report.set_defaults(run=run_report)


def _print_errors(error: ConfigError, fmt: str) -> None:
    from capibara.cli import _print_diagnostics

    _print_diagnostics(error.diagnostics, fmt, sys.stderr)


def run_prepare(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.data.corpus import prepare

    try:
        manifest = prepare(args.texts, args.output, vocab_size=args.vocab_size,
                           tokenizer=args.tokenizer, eval_fraction=args.eval_fraction)
    except ConfigError as error:
        _print_errors(error, args.message_format)
        return EXIT_ERRORS
    counts = ", ".join(f"{name} {split.tokens:,} tokens" for name, split in manifest.splits.items())
    out.write(f"prepared   {args.output}: {counts}; tokenizer {manifest.tokenizer} "
              f"({manifest.vocab_size} pieces)\ndigest     {manifest.digest}\n")
    return EXIT_OK


def _join(args: argparse.Namespace) -> None:
    import jax

    # CPU devices of different processes talk through gloo (jax's CPU collectives).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                               process_id=args.process_id)


def run_train(args: argparse.Namespace, out: TextIO) -> int:
    import signal

    from capibara.cli_plan import is_plan_path
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
    from capibara import pipeline

    try:
        setup = set_up(args.files, data=args.data, run_dir=args.run_dir, overrides=args.overrides,
                       target=args.target or "auto", env=None if args.no_env else pipeline.ENVIRON)
    except ConfigError as error:
        _print_errors(error, args.message_format)
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
        _print_errors(error, args.message_format)
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
    out.write(f"run        {args.run_dir} (capibara report {args.run_dir})\n")
    if result.stopped_by:
        number = int(getattr(signal, result.stopped_by))
        out.write(f"stopped    by {result.stopped_by} at step {result.step}, checkpoint saved; "
                  "run the same command to resume\n")
        return 128 + number
    return EXIT_OK


def run_report(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.train.report import summary

    try:
        out.write(summary(args.run_dir))
    except ConfigError as error:
        _print_errors(error, args.message_format)
        return EXIT_ERRORS
    return EXIT_OK
