"""What a run shows and records: a live progress line, and one JSON line per logged step.

The progress line (``tqdm``: step, loss, tokens/s, learning rate, ETA) is
drawn only on a terminal; redirected output stays quiet. ``log.jsonl`` in
the run directory gets one object per logged step
(``{"step", "loss", "cross_entropy", "learning_rate", "grad_norm",
"tokens_per_second", "time"}``), per evaluation (``{"step", "eval_loss"}``)
and per event (``{"event": "start" | "resume" | "stop" | "finish", ...}``),
flushed as written so a killed run keeps everything it logged.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

__all__ = ["RunLog", "ProgressLine"]


class RunLog:
    """Appends JSON lines to ``path`` (only on the process that writes records)."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self._handle = open(path, "a", encoding="utf-8") if enabled else None

    def write(self, **record: Any) -> None:
        if self._handle is None:
            return
        record.setdefault("time", round(time.time(), 3))
        self._handle.write(json.dumps(record, allow_nan=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ProgressLine:
    """A ``tqdm`` bar from the resumed step to the last, on ``stream`` when it is a terminal."""

    def __init__(self, start: int, total: int, *, stream: TextIO = sys.stderr,
                 enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = stream.isatty() and os.environ.get("TERM") != "dumb"
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, file=stream, unit="step",
                             dynamic_ncols=True, leave=True)

    def update(self, steps: int, *, loss: float, tokens_per_second: float, learning_rate: float) -> None:
        if self._bar is None:
            return
        self._bar.set_postfix_str(f"loss {loss:.4f}  {tokens_per_second:,.0f} tok/s  "
                                  f"lr {learning_rate:.2e}", refresh=False)
        self._bar.update(steps)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
