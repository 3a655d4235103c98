"""The network split over the mesh's ``model`` axis, as one device of the explicit
sharded train step computes it (inside ``shard_map``, on its local shards).

The layout is Megatron's with the activations between projections split by
rows (sequence parallelism): each of the ``m`` model devices holds ``1/m`` of
the data shard's ``N = B·S`` token rows of the residual stream, and its
shards of the weights (:func:`~capibara.model.params.param_partition_specs`:
heads and MLP width, column-parallel in, row-parallel out; the vocabulary).

    per block, for attention and then the feed-forward:
        RMSNorm on the local rows
        all_gather_matmul: every row, times the local columns of wq, wk, wv (or w_in)
        attention on the local heads (or GELU on the local MLP width)
        the local rows of wo (or w_out): a partial sum of every row
        reduce_scatter: each device keeps its rows of the sum

Mixture of Rookies gathers the rows (``all_gather``) and runs every expert's
local slice of the MLP width; its partial output is reduce-scattered like the
dense MLP's. The embedding lookup reads each device's vocabulary rows and
reduce-scatters the sum; the VQ bottleneck and the output projection read the
gathered rows, the loss its share of the vocabulary (log-sum-exp over the
``model`` axis). The recorded call sites (``blocks.attention_in``,
``blocks.mlp_in``, ``blocks.moe_in``, ``blocks.attention_out``,
``blocks.mlp_out``) run the plan's collective kernels; the boundary ones (the
embedding, bottleneck, final gather, the loss's sums) the same variant.

Every device of the model axis ends with the same loss. What it cannot split
(:func:`~capibara.compiler.model_spec.ModelSpec.tensor_parallel_refusal`):
``ssm``/``hyena`` mixers, quantized block weights, top-k activation sparsity,
and sizes the axis does not divide.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from capibara.model.kernels import Collectives
from capibara.model.network import Network, _rms_norm, _rope, _split_layers

__all__ = ["AXIS", "TensorParallelNetwork"]

#: The mesh axis the model is split over.
AXIS = "model"


class TensorParallelNetwork(Network):
    """:class:`~capibara.model.network.Network`'s training loss on one device's shards
    of a model split ``ways`` ways (see the module docstring). Only :meth:`loss` (and
    what it calls) is defined here: forward and generation stay the global network's.
    """

    def __init__(self, net: Network, collectives: Collectives, ways: int) -> None:
        # Not Network.__init__: the global network's settings and kernel bundle are
        # read through it (:attr:`kernels`), so both always compute with the same bundle.
        self.net = net
        self.spec, self.loss_chunk = net.spec, net.loss_chunk
        self.compute, self.saved_dtype, self.offload = net.compute, net.saved_dtype, net.offload
        refusal = net.spec.tensor_parallel_refusal(ways)
        if refusal is not None:
            raise ValueError(f"the explicit sharded step cannot split this model {ways} ways: "
                             f"{refusal}")
        self.collectives = collectives
        self.ways = ways
        self.heads = net.spec.num_heads // ways
        self.kv_heads = net.spec.num_kv_heads // ways
        self._rows: tuple[int, int] | None = None  # (B, S) of the call being traced

    @property
    def kernels(self):
        """The global network's kernel bundle."""
        return self.net.kernels

    # ------------------------------------------------------------- rows over the axis

    def _collective(self, op: str, site: str | None = None):
        return self.collectives.at(site, op, AXIS)

    def _tokens(self) -> int:
        b, s = self._rows
        return b * s

    def _padded(self, x: jax.Array) -> jax.Array:
        """``x [N, ...]`` with zero rows up to a multiple of the axis size."""
        pad = -x.shape[0] % self.ways
        return jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)) if pad else x

    def _local_rows(self, full: jax.Array) -> jax.Array:
        """This device's rows of ``full [N, ...]``, which every device holds."""
        full = self._padded(full)
        size = full.shape[0] // self.ways
        return lax.dynamic_slice_in_dim(full, lax.axis_index(AXIS) * size, size)

    def _gathered(self, rows: jax.Array, site: str | None = None) -> jax.Array:
        """Every device's rows, concatenated, without the padding: ``[N, ...]``."""
        return self._collective("all_gather", site)(rows)[: self._tokens()]

    def _scattered(self, partial_sum: jax.Array, site: str | None = None) -> jax.Array:
        """This device's rows of the sum over the axis of ``partial_sum [N, ...]``."""
        return self._collective("reduce_scatter", site)(self._padded(partial_sum))

    def _sum(self, x: jax.Array) -> jax.Array:
        return self._collective("all_reduce")(x)

    def _column(self, x_rows: jax.Array, layer: Any, name: str, site: str) -> jax.Array:
        """Every row times the local columns of ``layer[name]``: ``[N, columns]``, the
        rows gathered by the collective matmul while the linalg kernel multiplies."""
        matmul = self.kernels.at(f"blocks.{name}", self.kernels.matmul)
        x = x_rows.astype(self.compute)
        return self._collective("all_gather_matmul", site)(x, layer[name], matmul=matmul)[
            : self._tokens()]

    def _row(self, x: jax.Array, layer: Any, name: str, site: str) -> jax.Array:
        """This device's rows of ``x @ layer[name]``, ``x [N, local rows of w]``."""
        matmul = self.kernels.at(f"blocks.{name}", self.kernels.matmul)
        return self._scattered(matmul(x, layer[name]).astype(jnp.float32), site)

    # ------------------------------------------------------------- the blocks

    def block_updates(self, x, layer, positions, train: bool = False, mask=None):
        """What one block adds to this device's rows ``x [N/m, d]`` (see :class:`Network`)."""
        b, s = self._rows
        x_norm = _rms_norm(x, layer["attn_norm"])
        heads = {"wq": self.heads, "wk": self.kv_heads, "wv": self.kv_heads}
        q, k, v = (self._column(x_norm, layer, name, "blocks.attention_in")
                   .reshape(b, s, count, self.spec.head_dim) for name, count in heads.items())
        c = self.compute
        q, k, v = _rope(q, positions).astype(c), _rope(k, positions).astype(c), v.astype(c)
        a = self.kernels.attention(q, k, v, causal=True, mask=mask)
        attn = self._row(a.reshape(b * s, -1), layer, "wo", "blocks.attention_out")
        ffn, balance = self.feed_forward(x + attn, layer, train)
        return attn, ffn, (None, None, balance)

    def feed_forward(self, h, layer, train: bool = False):
        """What the feed-forward adds to this device's rows ``h``, and its balance loss."""
        x = _rms_norm(h, layer["ffn_norm"])
        if self.spec.use_moe:
            moe = self.kernels.moe if train else self.kernels.moe_dropless
            routed = moe(self._gathered(x, "blocks.moe_in"), layer["router"], layer["experts"],
                         top_k=self.spec.top_k)
            return (self._scattered(routed.output.astype(jnp.float32), "blocks.mlp_out"),
                    routed.load_balancing_loss)
        inner = jax.nn.gelu(self._column(x, layer, "w_in", "blocks.mlp_in"))
        return self._row(inner, layer, "w_out", "blocks.mlp_out"), jnp.zeros(())

    # ------------------------------------------------------------- the network

    def _embedded_rows(self, embed: jax.Array, tokens: jax.Array) -> jax.Array:
        """This device's rows of the embedded tokens, from its rows of the vocabulary."""
        flat = tokens.reshape(-1)
        if embed.shape[0] == self.spec.vocab_size:  # the vocabulary is not split
            return self._local_rows(embed[flat].astype(jnp.float32))
        local = flat - lax.axis_index(AXIS) * embed.shape[0]
        here = (local >= 0) & (local < embed.shape[0])
        rows = jnp.where(here[:, None], embed[jnp.clip(local, 0, embed.shape[0] - 1)], 0)
        return self._scattered(rows.astype(jnp.float32))

    def hidden(self, params, tokens, *, use_vq: bool, threshold: float | None,
               remat: bool = False, train: bool = False, keep_kv: bool = False, mask=None):
        """Final hidden states of every token (each device holds them all) and the
        auxiliary losses; keys and values are never kept (training only)."""
        if keep_kv or mask is not None:
            raise ValueError("the tensor-parallel network computes the training loss only")
        s = self.spec
        b, length = tokens.shape
        self._rows = (b, length)
        positions = jnp.arange(length)
        h = self._embedded_rows(params["embed"], tokens)
        first, second = _split_layers(params["blocks"],
                                      s.vq_after_layer if s.use_vq else s.num_layers)
        h, _, _, balance1 = self.blocks(h, first, positions, remat=remat, train=train)
        vq = None
        if use_vq:
            full, vq = self.bottleneck(self._gathered(h).reshape(b, length, -1),
                                       params["codebook"], threshold)
            h = self._local_rows(full.reshape(b * length, -1))
        h, _, _, balance2 = self.blocks(h, second, positions, remat=remat, train=train)
        full = self._gathered(_rms_norm(h, params["final_norm"])).reshape(b, length, -1)
        return full, None, None, vq, balance1 + balance2

    def log_probs_of(self, logits, targets):
        """``log softmax`` at ``targets`` from this device's vocabulary columns of the logits."""
        vocab = logits.shape[-1]
        if vocab == self.spec.vocab_size:
            return super().log_probs_of(logits, targets)
        # The largest logit only keeps exp() in range: any value shared by the axis does.
        top = lax.pmax(lax.stop_gradient(jnp.max(logits, -1)), AXIS)
        total = self._sum(jnp.sum(jnp.exp(logits - top[..., None]), -1))
        local = targets - lax.axis_index(AXIS) * vocab
        here = (local >= 0) & (local < vocab)
        picked = jnp.take_along_axis(logits, jnp.clip(local, 0, vocab - 1)[..., None], -1)[..., 0]
        picked = self._sum(jnp.where(here, picked, 0.0))
        return picked - (jnp.log(total) + top)
