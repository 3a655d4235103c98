"""moe: the dispatch variant against the dense all-experts reference.

Shape (defaults): T 4096 tokens, d 512, f 1024, E 8 experts, top-2, f32; the
dispatch variant at capacity factor 1.25 (tokens past an expert's capacity
are dropped) and with no limit (exactly the reference's result), plus bf16
activations (bf16 operands, f32 accumulation). Round-robin timing; see
kernels_vq.py.

    .venv/bin/python benchmarks/kernels_moe.py [--tokens 4096] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from capibara.kernels import moe


def race(candidates, rounds):
    """Round-robin timing: every round runs each candidate once, so a noisy
    neighbour slows them all alike. Returns name -> (wall seconds, CPU seconds)."""
    for run in candidates.values():  # warm-up: compile, fault pages in once
        run()
    times = {name: ([], []) for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times[name][0].append(time.perf_counter() - wall)
            times[name][1].append(time.process_time() - cpu)
    return times


def report(times, anchor):
    """Median and min wall time, median CPU time (all threads), and speedups."""
    base_wall, base_cpu = (float(np.median(t)) for t in anchor)
    print(f"{'candidate':40s} {'median ms':>10s} {'min ms':>8s} {'cpu ms':>8s} {'x wall':>7s} {'x cpu':>6s}")
    for name, (wall, cpu) in times.items():
        w, c = float(np.median(wall)), float(np.median(cpu))
        print(f"{name:40s} {w * 1e3:10.1f} {min(wall) * 1e3:8.1f} {c * 1e3:8.1f} "
              f"{base_wall / w:6.2f}x {base_cpu / c:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--ffn", type=int, default=1024)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    t, d, f, e = args.tokens, args.dim, args.ffn, args.experts
    x = jnp.asarray(rng.standard_normal((t, d), dtype=np.float32))
    router = jnp.asarray(rng.standard_normal((d, e), dtype=np.float32) / np.sqrt(d))
    experts = moe.Experts(
        jnp.asarray(rng.standard_normal((e, d, f), dtype=np.float32) / np.sqrt(d)),
        jnp.asarray(rng.standard_normal((e, f, d), dtype=np.float32) / np.sqrt(f)),
    )

    def timed(impl, x, **static):
        g = jax.jit(functools.partial(moe.mor, top_k=args.top_k, implementation=impl, **static))
        return lambda: jax.block_until_ready(g(x, router, experts))

    candidates = {
        "reference (dense, anchor)": timed("reference", x),
        "dispatch, capacity 1.25": timed("dispatch", x, capacity_factor=1.25),
        "dispatch, no capacity limit": timed("dispatch", x, capacity_factor=None),
        "dispatch, capacity 1.25, bf16": timed("dispatch", x.astype(jnp.bfloat16), capacity_factor=1.25),
    }
    dropped = moe.mor(x, router, experts, top_k=args.top_k, implementation="dispatch").dropped_fraction
    times = race(candidates, args.rounds)
    print(f"moe T{t} d{d} f{f} E{e} top-{args.top_k}, {args.rounds} rounds, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}; "
          f"capacity 1.25 drops {float(dropped):.2%} of assignments")
    report(times, times["reference (dense, anchor)"])


if __name__ == "__main__":
    main()
