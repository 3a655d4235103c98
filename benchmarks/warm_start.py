"""Warm start: a second process that loads the same plan skips compilation.

1. `capibara run`'s start: compiles a small plan, then times `load_plan` +
   `warmup` in a fresh process with an empty persistent cache (cold) and in a
   second process that finds the first one's cache (warm), `--runs` times
   each, interleaved. Goal (issue 5): warm ≤ 10% of cold.
2. A resumed `capibara train` (issue 13): a run of the demo model trained one
   step, then resumed for one more step by a process with an empty cache
   (cold: traces and compiles its train step) and by one that finds the
   first process's kernel cache (warm: loads the step), `--runs` times each,
   interleaved. Prints the medians of the train step's preparation (the
   job's `train step:` line) and of the whole process.

    python benchmarks/warm_start.py [--runs 3] [--only run|train]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ("model.hidden_size=256", "model.num_layers=2", "model.num_heads=4",
             "model.max_seq_length=512", "deployment.batch_size=4")

CHILD = """
import sys, time
import jax  # importing JAX (~0.6 s) is the same in both processes and not part of loading
from capibara.runtime.loader import load_plan
start = time.perf_counter()
compiled = load_plan(sys.argv[1])
compiled.warmup(progress=None)
print(time.perf_counter() - start)
"""


#: The demo model (the Makefile's DEMO_SET, as benchmarks/train.py trains it).
DEMO = ("model.hidden_size=256", "model.num_layers=2", "model.num_heads=4",
        "model.max_seq_length=256", "vector_quantization.embedding_dim=256",
        "deployment.batch_size=4", "model.vocab_size=512")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("run", "train"))
    args = parser.parse_args()
    if args.only != "train":
        load_and_warmup(args.runs)
    if args.only != "run":
        resumed_training(args.runs)


def load_and_warmup(runs: int) -> None:
    from capibara.compiler.driver import compile_sources
    from capibara.plan import write_plan_file

    result = compile_sources([ROOT / "configs/development/development.toml"], target="cpu",
                             env=None, overrides=OVERRIDES)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as work:
        plan = Path(work) / "bench.plan.json"
        write_plan_file(result.plan, plan)
        for run in range(runs):
            env = {**os.environ, "XDG_CACHE_HOME": str(Path(work) / f"cache{run}")}

            def timed() -> float:
                out = subprocess.run([sys.executable, "-c", CHILD, str(plan)], env=env,
                                     check=True, capture_output=True, text=True, cwd=ROOT)
                return float(out.stdout.split()[-1])

            cold.append(timed())
            warm.append(timed())
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"load_plan + warmup, {len(result.plan.kernels)} kernels, {runs} runs")
    print(f"  first process (empty cache)  median {c:7.2f} s")
    print(f"  second process (warm cache)  median {w:7.2f} s   {w / c:.1%} of the first (goal <= 10%)")


def resumed_training(runs: int) -> None:
    from capibara.compiler.driver import compile_sources
    from capibara.data import prepare
    from capibara.plan import write_plan_file

    result = compile_sources([ROOT / "configs/production/tpu_v4.toml"], target="cpu", env=None,
                             overrides=DEMO)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    step, whole = {"cold": [], "warm": []}, {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        plan = work / "demo.plan.json"
        write_plan_file(result.plan, plan)
        prepare([ROOT / "data" / "tales.txt"], work / "data", vocab_size=512)

        def train(run_dir: Path, cache: Path, steps: int) -> tuple[float, dict]:
            env = {**os.environ, "XDG_CACHE_HOME": str(cache), "JAX_PLATFORMS": "cpu"}
            env.pop("JAX_COMPILATION_CACHE_DIR", None)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "capibara", "train", str(plan), "--data",
                            str(work / "data"), "--run-dir", str(run_dir), "--steps", str(steps),
                            "--eval-batches", "1"], env=env, check=True, capture_output=True,
                           text=True, cwd=ROOT)
            seconds = time.perf_counter() - start
            records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
            return seconds, [r for r in records if r.get("event") == "compile"][-1]

        for run in range(runs):
            first, cache = work / f"run{run}", work / f"cache{run}"
            train(first, cache, 1)  # fills the cache; leaves a checkpoint at step 1
            for kind in ("cold", "warm"):
                run_dir = work / f"{kind}{run}"
                shutil.copytree(first, run_dir)
                seconds, record = train(run_dir, cache if kind == "warm" else work / f"empty{run}", 2)
                assert record["from_cache"] == (kind == "warm"), record
                step[kind].append(record["seconds"])
                whole[kind].append(seconds)
    cs, ws = statistics.median(step["cold"]), statistics.median(step["warm"])
    cw, ww = statistics.median(whole["cold"]), statistics.median(whole["warm"])
    print(f"resumed capibara train, demo model (tpu_v4.toml shrunk), {runs} runs")
    print(f"  train step  cold (traced, compiled) median {cs:6.2f} s, warm (kernel cache) "
          f"median {ws:6.2f} s: {ws / cs:.1%} of cold")
    print(f"  process     cold median {cw:6.2f} s, warm median {ww:6.2f} s: {ww / cw:.1%} of cold")


if __name__ == "__main__":
    main()
