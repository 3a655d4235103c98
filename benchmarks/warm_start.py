"""Warm start: a second process that loads the same plan skips compilation.

Compiles a small plan, then times `load_plan` + `warmup` in a fresh process
with an empty persistent cache (cold) and in a second process that finds the
first one's cache (warm), `--runs` times each, interleaved. Goal (issue 5):
warm ≤ 10% of cold.

    python benchmarks/warm_start.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from capibara.compiler.driver import compile_sources
    from capibara.plan import write_plan_file

    result = compile_sources([ROOT / "configs/development/development.toml"], target="cpu",
                             env=None, overrides=OVERRIDES)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as work:
        plan = Path(work) / "bench.plan.json"
        write_plan_file(result.plan, plan)
        for run in range(args.runs):
            env = {**os.environ, "XDG_CACHE_HOME": str(Path(work) / f"cache{run}")}

            def timed() -> float:
                out = subprocess.run([sys.executable, "-c", CHILD, str(plan)], env=env,
                                     check=True, capture_output=True, text=True, cwd=ROOT)
                return float(out.stdout.split()[-1])

            cold.append(timed())
            warm.append(timed())
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"load_plan + warmup, {len(result.plan.kernels)} kernels, {args.runs} runs")
    print(f"  first process (empty cache)  median {c:7.2f} s")
    print(f"  second process (warm cache)  median {w:7.2f} s   {w / c:.1%} of the first (goal <= 10%)")


if __name__ == "__main__":
    main()
