"""Hybrid models (``ssm``, ``hyena`` and attention blocks): capibara's plan and kernels
against the same network in plain JAX, at a long sequence and a small width.

One run prints:

- forward and train-step time at 4096 tokens of ``Model(config)`` as compiled for
  this host, and of the baseline: the same network and parameters in plain JAX
  (``lax.scan`` recurrence, ``lax.conv_general_dilated``, ``jnp.fft``, plain
  attention; :meth:`capibara.model.facade.Kernels.plain`) at float32; and
  their ratio (goal: at least 1.5x);
- each kernel family's share of the forward time: every kernel spec of the plan
  timed alone at the plan's shapes (``load_plan``'s bound kernels), times its
  calls per step;
- generation with SSM blocks: the time of one decode step at positions 128 and
  4096 of an all-``ssm`` model (constant state: flat), and of the hybrid model
  (its attention and hyena caches grow with the position).

Timings are medians of interleaved repetitions. Run: ``python benchmarks/hybrid.py``
(``BENCH_REPEATS`` sets the repetitions, default 5).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from capibara.config.model_config import ModularModelConfig  # noqa: E402
from capibara.model.facade import Kernels, Model, ModelSpec, RunPolicy  # noqa: E402
from capibara.runtime.loader import load_plan  # noqa: E402

SEQ = 4096
SHAPE = dict(model_name="capibara_hybrid_bench", hidden_size=64, num_heads=2, num_layers=4,
             vocab_size=256, max_seq_length=SEQ, batch_size=1, temperature=0.0, use_vq=False,
             use_sparse=False, mixers=["ssm", "hyena", "ssm", "attention"])
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


def timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def interleaved(pair: dict[str, callable]) -> dict[str, float]:
    """Median seconds of each callable, run alternately after one warm-up call each."""
    first = {name: timed(fn) for name, fn in pair.items()}
    runs: dict[str, list[float]] = {name: [] for name in pair}
    for _ in range(REPEATS):
        for name, fn in pair.items():
            runs[name].append(timed(fn))
    for name in pair:
        print(f"  {name:<9} first call {first[name]:6.2f} s, "
              f"runs {' '.join(f'{t:.3f}' for t in runs[name])}")
    return {name: statistics.median(times) for name, times in runs.items()}


def family_shares(model: Model, forward_s: float) -> None:
    """Each family's kernels timed alone at the plan's shapes, as a share of the forward."""
    compiled = load_plan(model.plan, cache=False)
    per_family: dict[str, float] = defaultdict(float)
    for kernel in compiled.kernels:
        inputs = kernel.example_inputs()
        jax.block_until_ready(kernel(*inputs))
        times = []
        for _ in range(REPEATS):
            if kernel.donates:  # the call consumed its input: a fresh one, untimed
                inputs = jax.block_until_ready(kernel.example_inputs())
            times.append(timed(lambda: kernel(*inputs)))
        seconds = statistics.median(times)
        per_family[kernel.spec.family] += seconds * kernel.spec.calls_per_step
        print(f"  {kernel.spec.name:<24} {kernel.spec.family}/{kernel.implementation:<12} "
              f"{seconds * 1e3:8.2f} ms x {kernel.spec.calls_per_step}")
    total = sum(per_family.values())
    for family, seconds in sorted(per_family.items(), key=lambda kv: -kv[1]):
        print(f"  {family:<10} {seconds * 1e3:8.1f} ms  {seconds / forward_s:6.1%} of the forward")
    print(f"  kernels alone {total * 1e3:.1f} ms of a {forward_s * 1e3:.1f} ms forward "
          "(the rest: norms, gates, the filter MLP, the feed-forward's activation)")


def decode_step_times(model: Model, positions: tuple[int, ...]) -> dict[int, float]:
    """Median seconds of one cached decode step at each position (after a prefill)."""
    net = model._net
    params = net.inference_params(model.params)
    step = jax.jit(lambda p, token, position, states: net.decode_step(
        p, token, position, states, use_vq=False, threshold=None))
    calls = {}
    token = jnp.ones((1,), jnp.int32)
    for position in positions:
        prompt = jnp.ones((1, position), jnp.int32)
        _, states, *_ = jax.jit(lambda p, t: net.hidden(p, t, use_vq=False, threshold=None,
                                                        keep_kv=True))(params, prompt)
        # Room up to the longest position, so every position runs the same program.
        states = [net._grown(kind, s, max(positions) + 8 - position)
                  for (kind, _, _), s in zip(net.layers(params), states)]
        where = jnp.asarray(position, jnp.int32)
        calls[position] = (lambda where=where, states=states: step(params, token, where, states)[0])
        jax.block_until_ready(calls[position]())
    runs: dict[int, list[float]] = {position: [] for position in positions}
    for _ in range(REPEATS * 4):  # interleaved, so a noisy neighbour slows both alike
        for position, call in calls.items():
            runs[position].append(timed(call))
    return {position: statistics.median(times) for position, times in runs.items()}


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} cpus")
    config = ModularModelConfig(**SHAPE)
    model = Model(config)
    plan = model.plan
    print(f"plan: precision {plan.precision.params}/{plan.precision.compute}, remat "
          f"{plan.execution.remat}; mixers {' '.join(plan.model.mixers)}")
    plain_spec = ModelSpec.from_config(config)  # float32 parameters and compute
    baseline = Model.build(plain_spec, Kernels.plain(plain_spec), config,
                           policy=RunPolicy(remat=plan.execution.remat))
    tokens = jax.random.randint(jax.random.key(0), (1, SEQ), 0, config.vocab_size)

    print(f"forward B1 S{SEQ}:")
    fwd = interleaved({"baseline": lambda: baseline.forward(tokens),
                       "capibara": lambda: model.forward(tokens)})
    print(f"train step B1 S{SEQ}:")
    train = interleaved({"baseline": lambda: baseline.train_step(tokens)["total"],
                         "capibara": lambda: model.train_step(tokens)["total"]})
    print()
    print(f"{'':<12}{'baseline ms':>14}{'capibara ms':>14}{'speedup':>10}")
    for name, times in (("forward", fwd), ("train step", train)):
        print(f"{name:<12}{times['baseline'] * 1e3:>14.1f}{times['capibara'] * 1e3:>14.1f}"
              f"{times['baseline'] / times['capibara']:>9.2f}x")

    print("\neach family's share of the forward:")
    family_shares(model, fwd["capibara"])

    print("\ngeneration: one decode step at positions 128 and 4096")
    ssm_only = Model(ModularModelConfig(**{**SHAPE, "mixers": ["ssm"]}))
    for name, m in (("ssm only", ssm_only), ("hybrid", model)):
        steps = decode_step_times(m, (128, SEQ - 8))
        short, long = steps[128], steps[SEQ - 8]
        print(f"  {name:<9} {short * 1e3:7.3f} ms at 128, {long * 1e3:7.3f} ms at {SEQ - 8} "
              f"(ratio {long / short:.2f})")


if __name__ == "__main__":
    main()
