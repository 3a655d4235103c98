"""The training job's train step from the kernel cache: a resumed ``capibara train`` of the
same plan, in a new process, loads the step the first process compiled instead of tracing
and compiling it again, and trains as a freshly compiled step does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "golden" / "data" / "tiny"

CONFIG = """
[model]
hidden_size = 16
num_layers = 1
num_heads = 2
vocab_size = 64
max_seq_length = 16

[vector_quantization]
enabled = false

[sparsity]
enabled = false

[deployment]
batch_size = 4

[training]
learning_rate = 0.01
warmup_steps = 1
decay_steps = 4
save_checkpoint_steps = 2
"""


def train(config: Path, run_dir: Path, cache_home: Path, steps: int, *extra: str) -> list[dict]:
    """One ``capibara train`` process; the run's log records."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "capibara", "train", str(config), "--target", "cpu", "--no-env",
         "--data", str(DATA), "--run-dir", str(run_dir), "--steps", str(steps),
         "--log-every", "1", "--eval-every", "100", "--eval-batches", "1", *extra],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    compiles = [r for r in records if r.get("event") == "compile"]
    line = next(l for l in done.stderr.splitlines() if l.startswith("train step: "))
    assert (("loaded from the kernel cache" in line) == compiles[-1]["from_cache"]), line
    return records


def losses(records: list[dict]) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def last_compile(records: list[dict]) -> dict:
    return [r for r in records if r.get("event") == "compile"][-1]


@pytest.mark.slow
def test_a_resumed_run_loads_the_train_step_the_first_one_compiled(tmp_path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    cache = tmp_path / "cache"
    first = train(config, tmp_path / "run", cache, 2)
    assert not last_compile(first)["from_cache"]
    exports = list((cache / "capibara").rglob("exports/*.export"))
    assert exports, "the first process kept nothing"
    resumed = train(config, tmp_path / "run", cache, 4)
    compile_record = last_compile(resumed)
    assert compile_record["from_cache"] and compile_record["step"] == 2
    from capibara.train.report import summary

    line = next(l for l in summary(tmp_path / "run").splitlines() if l.startswith("train step"))
    assert "compiled" in line and "(step 0)" in line and "cached" in line and "(step 2)" in line
    # A fresh process that traces and compiles the step itself (no caches at all) trains
    # the same: the cached program is the one tracing gives. Float32 Adam over 4 steps of
    # the same program; 1e-5 allows for XLA choosing another summation order.
    fresh = train(config, tmp_path / "fresh", tmp_path / "empty", 4,
                  "--set", "performance.cache_compiled_functions=false")
    assert not last_compile(fresh)["from_cache"]
    assert not (tmp_path / "empty" / "capibara" / "jax").exists()
    got, want = losses(resumed), losses(fresh)  # the run's log holds both processes' steps
    assert sorted(got) == sorted(want) == [1, 2, 3, 4]
    assert [got[s] for s in got] == pytest.approx([want[s] for s in got], rel=1e-5)


def test_a_changed_capibara_source_compiles_the_step_again(tmp_path, monkeypatch) -> None:
    """In one process: the cached step is the step that runs, and it answers only for the
    same capibara source."""
    import numpy as np

    import capibara
    import capibara.runtime.executables as executables
    from capibara.model import Model
    from capibara.runtime import load_plan
    from capibara.train.compiled_step import prepare_train_step

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    plan = capibara.compile(config, target="cpu", env=None)

    def prepared():
        compiled = load_plan(plan)
        model = Model.from_plan(compiled)
        return model, prepare_train_step(model, compiled.executables, (4, 16))

    _, first = prepared()
    assert not first.from_cache and first.not_kept is None
    model, again = prepared()
    assert again.from_cache
    tokens = np.arange(64, dtype=np.int32).reshape(4, 16) % 64
    cached = model.train_step(tokens)
    jitted = Model.from_plan(load_plan(plan))  # the same initial weights (seed 0), no executable
    plain = jitted.train_step(tokens)
    assert jitted._compiled_train is None and model._compiled_train is not None
    for key in ("total", "grad_norm"):  # one program, traced twice: the same float32 numbers
        np.testing.assert_allclose(float(cached[key]), float(plain[key]), rtol=1e-6)
    monkeypatch.setattr(executables, "package_fingerprint", lambda: "edited capibara")
    _, edited = prepared()
    assert not edited.from_cache
