"""The kernel bundle the network computes with: a plan's bound kernels
(:meth:`Kernels.from_bound`), capibara's variants chosen by hand
(:meth:`Kernels.from_variants`), or the same network in plain JAX
(:meth:`Kernels.plain`), the baseline the model benchmark compares against.
A bundle with :class:`Collectives` trains through the explicit sharded step
(:mod:`capibara.model.sharded_step`) on a mesh of more than one device."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from jax import lax

from capibara.compiler.model_spec import ModelSpec
from capibara.kernels.base import Unsupported
from capibara.kernels.linalg import AffineWeight, TernaryWeight, dequantize
from capibara.kernels.moe import MoRResult
from capibara.kernels.vq import VQResult
from capibara.model.quantized import float_quantized_product


@dataclass(frozen=True)
class Collectives:
    """The collective kernels the explicit sharded train step calls inside ``shard_map``.

    ``data`` and ``model`` are the collective family's per-shard variant
    functions (``fn(*blocks, op=..., axis_name=...)``) for each mesh axis;
    ``sites`` maps a recorded call site (``grads.all_reduce``,
    ``blocks.attention_in``) to the plan's bound kernel for it, already bound
    to its operation and axes. :meth:`at` gives a site's kernel, or for a
    collective no spec records (the embedding's reduce-scatter, the loss's
    vocabulary sums) the same axis's variant.
    """

    data: Callable[..., Any]
    model: Callable[..., Any]
    sites: Mapping[str, Callable[..., Any]] = field(default_factory=dict, compare=False)

    @classmethod
    def variant(cls, name: str) -> "Collectives":
        """Every collective through variant ``name`` (``reference``, ``decomposed``)."""
        from capibara.kernels.collective import VARIANTS

        return cls(VARIANTS[name].fn, VARIANTS[name].fn)

    def at(self, site: str | None, op: str, axis: str) -> Callable[..., Any]:
        """The kernel for ``site``, else ``op`` over ``axis`` by that axis's variant."""
        if site is not None and site in self.sites:
            return self.sites[site]
        return partial(self.data if axis == "data" else self.model, op=op, axis_name=axis)


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
    - ``scan(a, b)``: ``h_t = a_t h_{t-1} + b_t`` over axis 1 of ``[B, S, C]``
      from a zero state (``ssm`` blocks).
    - ``conv(x, w)``: depthwise causal conv1d, ``x [B, S, C]``, ``w [width, C]``
      (the short conv of ``ssm`` and ``hyena`` blocks).
    - ``long_conv(u, k)``: causal long convolution, ``u [C, L]``, ``k [C, K]``
      (``hyena`` blocks).
    - ``collectives``: the :class:`Collectives` of the explicit sharded train
      step; ``None`` leaves a sharded step to XLA's automatic partitioning.
    """

    attention: Callable[..., jax.Array]
    vq: Callable[..., VQResult]
    moe: Callable[..., MoRResult]
    matmul: Callable[..., jax.Array]
    moe_dropless: Callable[..., MoRResult] | None = None
    attention_decode: Callable[..., jax.Array] | None = None
    scan: Callable[..., jax.Array] | None = None
    conv: Callable[..., jax.Array] | None = None
    long_conv: Callable[..., jax.Array] | None = None
    collectives: Collectives | None = None
    sites: Mapping[str, Callable[..., Any]] = field(default_factory=dict, compare=False)
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
                   partial(_plain_matmul, compute_dtype=jnp.dtype(spec.compute_dtype)),
                   scan=_plain_scan, conv=_plain_conv, long_conv=_plain_long_conv, name="plain")

    def at(self, site: str, family_default: Callable[..., Any]) -> Callable[..., Any]:
        """The kernel a plan bound for call site ``site`` (``hyena_blocks.conv``), else the family's."""
        return self.sites.get(site, family_default)

    @classmethod
    def from_bound(cls, spec: ModelSpec, kernels: Any) -> "Kernels":
        """The plan's bound kernels (:func:`capibara.runtime.loader.bind`, a
        ``KernelSet``): the one path from a plan to the functions it names.

        attention (training and prefill), linalg, scan, conv and fft call the
        bound kernels themselves, with the fallback and notes the loader gave
        them; linalg, scan, conv and fft per call site (``sites``, from each
        spec's ``uses``). vq and moe take per-call values a bound kernel fixes (the
        runtime-mutable VQ threshold, the dropless inference routing), so they
        bind the same variant and parameters here; a generation step's
        attention (one query against the cache, with a mask) has no spec and
        runs the reference. Collective specs make the bundle's
        :class:`Collectives`, each site through its bound kernel's per-shard
        function (``shard_fn``), so a sharded train step is the explicit one.
        """
        return _from_bound(cls, spec, kernels)

    @classmethod
    def from_variants(cls, spec: ModelSpec,
                      choices: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None) -> "Kernels":
        """capibara's kernels: per family (``attention``, ``vq``, ``moe``, ``linalg``)
        the named variant with its static parameters, as a plan's kernel specs give them.

        A family left out runs its ``reference``; ``linalg`` defaults to the
        spec's precision policy. An input a variant refuses
        (:class:`~capibara.kernels.base.Unsupported`, e.g. a decode step
        shorter than an attention tile) runs on the family's reference instead.
        ``collective``, when given, selects the explicit sharded train step
        with that variant (:class:`Collectives`).
        """
        from capibara.kernels import attention, conv, fft, linalg, moe, scan, vq

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
            scan=_variant(scan.VARIANTS, *choices.get("scan", ("reference", {}))),
            conv=_variant(conv.VARIANTS, *choices.get("conv", ("reference", {}))),
            long_conv=_variant(fft.VARIANTS, *choices.get("fft", ("reference", {}))),
            collectives=(Collectives.variant(choices["collective"][0])
                         if "collective" in choices else None),
            name="capibara")


def _bound_call(kernel: Any, **fixed: Any) -> Callable[..., Any]:
    """A plan's bound kernel as the network calls it: arrays positionally, and the
    keywords its spec already fixed (``causal``), which must agree."""
    fn = kernel.fn

    def call(*arrays, **keywords):
        for name, value in keywords.items():
            if fixed.get(name, value) != value:
                raise ValueError(f"kernel `{kernel.spec.name}` was bound with {name}={fixed[name]}, "
                                 f"called with {name}={value}")
        return fn(*arrays)

    call.__name__ = f"{kernel.spec.family}_{kernel.implementation}"
    call.kernel = kernel  # type: ignore[attr-defined]
    return call


def _masked_falls_back(bound: Callable[..., Any], variant: Callable[..., Any]) -> Callable[..., Any]:
    """The plan's attention kernel, bound without a key mask, and the same family's
    variant for a call that brings one (left-padded prompts batched for serving)."""
    def call(q, k, v, *, causal, mask=None):
        if mask is None:
            return bound(q, k, v, causal=causal, mask=None)
        return variant(q, k, v, causal=causal, mask=mask)

    call.__name__ = bound.__name__
    call.kernel = bound.kernel  # type: ignore[attr-defined]
    return call


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


def _from_bound(cls, spec: ModelSpec, kernels: Any) -> "Kernels":
    """See :meth:`Kernels.from_bound`."""
    by_family: dict[str, Any] = {}
    sites: dict[str, Callable[..., Any]] = {}
    for kernel in kernels:
        by_family.setdefault(kernel.spec.family, kernel)
    choices = {family: (k.implementation, dict(k.spec.params)) for family, k in by_family.items()
               if family in ("vq", "moe")}
    base = cls.from_variants(spec, choices)
    fields: dict[str, Any] = {}
    if "attention" in by_family:
        attention = by_family["attention"]
        fields["attention"] = _masked_falls_back(
            _bound_call(attention, causal=bool(attention.spec.attrs.get("causal")), mask=None),
            base.attention)
    if "linalg" in by_family:
        fields["matmul"] = _bound_call(by_family["linalg"])
    for family, field_name in (("scan", "scan"), ("conv", "conv"), ("fft", "long_conv")):
        if family in by_family:
            fields[field_name] = _bound_call(by_family[family])
    for kernel in kernels:
        if kernel.spec.family in ("linalg", "scan", "conv", "fft"):
            for site in kernel.spec.uses or (kernel.spec.name,):
                sites[site] = _bound_call(kernel)
    if "collective" in by_family:
        fields["collectives"] = _bound_collectives(
            [k for k in kernels if k.spec.family == "collective"])
    return replace(base, **fields, sites=sites)


def _bound_collectives(kernels: list[Any]) -> Collectives:
    """The plan's collective specs as the sharded step calls them: each recorded
    site through its spec's per-shard function, each axis by its specs' variant."""
    from capibara.kernels.collective import VARIANTS

    variants: dict[str, Callable[..., Any]] = {}
    sites: dict[str, Callable[..., Any]] = {}
    for kernel in kernels:
        for axis in kernel.spec.attrs.get("axes", ("data",)):
            variants.setdefault(axis, VARIANTS[kernel.implementation].fn)
        for site in kernel.spec.uses or (kernel.spec.name,):
            sites[site] = _shard_call(kernel)
    reference = VARIANTS["reference"].fn
    return Collectives(variants.get("data", reference), variants.get("model", reference), sites)


def _shard_call(kernel: Any) -> Callable[..., Any]:
    """A bound collective's per-shard function (``BoundKernel.shard_fn``), for use
    inside ``shard_map``: arrays positionally, ``matmul=`` for a collective matmul."""
    fn = kernel.shard_fn

    def call(*arrays, **keywords):
        return fn(*arrays, **keywords)

    call.__name__ = f"collective_{kernel.implementation}"
    call.kernel = kernel  # type: ignore[attr-defined]
    return call


def _variant_call(fn: Callable[..., VQResult], x, codebook, *, threshold, commitment_weight):
    return fn(x, codebook, commitment_weight=commitment_weight, adaptive_threshold=threshold)


def _plain_matmul(x, w, *, compute_dtype):
    if isinstance(w, (AffineWeight, TernaryWeight)):
        # Fake quantization, as one writes it by hand: the rounded operands in float32.
        return float_quantized_product(x, w)
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


def _plain_scan(a, b):
    # The recurrence as one writes it: a time-major lax.scan carrying the state.
    def step(h, ab):
        h = ab[0] * h + ab[1]
        return h, h

    a32, b32 = jnp.swapaxes(a, 0, 1).astype(jnp.float32), jnp.swapaxes(b, 0, 1).astype(jnp.float32)
    _, hs = lax.scan(step, jnp.zeros(a32.shape[1:], jnp.float32), (a32, b32))
    return jnp.swapaxes(hs, 0, 1)


def _plain_conv(x, w):
    # Depthwise causal conv1d by XLA's grouped convolution, left-padded by width - 1.
    width, channels = w.shape
    y = lax.conv_general_dilated(
        x.astype(jnp.float32), w.astype(jnp.float32)[:, None, :], (1,), [(width - 1, 0)],
        dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=channels)
    return y


def _plain_long_conv(u, k):
    # Causal long convolution by a power-of-two FFT, as one writes it with jnp.fft.
    length = u.shape[-1]
    n = 1 << (length + k.shape[-1] - 2).bit_length()
    spectrum = jnp.fft.rfft(u.astype(jnp.float32), n) * jnp.fft.rfft(k.astype(jnp.float32), n)
    return jnp.fft.irfft(spectrum, n)[..., :length]
