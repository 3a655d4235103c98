"""The network's pure functions: blocks, loss, cached generation.

Each block is RMSNorm → causal attention (rotary positions, grouped KV heads)
→ RMSNorm → a feed-forward: Mixture of Rookies through the ``moe`` kernel when
the spec has experts, a dense GELU MLP otherwise. Blocks are stacked along a
leading layer axis so one ``lax.scan`` runs them. With VQ, the hidden state
after the first half of the blocks is replaced by its nearest codebook vectors.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.ad_checkpoint import checkpoint_name

from capibara.compiler.model_spec import ModelSpec
from capibara.kernels.linalg import AffineWeight, TernaryWeight, dequantize, quantize_weight
from capibara.kernels.vq import quantize_codebook
from capibara.model.kernels import Kernels
from capibara.model.quantized import quantized_matmul
from capibara.model.sparsity import topk_activations

#: Rotary position base (RoPE's usual 10 000).
ROPE_BASE = 10_000.0


def _rms_norm(x: jax.Array, scale: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    return x * lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6) * scale.astype(jnp.float32)


def _rope(x: jax.Array, positions: jax.Array) -> jax.Array:
    """Rotary positions for ``x [B, S, heads, D]`` at ``positions [S]``; with an odd
    ``D`` the last feature is left unrotated."""
    half = x.shape[-1] // 2
    freqs = ROPE_BASE ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions.astype(jnp.float32)[:, None] * freqs
    sin, cos = jnp.sin(angles)[:, None, :], jnp.cos(angles)[:, None, :]
    x = x.astype(jnp.float32)
    a, b, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
    return jnp.concatenate([a * cos - b * sin, b * cos + a * sin, rest], -1)


class Network:
    """The network's pure functions, closed over a spec and a kernel bundle.

    ``saved_activation_dtype`` and ``offload_activations`` say how a
    rematerialized block keeps its input for the backward pass (see
    :meth:`blocks`); ``offload_activations`` assumes the platform has
    ``pinned_host`` memory (the model checks).
    """

    def __init__(self, spec: ModelSpec, kernels: Kernels, loss_chunk: int | None = None, *,
                 saved_activation_dtype: str = "float32",
                 offload_activations: bool = False) -> None:
        self.spec = spec
        self.kernels = kernels
        self.loss_chunk = loss_chunk
        self.compute = jnp.dtype(spec.compute_dtype)
        self.saved_dtype = jnp.dtype(saved_activation_dtype)
        self.offload = offload_activations

    def dense(self, x, layer, name):
        """``x @ layer[name]`` in the weight's format: a weight already quantized
        (inference) goes straight to the kernel, a float master weight with a
        quantized format is quantized here with a straight-through gradient."""
        w = layer[name]
        fmt = self.spec.weight_format(name)
        matmul = self.kernels.at(f"blocks.{name}", self.kernels.matmul)
        if fmt.kind == "float" or isinstance(w, (AffineWeight, TernaryWeight)):
            return matmul(x, w)
        return quantized_matmul(matmul, fmt, x, w)

    def qkv(self, x, layer, positions):
        s = self.spec
        b, t, _ = x.shape
        q = self.dense(x, layer, "wq").reshape(b, t, s.num_heads, s.head_dim)
        k = self.dense(x, layer, "wk").reshape(b, t, s.num_kv_heads, s.head_dim)
        v = self.dense(x, layer, "wv").reshape(b, t, s.num_kv_heads, s.head_dim)
        c = self.compute
        return _rope(q, positions).astype(c), _rope(k, positions).astype(c), v.astype(c)

    def feed_forward(self, h, layer, train: bool = False):
        """What the feed-forward sublayer adds to ``h`` (float32), and its balance loss."""
        s = self.spec
        x = _rms_norm(h, layer["ffn_norm"])
        b, t, d = x.shape
        flat = x.reshape(b * t, d)
        if s.use_moe:
            moe = self.kernels.moe if train else self.kernels.moe_dropless
            routed = moe(flat, layer["router"], layer["experts"], top_k=s.top_k)
            y, balance = routed.output, routed.load_balancing_loss
        else:
            inner = jax.nn.gelu(self.dense(flat, layer, "w_in"))
            if s.ffn_sparsity is not None and s.ffn_sparsity.method == "topk":
                inner = topk_activations(inner, s.ffn_sparsity.ratio)
            y, balance = self.dense(inner, layer, "w_out"), jnp.zeros(())
        return y.reshape(b, t, d).astype(jnp.float32), balance

    def block_updates(self, x, layer, positions, train: bool = False, mask=None):
        """What one block adds to its input ``x``: the attention sublayer's update,
        the feed-forward's (read at ``x`` plus the first), and the block's keys,
        values and balance loss. ``mask [B, S]`` hides the keys marked False."""
        b, t, _ = x.shape
        q, k, v = self.qkv(_rms_norm(x, layer["attn_norm"]), layer, positions)
        a = self.kernels.attention(q, k, v, causal=True, mask=mask)
        attn = self.dense(a.reshape(b, t, -1), layer, "wo").astype(jnp.float32)
        ffn, balance = self.feed_forward(x + attn, layer, train)
        return attn, ffn, (k, v, balance)

    def blocks(self, h, blocks, positions, *, remat: bool, train: bool = False,
               keep_kv: bool = False, mask=None):
        """Run stacked ``blocks`` over ``h``; the per-layer keys and values come back
        only with ``keep_kv`` (generation's prefill), so training never stores them.

        With ``remat`` the backward pass keeps only each block's input, stored
        in ``saved_activation_dtype`` (and in host memory with
        ``offload_activations``), and recomputes the block from that copy. The
        forward reads the same stored copy, so the recomputation is exact; the
        residual stream itself stays float32 (the sum needs no saved input).
        """
        if not jax.tree.leaves(blocks) or jax.tree.leaves(blocks)[0].shape[0] == 0:
            return h, None, None, jnp.zeros(())

        def updates(h, layer):
            return self.block_updates(h, layer, positions, train, mask)

        if remat:
            updates = jax.checkpoint(self._stored_input(updates), policy=self._remat_policy())

        def body(h, layer):
            attn, ffn, (k, v, balance) = updates(h, layer)
            h = (h + attn) + ffn
            return h, ((k, v, balance) if keep_kv else (None, None, balance))

        h, (k, v, balance) = lax.scan(body, h, blocks)
        return h, k, v, jnp.sum(balance)

    def _stored_input(self, updates):
        """``updates`` reading its input through the copy the backward pass keeps."""
        def read_stored(h, layer):
            stored = checkpoint_name(h.astype(self.saved_dtype), _BLOCK_INPUT)
            return updates(stored.astype(jnp.float32), layer)

        return read_stored

    def _remat_policy(self):
        if self.offload:
            return jax.checkpoint_policies.save_and_offload_only_these_names(
                names_which_can_be_saved=(), names_which_can_be_offloaded=(_BLOCK_INPUT,),
                offload_src="device", offload_dst="pinned_host")
        return jax.checkpoint_policies.save_only_these_names(_BLOCK_INPUT)

    def codebook(self, codebook):
        """The codebook as the lookup reads it, in ``spec.vq_codebook_dtype``.

        An int8 codebook already quantized (inference) goes to the kernel as
        it is; a float master codebook is rounded to its levels with a
        straight-through gradient, so the codebook loss still trains it.
        """
        dtype = self.spec.vq_codebook_dtype
        if (isinstance(codebook, AffineWeight) or dtype in (None, "float32")
                or jnp.dtype(dtype) == codebook.dtype):
            return codebook
        master = codebook.astype(jnp.float32)
        if dtype == "int8":
            rounded = dequantize(quantize_codebook(master))
        else:
            rounded = master.astype(dtype).astype(jnp.float32)
        sg = lax.stop_gradient
        return sg(rounded) + (master - sg(master))

    def inference_params(self, params):
        """``params`` with each quantized weight in its kernel form, quantized once
        (forward and generation; training quantizes in :meth:`dense`)."""
        blocks = dict(params["blocks"])
        for name, fmt in self.spec.weights:
            if name in blocks:
                blocks[name] = jax.vmap(partial(quantize_weight, fmt))(blocks[name])
        params = {**params, "blocks": blocks}
        if "codebook" in params and self.spec.vq_codebook_dtype == "int8":
            params["codebook"] = quantize_codebook(params["codebook"])
        return params

    def bottleneck(self, h, codebook, threshold):
        b, t, d = h.shape
        out = self.kernels.vq(h.reshape(b * t, d), self.codebook(codebook), threshold=threshold)
        quantized = out.quantized.reshape(b, t, d).astype(jnp.float32)
        return quantized, out

    def hidden(self, params, tokens, *, use_vq: bool, threshold: float | None,
               remat: bool = False, train: bool = False, keep_kv: bool = False, mask=None):
        """Final hidden states, per-layer keys/values (with ``keep_kv``) and the
        auxiliary losses; ``mask [B, S]`` hides the tokens marked False from attention."""
        s = self.spec
        h = params["embed"][tokens].astype(jnp.float32)
        positions = jnp.arange(tokens.shape[1])
        first, second = _split_layers(params["blocks"], s.vq_after_layer if s.use_vq else s.num_layers)
        h, k1, v1, balance1 = self.blocks(h, first, positions, remat=remat, train=train,
                                          keep_kv=keep_kv, mask=mask)
        vq = None
        if use_vq:
            h, vq = self.bottleneck(h, params["codebook"], threshold)
        h, k2, v2, balance2 = self.blocks(h, second, positions, remat=remat, train=train,
                                          keep_kv=keep_kv, mask=mask)
        keys = _concat_layers(k1, k2)
        values = _concat_layers(v1, v2)
        return _rms_norm(h, params["final_norm"]), keys, values, vq, balance1 + balance2

    def before_bottleneck(self, params, tokens):
        """Hidden states where the VQ bottleneck reads them: after the first half of the blocks."""
        params = self.inference_params(params)
        h = params["embed"][tokens].astype(jnp.float32)
        first, _ = _split_layers(params["blocks"], self.spec.vq_after_layer)
        h, *_ = self.blocks(h, first, jnp.arange(tokens.shape[1]), remat=False)
        return h

    def logits(self, params, h):
        return self.kernels.at("logits", self.kernels.matmul)(h, params["embed"].T).astype(jnp.float32)

    def target_log_probs(self, params, h, targets):
        """``log p(target)`` at each position, ``loss_chunk`` tokens at a time when set."""
        chunk = self.loss_chunk
        if chunk is None or chunk >= targets.size:
            return self.log_probs_of(self.logits(params, h), targets)
        d = h.shape[-1]
        count = targets.size
        pad = (-count) % chunk
        flat_h = jnp.pad(h.reshape(count, d), ((0, pad), (0, 0))).reshape(-1, chunk, d)
        flat_t = jnp.pad(targets.reshape(count), (0, pad)).reshape(-1, chunk)

        # A chunk's logits are recomputed in the backward pass rather than kept:
        # with a 32k vocabulary they would be the largest tensor of the step.
        @jax.checkpoint
        def one(chunk_h_t):
            chunk_h, chunk_t = chunk_h_t
            return self.log_probs_of(self.logits(params, chunk_h), chunk_t)

        return lax.map(one, (flat_h, flat_t)).reshape(-1)[:count].reshape(targets.shape)

    def log_probs_of(self, logits, targets):
        """``log softmax(logits)`` at ``targets`` (the tensor-parallel network's logits
        hold only its share of the vocabulary)."""
        return _log_prob_of(logits, targets)

    def forward(self, params, tokens, *, use_vq: bool, threshold: float | None):
        params = self.inference_params(params)
        h, *_ = self.hidden(params, tokens, use_vq=use_vq, threshold=threshold)
        return self.logits(params, h)

    def loss(self, params, batch, *, use_vq: bool, threshold: float | None,
             remat: bool = False, train: bool = False) -> "LossParts":
        """The loss on ``batch``; ``train`` routes Rookies with the plan's expert
        capacity (tokens past it are dropped), otherwise no token is dropped."""
        s = self.spec
        tokens = batch["tokens"]
        h, _, _, vq, balance = self.hidden(params, tokens, use_vq=use_vq, threshold=threshold,
                                           remat=remat, train=train)
        target_log_probs = self.target_log_probs(params, h[:, :-1], tokens[:, 1:])
        weights = batch.get("mask")
        weights = (jnp.ones_like(target_log_probs) if weights is None
                   else weights[:, 1:].astype(jnp.float32))
        cross_entropy = -jnp.sum(target_log_probs * weights) / jnp.maximum(jnp.sum(weights), 1.0)
        zero = jnp.zeros(())
        commitment, codebook, diversity = ((vq.commitment, vq.codebook, vq.diversity)
                                           if vq is not None else (zero, zero, zero))
        diversity = s.vq_diversity_weight * diversity
        balance = s.load_balancing_weight * balance / s.num_layers
        total = cross_entropy + commitment + codebook + diversity + balance
        return LossParts(total, cross_entropy, commitment, codebook, diversity, balance)

    # ----------------------------------------------------------------- generation

    def decode_blocks(self, h, blocks, cache, first_layer, position, valid=None):
        """One new token through ``blocks``, reading and extending the KV cache in place;
        ``valid [B, cache length]`` hides the cache entries marked False."""
        if not jax.tree.leaves(blocks) or jax.tree.leaves(blocks)[0].shape[0] == 0:
            return h, cache
        b = h.shape[0]
        length = cache[0].shape[2]
        visible = jnp.broadcast_to(jnp.arange(length) <= position, (b, length))
        if valid is not None:
            visible = visible & valid

        def body(carry, layer):
            h, (keys, values), index = carry
            q, k, v = self.qkv(_rms_norm(h, layer["attn_norm"]), layer, position[None])
            keys = lax.dynamic_update_slice(keys, k[None], (index, 0, position, 0, 0))
            values = lax.dynamic_update_slice(values, v[None], (index, 0, position, 0, 0))
            a = self.kernels.attention_decode(q, keys[index], values[index], causal=False,
                                              mask=visible)
            h = h + self.dense(a.reshape(b, 1, -1), layer, "wo").astype(jnp.float32)
            h = h + self.feed_forward(h, layer)[0]
            return (h, (keys, values), index + 1), None

        (h, cache, _), _ = lax.scan(body, (h, cache, first_layer), blocks)
        return h, cache

    def decode(self, params, token, position, cache, *, use_vq: bool, threshold: float | None,
               valid=None):
        s = self.spec
        h = params["embed"][token][:, None, :].astype(jnp.float32)
        split = s.vq_after_layer if s.use_vq else s.num_layers
        first, second = _split_layers(params["blocks"], split)
        h, cache = self.decode_blocks(h, first, cache, 0, position, valid)
        if use_vq:
            h, _ = self.bottleneck(h, params["codebook"], threshold)
        h, cache = self.decode_blocks(h, second, cache, split, position, valid)
        h = _rms_norm(h, params["final_norm"])
        return self.logits(params, h)[:, 0], cache

    def generate(self, params, prompt, key, temperature, prompt_mask=None, *, use_vq: bool,
                 threshold: float | None, max_new_tokens: int):
        """``prompt`` followed by ``max_new_tokens`` tokens: a prefill, then one scan step per
        token. ``prompt_mask`` (False: left padding) hides padding from every query."""
        # Decoding is bound by reading the weights once per token: quantize them
        # once and read the float ones in the compute dtype (cast once here)
        # rather than in float32 every step.
        params = _matmul_weights_in(self.inference_params(params), self.compute)
        h, keys, values, _, _ = self.hidden(params, prompt, use_vq=use_vq, threshold=threshold,
                                            keep_kv=True, mask=prompt_mask)
        valid = (None if prompt_mask is None else
                 jnp.pad(prompt_mask, [(0, 0), (0, max_new_tokens)], constant_values=True))
        pad = [(0, 0), (0, 0), (0, max_new_tokens), (0, 0), (0, 0)]
        cache = (jnp.pad(keys, pad), jnp.pad(values, pad))

        def decode(token, position, cache):
            return self.decode(params, token, position, cache, use_vq=use_vq,
                               threshold=threshold, valid=valid)

        return self.sample(params, prompt, h[:, -1], cache, decode, key, temperature,
                           max_new_tokens)

    def sample(self, params, prompt, last_hidden, state, decode, key, temperature,
               max_new_tokens: int):
        """``prompt`` followed by ``max_new_tokens`` sampled tokens: the first from the
        prefill's ``last_hidden``, each next one scan step of ``decode(token, position,
        state) -> (logits, state)`` from the prefill's ``state``."""
        key, sub = jax.random.split(key)
        first = _pick(self.logits(params, last_hidden), sub, temperature)

        def step(carry, _):
            token, position, state, key = carry
            logits, state = decode(token, position, state)
            key, sub = jax.random.split(key)
            token = _pick(logits, sub, temperature)
            return (token, position + 1, state, key), token

        carry = (first, jnp.asarray(prompt.shape[1], jnp.int32), state, key)
        _, rest = lax.scan(step, carry, None, length=max_new_tokens - 1)
        generated = jnp.concatenate([first[:, None], rest.T.astype(first.dtype)], 1)
        return jnp.concatenate([prompt, generated.astype(prompt.dtype)], 1)


#: The name under which a rematerialized block's input is saved (or offloaded).
_BLOCK_INPUT = "block_input"

#: Parameters that only ever feed a matmul (the router and codebook do not:
#: routing and code lookup decide by small differences, kept in float32).
_MATMUL_WEIGHTS = frozenset({"embed", "wq", "wk", "wv", "wo", "w_in", "w_out"})


def _matmul_weights_in(params: Any, dtype: Any) -> Any:
    """``params`` with its matmul weights cast to ``dtype`` when that is narrower."""
    def cast(path, leaf):
        name = getattr(path[-1], "key", getattr(path[-1], "name", None))
        narrower = jnp.dtype(dtype).itemsize < leaf.dtype.itemsize
        return leaf.astype(dtype) if name in _MATMUL_WEIGHTS and narrower else leaf

    return jax.tree_util.tree_map_with_path(cast, params)


def _log_prob_of(logits: jax.Array, targets: jax.Array) -> jax.Array:
    picked = jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
    return picked - jax.nn.logsumexp(logits, -1)


def _split_layers(blocks: Any, at: int) -> tuple[Any, Any]:
    return jax.tree.map(lambda x: x[:at], blocks), jax.tree.map(lambda x: x[at:], blocks)


def _concat_layers(a: jax.Array | None, b: jax.Array | None) -> jax.Array:
    if a is None:
        return b
    return a if b is None else jnp.concatenate([a, b], 0)


def _pick(logits: jax.Array, key: jax.Array, temperature: jax.Array) -> jax.Array:
    """Next token: argmax at temperature 0, else a sample from softmax(logits / temperature).

    Temperature is a traced value, so changing it (even to or from 0) never recompiles.
    """
    greedy = jnp.argmax(logits, -1)
    sampled = jax.random.categorical(key, logits / jnp.maximum(temperature, 1e-6), -1)
    return jnp.where(temperature > 0, sampled, greedy)


class LossParts(NamedTuple):
    """The training loss and each term as it enters it: ``total`` is the sum of the others.

    ``vq_commitment`` carries ``vq_commitment_weight``, ``vq_diversity`` the
    diversity weight and ``load_balancing`` its weight (averaged over layers).
    """

    total: jax.Array
    cross_entropy: jax.Array
    vq_commitment: jax.Array
    vq_codebook: jax.Array
    vq_diversity: jax.Array
    load_balancing: jax.Array
