"""CapibaraGPT: the decoder-only language model a plan describes, computed by capibara kernels.

    model = capibara.Model(config)                    # compiles for this host
    model = Model.from_plan("dev.plan.json")          # or from a compiled plan
    logits = model.forward(tokens)                    # [batch, seq, vocab]
    parts = model.loss({"tokens": tokens})            # total and each part
    tokens = model.generate(prompt, max_new_tokens=32)
    metrics = model.train_step({"tokens": tokens})
    config.update_runtime_settings({"temperature": 0.8})
    model.apply_config_updates(config)                # re-JITs only what changed

The network is a set of pure functions of a parameter tree whose blocks are
stacked along a leading layer axis, so one ``lax.scan`` runs them (one block
to compile, however deep the model). Each block is RMSNorm → causal
attention (rotary positions, grouped KV heads) → RMSNorm → a feed-forward:
Mixture of Rookies through the ``moe`` kernel when the spec has experts, a
dense GELU MLP otherwise. With VQ, the hidden state after the first half of
the blocks is replaced by its nearest codebook vectors (the ``vq`` kernel);
the second half and the tied output projection read the quantized stream.

What the network computes *with* is a :class:`Kernels` bundle of four
callables (attention, vq, moe, matmul). :meth:`Kernels.from_variants` binds
the capibara kernel variants a plan chose; :meth:`Kernels.plain` is the same
network in straightforward JAX (``jax.nn.dot_product_attention``, dense
all-experts evaluation), the baseline the benchmark compares against.

Parameters live on a ``("data", "model")`` mesh (:func:`param_partition_specs`);
the batch is split over ``data``. Runtime-mutable settings change without
rebuilding (:meth:`Model.apply_config_updates`); everything else about a
built model is fixed (:class:`~capibara.model_spec.ModelSpec`).

What a plan records and how the model honours it:

- ``model``, ``precision``, ``mesh``: shapes, parameter and compute dtypes,
  the ``("data", "model")`` mesh.
- kernel specs: each family's variant with its static parameters. A linalg
  spec's weight format (``attrs.weights``: ``affine`` with ``bits`` and
  ``symmetric``, or ``bitnet`` at ``1.58bit``/``int8``/``int4``) applies to
  the block matmuls its ``uses`` name (``wq wk wv wo w_in w_out``); the tied
  output projection, router and Rookie experts are float, as their specs say.
  Training is quantization-aware (:func:`quantized_matmul`): float master
  weights, quantized in the forward pass, straight-through gradients;
  forward and generation quantize each weight once per call
  (:meth:`_Net.inference_params`) and multiply in the kernels' integer forms.
- ``precision.vq_codebook``: the lookup reads the codebook in that precision;
  ``int8`` is the vq kernels' int8 codebook (``quantize_codebook``), with a
  straight-through gradient to the float codebook in training.
- ``execution``: ``remat``, ``donate``, ``loss_chunk``;
  ``saved_activation_dtype`` is the dtype a rematerialized block's input is
  kept in (the block reads that copy); ``offload_activations`` keeps those
  inputs in ``pinned_host`` memory through JAX's offloading checkpoint
  policy; ``jit = false`` runs forward, loss, generation and the train step
  op by op; ``cache_compiled`` has no off switch here (jax.jit keeps what it
  compiled). Where the platform or the policy makes a setting moot (no
  ``pinned_host`` memory, a saved dtype without remat), :attr:`Model.notes`
  says so, as it does for records the model leaves to others: collective
  kernel specs (the model's reductions are those XLA's sharding inserts) and
  float16 loss scaling (not done). Nothing is dropped silently.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.ad_checkpoint import checkpoint_name
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from capibara.diagnostics import ConfigError
from capibara.kernels.base import Unsupported
from capibara.kernels.linalg import (AffineWeight, TernaryWeight, dequantize, quantize_rows,
                                     quantize_weight)
from capibara.kernels.moe import Experts, MoRResult
from capibara.kernels.vq import VQResult, quantize_codebook
from capibara.model_spec import ModelSpec, RunPolicy, WeightFormat, live_update_diagnostics
from capibara.plan import config_of_plan

__all__ = [
    "Model",
    "ModelSpec",
    "RunPolicy",
    "WeightFormat",
    "Kernels",
    "LossParts",
    "RuntimeSettings",
    "config_of_plan",
    "init_params",
    "param_partition_specs",
    "param_shardings",
    "make_mesh",
    "quantize_weight",
    "quantized_matmul",
    "host_offload_supported",
]

#: Rotary position base (RoPE's usual 10 000).
ROPE_BASE = 10_000.0
#: Weight init standard deviation (GPT-2's 0.02); output projections are
#: further scaled by 1/sqrt(2·layers) so the residual stream's variance does
#: not grow with depth.
INIT_STD = 0.02


# --------------------------------------------------------------------------- kernels


@dataclass(frozen=True)
class Kernels:
    """The callables the network computes with.

    - ``attention(q, k, v, *, causal, mask)``: ``q [B, Sq, H, D]``, ``k``/``v``
      ``[B, Skv, KV, D]`` → ``[B, Sq, H, D]``; ``mask`` (``[B, Skv]`` bool, or
      ``None``) marks the keys a query may see, on top of ``causal``.
    - ``vq(x, codebook, *, threshold)``: ``x [N, D]``, ``codebook [K, D]`` →
      :class:`~capibara.kernels.vq.VQResult` (commitment already weighted);
      ``threshold`` is the adaptive threshold, a Python float or ``None``.
    - ``moe(x, router, experts, *, top_k)``: ``x [N, D]``, ``router [D, E]``,
      :class:`~capibara.kernels.moe.Experts` → :class:`~capibara.kernels.moe.MoRResult`;
      the training step's routing, which may drop tokens past an expert's capacity.
    - ``moe_dropless``: the same routing without a capacity, for inference:
      with dropping, a token's output would depend on the other tokens in the
      batch (later ones included), so the forward pass would not be causal and
      cached generation could not reproduce it.
    - ``matmul(x, w)``: ``x [..., k] @ w [k, n]`` under the precision policy, float32 out.
    - ``attention_decode``: attention for a generation step, one query against
      the KV cache (default: ``attention``).
    """

    attention: Callable[..., jax.Array]
    vq: Callable[..., VQResult]
    moe: Callable[..., MoRResult]
    matmul: Callable[..., jax.Array]
    moe_dropless: Callable[..., MoRResult] | None = None
    attention_decode: Callable[..., jax.Array] | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.moe_dropless is None:
            object.__setattr__(self, "moe_dropless", self.moe)
        if self.attention_decode is None:
            object.__setattr__(self, "attention_decode", self.attention)

    @classmethod
    def plain(cls, spec: ModelSpec) -> "Kernels":
        """Straightforward JAX: what a user would write without capibara's kernels."""
        return cls(_plain_attention,
                   partial(_plain_vq, commitment_weight=spec.vq_commitment_weight),
                   _plain_moe,
                   partial(_plain_matmul, compute_dtype=jnp.dtype(spec.compute_dtype)), name="plain")

    @classmethod
    def from_variants(cls, spec: ModelSpec,
                      choices: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None) -> "Kernels":
        """capibara's kernels: per family (``attention``, ``vq``, ``moe``, ``linalg``)
        the named variant with its static parameters, as a plan's kernel specs give them.

        A family left out runs its ``reference``; ``linalg`` defaults to the
        spec's precision policy. An input a variant refuses
        (:class:`~capibara.kernels.base.Unsupported`, e.g. a decode step
        shorter than an attention tile) runs on the family's reference instead.
        """
        from capibara.kernels import attention, linalg, moe, vq

        choices = dict(choices or {})
        policy = {"param_dtype": spec.param_dtype, "compute_dtype": spec.compute_dtype,
                  "accumulate_dtype": "float32"}
        linalg_name, linalg_params = choices.get("linalg", ("reference", policy))
        # The precision policy is the call's meaning, not a tuning knob: the
        # reference fallback must compute with it too.
        policy = {k: v for k, v in {**policy, **linalg_params}.items() if k in policy}
        tuning = {k: v for k, v in linalg_params.items() if k not in policy}
        moe_name, moe_params = choices.get("moe", ("reference", {}))
        dropless = ({**moe_params, "capacity_factor": None} if "capacity_factor" in moe_params
                    else moe_params)
        return cls(
            attention=_variant(attention.VARIANTS, *choices.get("attention", ("reference", {}))),
            vq=partial(_variant_call, _variant(vq.VARIANTS, *choices.get("vq", ("reference", {}))),
                       commitment_weight=spec.vq_commitment_weight),
            moe=_variant(moe.VARIANTS, moe_name, moe_params),
            matmul=partial(_variant(linalg.VARIANTS, linalg_name, tuning), **policy),
            moe_dropless=_variant(moe.VARIANTS, moe_name, dropless),
            # One query row against the cache is the reference's whole score
            # matrix; tiling it only adds loop steps (generation at the dev
            # shape: 2.1 s with the reference vs 2.7 s with cpu_bf16 tiles).
            attention_decode=_variant(attention.VARIANTS, "reference", {}),
            name="capibara")


def _variant(variants: Mapping[str, Any], name: str, params: Mapping[str, Any]) -> Callable[..., Any]:
    """``variants[name]`` bound to ``params``, falling back to ``variants["reference"]``
    (with the call's own keywords only) when it raises ``Unsupported``."""
    chosen, reference = variants[name], variants["reference"]
    params = dict(params)

    def call(*args, **kwargs):
        try:
            return chosen(*args, **kwargs, **params)
        except Unsupported:
            return reference(*args, **kwargs)

    call.__name__ = f"{chosen.family}_{name}"
    return call


def _variant_call(fn: Callable[..., VQResult], x, codebook, *, threshold, commitment_weight):
    return fn(x, codebook, commitment_weight=commitment_weight, adaptive_threshold=threshold)


def _plain_matmul(x, w, *, compute_dtype):
    if isinstance(w, (AffineWeight, TernaryWeight)):
        # Fake quantization, as one writes it by hand: the rounded operands in float32.
        return _float_quantized_product(x, w)
    return jnp.matmul(x.astype(compute_dtype), w.astype(compute_dtype),
                      preferred_element_type=jnp.float32)


def _plain_attention(q, k, v, *, causal, mask=None):
    mask = None if mask is None else mask[:, None, None, :]
    return jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal)


def _plain_vq(x, codebook, *, threshold, commitment_weight):
    # The same definitions as capibara.kernels.vq (VQResult's docstring), written
    # the obvious way: one distance matrix, one-hot counts.
    sg = lax.stop_gradient
    x = x.astype(jnp.float32)
    codebook = (dequantize(codebook) if isinstance(codebook, AffineWeight)
                else codebook.astype(jnp.float32))
    distances = (jnp.sum(x * x, -1, keepdims=True) - 2 * x @ codebook.T
                 + jnp.sum(codebook * codebook, -1))
    indices = jnp.argmin(distances, -1).astype(jnp.int32)
    chosen = codebook[indices]
    errors = jnp.sum(jnp.square(x - sg(chosen)), -1)
    bypassed = (jnp.zeros(x.shape[0], bool) if threshold is None
                else sg(errors) > threshold * sg(jnp.sum(x * x, -1)))
    quantized = jnp.where(bypassed[:, None], x, sg(chosen) + (x - sg(x)))
    commitment = commitment_weight * jnp.mean(jnp.square(x - sg(chosen)))
    codebook_loss = jnp.mean(jnp.square(sg(x) - chosen))
    usage = jnp.mean(jax.nn.softmax(-distances / x.shape[1], -1), 0)
    diversity = math.log(codebook.shape[0]) + jnp.sum(usage * jnp.log(usage))
    frequencies = jnp.mean(jax.nn.one_hot(indices, codebook.shape[0]), 0)
    perplexity = jnp.exp(-jnp.sum(jnp.where(frequencies > 0, frequencies * jnp.log(
        jnp.where(frequencies > 0, frequencies, 1.0)), 0.0)))
    return VQResult(quantized, indices, commitment, codebook_loss, diversity, perplexity, bypassed)


def _plain_moe(x, router, experts, *, top_k):
    # Every expert on every token, weighted by the renormalized top-k gates.
    probs = jax.nn.softmax(x.astype(jnp.float32) @ router.astype(jnp.float32), -1)
    top_p, top_i = lax.top_k(probs, top_k)
    num_experts = probs.shape[-1]
    chosen = jax.nn.one_hot(top_i, num_experts, dtype=probs.dtype)       # [N, k, E]
    gates = jnp.einsum("nk,nke->ne", top_p / jnp.sum(top_p, -1, keepdims=True), chosen)
    hidden = jax.nn.gelu(jnp.einsum("nd,edf->nef", x, experts.w_in))
    out = jnp.einsum("nef,efd->ned", hidden, experts.w_out)
    y = jnp.einsum("ne,ned->nd", gates, out)
    fraction = jnp.mean(jnp.sum(chosen, 1), 0) / top_k
    balance = num_experts * jnp.sum(fraction * jnp.mean(probs, 0))
    return MoRResult(y, balance, fraction, jnp.zeros(()))


# --------------------------------------------------------------------------- parameters


def init_params(spec: ModelSpec, key: jax.Array) -> dict[str, Any]:
    """A fresh parameter tree for ``spec`` from ``key``, in ``spec.param_dtype``.

    Blocks are stacked: every leaf under ``"blocks"`` has a leading
    ``num_layers`` axis.
    """
    d, L, dh = spec.d_model, spec.num_layers, spec.head_dim
    keys = iter(jax.random.split(key, 12))
    out_std = INIT_STD / math.sqrt(2 * L)

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


# --------------------------------------------------------------------------- quantized weights


def _rounded_activations(x: jax.Array, w: AffineWeight | TernaryWeight) -> jax.Array:
    """``x`` as an integer kernel multiplies it, in float32: rounded to int8 per
    row when ``w`` is stored in int8 (W8A8); 16-bit weights keep float rows."""
    x = x.astype(jnp.float32)
    stored = w.t if isinstance(w, TernaryWeight) else w.q
    if stored.dtype != jnp.int8:
        return x
    qx, sx = quantize_rows(x)
    return sx * qx.astype(jnp.float32)


def _float_quantized_product(x: jax.Array, w: AffineWeight | TernaryWeight) -> jax.Array:
    """``x @ w`` on the values the integer kernels multiply, in float32."""
    return jnp.matmul(_rounded_activations(x, w), dequantize(w), precision=lax.Precision.HIGHEST)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def quantized_matmul(matmul: Callable[..., jax.Array], fmt: WeightFormat, x: jax.Array,
                     w: jax.Array) -> jax.Array:
    """``matmul(x, quantize_weight(fmt, w))`` with a straight-through gradient.

    Quantization-aware training: the float master weight ``w`` is what the
    optimizer updates, the forward pass multiplies its quantized form with the
    kernel, and the backward pass treats both roundings (weight levels, int8
    activation rows) as the identity, since rounding has zero derivative
    almost everywhere and would stop training dead.
    """
    return matmul(x, quantize_weight(fmt, w))


def _quantized_matmul_fwd(matmul, fmt, x, w):
    qw = quantize_weight(fmt, w)
    # The integer weight is the residual (a quarter of the float one at int8);
    # the empty array only remembers the master weight's dtype for its gradient.
    return matmul(x, qw), (x, qw, jnp.zeros((0,), w.dtype))


def _quantized_matmul_bwd(matmul, fmt, residuals, g):
    x, qw, w_dtype = residuals
    g = g.astype(jnp.float32)
    w_float = dequantize(qw)
    k, n = w_float.shape
    gx = jnp.matmul(g, w_float.T, precision=lax.Precision.HIGHEST)
    rows = _rounded_activations(x, qw).reshape(-1, k)
    gw = jnp.matmul(rows.T, g.reshape(-1, n), precision=lax.Precision.HIGHEST)
    return gx.astype(x.dtype), gw.astype(w_dtype.dtype)


quantized_matmul.defvjp(_quantized_matmul_fwd, _quantized_matmul_bwd)


# --------------------------------------------------------------------------- the network


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


class _Net:
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
        if fmt.kind == "float" or isinstance(w, (AffineWeight, TernaryWeight)):
            return self.kernels.matmul(x, w)
        return quantized_matmul(self.kernels.matmul, fmt, x, w)

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
            y, balance = self.dense(inner, layer, "w_out"), jnp.zeros(())
        return y.reshape(b, t, d).astype(jnp.float32), balance

    def block_updates(self, x, layer, positions, train: bool = False):
        """What one block adds to its input ``x``: the attention sublayer's update,
        the feed-forward's (read at ``x`` plus the first), and the block's keys,
        values and balance loss."""
        b, t, _ = x.shape
        q, k, v = self.qkv(_rms_norm(x, layer["attn_norm"]), layer, positions)
        a = self.kernels.attention(q, k, v, causal=True, mask=None)
        attn = self.dense(a.reshape(b, t, -1), layer, "wo").astype(jnp.float32)
        ffn, balance = self.feed_forward(x + attn, layer, train)
        return attn, ffn, (k, v, balance)

    def blocks(self, h, blocks, positions, *, remat: bool, train: bool = False,
               keep_kv: bool = False):
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
            return self.block_updates(h, layer, positions, train)

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
               remat: bool = False, train: bool = False, keep_kv: bool = False):
        """Final hidden states, per-layer keys/values (with ``keep_kv``) and the
        auxiliary losses."""
        s = self.spec
        h = params["embed"][tokens].astype(jnp.float32)
        positions = jnp.arange(tokens.shape[1])
        first, second = _split_layers(params["blocks"], s.vq_after_layer if s.use_vq else s.num_layers)
        h, k1, v1, balance1 = self.blocks(h, first, positions, remat=remat, train=train,
                                          keep_kv=keep_kv)
        vq = None
        if use_vq:
            h, vq = self.bottleneck(h, params["codebook"], threshold)
        h, k2, v2, balance2 = self.blocks(h, second, positions, remat=remat, train=train,
                                          keep_kv=keep_kv)
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
        return self.kernels.matmul(h, params["embed"].T).astype(jnp.float32)

    def target_log_probs(self, params, h, targets):
        """``log p(target)`` at each position, ``loss_chunk`` tokens at a time when set."""
        chunk = self.loss_chunk
        if chunk is None or chunk >= targets.size:
            return _log_prob_of(self.logits(params, h), targets)
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
            return _log_prob_of(self.logits(params, chunk_h), chunk_t)

        return lax.map(one, (flat_h, flat_t)).reshape(-1)[:count].reshape(targets.shape)

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

    def decode_blocks(self, h, blocks, cache, first_layer, position):
        """One new token through ``blocks``, reading and extending the KV cache in place."""
        if not jax.tree.leaves(blocks) or jax.tree.leaves(blocks)[0].shape[0] == 0:
            return h, cache
        b = h.shape[0]
        length = cache[0].shape[2]
        visible = jnp.broadcast_to(jnp.arange(length) <= position, (b, length))

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

    def decode(self, params, token, position, cache, *, use_vq: bool, threshold: float | None):
        s = self.spec
        h = params["embed"][token][:, None, :].astype(jnp.float32)
        split = s.vq_after_layer if s.use_vq else s.num_layers
        first, second = _split_layers(params["blocks"], split)
        h, cache = self.decode_blocks(h, first, cache, 0, position)
        if use_vq:
            h, _ = self.bottleneck(h, params["codebook"], threshold)
        h, cache = self.decode_blocks(h, second, cache, split, position)
        h = _rms_norm(h, params["final_norm"])
        return self.logits(params, h)[:, 0], cache

    def generate(self, params, prompt, key, temperature, *, use_vq: bool,
                 threshold: float | None, max_new_tokens: int):
        """``prompt`` followed by ``max_new_tokens`` tokens: a prefill, then one scan step per token."""
        # Decoding is bound by reading the weights once per token: quantize them
        # once and read the float ones in the compute dtype (cast once here)
        # rather than in float32 every step.
        params = _matmul_weights_in(self.inference_params(params), self.compute)
        prompt_len = prompt.shape[1]
        h, keys, values, _, _ = self.hidden(params, prompt, use_vq=use_vq, threshold=threshold,
                                            keep_kv=True)
        pad = [(0, 0), (0, 0), (0, max_new_tokens), (0, 0), (0, 0)]
        cache = (jnp.pad(keys, pad), jnp.pad(values, pad))
        key, sub = jax.random.split(key)
        first = _pick(self.logits(params, h[:, -1]), sub, temperature)

        def step(carry, _):
            token, position, cache, key = carry
            logits, cache = self.decode(params, token, position, cache, use_vq=use_vq,
                                        threshold=threshold)
            key, sub = jax.random.split(key)
            token = _pick(logits, sub, temperature)
            return (token, position + 1, cache, key), token

        carry = (first, jnp.asarray(prompt_len, jnp.int32), cache, key)
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


def _op_by_op(fn: Callable[..., Any], **jit_options: Any) -> Callable[..., Any]:
    """``fn`` as it is, for ``jit = false``: JAX runs it one operation at a time
    (``jit_options``, the static arguments, shardings and donation a
    ``jax.jit`` would take, mean nothing here)."""
    return fn


def host_offload_supported(mesh: Mesh) -> bool:
    """Whether every device of ``mesh`` has ``pinned_host`` memory to offload to."""
    def kinds(device):
        try:
            return {memory.kind for memory in device.addressable_memories()}
        except (AttributeError, NotImplementedError, RuntimeError):
            return set()

    return all("pinned_host" in kinds(device) for device in mesh.devices.flat)


def _execution_notes(policy: RunPolicy, mesh: Mesh) -> tuple[list[str], bool, bool]:
    """What the model says about how it honours ``policy``: the notes, whether the
    training step rematerializes blocks, and whether kept inputs are offloaded."""
    notes = []
    offload = policy.offload_activations
    if offload and not host_offload_supported(mesh):
        offload = False
        platform = mesh.devices.flat[0].platform
        notes.append(f"execution.offload_activations is on, but {platform} devices here have no "
                     "`pinned_host` memory to offload to: kept block inputs stay in device memory")
    elif offload and mesh.devices.flat[0].platform == "cpu":
        notes.append("execution.offload_activations: on cpu the host memory kept block inputs "
                     "are offloaded to is the device's own memory, so offloading saves nothing")
    remat = policy.remat or offload
    if offload and not policy.remat:
        notes.append("execution.offload_activations without remat: JAX offloads what a "
                     "checkpoint policy keeps, so each block keeps only its input (in host "
                     "memory) and is recomputed in the backward pass, as with "
                     "`gradient_checkpointing`")
    if policy.saved_activation_dtype != "float32" and not remat:
        notes.append(f"execution.saved_activation_dtype is {policy.saved_activation_dtype}, but "
                     "without remat (`gradient_checkpointing = false`) no block input is kept "
                     "for the backward pass: activations stay in the dtypes they are computed in")
    if not policy.jit:
        notes.append("execution.jit is false (`enable_jit = false`): forward, loss, generation "
                     "and the train step run op by op, without donating buffers; parameters and "
                     "optimizer state are still initialized by one compiled program, which "
                     "places them on the mesh")
    return notes, remat, offload


def _plan_notes(plan: Any) -> list[str]:
    """What the model says about plan records it does not act on itself."""
    notes = []
    if plan.execution.jit and not plan.execution.cache_compiled:
        notes.append("execution.cache_compiled is false (`cache_compiled_functions`), but a "
                     "jitted model keeps each compiled program in memory for its life anyway "
                     "(jax.jit's cache)")
    if plan.precision.loss_scaling:
        notes.append(f"precision.loss_scaling is on ({plan.precision.compute} compute), but the "
                     "training step does not scale the loss: small gradients may underflow")
    for kernel in plan.kernels:
        if kernel.family == "collective":
            notes.append(f"kernel `{kernel.name}` ({kernel.family}/{kernel.implementation}): the "
                         "model's reductions are the ones XLA inserts for its sharded arrays; "
                         "the plan's collective kernels run under `capibara run`")
    return notes


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


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class RuntimeSettings:
    """The runtime-mutable fields the compiled functions read (PARAMS.md §c).

    ``temperature`` is passed as a traced value (changing it compiles
    nothing); ``use_vq`` (a bypass of the bottleneck, A34) and
    ``vq_adaptive_threshold`` change the traced program and are static
    arguments, so changing them compiles each function once more on its next
    call. The other runtime fields (logging, monitoring, batch size) live in
    the config only: the network does not read them.
    """

    temperature: float
    use_vq: bool
    vq_adaptive_threshold: float

    @classmethod
    def from_config(cls, config: Any) -> "RuntimeSettings":
        return cls(float(config.temperature), bool(config.use_vq),
                   float(config.vq_adaptive_threshold))


class Model:
    """A CapibaraGPT model: parameters on a device mesh plus compiled forward,
    loss, generation and training functions (see the module docstring).

    ``Model(config)`` compiles for the host and builds from the plan;
    :meth:`from_plan` takes a compiled plan; :meth:`build` an explicit spec
    and kernel bundle.
    """

    spec: ModelSpec
    kernels: Kernels
    mesh: Mesh
    params: Any
    step: int
    #: How the model honours its plan where that is not plain (offloading on a
    #: platform without host memory, ``jit = false``): one sentence each, for
    #: the caller to show.
    notes: list[str]

    def __init__(self, config: Any, *, target: Any = None, seed: int = 0) -> None:
        """Compile ``config`` for ``target`` (default: the detected host) and build
        the model that plan describes; see :meth:`from_plan`.

        Diagnostics that stop the compile raise :class:`ConfigError`.
        """
        from capibara.compiler import compile_config

        result = compile_config(config, target)
        if result.has_errors:
            raise ConfigError(result.diagnostics)
        self._setup_from_plan(result.plan, config, seed)

    @classmethod
    def from_plan(cls, compiled_or_path: Any, *, config: Any = None, seed: int = 0) -> "Model":
        """The model a compiled plan describes: its shapes, precision, mesh, kernel
        variants with their static parameters, and execution policy.

        ``compiled_or_path`` is a :class:`~capibara.plan.Plan`, a plan file, or
        anything with a ``.plan`` (the runtime's ``CompiledPlan``). ``config``
        defaults to the one the plan was compiled from, rebuilt from its
        resolved values with their explicitness.
        """
        from capibara.plan import Plan, load_plan_file

        plan = compiled_or_path
        if isinstance(plan, (str, os.PathLike)):
            plan = load_plan_file(plan)
        elif not isinstance(plan, Plan):
            plan = plan.plan
        self = cls.__new__(cls)
        self._setup_from_plan(plan, config if config is not None else config_of_plan(plan), seed)
        return self

    def _setup_from_plan(self, plan: Any, config: Any, seed: int) -> None:
        spec = ModelSpec.from_plan(plan, config)
        choices = {}
        for kernel in plan.kernels:
            if kernel.family in ("attention", "vq", "moe", "linalg"):
                # Deduplicated linalg sites share one precision policy; the first
                # spec of each family stands for every call site of that family.
                choices.setdefault(kernel.family, (kernel.implementation, dict(kernel.params)))
        policy = RunPolicy.from_execution(plan.execution)
        if plan.mesh.devices > jax.device_count():
            raise ValueError(f"the plan's mesh {list(plan.mesh.shape)} needs {plan.mesh.devices} "
                             f"devices, {jax.device_count()} present")
        self._setup(spec, Kernels.from_variants(spec, choices), config,
                    make_mesh(tuple(plan.mesh.shape)), seed, policy)
        self.plan = plan
        self.notes.extend(_plan_notes(plan))

    @classmethod
    def build(cls, spec: ModelSpec, kernels: Kernels, config: Any, *, mesh: Mesh | None = None,
              policy: RunPolicy | None = None, seed: int = 0) -> "Model":
        """A model for ``spec`` computed with ``kernels``, parameters initialized from ``seed``.

        ``config`` is the ``ModularModelConfig`` it was built from: its
        runtime fields and ``[training]`` section drive generation and
        training, and :meth:`apply_config_updates` compares against it.
        ``policy`` defaults to :meth:`RunPolicy.from_config`.
        """
        self = cls.__new__(cls)
        self._setup(spec, kernels, config, mesh if mesh is not None else make_mesh(), seed,
                    policy if policy is not None else RunPolicy.from_config(config))
        self.plan = None
        return self

    def _setup(self, spec: ModelSpec, kernels: Kernels, config: Any, mesh: Mesh, seed: int,
               policy: RunPolicy) -> None:
        from capibara import training

        if config.use_vq and not spec.use_vq:
            raise ConfigError(live_update_diagnostics(config, config, built_with_vq=False))
        self.spec, self.kernels, self.mesh, self.policy = spec, kernels, mesh, policy
        self._config = copy.copy(config)
        self._runtime = RuntimeSettings.from_config(config)
        self.notes, self._remat, offload = _execution_notes(policy, mesh)
        net = self._net = _Net(spec, kernels, policy.loss_chunk,
                               saved_activation_dtype=policy.saved_activation_dtype,
                               offload_activations=offload)
        compiled = jax.jit if policy.jit else _op_by_op
        abstract = jax.eval_shape(partial(init_params, spec), jax.random.key(0))
        self._param_shardings = param_shardings(spec, abstract, mesh)
        # Initialize straight into the sharded layout: no device ever holds the whole tree.
        self.params = jax.jit(partial(init_params, spec),
                              out_shardings=self._param_shardings)(jax.random.key(seed))
        self.step = 0
        self._forward = compiled(net.forward, static_argnames=("use_vq", "threshold"))
        self._loss = compiled(net.loss, static_argnames=("use_vq", "threshold", "remat"))
        self._generate = compiled(net.generate,
                                  static_argnames=("use_vq", "threshold", "max_new_tokens"))
        self._optimizer = training.make_optimizer(config)
        # Optimizer moments are laid out like the parameters they track; the step
        # returns both in the same layout it got them, so it compiles once.
        self._state_shardings = optax.tree_map_params(
            self._optimizer, lambda _, sharding: sharding,
            jax.eval_shape(self._optimizer.init, abstract), self._param_shardings,
            transform_non_params=lambda _: NamedSharding(mesh, P()))
        self._train = compiled(
            training.make_train_step(net.loss, self._optimizer,
                                     training.learning_rate_schedule(config)),
            static_argnames=("use_vq", "threshold", "remat", "train"),
            donate_argnums=(0, 1) if policy.donate else (),
            out_shardings=(self._param_shardings, self._state_shardings, None))
        self._opt_state = None
        self._checkpoints = None

    # ----------------------------------------------------------------- inputs

    def _place(self, array: Any) -> jax.Array:
        """Put a batch-major array on the mesh, split over ``data`` when it divides evenly."""
        array = jnp.asarray(array)
        data = self.mesh.shape["data"]
        batch_axis = "data" if array.ndim and array.shape[0] % data == 0 else None
        return jax.device_put(array, NamedSharding(self.mesh, P(batch_axis)))

    def _tokens(self, tokens: Any, what: str = "tokens") -> jax.Array:
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"{what} must be an integer array [batch, seq], got "
                             f"{tokens.dtype}{list(tokens.shape)}")
        if tokens.shape[1] > self.spec.max_seq_len:
            raise ValueError(f"{what} length {tokens.shape[1]} exceeds "
                             f"max_seq_length={self.spec.max_seq_len}")
        return self._place(tokens)

    def _batch(self, batch: Any) -> dict[str, jax.Array]:
        if not isinstance(batch, Mapping):
            batch = {"tokens": batch}
        placed = {"tokens": self._tokens(batch["tokens"])}
        if batch.get("mask") is not None:
            placed["mask"] = self._place(batch["mask"])
        return placed

    def _static(self) -> dict[str, Any]:
        return {"use_vq": self._runtime.use_vq,
                "threshold": self._runtime.vq_adaptive_threshold if self._runtime.use_vq else None}

    # ----------------------------------------------------------------- computing

    def forward(self, tokens: Any) -> jax.Array:
        """Logits ``[batch, seq, vocab]`` (float32) for integer ``tokens [batch, seq]``."""
        return self._forward(self.params, self._tokens(tokens), **self._static())

    def loss(self, batch: Any) -> LossParts:
        """The training loss on ``batch`` (``{"tokens": [B, S], "mask": [B, S]}``
        or a token array), with each of its parts; see :class:`LossParts`."""
        return self._loss(self.params, self._batch(batch), **self._static())

    def generate(self, prompt: Any, max_new_tokens: int, *, seed: int = 0) -> jax.Array:
        """``prompt [batch, len]`` followed by ``max_new_tokens`` generated tokens.

        Uses a KV cache: one prefill over the prompt, then one cached step per
        token. The config's ``temperature`` picks the token: 0 takes the
        argmax, otherwise a sample from ``softmax(logits / temperature)``
        drawn from ``seed`` (the same seed gives the same tokens).
        """
        if max_new_tokens < 1:
            raise ValueError(f"{max_new_tokens=} must be at least 1")
        prompt = self._tokens(prompt, "prompt")
        if prompt.shape[1] + max_new_tokens > self.spec.max_seq_len:
            raise ValueError(f"prompt length {prompt.shape[1]} + {max_new_tokens=} exceeds "
                             f"max_seq_length={self.spec.max_seq_len}")
        temperature = jnp.asarray(self._runtime.temperature, jnp.float32)
        return self._generate(self.params, prompt, jax.random.key(seed), temperature,
                              max_new_tokens=max_new_tokens, **self._static())

    def init_codebook(self, batch: Any, *, seed: int = 0) -> None:
        """Set the VQ codebook to hidden states of ``batch`` at the bottleneck.

        Randomly initialized codes lie far from every hidden state, so the
        adaptive threshold bypasses all of them until the codebook loss has
        pulled codes close; codes drawn from real hidden states are used from
        the first step (the data initialization VQ codecs use).
        """
        if not self.spec.use_vq:
            raise ValueError("this model has no VQ codebook (built with use_vq = false)")
        tokens = self._batch(batch)["tokens"]
        before = (jax.jit if self.policy.jit else _op_by_op)(self._net.before_bottleneck)
        rows = before(self.params, tokens).reshape(-1, self.spec.d_model)
        codes = self.spec.vq_codes
        chosen = jax.random.choice(jax.random.key(seed), rows.shape[0], (codes,),
                                   replace=rows.shape[0] < codes)
        codebook = rows[chosen].astype(self.params["codebook"].dtype)
        self.params = {**self.params,
                       "codebook": jax.device_put(codebook, self._param_shardings["codebook"])}

    # ----------------------------------------------------------------- training

    @property
    def opt_state(self) -> Any:
        """The optimizer state (created on first use)."""
        if self._opt_state is None:
            self._opt_state = jax.jit(self._optimizer.init,
                                      out_shardings=self._state_shardings)(self.params)
        return self._opt_state

    def train_step(self, batch: Any) -> dict[str, jax.Array]:
        """One optimizer step on ``batch``; returns the loss parts, gradient norm and
        learning rate. With :meth:`checkpoint_to` set, saves every
        ``save_checkpoint_steps`` steps. ``gradient_checkpointing`` recomputes
        each block's activations in the backward pass instead of storing them."""
        params, opt_state, metrics = self._train(
            self.params, self.opt_state, self._batch(batch), jnp.asarray(self.step, jnp.int32),
            remat=self._remat, train=True, **self._static())
        self.params, self._opt_state = params, opt_state
        self.step += 1
        if self._checkpoints is not None:
            self._checkpoints.maybe_save(self.step, self._state())
        return metrics

    # ----------------------------------------------------------------- checkpoints

    def checkpoint_to(self, directory: Any) -> None:
        """Save checkpoints into ``directory`` as the config's ``[training]`` says:
        every ``save_checkpoint_steps``, keeping ``keep_checkpoint_max``,
        compressed if ``checkpoint_compression``, in the background if
        ``async_checkpointing``."""
        from capibara.checkpoint import CheckpointManager

        c = self._config
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._checkpoints = CheckpointManager(
            directory, save_every=c.save_checkpoint_steps, keep_max=c.keep_checkpoint_max,
            compress=c.checkpoint_compression, asynchronous=c.async_checkpointing)

    def _state(self) -> dict[str, Any]:
        return {"params": self.params, "opt_state": self.opt_state,
                "step": np.asarray(self.step, np.int64)}

    def _manager(self):
        if self._checkpoints is None:
            raise ValueError("no checkpoint directory: call model.checkpoint_to(directory) first")
        return self._checkpoints

    def save_checkpoint(self) -> None:
        """Save parameters, optimizer state and step now (see :meth:`checkpoint_to`)."""
        self._manager().save(self.step, self._state())

    def restore_checkpoint(self, step: int | None = None) -> int:
        """Load a checkpoint (default: the newest) into this model; return its step.

        A checkpoint whose arrays differ from this model's (another shape,
        dtype or structure) is refused with a :class:`ConfigError` naming them.
        """
        state = self._manager().restore(self._state(), step)
        self.params, self._opt_state = state["params"], state["opt_state"]
        self.step = int(state["step"])
        return self.step

    def wait_for_checkpoints(self) -> None:
        """Block until a background checkpoint write has finished."""
        if self._checkpoints is not None:
            self._checkpoints.wait()

    # ----------------------------------------------------------------- configuration

    def get_current_config(self) -> Any:
        """A snapshot copy of the model's configuration; changing it changes nothing here."""
        return copy.copy(self._config)

    def apply_config_updates(self, config: Any) -> None:
        """Adopt ``config``'s runtime-mutable fields, all or nothing (PARAMS.md §c).

        ``config`` is validated first (cross-field rules, C1–C58) and refused
        if it has errors. Every field that differs from the model's current
        config must be runtime-mutable: a changed shape, device or training
        field is refused with an error naming each, since only a rebuilt model
        can honour it. Turning ``use_vq`` on for a model built without a
        codebook is refused too (A34). Only what the change touches is
        compiled again: a new ``temperature`` compiles nothing.
        """
        from capibara.validate import check_config

        check_config(config)
        refused = live_update_diagnostics(self._config, config, built_with_vq=self.spec.use_vq)
        if refused:
            raise ConfigError([replace(d, notes=d.notes + ("apply_config_updates changed nothing",))
                               for d in refused])
        runtime = RuntimeSettings.from_config(config)
        self._config, self._runtime = copy.copy(config), runtime

    def compiled_counts(self) -> dict[str, int]:
        """How many programs each compiled function holds (one per static setting and
        shape); all 0 when the plan says ``jit = false``."""
        return {name: fn._cache_size() if self.policy.jit else 0 for name, fn in (
            ("forward", self._forward), ("loss", self._loss), ("generate", self._generate),
            ("train_step", self._train))}
