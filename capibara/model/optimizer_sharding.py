"""Where optimizer state lives: like the parameters, or also split over the data axis (ZeRO-1).

Every data-parallel replica holds the same parameters and computes the same
update, so it need not hold the whole optimizer state: with
``optimizer_sharding`` each moment is additionally split over the ``data``
axis along its first dimension that is not split yet and divides evenly.
Leaves with no such dimension (a norm scale on an odd mesh) stay laid out
like their parameter. The memory estimate
(:func:`capibara.compiler.memory.estimate_memory`) divides the state by the
data axis on the same condition.
"""

from __future__ import annotations

from typing import Any

import jax
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

__all__ = ["optimizer_state_shardings", "split_over_data"]


def split_over_data(sharding: NamedSharding, shape: tuple[int, ...], mesh: Mesh) -> NamedSharding:
    """``sharding`` with ``data`` added on the first free dimension of ``shape`` it divides."""
    data = mesh.shape.get("data", 1)
    entries = list(sharding.spec) + [None] * (len(shape) - len(sharding.spec))
    used = {name for entry in entries if entry is not None
            for name in (entry if isinstance(entry, tuple) else (entry,))}
    if data == 1 or "data" in used:
        return sharding
    for axis, (size, entry) in enumerate(zip(shape, entries)):
        if entry is None and size % data == 0:
            entries[axis] = "data"
            return NamedSharding(mesh, P(*entries))
    return sharding


def optimizer_state_shardings(optimizer: optax.GradientTransformation, abstract_params: Any,
                              param_shardings: Any, mesh: Mesh, *, over_data: bool) -> Any:
    """The sharding of every leaf of ``optimizer``'s state for parameters shaped like
    ``abstract_params`` and laid out as ``param_shardings``; counters and other
    non-parameter leaves are replicated."""
    state = jax.eval_shape(optimizer.init, abstract_params)

    def place(leaf: Any, sharding: NamedSharding) -> NamedSharding:
        return split_over_data(sharding, tuple(leaf.shape), mesh) if over_data else sharding

    return optax.tree_map_params(optimizer, place, state, param_shardings,
                                 transform_non_params=lambda _: NamedSharding(mesh, P()))
