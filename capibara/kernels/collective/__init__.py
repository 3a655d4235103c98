"""collective: all-reduce, all-gather, reduce-scatter and collective matmul over named mesh axes.

Two levels:

- ``VARIANTS[name](*blocks, op=..., axis_name=...)``: per-shard functions for
  use inside ``jax.shard_map`` (a model's own sharded code calls these).
- :func:`collective` and the four wrappers below: jitted functions of *global*
  arrays over a ``jax.sharding.Mesh``, built once per (op, mesh, axes,
  variant) and cached.

Global layout for ``all_reduce`` / ``all_gather`` / ``reduce_scatter``: axis 0
of ``x`` is split into one block per device over *all* mesh axes (row-major
over ``mesh.axis_names``); the result has one block per device in the same
layout, the operation applied within each group of devices that differ only
along ``axes``. For ``all_gather_matmul``, ``x [M, K]`` is split by rows over
``axes`` and ``w [K, N]`` by columns over ``axes``; the result
``x @ w [M, N]`` is split by columns like ``w``.

Variants: ``reference`` (one JAX primitive per op) and ``decomposed``
(two-phase all-reduce, ``ppermute``-ring collective matmul).

>>> import jax, numpy as np
>>> from capibara.kernels.collective import all_reduce
>>> mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
>>> all_reduce(np.ones((2, 3), np.float32), mesh, "data").shape
(2, 3)

The compile path imports :mod:`.spec` (selectors, tile tables) without JAX,
so the exports below load from :mod:`.api` on first use.
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

# The JAX half loads on first use, not when spec.py is imported.
_EXPORTS = {name: "capibara.kernels.collective.api" for name in (
    "OPS", "VARIANTS", "all_gather", "all_gather_matmul", "all_reduce", "collective",
    "reduce_scatter",
)}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
