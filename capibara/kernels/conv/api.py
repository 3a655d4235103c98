"""The JAX half of the conv family: the variant table and the dispatching ``causal_conv1d``."""

from __future__ import annotations

import jax

from capibara.kernels.base import EVERYWHERE, Variant, lookup
from capibara.kernels.conv.reference import causal_conv1d_reference
from capibara.kernels.conv.shift_add import causal_conv1d_shift_add

__all__ = ["VARIANTS", "causal_conv1d"]

VARIANTS: dict[str, Variant] = {
    "reference": Variant("conv", "reference", causal_conv1d_reference, EVERYWHERE, {},
                         "lax.conv_general_dilated, one group per channel; the oracle and the fallback"),
    "shift_add": Variant("conv", "shift_add", causal_conv1d_shift_add, EVERYWHERE, {},
                         "width shifted multiply-adds fused into one pass"),
}


def causal_conv1d(x: jax.Array, w: jax.Array, *, implementation: str = "reference", **static) -> jax.Array:
    """Depthwise causal conv1d with the named variant; returns x's shape."""
    return lookup(VARIANTS, "causal_conv1d", implementation)(x, w, **static)
