"""conv: shift_add against lax.conv_general_dilated for the short causal conv1d.

At B4 S4096 C512 width 4 (a Mamba block's short convolution) times, side by
side in one process, XLA's grouped convolution (the ``reference`` variant,
the anchor) and ``shift_add``, in f32 and bf16, forward and forward+backward;
plus the memory floor (one fused pass reading x, writing y). The kernel is
memory-bound: GB/s counts x read once and y written once.

Round-robin timing: each round runs every candidate once, in a fresh order,
so a noisy neighbour slows all alike; medians of ``--rounds`` runs after a warm-up.

    .venv/bin/python benchmarks/kernels_conv.py [--batch 4 --seq 4096 --channels 512 --width 4] [--rounds 5]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from _harness import blocking, medians, race
from capibara.kernels.conv import causal_conv1d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x32 = jnp.asarray(rng.standard_normal((args.batch, args.seq, args.channels)), jnp.float32)
    w32 = jnp.asarray(rng.standard_normal((args.width, args.channels)), jnp.float32)

    cands, sizes = {}, {}
    for dtype in (jnp.float32, jnp.bfloat16):
        x, w = x32.astype(dtype), w32.astype(dtype)
        tag = jnp.dtype(dtype).name
        sizes[tag] = 2 * x.size * x.dtype.itemsize
        floor = jax.jit(lambda x: x * 2)
        cands[(tag, "memory floor", "fwd")] = blocking(floor, x)
        for impl in ("reference", "shift_add"):
            fwd = jax.jit(lambda x, w, impl=impl: causal_conv1d(x, w, implementation=impl))
            grad = jax.jit(jax.grad(
                lambda x, w, impl=impl: jnp.sum(causal_conv1d(x, w, implementation=impl).astype(jnp.float32)),
                argnums=(0, 1)))
            cands[(tag, impl, "fwd")] = blocking(fwd, x, w)
            cands[(tag, impl, "fwd+bwd")] = blocking(grad, x, w)
    res = medians(race(cands, args.rounds, shuffled=True))

    print(f"causal_conv1d B{args.batch} S{args.seq} C{args.channels} width {args.width}, "
          f"{jax.devices()[0].device_kind}, median of {args.rounds} rounds")
    for (tag, impl, pas), (t, cpu) in res.items():
        anchor = res[(tag, "reference", pas)][0] if impl != "memory floor" else t
        print(f"  {tag:8s} {impl:13s} {pas:8s} {t * 1e3:8.2f} ms  {anchor / t:6.2f}x reference  "
              f"{sizes[tag] / t / 1e9:6.1f} GB/s (x in, y out)  (cpu {cpu * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
