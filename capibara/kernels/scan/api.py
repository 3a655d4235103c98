"""The JAX half of the scan family: the variant table and the dispatching ``scan``."""

from __future__ import annotations

import jax

from capibara.kernels.base import EVERYWHERE, Variant, lookup
from capibara.kernels.scan.associative import scan_associative
from capibara.kernels.scan.chunked import CHUNK, scan_chunked
from capibara.kernels.scan.reference import scan_reference
from capibara.kernels.scan.sequential import scan_sequential

__all__ = ["VARIANTS", "scan"]

VARIANTS: dict[str, Variant] = {
    "reference": Variant("scan", "reference", scan_reference, EVERYWHERE, {},
                         "textbook time-major lax.scan in f32; the oracle and the fallback"),
    "sequential": Variant("scan", "sequential", scan_sequential, EVERYWHERE, {},
                          "time-step lax.scan updating its output in place; fastest on CPU"),
    "chunked": Variant("scan", "chunked", scan_chunked, EVERYWHERE, {"chunk": CHUNK},
                       "chunk summaries, carries between chunks, in-place rescan"),
    "associative": Variant("scan", "associative", scan_associative, EVERYWHERE, {},
                           "lax.associative_scan over affine maps; log depth"),
}


def scan(a: jax.Array, b: jax.Array, *, implementation: str = "reference", **static) -> jax.Array:
    """``h_t = a_t * h_{t-1} + b_t`` over axis 1 of ``[batch, seq, dim]`` with the named variant."""
    return lookup(VARIANTS, "scan", implementation)(a, b, **static)
