"""The causal conv1d as XLA's grouped convolution: the oracle and the fallback.

One group per channel (``feature_group_count``) and ``width - 1`` zeros on the
left of time. Depthwise convolutions are slow on XLA:CPU (``benchmarks/kernels_conv.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.conv.inputs import check_inputs

__all__ = ["causal_conv1d_reference"]


def causal_conv1d_reference(x: jax.Array, w: jax.Array) -> jax.Array:
    """``y[b, t, c] = sum_i w[i, c] x[b, t - width + 1 + i, c]`` by ``lax.conv_general_dilated``."""
    x, w = jnp.asarray(x), jnp.asarray(w)
    check_inputs(x, w)
    width, channels = w.shape
    y = lax.conv_general_dilated(
        x.astype(jnp.float32), w.astype(jnp.float32)[:, None, :], window_strides=(1,),
        padding=[(width - 1, 0)], dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=channels, precision=lax.Precision.HIGHEST)
    return y.astype(jnp.result_type(x, w))
