"""The long convolution as XLA's depthwise convolution: obviously the definition.

``lax.conv_general_dilated`` with one group per channel, the filter flipped
(XLA convolutions correlate) and ``kernel_len - 1`` zeros on the left (causal).
Correct everywhere and slow on CPU (``benchmarks/kernels_fft.py``): the oracle and
the fallback.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.fft.inputs import check_inputs

__all__ = ["long_conv_reference"]


def long_conv_reference(u: jax.Array, k: jax.Array) -> jax.Array:
    """``y[c, t] = sum_{j <= t} k[c, j] u[c, t - j]`` by a grouped XLA convolution."""
    u, k = jnp.asarray(u), jnp.asarray(k)
    check_inputs(u, k)
    channels, kernel_len = k.shape
    y = lax.conv_general_dilated(
        u.astype(jnp.float32)[None], jnp.flip(k.astype(jnp.float32), 1)[:, None, :],
        window_strides=(1,), padding=[(kernel_len - 1, 0)],
        dimension_numbers=("NCH", "OIH", "NCH"), feature_group_count=channels,
        precision=lax.Precision.HIGHEST)
    return y[0].astype(jnp.result_type(u, k))
