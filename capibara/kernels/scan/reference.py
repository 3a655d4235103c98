"""The recurrence as written: one ``lax.scan`` step per time step, float32.

The oracle and the fallback; its gradient is JAX's autodiff of the scan, so
it also checks the hand-written reverse-recurrence VJP of the other variants.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.scan.inputs import check_inputs

__all__ = ["scan_reference"]


def scan_reference(a: jax.Array, b: jax.Array) -> jax.Array:
    """``h_t = a_t * h_{t-1} + b_t`` over axis 1 from a zero state; returns every ``h_t``."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    check_inputs(a, b)

    def step(h, ab):
        a_t, b_t = ab
        h = a_t * h + b_t
        return h, h

    time_major = lambda x: jnp.swapaxes(x.astype(jnp.float32), 0, 1)  # noqa: E731
    h0 = jnp.zeros((a.shape[0], a.shape[2]), jnp.float32)
    _, hs = lax.scan(step, h0, (time_major(a), time_major(b)))
    return jnp.swapaxes(hs, 0, 1).astype(jnp.result_type(a, b))
