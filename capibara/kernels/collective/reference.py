"""Reference collectives: one JAX collective primitive per operation.

These are per-shard functions: they run inside ``jax.shard_map`` where
``axis_name`` (one mesh axis name or a tuple of them) is bound, and see only
the local block. Every operation works on axis 0 of the block:

- ``all_reduce``: every device of the group gets the sum of the group's blocks;
- ``all_gather``: every device gets the group's blocks concatenated in group
  order (the linear index over ``axis_name``, first name major);
- ``reduce_scatter``: the group's sum, cut into as many pieces as the group
  has devices; device ``i`` keeps piece ``i`` (axis 0 must divide evenly);
- ``all_gather_matmul``: ``all_gather(x) @ w`` for row blocks ``x [m, k]``
  and a local weight ``w [k, n]``; ``matmul`` is the per-device product
  (default :func:`local_matmul`), so a model can multiply with its own
  matmul kernel (precision policy, tiles) while the variant owns the
  communication.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from typing import Callable

from jax import lax

__all__ = ["OPS", "collective_reference", "local_matmul"]

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_gather_matmul")

AxisName = str | tuple[str, ...]


def local_matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """The per-device product both variants use, so they differ only in communication."""
    return jnp.matmul(a, b)


def collective_reference(*arrays: jax.Array, op: str, axis_name: AxisName,
                         matmul: Callable[..., jax.Array] = local_matmul) -> jax.Array:
    """Run collective ``op`` on this device's block(s) over ``axis_name``."""
    if op == "all_reduce":
        (x,) = arrays
        return lax.psum(x, axis_name)
    if op == "all_gather":
        (x,) = arrays
        return lax.all_gather(x, axis_name, tiled=True)
    if op == "reduce_scatter":
        (x,) = arrays
        return lax.psum_scatter(x, axis_name, tiled=True)
    if op == "all_gather_matmul":
        x, w = arrays
        return matmul(lax.all_gather(x, axis_name, tiled=True), w)
    raise ValueError(f"{op=} is not a collective; expected one of {OPS}")
