"""conv: depthwise causal conv1d, the short convolution of Mamba-style blocks.

``causal_conv1d(x, w)``: x ``[batch, seq, channels]``, w ``[width, channels]``,
``y[b, t, c] = sum_i w[i, c] x[b, t - width + 1 + i, c]`` (see :mod:`.inputs`). Variants:

- ``reference``: ``lax.conv_general_dilated`` with one group per channel; the oracle and the fallback.
- ``shift_add``: ``width`` shifted multiply-adds fused into one pass (width <= 64).

>>> import jax.numpy as jnp
>>> from capibara.kernels.conv import causal_conv1d
>>> causal_conv1d(jnp.ones((1, 3, 1)), jnp.array([[1.0], [2.0]]), implementation="shift_add")[0, :, 0]
Array([2., 3., 3.], dtype=float32)

``spec`` (selectors, static parameters) is pure Python for the compile path,
so this package imports JAX only when ``VARIANTS`` or ``causal_conv1d`` is first used
(they live in :mod:`.api`).
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

# The JAX half loads on first use, not when spec.py is imported.
_EXPORTS = {name: "capibara.kernels.conv.api" for name in ("VARIANTS", "causal_conv1d")}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
