"""``capibara report RUN_DIR``: the loss curve of a training run (see :mod:`capibara.train.report`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, TextIO

from capibara.cli.output import print_diagnostics
from capibara.diagnostics import ConfigError

EXIT_OK, EXIT_ERRORS = 0, 1


def add_verb(verbs: Any, add_message_format: Callable[[argparse.ArgumentParser], None]) -> None:
    report = verbs.add_parser("report", help="summarize a training run's loss curve")
    report.add_argument("run_dir", metavar="RUN_DIR")
    add_message_format(report)
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.train.report import summary

    try:
        out.write(summary(args.run_dir))
    except ConfigError as error:
        print_diagnostics(error.diagnostics, args.message_format, sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK
