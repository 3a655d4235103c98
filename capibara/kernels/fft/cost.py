"""Which long-convolution variant to run: a cost model in pure Python.

The compile path imports this module (it must not import JAX). Both variants
cost the same per channel, so the choice depends on the length ``L`` and the
kernel length ``K`` only:

- ``direct`` (shift-and-add) does ``K`` multiply-adds per output:
  ``DIRECT_NS_PER_TAP * L * K`` per channel;
- ``fft`` does three real FFTs of the padded length ``n = fast_fft_length(L + K - 1)``:
  ``FFT_NS_PER_POINT * n * log2(n)`` per channel.

The constants come from ``benchmarks/kernels_fft.py`` on the 2-core CPU box
(its runs, idle and loaded, are in benchmarks/RESULTS.md): they put the
crossover at ~195 taps for L = 8192, between the idle box's and the loaded
one's, so the choice stays near the faster variant on both.

Accelerators were not measured here; they use the same model, which is the
honest default until a GPU/TPU run says otherwise.
"""

from __future__ import annotations

import math

__all__ = ["choose_long_conv", "fast_fft_length", "long_conv_costs"]

DIRECT_NS_PER_TAP = 0.030
FFT_NS_PER_POINT = 0.42


def fast_fft_length(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: lengths the FFT library factors into
    its fast radices (a power of two alone can be almost twice ``n``)."""
    if n < 1:
        raise ValueError(f"{n=} must be positive")
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            candidate = p35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            p35 *= 3
        p5 *= 5
    return best


def long_conv_costs(length: int, kernel_len: int) -> dict[str, float]:
    """Modelled nanoseconds per channel of each variant."""
    n = fast_fft_length(length + kernel_len - 1)
    return {"direct": DIRECT_NS_PER_TAP * length * kernel_len,
            "fft": FFT_NS_PER_POINT * n * math.log2(n)}


def choose_long_conv(length: int, kernel_len: int, platform: str) -> str:
    """``"direct"`` or ``"fft"``, whichever the cost model says is cheaper.

    >>> choose_long_conv(8192, 64, "cpu"), choose_long_conv(8192, 1024, "cpu")
    ('direct', 'fft')
    """
    if not 1 <= kernel_len <= length:
        raise ValueError(f"need 1 <= {kernel_len=} <= {length=}")
    if platform not in ("cpu", "gpu", "tpu"):
        raise ValueError(f"unknown {platform=}; expected cpu, gpu or tpu")
    costs = long_conv_costs(length, kernel_len)
    return min(costs, key=costs.__getitem__)
