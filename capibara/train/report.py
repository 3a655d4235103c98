"""``capibara report RUN_DIR``: the loss curve of a run, from its ``log.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from capibara.diagnostics import ConfigError, Diagnostic, escape

__all__ = ["read_log", "summary"]

_BARS = "▁▂▃▄▅▆▇█"
#: The log grows by ~200 bytes a logged step; this is millions of steps.
MAX_LOG_BYTES = 512 << 20


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/log.jsonl``; a step logged twice (a run resumed from an
    earlier checkpoint) keeps its last record."""
    from capibara.train.setup import RUN_LOG

    path = Path(run_dir) / RUN_LOG
    if not path.is_file():
        raise ConfigError([Diagnostic.error(
            "D101", f"`{run_dir}` has no training log (`{RUN_LOG}`)",
            help="pass the --run-dir of a `capibara train` run")])
    if path.stat().st_size > MAX_LOG_BYTES:
        raise ConfigError([Diagnostic.error(
            "D101", f"`{path}` is larger than {MAX_LOG_BYTES} bytes",
            help="a training log this large was not written by capibara")])
    records = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(record, dict):
                records.append(record)
    return records


def _last_per_step(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    by_step: dict[int, float] = {}
    for record in records:
        if isinstance(record.get(key), (int, float)) and isinstance(record.get("step"), int):
            by_step[record["step"]] = float(record[key])
    return sorted(by_step.items())


def _sparkline(values: list[float], width: int = 40) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    count = min(width, len(values))
    buckets = [values[i * len(values) // count:(i + 1) * len(values) // count]
               for i in range(count)]
    means = [sum(b) / len(b) for b in buckets]
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(_BARS[min(len(_BARS) - 1, int((m - low) / span * len(_BARS)))]
                   if math.isfinite(m) else "!" for m in means)


def summary(run_dir: str | Path) -> str:
    """A few lines: steps, first and last loss, the curve, eval losses, throughput, how the
    train step was made ready at each start, events."""
    records = read_log(run_dir)
    losses = _last_per_step(records, "loss")
    evals = _last_per_step(records, "eval_loss")
    rates = sorted(r["tokens_per_second"] for r in records
                   if isinstance(r.get("tokens_per_second"), (int, float)))
    events = [r for r in records if "event" in r]
    lines = [f"run        {escape(str(run_dir))}"]
    plans = {r.get("plan") for r in events if r.get("plan")}
    if plans:
        lines.append(f"plan       {', '.join(sorted(plans))}")
    if not losses:
        lines.append("loss       no step logged yet")
    else:
        (first_step, first), (last_step, last) = losses[0], losses[-1]
        best_step, best = min(losses, key=lambda item: item[1])
        lines.append(f"steps      {first_step} to {last_step} ({len(losses)} logged)")
        lines.append(f"loss       {first:.4f} at step {first_step} -> {last:.4f} at step {last_step} "
                     f"(lowest {best:.4f} at step {best_step})")
        lines.append(f"curve      {_sparkline([v for _, v in losses])}")
    if evals:
        lines.append("eval loss  " + ", ".join(f"{v:.4f} (step {s})" for s, v in evals[-6:]))
    if rates:
        lines.append(f"tokens/s   median {rates[len(rates) // 2]:,.0f}")
    compiles = [r for r in events if r.get("event") == "compile"
                and isinstance(r.get("seconds"), (int, float))]
    if compiles:  # the last few starts: was the train step compiled or loaded?
        lines.append("train step " + ", ".join(
            f"{'cached' if r.get('from_cache') else 'compiled'} {r['seconds']:.1f} s "
            f"(step {r.get('step')})" for r in compiles[-4:]))
    stops = [r for r in events if r.get("event") in ("stop", "finish", "resume")]
    for record in stops[-4:]:
        detail = f" on {record['signal']}" if record.get("signal") else ""
        lines.append(f"{record['event']:<10} at step {record.get('step')}{detail}")
    return "\n".join(lines) + "\n"
