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
>>> from capibara.kernels.scan import scan
>>> scan(jnp.full((1, 3, 1), 0.5), jnp.ones((1, 3, 1)), implementation="chunked", chunk=1)[0, :, 0]
Array([1.  , 1.5 , 1.75], dtype=float32)

``spec`` (selectors, static parameters) is pure Python for the compile path,
so this package imports JAX only when ``VARIANTS`` or ``scan`` is first used
(they live in :mod:`.api`).
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

# The JAX half loads on first use, not when spec.py is imported.
_EXPORTS = {name: "capibara.kernels.scan.api" for name in ("VARIANTS", "scan")}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
