"""The recurrence in chunks: summaries, carries between chunks, then a rescan.

Split time into ``seq // chunk`` chunks of ``chunk`` steps. Composing a
chunk's steps gives one affine map ``h -> A h + H`` (``A`` the product of its
a's, ``H`` its output from a zero state). Three passes:

1. for every chunk at once, fold its ``chunk`` steps into ``(A, H)``: each of
   the ``chunk`` loop steps touches ``[batch, seq/chunk, dim]`` elements, all
   chunks side by side, instead of ``[batch, dim]`` per step of a time scan;
2. scan the ``seq/chunk`` summaries to get the state entering each chunk;
3. rescan every chunk from its entering state, writing the output in place
   over ``b`` (as in :mod:`sequential`, donating ``b`` avoids a fresh buffer).

No cumulative products are divided or exponentiated, so zeros and negative
``a`` are exact. Traffic is ~5 full-size passes against the sequential scan's
3, in ``2 * chunk + seq / chunk`` loop steps instead of ``seq``: it wins where
a loop step is expensive (accelerators), not on 2 CPU cores, where the
sequential in-place scan beats it (``benchmarks/kernels_scan.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from capibara.kernels.base import Unsupported
from capibara.kernels.scan.inputs import with_recurrence_vjp
from capibara.kernels.scan.spec import CHUNK

__all__ = ["CHUNK", "scan_chunked"]



def _chunked(a: jax.Array, b: jax.Array, reverse: bool, *, chunk: int = CHUNK) -> jax.Array:
    batch, seq, dim = a.shape
    if chunk <= 0:
        raise ValueError(f"{chunk=} must be positive")
    chunk = min(chunk, seq)
    if seq % chunk:
        raise Unsupported(f"{seq=} must be a multiple of {chunk=}")
    n = seq // chunk
    a4, b4 = a.reshape(batch, n, chunk, dim), b.reshape(batch, n, chunk, dim)
    # Within a chunk, step c runs position c (or chunk-1-c when reversed).
    at = lambda x, c: lax.dynamic_index_in_dim(x, chunk - 1 - c if reverse else c, 2, keepdims=False)  # noqa: E731

    def summarize(c, acc):
        prod, h = acc
        a_c = at(a4, c)
        return prod * a_c, a_c * h + at(b4, c)

    ones = jnp.ones((batch, n, dim), a.dtype)
    prod, h_end = lax.fori_loop(0, chunk, summarize, (ones, jnp.zeros_like(ones)))

    def carry_across(h, summary):
        prod_k, h_k = summary
        return prod_k * h + h_k, h

    chunk_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    _, h_in = lax.scan(carry_across, jnp.zeros((batch, dim), a.dtype),
                       (chunk_major(prod), chunk_major(h_end)), reverse=reverse)

    def rescan(c, state):
        h, out = state
        i = chunk - 1 - c if reverse else c
        h = at(a4, c) * h + lax.dynamic_index_in_dim(out, i, 2, keepdims=False)
        return h, lax.dynamic_update_index_in_dim(out, h, i, 2)

    _, out = lax.fori_loop(0, chunk, rescan, (chunk_major(h_in), b4))
    return out.reshape(batch, seq, dim)


scan_chunked = with_recurrence_vjp(
    _chunked, "scan_chunked",
    "``h_t = a_t * h_{t-1} + b_t`` by chunk summaries, carries between chunks and an in-place rescan.")
