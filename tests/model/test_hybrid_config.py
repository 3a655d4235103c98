"""The bundled hybrid config end to end at small shapes: compile, generate with
``capibara run``, train a step."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

import capibara.cli.app as cli
from capibara.model.facade import Model
from capibara.plan import load_plan_file

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "examples" / "hybrid_long_context.toml"
SMALL = ["model.hidden_size=32", "model.num_heads=2", "model.num_layers=4",
         "model.max_seq_length=64", "model.vocab_size=64", "model.ssm_state_size=4"]


def test_the_hybrid_example_compiles_generates_and_trains(tmp_path) -> None:
    plan_path = tmp_path / "hybrid.plan.json"
    sets = [arg for s in SMALL for arg in ("--set", s)]
    out = io.StringIO()
    assert cli.main(["compile", "--no-env", str(CONFIG), "--target", "cpu", *sets,
                     "-o", str(plan_path)], out=out) == 0
    summary = out.getvalue()
    for kernel in ("scan/sequential", "conv/shift_add", "fft/", "mixers ssm hyena ssm attention"):
        assert kernel in summary, summary

    out = io.StringIO()
    assert cli.main(["run", str(plan_path), "--generate", "32"], out=out) == 0
    generated = next(line for line in out.getvalue().splitlines() if line.startswith("generate"))
    assert generated.startswith("generate   32 tokens"), out.getvalue()

    model = Model.from_plan(load_plan_file(plan_path))
    batch = np.arange(2 * 64, dtype=np.int32).reshape(2, 64) % 64
    metrics = model.train_step(batch)
    assert math.isfinite(float(metrics["total"])) and model.step == 1
