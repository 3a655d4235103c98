"""The JAX half of the collective family: what ``capibara.kernels.collective`` exports."""

from __future__ import annotations

import functools
from typing import Callable

import jax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from capibara.kernels.base import EVERYWHERE, Variant
from capibara.kernels.collective.decomposed import collective_decomposed
from capibara.kernels.collective.reference import OPS, collective_reference

__all__ = [
    "OPS",
    "VARIANTS",
    "all_gather",
    "all_gather_matmul",
    "all_reduce",
    "collective",
    "reduce_scatter",
]

VARIANTS: dict[str, Variant] = {
    "reference": Variant("collective", "reference", collective_reference, EVERYWHERE, {},
                         "one JAX collective primitive per op"),
    "decomposed": Variant("collective", "decomposed", collective_decomposed, EVERYWHERE, {},
                          "reduce-scatter + all-gather all-reduce; ppermute-ring collective matmul"),
}


def _axes(axes: str | tuple[str, ...]) -> tuple[str, ...]:
    return (axes,) if isinstance(axes, str) else tuple(axes)


@functools.lru_cache(maxsize=64)
def collective(op: str, mesh: Mesh, axes: str | tuple[str, ...], *,
               implementation: str = "reference", donate: bool = False) -> Callable[..., jax.Array]:
    """A jitted function of global arrays that runs ``op`` over ``axes`` of ``mesh``.

    ``donate=True`` donates the first argument, so an all-reduce can reuse
    its buffer for the result (the caller must not use it afterwards).
    """
    if op not in OPS:
        raise ValueError(f"{op=} is not a collective; expected one of {OPS}")
    names = _axes(axes)
    unknown = [a for a in names if a not in mesh.axis_names]
    if unknown:
        raise ValueError(f"axes {unknown} are not in the mesh's axes {mesh.axis_names}")
    variant = VARIANTS[implementation]
    axis_name = names[0] if len(names) == 1 else names
    per_shard = functools.partial(variant, op=op, axis_name=axis_name)
    if op == "all_gather_matmul":
        in_specs, out_specs = (P(names), P(None, names)), P(None, names)
    else:
        every = P(tuple(mesh.axis_names))
        in_specs, out_specs = (every,), every
    mapped = jax.shard_map(per_shard, mesh=mesh, in_specs=in_specs, out_specs=out_specs)
    return jax.jit(mapped, donate_argnums=(0,) if donate else ())


def all_reduce(x: jax.Array, mesh: Mesh, axes, *, implementation: str = "reference") -> jax.Array:
    """Each device's block of ``x`` replaced by the sum over its group along ``axes``."""
    return collective("all_reduce", mesh, axes, implementation=implementation)(x)


def all_gather(x: jax.Array, mesh: Mesh, axes, *, implementation: str = "reference") -> jax.Array:
    """Each device's block replaced by its group's blocks concatenated (group order)."""
    return collective("all_gather", mesh, axes, implementation=implementation)(x)


def reduce_scatter(x: jax.Array, mesh: Mesh, axes, *, implementation: str = "reference") -> jax.Array:
    """Each device's block replaced by its piece of the group's sum."""
    return collective("reduce_scatter", mesh, axes, implementation=implementation)(x)


def all_gather_matmul(x: jax.Array, w: jax.Array, mesh: Mesh, axes, *,
                      implementation: str = "reference") -> jax.Array:
    """``x @ w`` with ``x`` split by rows and ``w`` by columns over ``axes``."""
    return collective("all_gather_matmul", mesh, axes, implementation=implementation)(x, w)
