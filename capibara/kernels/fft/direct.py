"""The long convolution by shift-and-add: ``y += k[:, j] * (u shifted by j)`` per tap.

``O(length * kernel_len)`` multiply-adds with no transform: faster than the
FFT for short filters (see :mod:`~capibara.kernels.fft.cost`). The taps run
``taps_per_step`` at a time in a ``fori_loop``: each step is one fused loop
over the output reading shifted windows of u (from cache), and the compiled
program stays the same size for any filter length (unrolling all 64 taps of
a filter was 4x slower than 16 per step, and unrolling thousands does not
compile in reasonable time).

The gradient is written out instead of differentiating the loop, which would
store a shifted copy of u per tap: ``du`` is the same convolution run
backwards in time (``du[s] = sum_j k[j] g[s + j]``), and ``dk[j] = sum_t
g[t] u[t - j]`` is one multiply-reduce per tap, both in tap blocks like the
forward pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.fft.inputs import check_inputs

__all__ = ["TAPS_PER_STEP", "long_conv_direct"]

# 8, 16 and 32 were within noise at 64 and 256 taps; fewer taps per step means
# less padding waste on short filters.
TAPS_PER_STEP = 16


def long_conv_direct(u: jax.Array, k: jax.Array, *, taps_per_step: int = TAPS_PER_STEP) -> jax.Array:
    """Causal depthwise long convolution by ``kernel_len`` shifted multiply-adds."""
    u, k = jnp.asarray(u), jnp.asarray(k)
    check_inputs(u, k)
    if taps_per_step <= 0:
        raise ValueError(f"{taps_per_step=} must be positive")
    return _direct(u, k, taps_per_step)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _direct(u, k, taps_per_step):
    return _shift_add(u.astype(jnp.float32), k.astype(jnp.float32), taps_per_step).astype(jnp.result_type(u, k))


def _direct_fwd(u, k, taps_per_step):
    return _direct(u, k, taps_per_step), (u, k)


def _direct_bwd(taps_per_step, residuals, g):
    u, k = residuals
    g32 = g.astype(jnp.float32)
    du = jnp.flip(_shift_add(jnp.flip(g32, 1), k.astype(jnp.float32), taps_per_step), 1)
    dk = _tap_correlations(g32, u.astype(jnp.float32), k.shape[1], taps_per_step)
    return du.astype(u.dtype), dk.astype(k.dtype)


_direct.defvjp(_direct_fwd, _direct_bwd)


def _blocks(kernel_len: int, taps_per_step: int) -> tuple[int, int]:
    """(taps per step, steps): at most ``taps_per_step`` taps, no more than the filter has."""
    per_step = min(taps_per_step, kernel_len)
    return per_step, -(-kernel_len // per_step)


def _shift_add(u, k, taps_per_step):
    """``y[:, t] = sum_j k[:, j] u[:, t - j]`` in float32."""
    length, kernel_len = u.shape[1], k.shape[1]
    per_step, steps = _blocks(kernel_len, taps_per_step)
    taps = steps * per_step
    # Zero taps pad the filter to whole steps; zeros on u's left make u[t - j] = 0 for j > t.
    k = jnp.pad(k, ((0, 0), (0, taps - kernel_len)))
    padded = jnp.pad(u, ((0, 0), (taps - 1, 0)))

    def step(s, y):
        for i in range(per_step):
            j = s * per_step + i
            window = lax.dynamic_slice_in_dim(padded, taps - 1 - j, length, 1)
            y = y + lax.dynamic_slice_in_dim(k, j, 1, 1) * window
        return y

    return lax.fori_loop(0, steps, step, jnp.zeros_like(u))


def _tap_correlations(g, u, kernel_len, taps_per_step):
    """``dk[:, j] = sum_t g[:, t] u[:, t - j]`` for ``j < kernel_len``, in float32."""
    length = u.shape[1]
    per_step, steps = _blocks(kernel_len, taps_per_step)
    taps = steps * per_step
    padded = jnp.pad(u, ((0, 0), (taps - 1, 0)))

    def step(s, dk):
        sums = [jnp.sum(g * lax.dynamic_slice_in_dim(padded, taps - 1 - (s * per_step + i), length, 1), axis=1)
                for i in range(per_step)]
        return lax.dynamic_update_slice_in_dim(dk, jnp.stack(sums, axis=1), s * per_step, 1)

    dk = lax.fori_loop(0, steps, step, jnp.zeros((u.shape[0], taps), jnp.float32))
    return dk[:, :kernel_len]
