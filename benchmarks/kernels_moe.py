"""moe: the dispatch variant against the dense all-experts reference.

Shape (defaults): T 4096 tokens, d 512, f 1024, E 8 experts, top-2, f32; the
dispatch variant at capacity factor 1.25 (tokens past an expert's capacity
are dropped) and with no limit (exactly the reference's result), plus bf16
activations (bf16 operands, f32 accumulation). Round-robin timing; see
_harness.py.

    .venv/bin/python benchmarks/kernels_moe.py [--tokens 4096] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

from _harness import blocking, print_speedup_table, race
from capibara.kernels import moe


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
        return blocking(g, x, router, experts)

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
    print_speedup_table(times, "reference (dense, anchor)")


if __name__ == "__main__":
    main()
