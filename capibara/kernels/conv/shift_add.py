"""The causal conv1d as ``width`` shifted multiply-adds, unrolled into one fused loop.

For the short filters of SSM blocks (width ~4) the output is
``sum_i w[i] * (x shifted right by width - 1 - i)``: XLA fuses the pad, the
slices and the adds into a single pass that reads x from cache ``width``
times and writes y once, where the grouped convolution is slow on CPU
(``benchmarks/kernels_conv.py``).
The taps are unrolled at trace time, so widths above :data:`MAX_WIDTH` are
refused: long filters belong to the ``fft`` family's ``long_conv``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.base import Unsupported
from capibara.kernels.conv.inputs import check_inputs
from capibara.kernels.conv.spec import MAX_WIDTH

__all__ = ["MAX_WIDTH", "causal_conv1d_shift_add"]


def causal_conv1d_shift_add(x: jax.Array, w: jax.Array) -> jax.Array:
    """Depthwise causal conv1d by fused shifted multiply-adds (gradients by autodiff,
    which is as fast here as a written-out VJP: both are a few memory-bound passes)."""
    x, w = jnp.asarray(x), jnp.asarray(w)
    check_inputs(x, w)
    width, seq = w.shape[0], x.shape[1]
    if width > MAX_WIDTH:
        raise Unsupported(f"{width=} is above {MAX_WIDTH=} taps unrolled; use fft.long_conv for long filters")
    w32, x32 = w.astype(jnp.float32), x.astype(jnp.float32)
    y = sum(w32[i] * _delayed(x32, width - 1 - i, seq) for i in range(width))
    return y.astype(jnp.result_type(x, w))


def _delayed(x, steps, seq):
    """x moved ``steps`` later in time, zeros entering at t = 0. One pad per tap,
    so each has a single consumer and fuses into the sum; a shared padded copy
    of x was materialized (an extra pass and a 32 MiB buffer at B4 S4096 C512)."""
    if steps == 0:
        return x
    return lax.slice_in_dim(jnp.pad(x, ((0, 0), (steps, 0), (0, 0))), 0, seq, axis=1)
