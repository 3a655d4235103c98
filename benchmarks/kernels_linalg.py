"""linalg: achieved GFLOP/s (GOP/s for integers) of the precision-policy and quantized matmuls.

Anchor: plain ``jnp.dot`` in float32. Candidates: the ``xla`` variant with
f32, bf16 operands + f32 accumulation (``preferred_element_type``, the AMX
path), bf16 with bf16 output (the slow path DESIGN.md §5 warns about),
``int8_matmul`` (W8A8: per-row int8 activations, int8 x int8 -> int32, rescale;
the activation quantization is included in its time), BitNet ternary, and
the raw int8 x int8 -> int32 ``dot`` for the ceiling. Round-robin timing; see
_harness.py.

    .venv/bin/python benchmarks/kernels_linalg.py [--m 2048 --k 2048 --n 2048] [--rounds 7]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from _harness import blocking, print_speedup_table, race
from capibara.kernels import linalg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=2048)
    parser.add_argument("--k", type=int, default=2048)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    m, k, n = args.m, args.k, args.n

    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((m, k), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal((k, n), dtype=np.float32))
    affine = linalg.quantize_affine(b)
    ternary = linalg.ternarize(b)
    a8 = jnp.asarray(rng.integers(-127, 128, (m, k)), jnp.int8)

    def timed(f, *args):
        return blocking(jax.jit(f), *args)

    candidates = {
        "jnp.dot f32 (anchor)": timed(jnp.dot, a, b),
        "xla f32": timed(lambda a, b: linalg.matmul(a, b, implementation="xla"), a, b),
        "xla bf16 -> f32 accumulate": timed(
            lambda a, b: linalg.matmul(a, b, compute_dtype="bfloat16", implementation="xla"), a, b),
        "xla bf16 -> bf16 accumulate": timed(
            lambda a, b: linalg.matmul(a, b, compute_dtype="bfloat16", accumulate_dtype="bfloat16",
                                       implementation="xla"), a, b),
        "int8_matmul W8A8 (incl. act. quant)": timed(
            lambda a, q: linalg.int8_matmul(a, *q, implementation="xla"), a, affine),
        "ternary_matmul (incl. act. quant)": timed(
            lambda a, t: linalg.ternary_matmul(a, *t, implementation="xla"), a, ternary),
        "raw int8 x int8 -> int32 dot": timed(
            lambda x, q: lax.dot(x, q, preferred_element_type=jnp.int32), a8, affine.q),
    }
    times = race(candidates, args.rounds)
    flops = 2.0 * m * k * n
    print(f"linalg {m}x{k} @ {k}x{n}, {args.rounds} rounds, jax {jax.__version__} on {jax.devices()[0].platform}")
    print_speedup_table(times, "jnp.dot f32 (anchor)")
    print()
    print(f"{'candidate':40s} {'GFLOP/s (median)':>17s} {'(best)':>8s}")
    for name, (wall, _) in times.items():
        print(f"{name:40s} {flops / float(np.median(wall)) / 1e9:17.1f} {flops / min(wall) / 1e9:8.1f}")


if __name__ == "__main__":
    main()
