"""The long convolution by FFT: ``irfft(rfft(u) * rfft(k))``.

Both signals are zero-padded to ``n >= length + kernel_len - 1`` so the
circular convolution the FFT computes has no wrap-around in the first
``length`` outputs, and ``n`` is 5-smooth (:func:`~capibara.kernels.fft.cost.fast_fft_length`),
which the FFT library factors into fast radices: 8640 instead of 16384 for
L = 8192 with a 64-tap filter. Cost ``O(n log n)`` whatever the kernel length;
gradients are JAX's (the transpose of an FFT is an FFT).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from capibara.kernels.fft.cost import fast_fft_length
from capibara.kernels.fft.inputs import check_inputs

__all__ = ["long_conv_fft"]


def long_conv_fft(u: jax.Array, k: jax.Array) -> jax.Array:
    """Causal depthwise long convolution through a zero-padded real FFT."""
    u, k = jnp.asarray(u), jnp.asarray(k)
    check_inputs(u, k)
    length, kernel_len = u.shape[1], k.shape[1]
    n = fast_fft_length(length + kernel_len - 1)
    spectrum = jnp.fft.rfft(u.astype(jnp.float32), n) * jnp.fft.rfft(k.astype(jnp.float32), n)
    return jnp.fft.irfft(spectrum, n)[:, :length].astype(jnp.result_type(u, k))
