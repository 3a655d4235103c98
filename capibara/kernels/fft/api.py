"""The JAX half of the fft family: the variant table and the dispatching ``long_conv``."""

from __future__ import annotations

import jax

from capibara.kernels.base import EVERYWHERE, Variant, lookup
from capibara.kernels.fft.direct import TAPS_PER_STEP, long_conv_direct
from capibara.kernels.fft.reference import long_conv_reference
from capibara.kernels.fft.spectral import long_conv_fft

__all__ = ["VARIANTS", "long_conv"]

VARIANTS: dict[str, Variant] = {
    "reference": Variant("fft", "reference", long_conv_reference, EVERYWHERE, {},
                         "XLA grouped convolution; the oracle and the fallback"),
    "fft": Variant("fft", "fft", long_conv_fft, EVERYWHERE, {},
                   "zero-padded rfft * rfft -> irfft at a 5-smooth length"),
    "direct": Variant("fft", "direct", long_conv_direct, EVERYWHERE, {"taps_per_step": TAPS_PER_STEP},
                      "fused shift-and-add over tap blocks"),
}


def long_conv(u: jax.Array, k: jax.Array, *, implementation: str = "reference", **static) -> jax.Array:
    """Causal depthwise long convolution with the named variant; returns u's shape."""
    return lookup(VARIANTS, "long_conv", implementation)(u, k, **static)
