"""Generating from a trained run: its newest checkpoint's weights and its tokenizer.

A run directory keeps the tokenizer of the data it was trained on
(``tokenizer.model``, copied there when training starts), so
``capibara run PLAN --generate N --checkpoint RUN_DIR --prompt TEXT`` needs
nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from capibara.diagnostics import ConfigError, Diagnostic

__all__ = ["checkpoints_of", "restore_weights", "run_tokenizer", "prompt_ids", "TOKENIZER"]

TOKENIZER = "tokenizer.model"


def checkpoints_of(path: str | os.PathLike) -> Path:
    """The checkpoint directory of a run directory (or ``path`` itself if it is one)."""
    from capibara.train.setup import CHECKPOINTS

    path = Path(path)
    return path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path


def restore_weights(model: Any, path: str | os.PathLike) -> int:
    """Load the newest checkpoint of ``path`` (a run or checkpoint directory) into
    ``model``, read-only (a run still training there is not disturbed); return its step."""
    from capibara.model.checkpoint import CheckpointManager

    reader = CheckpointManager(checkpoints_of(path), save_every=1, keep_max=1, read_only=True)
    model.load_training_state(reader.restore(model.training_state()))
    return model.step


def run_tokenizer(path: str | os.PathLike):
    """The tokenizer kept with the run at ``path``, or ``None`` when there is none."""
    from capibara.data.tokenizer import Tokenizer

    checkpoints = checkpoints_of(path)
    for folder in (Path(path), checkpoints.parent):
        if (folder / TOKENIZER).is_file():
            return Tokenizer.from_file(folder / TOKENIZER)
    return None


def prompt_ids(text: str | None, ids: Sequence[int] | None, tokenizer: Any, vocab_size: int) -> list[int]:
    """The prompt's token ids: ``ids`` as given, or ``text`` encoded by ``tokenizer``."""
    if ids is None:
        if tokenizer is None:
            raise ConfigError([Diagnostic.error(
                "D101", "a text prompt needs the run's tokenizer, and this checkpoint has none",
                help="pass --checkpoint RUN_DIR of a `capibara train` run, or --prompt-ids")])
        ids = tokenizer.encode(text or "")
    ids = list(ids)
    if not ids:
        raise ConfigError([Diagnostic.error(
            "D104", "the prompt encodes to no tokens", help="give a longer prompt")])
    outside = [i for i in ids if not 0 <= i < vocab_size]
    if outside:
        raise ConfigError([Diagnostic.error(
            "D104", f"prompt ids {outside[:5]} are outside the model's vocabulary of {vocab_size}",
            help=f"use ids from 0 to {vocab_size - 1}")])
    return ids
