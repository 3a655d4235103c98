"""CapibaraGPT end to end: capibara's plan and kernels against the same model in plain JAX.

One run prints, for the development shape (hidden 512, 6 layers, 8 heads,
32k vocabulary, Mixture of Rookies and the VQ bottleneck on):

- training: step time of ``Model(config).train_step`` and the process's peak
  resident memory (``resource.getrusage``) measured right after it, before
  anything else runs;
- forward tokens/s and generation tokens/s (KV cache, greedy) of the model as
  ``Model(config)`` compiles it for this host, and of the baseline: the same
  network, parameters and algorithm written in straightforward JAX
  (``jax.nn.dot_product_attention``, every Rookie on every token, float32
  matmuls), i.e. :meth:`capibara.model.facade.Kernels.plain` at float32;
- their ratio (goal: at least 1.5x).

Timings are medians of interleaved repetitions (baseline, capibara, baseline,
...) so a noisy neighbour slows both alike. Run: ``python benchmarks/model.py``.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

from capibara.model.facade import Kernels, Model, ModelSpec, RunPolicy  # noqa: E402
from capibara.config.model_config import ModularModelConfig  # noqa: E402

DEV = dict(model_name="capibara_bench", hidden_size=512, num_layers=6, num_heads=8,
           vocab_size=32000, max_seq_length=1024, temperature=0.0)
FORWARD_BATCH, FORWARD_SEQ = 2, 1024
PROMPT, NEW_TOKENS, GEN_BATCH = 64, 128, 4
TRAIN_BATCH, TRAIN_SEQ = 4, 256
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def interleaved(pair: dict[str, callable]) -> dict[str, float]:
    """Median seconds of each callable, run alternately after one warm-up call each."""
    compile_s = {name: timed(fn) for name, fn in pair.items()}
    runs: dict[str, list[float]] = {name: [] for name in pair}
    for _ in range(REPEATS):
        for name, fn in pair.items():
            runs[name].append(timed(fn))
    for name in pair:
        print(f"  {name:<9} first call {compile_s[name]:6.2f} s, "
              f"runs {' '.join(f'{t:.3f}' for t in runs[name])}")
    return {name: statistics.median(times) for name, times in runs.items()}


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} cpus")
    config = ModularModelConfig(**DEV)
    key = jax.random.key(0)

    # --- training first, so the peak memory is the training step's own
    model = Model(config)
    plan = model.plan
    print(f"plan: precision {plan.precision.params}/{plan.precision.compute}, "
          f"execution remat={plan.execution.remat} loss_chunk={plan.execution.loss_chunk}")
    for spec in plan.kernels:
        print(f"  kernel {spec.name:<18} {spec.family}/{spec.implementation} {dict(spec.params)}")
    print(f"parameters: {model.spec.parameter_count() / 1e6:.1f} M")
    batch = jax.random.randint(key, (TRAIN_BATCH, TRAIN_SEQ), 0, config.vocab_size)
    first = timed(lambda: model.train_step(batch)["total"])
    steps = [timed(lambda: model.train_step(batch)["total"]) for _ in range(REPEATS)]
    print(f"train_step B{TRAIN_BATCH} S{TRAIN_SEQ}: first {first:.2f} s, "
          f"median {statistics.median(steps) * 1e3:.0f} ms "
          f"({TRAIN_BATCH * TRAIN_SEQ / statistics.median(steps):.0f} tokens/s), "
          f"peak RSS {peak_rss_mib():.0f} MiB")

    # --- forward and generation against the plain-JAX baseline
    fresh = Model(config)  # untrained parameters, the same seed as the baseline
    plain_spec = ModelSpec.from_config(config)  # float32 parameters and compute
    baseline = Model.build(plain_spec, Kernels.plain(plain_spec), config, policy=RunPolicy())
    tokens = jax.random.randint(key, (FORWARD_BATCH, FORWARD_SEQ), 0, config.vocab_size)
    print(f"forward B{FORWARD_BATCH} S{FORWARD_SEQ}:")
    fwd = interleaved({"baseline": lambda: baseline.forward(tokens),
                       "capibara": lambda: fresh.forward(tokens)})
    prompt = tokens[:1, :PROMPT].repeat(GEN_BATCH, 0)
    print(f"generate B{GEN_BATCH} prompt {PROMPT} + {NEW_TOKENS} new tokens (greedy, KV cache):")
    gen = interleaved({"baseline": lambda: baseline.generate(prompt, NEW_TOKENS),
                       "capibara": lambda: fresh.generate(prompt, NEW_TOKENS)})

    forward_tokens = FORWARD_BATCH * FORWARD_SEQ
    generated = GEN_BATCH * NEW_TOKENS
    print()
    print(f"{'':<12}{'baseline tok/s':>16}{'capibara tok/s':>16}{'speedup':>10}")
    for name, times, count in (("forward", fwd, forward_tokens), ("generate", gen, generated)):
        base, ours = count / times["baseline"], count / times["capibara"]
        print(f"{name:<12}{base:>16.0f}{ours:>16.0f}{ours / base:>9.2f}x")
    print(f"peak RSS after everything: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
