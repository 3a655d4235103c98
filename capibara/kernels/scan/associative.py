"""``lax.associative_scan`` over the affine maps ``h -> a h + b``.

Composing two steps gives another: ``(a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2)``,
so the recurrence is a parallel prefix over pairs, log-depth but ~2x the work
of the sequential scan and many full-size temporaries: on 2 CPU cores it is
slower than ``lax.scan`` (``benchmarks/kernels_scan.py``); it is the shape for
wide accelerators.
"""

from __future__ import annotations

import jax
from jax import lax

from capibara.kernels.scan.inputs import with_recurrence_vjp

__all__ = ["scan_associative"]


def _compose(first, second):
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def _associative(a: jax.Array, b: jax.Array, reverse: bool) -> jax.Array:
    return lax.associative_scan(_compose, (a, b), reverse=reverse, axis=1)[1]


scan_associative = with_recurrence_vjp(
    _associative, "scan_associative",
    "``h_t = a_t * h_{t-1} + b_t`` as a parallel prefix (``lax.associative_scan``) over affine maps.")
