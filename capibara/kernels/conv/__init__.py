"""conv: depthwise causal conv1d, the short convolution of Mamba-style blocks.

``causal_conv1d(x, w)``: x ``[batch, seq, channels]``, w ``[width, channels]``,
``y[b, t, c] = sum_i w[i, c] x[b, t - width + 1 + i, c]`` (see :mod:`.inputs`). Variants:

- ``reference``: ``lax.conv_general_dilated`` with one group per channel; the oracle and the fallback.
- ``shift_add``: ``width`` shifted multiply-adds fused into one pass (width <= 64).

>>> import jax.numpy as jnp
>>> causal_conv1d(jnp.ones((1, 3, 1)), jnp.array([[1.0], [2.0]]), implementation="shift_add")[0, :, 0]
Array([2., 3., 3.], dtype=float32)
"""

from __future__ import annotations

import jax

from capibara.kernels.base import Variant, lookup
from capibara.kernels.conv.reference import causal_conv1d_reference
from capibara.kernels.conv.shift_add import causal_conv1d_shift_add

__all__ = ["VARIANTS", "causal_conv1d"]

_EVERYWHERE = ("cpu", "gpu", "tpu")

VARIANTS: dict[str, Variant] = {
    "reference": Variant("conv", "reference", causal_conv1d_reference, _EVERYWHERE, {},
                         "lax.conv_general_dilated, one group per channel; the oracle and the fallback"),
    "shift_add": Variant("conv", "shift_add", causal_conv1d_shift_add, _EVERYWHERE, {},
                         "width shifted multiply-adds fused into one pass"),
}


def causal_conv1d(x: jax.Array, w: jax.Array, *, implementation: str = "reference", **static) -> jax.Array:
    """Depthwise causal conv1d with the named variant; returns x's shape."""
    return lookup(VARIANTS, "causal_conv1d", implementation)(x, w, **static)
