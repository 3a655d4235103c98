"""The explicit sharded train step: ``shard_map`` over the mesh, the plan's collective kernels.

A plan whose mesh has more than one device trains either through XLA's
automatic partitioning (``jax.jit`` of the global step over sharded arrays:
XLA inserts the reductions) or through this step, as the compiler chose
(the ``sharded-step`` pass; a plan that records collective kernels is an
explicit one). Per device, inside ``shard_map``:

1. the loss and its gradient on the device's shard of the batch (``data``)
   and of the parameters (``model``: :mod:`capibara.model.tensor_parallel`,
   whose projections run through ``all_gather_matmul`` and ``reduce_scatter``);
2. every gradient flattened into one buffer and summed over the ``data``
   axis by the plan's ``grads.all_reduce`` kernel (one call: reference =
   ``psum``, decomposed = reduce-scatter then all-gather); the gradients of
   weights the ``model`` axis does not split are summed over it as well.

The optimizer update then runs on the global arrays under ``jax.jit`` as in
the automatic step (so optimizer state sharding is XLA's either way). The
gradients leave ``shard_map`` whole; with the optimizer state split over the
data axis XLA's own step reduce-scatters them instead, which is why the
compiler leaves such plans to it on cpu (``benchmarks/sharded_step.py``).

Each device differentiates its share of the global loss, ``loss / (data·model)``,
with its own copy of every weight: the gradient of a weight is the sum of its
copies' gradients, which is what the reductions compute. The cross-entropy
of a shard is weighted by its share of the batch's counted tokens, so a mask
that counts more tokens on one shard gives the global mean, as the automatic
step does. Batch statistics are per shard: each data replica routes Rookies
with the expert capacity of its own tokens, and the VQ and load-balancing
terms average its own batch; the automatic step computes them over the
global batch, so with Mixture of Rookies or VQ the two steps differ by that.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, PartitionSpec as P

from capibara.model.kernels import Collectives
from capibara.model.network import Network
from capibara.model.training import apply_gradients

__all__ = ["make_explicit_train_step"]

DATA = "data"


def _split_over_model(spec: P) -> bool:
    return any(entry == "model" or (isinstance(entry, tuple) and "model" in entry)
               for entry in spec)


def make_explicit_train_step(net: Network, collectives: Collectives, mesh: Mesh,
                             param_shardings: Any, optimizer: optax.GradientTransformation,
                             schedule: optax.Schedule,
                             prune: Callable[[Any, Any], Any] | None = None) -> Callable[..., Any]:
    """The training step of :func:`capibara.model.training.make_train_step` (same
    arguments and results) with the gradients computed and reduced explicitly
    over ``mesh`` (see the module docstring)."""
    from capibara.model.tensor_parallel import TensorParallelNetwork

    data, ways = mesh.shape[DATA], mesh.shape.get("model", 1)
    local_net = TensorParallelNetwork(net, collectives, ways) if ways > 1 else net
    specs = jax.tree.map(lambda s: s.spec, param_shardings)
    split = jax.tree.map(_split_over_model, specs, is_leaf=lambda x: isinstance(x, P))
    all_reduce = collectives.at("grads.all_reduce", "all_reduce", DATA)
    over_model = collectives.at(None, "all_reduce", "model")

    def local(params, batch, static):
        weights = batch.get("mask")
        counted = (jnp.asarray(batch["tokens"][:, 1:].size, jnp.float32) if weights is None
                   else jnp.sum(weights[:, 1:].astype(jnp.float32)))
        # This shard's tokens over the mean shard's: its mean cross-entropy times
        # this share, averaged over shards, is the global mean.
        share = counted * data / jnp.maximum(lax.psum(counted, DATA), 1.0)

        def objective(p):
            parts = local_net.loss(p, batch, **static)
            ce = parts.cross_entropy * share
            parts = parts._replace(total=parts.total - parts.cross_entropy + ce, cross_entropy=ce)
            return parts.total / (data * ways), parts

        (_, parts), grads = jax.value_and_grad(objective, has_aux=True)(params)
        if ways > 1:
            grads = _summed_where_whole(grads, split, over_model)
        flat, unflatten = ravel_pytree(grads)
        return unflatten(all_reduce(flat)), jax.tree.map(lambda x: lax.pmean(x, DATA), parts)

    def step(params, opt_state, batch, step_number, **static):
        for name, array in batch.items():
            if array.shape[0] % data:
                raise ValueError(f"the explicit sharded step splits the batch over {data} data "
                                 f"replicas: `{name}` has {array.shape[0]} samples")
        batch_specs = {name: P(DATA) for name in batch}
        # Unchecked: every reduction is one of the explicit ones above, so JAX adds
        # none of its own to the gradient (checked, it would sum replicated weights').
        grads, parts = jax.shard_map(
            partial(local, static=static), mesh=mesh, in_specs=(specs, batch_specs),
            out_specs=(specs, P()), check_vma=False)(params, batch)
        return apply_gradients(params, opt_state, grads, parts, step_number, optimizer,
                               schedule, prune)

    return step


def _summed_where_whole(grads: Any, split: Any, over_model: Callable[..., Any]) -> Any:
    """``grads`` with the leaves the ``model`` axis does not split summed over it (one call)."""
    leaves, tree = jax.tree.flatten(grads)
    is_split = jax.tree.leaves(split)
    flat, unflatten = ravel_pytree([g for g, s in zip(leaves, is_split) if not s])
    summed = iter(unflatten(over_model(flat)))
    return tree.unflatten([g if s else next(summed) for g, s in zip(leaves, is_split)])
