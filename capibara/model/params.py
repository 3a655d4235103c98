"""The parameter tree: initialization, and its layout on a ``("data", "model")`` mesh."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from capibara.compiler.model_spec import ModelSpec
from capibara.kernels.moe import Experts

#: Weight init standard deviation (GPT-2's 0.02); output projections are
#: further scaled by 1/sqrt(2·layers) so the residual stream's variance does
#: not grow with depth.
INIT_STD = 0.02


def init_params(spec: ModelSpec, key: jax.Array) -> dict[str, Any]:
    """A fresh parameter tree for ``spec`` from ``key``, in ``spec.param_dtype``.

    Blocks are stacked: every leaf under ``"blocks"`` has a leading
    ``num_layers`` axis.
    """
    d, dh = spec.d_model, spec.head_dim
    counts = spec.layer_counts()
    L = counts["attention"]
    keys = iter(jax.random.split(key, 12))
    out_std = INIT_STD / math.sqrt(2 * spec.num_layers)

    def normal(shape, std=INIT_STD):
        return std * jax.random.normal(next(keys), shape, jnp.float32)

    blocks: dict[str, Any] = {
        "attn_norm": jnp.ones((L, d)),
        "wq": normal((L, d, spec.num_heads * dh)),
        "wk": normal((L, d, spec.num_kv_heads * dh)),
        "wv": normal((L, d, spec.num_kv_heads * dh)),
        "wo": normal((L, spec.num_heads * dh, d), out_std),
        "ffn_norm": jnp.ones((L, d)),
    }
    if spec.use_moe:
        e, f = spec.num_experts, spec.expert_ffn_dim
        blocks["router"] = normal((L, d, e))
        blocks["experts"] = Experts(normal((L, e, d, f)), normal((L, e, f, d), out_std))
    else:
        blocks["w_in"] = normal((L, d, spec.ffn_dim))
        blocks["w_out"] = normal((L, spec.ffn_dim, d), out_std)
    params: dict[str, Any] = {
        "embed": normal((spec.vocab_size, d)),
        "blocks": blocks,
        "final_norm": jnp.ones((d,)),
    }
    if not spec.attention_only:
        from capibara.model.mixers import init_mixer_stacks

        params.update(init_mixer_stacks(spec, next(keys), out_std))
    if spec.use_vq:
        params["codebook"] = normal((spec.vq_codes, d))
    return jax.tree.map(lambda x: x.astype(spec.param_dtype), params)


def param_partition_specs(spec: ModelSpec) -> dict[str, Any]:
    """How each parameter is split over a ``("data", "model")`` mesh.

    Tensor parallelism in the Megatron layout: the vocabulary, attention heads
    and feed-forward width are split over ``"model"`` (column-parallel into a
    block, row-parallel out of it), so each block needs one reduction per
    sublayer; norms, the router and the codebook are replicated.
    """
    blocks: dict[str, Any] = {
        "attn_norm": P(), "ffn_norm": P(),
        "wq": P(None, None, "model"), "wk": P(None, None, "model"), "wv": P(None, None, "model"),
        "wo": P(None, "model", None),
    }
    if spec.use_moe:
        blocks["router"] = P()
        blocks["experts"] = Experts(P(None, None, None, "model"), P(None, None, "model", None))
    else:
        blocks["w_in"] = P(None, None, "model")
        blocks["w_out"] = P(None, "model", None)
    specs: dict[str, Any] = {"embed": P("model", None), "blocks": blocks, "final_norm": P()}
    if not spec.attention_only:
        from capibara.model.mixers import mixer_partition_specs

        specs.update(mixer_partition_specs(spec, blocks))
    if spec.use_vq:
        specs["codebook"] = P()
    return specs


def make_mesh(shape: tuple[int, int] = (1, 1), devices: Any = None) -> Mesh:
    """A ``("data", "model")`` mesh over the first ``data·model`` devices."""
    devices = np.asarray(devices if devices is not None else jax.devices())
    count = shape[0] * shape[1]
    if count > devices.size:
        raise ValueError(f"mesh {shape} needs {count} devices, {devices.size} present")
    return Mesh(devices.reshape(-1)[:count].reshape(shape), ("data", "model"))


def _fit(partition: P, shape: tuple[int, ...], mesh: Mesh) -> P:
    """``partition`` without the mesh axes that do not divide their dimension evenly
    (a 12-head model on a 8-wide model axis keeps that dimension whole)."""
    axes = list(partition) + [None] * (len(shape) - len(partition))
    return P(*(axis if axis is None or shape[i] % mesh.shape[axis] == 0 else None
               for i, axis in enumerate(axes)))


def param_shardings(spec: ModelSpec, params: Any, mesh: Mesh) -> Any:
    """A ``NamedSharding`` per parameter (see :func:`param_partition_specs`)."""
    return jax.tree.map(lambda part, leaf: NamedSharding(mesh, _fit(part, leaf.shape, mesh)),
                        param_partition_specs(spec), params,
                        is_leaf=lambda x: isinstance(x, P))
