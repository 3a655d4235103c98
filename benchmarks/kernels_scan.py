"""scan: the linear recurrence variants against lax.scan and the memory floor.

At B16 T4096 D256 f32 (DESIGN.md §5) times, side by side in one process:

- the anchor, a textbook ``lax.scan`` over time-major inputs (the
  ``reference`` variant), and ``lax.associative_scan`` (DESIGN's second anchor);
- ``sequential``, ``chunked`` and ``associative``;
- the memory floor: one fused pass reading a and b and writing the output.

Each is timed twice: plainly, and with ``b`` donated (its buffer may become
the output; every timed call gets a fresh copy). XLA:CPU page-faults every
fresh 64 MiB output on each call, which costs more than the recurrence itself,
so donation is where in-place kernels show. Goal: >= 2x ``lax.scan``.

Round-robin timing: each round runs every candidate once, in a fresh order,
so a noisy neighbour slows all alike; medians of ``--rounds`` runs after a warm-up.

    .venv/bin/python benchmarks/kernels_scan.py [--batch 16 --seq 4096 --dim 256] [--rounds 7]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from _harness import blocking, medians, race
from capibara.kernels.scan import scan


def associative_anchor(a, b):
    return lax.associative_scan(lambda x, y: (x[0] * y[0], y[0] * x[1] + y[1]), (a, b), axis=1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    shape = (args.batch, args.seq, args.dim)
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.uniform(0.5, 1.0, shape), jnp.float32)
    b = jnp.asarray(rng.standard_normal(shape), jnp.float32)

    fns = {
        "memory floor": lambda a, b: a * b + a,
        "lax.scan (anchor)": lambda a, b: scan(a, b, implementation="reference"),
        "lax.associative_scan": associative_anchor,
        "sequential": lambda a, b: scan(a, b, implementation="sequential"),
        "chunked": lambda a, b: scan(a, b, implementation="chunked", chunk=args.chunk),
        "associative": lambda a, b: scan(a, b, implementation="associative"),
    }
    plain = {name: jax.jit(f) for name, f in fns.items()}
    donated = {name: jax.jit(f, donate_argnums=1) for name, f in fns.items()}
    same = lambda: (a, b)  # noqa: E731
    fresh = blocking(lambda: (a, b + 0.0))  # a new b to donate, made outside the timing
    cands, prepare = {}, {}
    for donate, jitted, arguments in ((False, plain, same), (True, donated, fresh)):
        for name, f in jitted.items():
            cands[(name, donate)] = lambda *args, f=f: jax.block_until_ready(f(*args))
            prepare[(name, donate)] = arguments
    res = medians(race(cands, args.rounds, shuffled=True, prepare=prepare))

    nbytes = 3 * a.size * 4
    print(f"scan B{args.batch} T{args.seq} D{args.dim} f32 (chunk {args.chunk}), {jax.devices()[0].device_kind}, "
          f"median of {args.rounds} rounds; {nbytes / 2**20:.0f} MiB read+written per call")
    print(f"  {'':24s} {'plain':>9} {'vs scan':>8} {'GB/s':>6}   {'b donated':>9} {'vs scan':>8} {'GB/s':>6}")
    for name in fns:
        cells = []
        for donate in (False, True):
            t = res[(name, donate)][0]
            anchor = res[("lax.scan (anchor)", donate)][0]
            cells.append(f"{t * 1e3:9.1f} {anchor / t:7.2f}x {nbytes / t / 1e9:6.1f}")
        print(f"  {name:24s} {cells[0]}   {cells[1]}")


if __name__ == "__main__":
    main()
