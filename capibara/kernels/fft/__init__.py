"""fft: causal long convolution, one filter per channel (Hyena / S4-style).

``long_conv(u, k)`` computes ``y[c, t] = sum_{j <= t} k[c, j] u[c, t - j]``
for u ``[channels, length]`` and k ``[channels, kernel_len]``. Variants:

- ``reference``: XLA's grouped convolution; the oracle and the fallback.
- ``fft``: zero-padded real FFT at a 5-smooth length, ``O(n log n)``.
- ``direct``: shift-and-add in tap blocks (static ``taps_per_step``), ``O(L K)``.

:func:`choose_long_conv` (pure Python, in :mod:`.cost`) picks between ``fft``
and ``direct`` from measured costs. The compile path imports it, so this
package imports JAX only when ``VARIANTS`` or ``long_conv`` is first used
(they live in :mod:`.api`).

>>> import jax.numpy as jnp
>>> from capibara.kernels.fft import long_conv
>>> long_conv(jnp.ones((1, 4)), jnp.array([[1.0, 1.0]]), implementation="fft").round(3)
Array([[1., 2., 2., 2.]], dtype=float32)
"""

from __future__ import annotations

from capibara.lazy import lazy_exports
from capibara.kernels.fft.cost import choose_long_conv, fast_fft_length

# The JAX half loads on first use, not when cost.py is imported.
_EXPORTS = {name: "capibara.kernels.fft.api" for name in ("VARIANTS", "long_conv")}

__all__ = ["VARIANTS", "choose_long_conv", "fast_fft_length", "long_conv"]

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
