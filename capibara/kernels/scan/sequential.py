"""One ``lax.scan`` step per time step, updating the output in place.

The textbook ``lax.scan`` (what :mod:`reference` does) transposes a and b to
time-major, stacks the per-step outputs into a fresh buffer and transposes
back: four full-size temporaries, each page-faulted on every call. Here the
scan carries the output itself, starts it from ``b`` (step t reads ``b_t``
from the slot it then overwrites with ``h_t``) and indexes time on axis 1
directly, so the only full-size buffer is the output, which becomes ``b``'s
own storage when the caller donates ``b``: about twice as fast as the
textbook scan on CPU, several times with ``b`` donated
(``benchmarks/kernels_scan.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.scan.inputs import with_recurrence_vjp

__all__ = ["scan_sequential"]


def _sequential(a: jax.Array, b: jax.Array, reverse: bool) -> jax.Array:
    seq = a.shape[1]

    def step(carry, t):
        h, out = carry
        i = seq - 1 - t if reverse else t
        h = lax.dynamic_index_in_dim(a, i, 1, keepdims=False) * h + lax.dynamic_index_in_dim(out, i, 1, keepdims=False)
        return (h, lax.dynamic_update_index_in_dim(out, h, i, 1)), None

    h0 = jnp.zeros((a.shape[0], a.shape[2]), a.dtype)
    (_, out), _ = lax.scan(step, (h0, b), jnp.arange(seq))
    return out


scan_sequential = with_recurrence_vjp(
    _sequential, "scan_sequential",
    "``h_t = a_t * h_{t-1} + b_t`` by a time-step ``lax.scan`` writing in place (donate ``b`` to reuse it).")
