"""``capibara data prepare TEXT... -o DIR (--vocab-size N | --tokenizer MODEL)``: tokenize text
for training (see :mod:`capibara.data`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, TextIO

from capibara.cli.output import print_diagnostics
from capibara.diagnostics import ConfigError, escape

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


def add_verb(verbs: Any, add_message_format: Callable[[argparse.ArgumentParser], None]) -> None:
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


def run_prepare(args: argparse.Namespace, out: TextIO) -> int:
    from capibara.data.corpus import prepare

    try:
        manifest = prepare(args.texts, args.output, vocab_size=args.vocab_size,
                           tokenizer=args.tokenizer, eval_fraction=args.eval_fraction)
    except ConfigError as error:
        print_diagnostics(error.diagnostics, args.message_format, sys.stderr)
        return EXIT_ERRORS
    counts = ", ".join(f"{name} {split.tokens:,} tokens" for name, split in manifest.splits.items())
    out.write(f"prepared   {escape(args.output)}: {counts}; tokenizer {manifest.tokenizer} "
              f"({manifest.vocab_size} pieces)\ndigest     {manifest.digest}\n")
    return EXIT_OK
