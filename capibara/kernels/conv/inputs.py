"""The input contract of the depthwise causal conv1d (Mamba's short convolution).

x ``[batch, seq, channels]``, w ``[width, channels]``:
``y[b, t, c] = sum_i w[i, c] * x[b, t - (width - 1) + i, c]`` with x = 0 before
t = 0. ``w[-1]`` weighs the current step, as in Mamba's ``causal_conv1d`` and a
left-padded ``lax.conv_general_dilated`` (a correlation). Variants compute in
float32 and return ``result_type(x, w)`` in x's shape.
"""

from __future__ import annotations

import jax

__all__ = ["check_inputs"]


def check_inputs(x: jax.Array, w: jax.Array) -> None:
    """Raise ``ValueError`` for inputs no variant can convolve."""
    if x.ndim != 3 or w.ndim != 2:
        raise ValueError(f"x must be [batch, seq, channels] and w [width, channels], got {x.shape} and {w.shape}")
    if x.shape[2] != w.shape[1]:
        raise ValueError(f"x has {x.shape[2]} channels but w has {w.shape[1]}")
    if w.shape[0] == 0:
        raise ValueError("w has width 0")
