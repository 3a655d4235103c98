"""The input contract of the long convolution.

``y[c, t] = sum_{j <= t} k[c, j] * u[c, t - j]``: causal, one filter per
channel, u ``[channels, length]``, k ``[channels, kernel_len]`` with
``1 <= kernel_len <= length``; the output has u's shape. Variants compute in
float32 and return ``result_type(u, k)``.
"""

from __future__ import annotations

import jax

__all__ = ["check_inputs"]


def check_inputs(u: jax.Array, k: jax.Array) -> None:
    """Raise ``ValueError`` for inputs no variant can convolve."""
    if u.ndim != 2 or k.ndim != 2:
        raise ValueError(f"u must be [channels, length] and k [channels, kernel_len], got {u.shape} and {k.shape}")
    if u.shape[0] != k.shape[0]:
        raise ValueError(f"u has {u.shape[0]} channels but k has {k.shape[0]}")
    if not 1 <= k.shape[1] <= u.shape[1]:
        raise ValueError(f"need 1 <= kernel_len <= length, got kernel_len={k.shape[1]}, length={u.shape[1]}")
