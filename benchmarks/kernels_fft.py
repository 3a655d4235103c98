"""fft: direct vs FFT long convolution per kernel length, and what choose_long_conv picks.

At L = 8192 and 64 channels, for each kernel length, times the ``direct``
(shift-and-add) and ``fft`` variants side by side (and XLA's depthwise
``conv_general_dilated``, the ``reference``, for short kernels: the DESIGN.md
anchor), then checks that ``choose_long_conv`` picks a variant within 10%
of the faster one. It also prints the per-unit costs the model in
``capibara/kernels/fft/cost.py`` uses, measured in this run.

Round-robin timing: each round runs every candidate once, in a fresh order,
so a noisy neighbour slows all alike; medians of ``--rounds`` runs after a warm-up.

    .venv/bin/python benchmarks/kernels_fft.py [--channels 64] [--length 8192] [--rounds 7] [--kernel-lengths 96,128]
"""

from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np

from _harness import blocking, medians, race
from capibara.kernels.fft import choose_long_conv, fast_fft_length, long_conv

KERNEL_LENGTHS = (16, 64, 256, 1024, 4096, 8192)
REFERENCE_UP_TO = 256  # XLA's depthwise conv takes ~0.2 s at 256 taps already


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--kernel-lengths", type=lambda text: [int(x) for x in text.split(",")],
                        default=list(KERNEL_LENGTHS), help="comma-separated, e.g. 96,128,192")
    args = parser.parse_args()
    channels, length = args.channels, args.length
    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.standard_normal((channels, length)), jnp.float32)
    print(f"long_conv, {channels} channels, L={length}, f32, {jax.devices()[0].device_kind}; "
          f"median of {args.rounds} rounds (ms)")
    print(f"{'K':>5} {'n':>6} {'reference':>10} {'direct':>9} {'fft':>8}  {'choice':>6}  "
          f"{'vs best':>7}  {'ns/tap':>7} {'ns/nlogn':>8}")
    all_within = True
    for kernel_len in args.kernel_lengths:
        if kernel_len > length:
            continue
        k = jnp.asarray(rng.standard_normal((channels, kernel_len)), jnp.float32)
        impls = ["direct", "fft"] + (["reference"] if kernel_len <= REFERENCE_UP_TO else [])
        jitted = {name: jax.jit(lambda u, k, name=name: long_conv(u, k, implementation=name)) for name in impls}
        results = medians(race({name: blocking(f, u, k) for name, f in jitted.items()},
                               args.rounds, shuffled=True))
        wall = {name: t for name, (t, _) in results.items()}
        choice = choose_long_conv(length, kernel_len, "cpu")
        best = min(wall["direct"], wall["fft"])
        within = wall[choice] <= 1.10 * best
        all_within &= within
        n = fast_fft_length(length + kernel_len - 1)
        ns_tap = wall["direct"] * 1e9 / (channels * length * kernel_len)
        ns_nlogn = wall["fft"] * 1e9 / (channels * n * math.log2(n))
        ref = f"{wall['reference'] * 1e3:10.2f}" if "reference" in wall else f"{'-':>10}"
        print(f"{kernel_len:5d} {n:6d} {ref} {wall['direct'] * 1e3:9.2f} {wall['fft'] * 1e3:8.2f}  "
              f"{choice:>6}  {wall[choice] / best:6.2f}x  {ns_tap:7.3f} {ns_nlogn:8.3f}"
              f"{'' if within else '  <- more than 10% off the best'}")
    print("choose_long_conv within 10% of the better variant at every length:", "yes" if all_within else "NO")


if __name__ == "__main__":
    main()
