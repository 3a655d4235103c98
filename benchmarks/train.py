"""The training job against its anchors, on the demo model (the Makefile's DEMO_SET, vocabulary 512).

1. Throughput: `capibara.train` (grain batches, logging, async checkpoints) against the same
   model's bare `train_step` in a Python loop over in-memory batches, same steps, compile
   excluded from both. Goal: the job's overhead at most 5%.
2. Checkpoint save: how long `save` blocks the step loop, asynchronous against synchronous,
   median of 5 saves of the model's full training state.
3. MFU: the train step's FLOPs (XLA's cost analysis) per second against this machine's
   measured matmul roofline (the best of a few large float32 matmuls).

The plan's memory estimate against XLA's account of the step is `benchmarks/memory.py`; a
resumed run's cold and warm start, `benchmarks/warm_start.py`.

    python benchmarks/train.py [STEPS]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import capibara
from capibara.model.checkpoint import CheckpointManager
from capibara.data import prepare
from capibara.model import Model
from capibara.runtime import load_plan

ROOT = Path(__file__).resolve().parents[1]
SHRINK = ["model.hidden_size=256", "model.num_layers=2", "model.num_heads=4",
          "model.max_seq_length=256", "vector_quantization.embedding_dim=256",
          "deployment.batch_size=4", "model.vocab_size=512"]
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 60


def throughput(work: Path, plan) -> tuple[float, float]:
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # the job's caches stay in the work folder
    data = work / "data"
    prepare([ROOT / "data" / "tales.txt"], data, vocab_size=512)
    # The job: compile excluded by timing only the log windows after the first one.
    result = capibara.train(work / "demo.plan.json", data=data, run_dir=work / "run", steps=STEPS,
                            log_every=10, eval_every=10 * STEPS, eval_batches=1, progress=False)
    records = [json.loads(line) for line in (work / "run" / "log.jsonl").read_text().splitlines()]
    job = statistics.median(r["tokens_per_second"] for r in records
                            if "tokens_per_second" in r and r["step"] > 10)
    # The anchor: the same model, a bare loop over batches already in memory.
    model = Model.from_plan(plan)
    batches = [np.random.default_rng(i).integers(0, 512, (4, 256), dtype=np.int32) for i in range(8)]
    jax.block_until_ready(model.train_step(batches[0]))
    rates = []
    for _ in range(max(1, (STEPS - 10) // 10)):
        start = time.perf_counter()
        for i in range(10):
            metrics = model.train_step(batches[i % len(batches)])
        float(metrics["total"])
        rates.append(4 * 256 * 10 / (time.perf_counter() - start))
    del result
    return job, statistics.median(rates)


def save_blocking(work: Path, plan) -> tuple[float, float]:
    model = Model.from_plan(plan)
    state = model.training_state()
    times = {}
    for asynchronous in (True, False):
        with CheckpointManager(work / f"ckpt-{asynchronous}", save_every=1, keep_max=2,
                               asynchronous=asynchronous) as manager:
            manager.save(0, state)  # first save compiles the fingerprints
            manager.wait()
            blocked = []
            for step in range(1, 6):
                start = time.perf_counter()
                manager.save(step, state)
                blocked.append(time.perf_counter() - start)
                manager.wait()
            times[asynchronous] = statistics.median(blocked)
    return times[True], times[False]


def matmul_roofline() -> float:
    best = 0.0
    for n in (1024, 2048):
        a = jnp.ones((n, n), jnp.float32)
        f = jax.jit(lambda x: x @ x)
        jax.block_until_ready(f(a))
        for _ in range(5):
            start = time.perf_counter()
            jax.block_until_ready(f(a))
            best = max(best, 2 * n ** 3 / (time.perf_counter() - start))
    return best


def step_flops(model: Model) -> float:
    batch = model._batch(np.zeros((4, 256), np.int32))
    lowered = model._train.lower(model.params, model.opt_state, batch, jnp.asarray(0, jnp.int32),
                                 remat=model._remat, train=True, **model._static())
    return float(lowered.compile().cost_analysis().get("flops", 0.0))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        plan = capibara.compile(ROOT / "configs" / "production" / "tpu_v4.toml", target="auto",
                                overrides=[f"{s}" for s in SHRINK], env=None)
        from capibara.plan import write_plan_file

        write_plan_file(plan, work / "demo.plan.json")
        job, bare = throughput(work, load_plan(plan, cache=False))
        print(f"throughput  job {job:,.0f} tokens/s, bare train_step loop {bare:,.0f} tokens/s: "
              f"job/bare {job / bare:.3f} (overhead {100 * (1 - job / bare):.1f}%, goal ≤ 5%)")
        async_s, sync_s = save_blocking(work, load_plan(plan, cache=False))
        print(f"save        blocks the loop {async_s * 1e3:.1f} ms asynchronous, {sync_s * 1e3:.1f} ms "
              f"synchronous (median of 5): async/sync {async_s / sync_s:.2f}")
        model = Model.from_plan(load_plan(plan, cache=False))
        flops = step_flops(model)
        roof = matmul_roofline()
        print(f"mfu         {flops / 1e9:.2f} GFLOP per step at {bare / 1024:.2f} steps/s = "
              f"{flops * bare / 1024 / 1e9:.1f} GFLOP/s; matmul roofline {roof / 1e9:.1f} GFLOP/s: "
              f"MFU {flops * bare / 1024 / roof:.3f}")


if __name__ == "__main__":
    main()
