"""vq forward (lookup + straight-through output + losses) against the anchors.

Anchor: a numpy matmul-form lookup (``||x||² - 2 x·cᵀ + ||c||²``, argmin), the
DESIGN.md §5 number for N65536 D768 K64; goal: ours >= 3x faster. Also the
jitted reference variant. Candidates run round-robin in one process (each
round runs every candidate once) so a noisy neighbour hits them all alike;
we print the median and minimum wall time and the median CPU time (all
threads; steadier than wall time on a shared machine) with both speedups.

"donated" rows pass x with ``donate_argnums``: the blocked variants then
write their output into x's buffer, which is how a runtime that no longer
needs x calls them. Each call's output is the next call's input.

It runs with huge pages, as the runtime runs every process (importing
``_harness`` restarts it with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``; the
header prints the setting): a fresh 200 MB output costs ~52 ms in 4 KiB
pages and ~11-15 ms in huge pages, which is most of what separates the
donated rows from the others. ``GLIBC_TUNABLES=glibc.malloc.hugetlb=0``
measures 4 KiB pages.

    .venv/bin/python benchmarks/kernels_vq.py [--n 65536] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from _harness import print_speedup_table, race
from capibara.kernels import vq as vq_family


def numpy_lookup(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1, keepdims=True) - 2.0 * x @ c.T + (c * c).sum(1)
    return d.argmin(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=65536)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--codes", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    c = rng.standard_normal((args.codes, args.dim), dtype=np.float32)
    cj = jnp.asarray(c)
    int8_codes = vq_family.quantize_codebook(cj)

    def jitted(impl, codebook, donate=False, **static):
        f = jax.jit(lambda x, c: vq_family.vq(x, c, implementation=impl, **static),
                    donate_argnums=(0,) if donate else ())
        state = {"x": jnp.asarray(x)}

        def run():
            out = f(state["x"], codebook)
            jax.block_until_ready(out)
            if donate:
                state["x"] = out.quantized
        return run

    candidates = {
        "numpy matmul-form lookup (anchor)": lambda: numpy_lookup(x, c),
        "reference (jit)": jitted("reference", cj),
        "xla f32": jitted("xla", cj),
        "xla f32, donated": jitted("xla", cj, donate=True),
        "xla bf16 scores": jitted("xla", cj, compute_dtype="bfloat16"),
        "xla bf16 scores, donated": jitted("xla", cj, donate=True, compute_dtype="bfloat16"),
        "int8 lookup, donated": jitted("int8", cj, donate=True),
        "int8 codebook + int8 lookup, donated": jitted("int8", int8_codes, donate=True),
    }
    times = race(candidates, args.rounds)
    print(f"vq forward N{args.n} D{args.dim} K{args.codes} f32, {args.rounds} rounds, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}")
    print_speedup_table(times, "numpy matmul-form lookup (anchor)")


if __name__ == "__main__":
    main()
