"""scan: the linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (SSM-style).

``a``, ``b`` are ``[batch, seq, dim]``; the scan runs over axis 1 from a zero
state and returns every ``h_t`` (float32 inside, ``result_type(a, b)`` out).
Variants:

- ``reference``: the textbook time-major ``lax.scan``; the oracle and the fallback.
- ``sequential``: a ``lax.scan`` over time that updates its output in place (fastest on CPU).
- ``chunked``: chunk summaries, carries between chunks, in-place rescan (static ``chunk``).
- ``associative``: ``lax.associative_scan`` (log depth; for wide accelerators).

All but ``reference`` differentiate by running themselves in reverse.

>>> import jax.numpy as jnp
>>> scan(jnp.full((1, 3, 1), 0.5), jnp.ones((1, 3, 1)), implementation="chunked", chunk=1)[0, :, 0]
Array([1.  , 1.5 , 1.75], dtype=float32)
"""

from __future__ import annotations

import jax

from capibara.kernels.base import Variant, lookup
from capibara.kernels.scan.associative import scan_associative
from capibara.kernels.scan.chunked import CHUNK, scan_chunked
from capibara.kernels.scan.reference import scan_reference
from capibara.kernels.scan.sequential import scan_sequential

__all__ = ["VARIANTS", "scan"]

_EVERYWHERE = ("cpu", "gpu", "tpu")

VARIANTS: dict[str, Variant] = {
    "reference": Variant("scan", "reference", scan_reference, _EVERYWHERE, {},
                         "textbook time-major lax.scan in f32; the oracle and the fallback"),
    "sequential": Variant("scan", "sequential", scan_sequential, _EVERYWHERE, {},
                          "time-step lax.scan updating its output in place; fastest on CPU"),
    "chunked": Variant("scan", "chunked", scan_chunked, _EVERYWHERE, {"chunk": CHUNK},
                       "chunk summaries, carries between chunks, in-place rescan"),
    "associative": Variant("scan", "associative", scan_associative, _EVERYWHERE, {},
                           "lax.associative_scan over affine maps; log depth"),
}


def scan(a: jax.Array, b: jax.Array, *, implementation: str = "reference", **static) -> jax.Array:
    """``h_t = a_t * h_{t-1} + b_t`` over axis 1 of ``[batch, seq, dim]`` with the named variant."""
    return lookup(VARIANTS, "scan", implementation)(a, b, **static)
