"""Every place the network calls a kernel, as lowering records it.

What runs (the network of :mod:`capibara.model.facade`)::

    per block (num_layers of them), its mixer by the ``mixers`` pattern:
        attention: RMSNorm → q/k/v projections (linalg) → attention → output projection (linalg)
        ssm: RMSNorm → in_proj (linalg) → short conv (conv) → x_proj, dt_proj (linalg)
             → recurrence (scan) → out_proj (linalg)
        hyena: RMSNorm → in_proj (linalg) → short conv (conv) → long conv (fft) → out_proj
        then RMSNorm → dense MLP (linalg w_in, w_out) or Mixture of Rookies (moe)
    VQ bottleneck after the first half of the blocks (vq), when use_vq
    tied output projection onto the vocabulary (linalg)
    when the mesh has more than one device, the explicit sharded train step's
    collectives: the gradient all-reduce over the data axis and, split over
    the model axis, each block's column projections through all_gather_matmul
    (Rookies: all_gather) and its row projections' reduce_scatter

Every use starts at its family's ``reference`` implementation; the
``prune-disabled`` pass drops the uses whose :data:`FEATURES` entry is off and
``select-kernels`` picks each family's variant for the target.

Imports no JAX.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from capibara.compiler.ir import Dim, KernelUse
from capibara.compiler.mixers import layer_counts, ssm_dt_rank, ssm_inner
from capibara.compiler.model_shape import hyena_filter_taps
from capibara.plan import Mesh

__all__ = ["FEATURES", "FEATURE_SWITCH", "feature_enabled", "kernel_uses", "sparsity_record"]


#: When each kernel use exists: feature name → predicate on (config, mesh, model axis).
FEATURES: dict[str, Callable[[Any, Mesh | None, int], bool]] = {
    "model": lambda c, mesh, m: True,
    "vq": lambda c, mesh, m: bool(c.use_vq),
    "mor": lambda c, mesh, m: bool(c.use_sparse and c.sparsity_method == "mor"),
    "dense_mlp": lambda c, mesh, m: not (c.use_sparse and c.sparsity_method == "mor"),
    "data_parallel": lambda c, mesh, m: mesh is not None and mesh.size("data") > 1,
    "model_parallel": lambda c, mesh, m: m > 1,
    "model_parallel_mlp": lambda c, mesh, m: m > 1 and not _mor(c),
    "model_parallel_mor": lambda c, mesh, m: m > 1 and _mor(c),
}


#: The config switch a feature follows, for the reason a pruned kernel gives.
FEATURE_SWITCH = {
    "vq": "use_vq",
    "mor": "sparsity_method",
    "dense_mlp": "sparsity_method",
    "data_parallel": "tpu_mesh_shape",
    "model_parallel": "model_parallel",
    "model_parallel_mlp": "model_parallel",
    "model_parallel_mor": "model_parallel",
}


def _mor(config: Any) -> bool:
    return bool(config.use_sparse and config.sparsity_method == "mor")


def feature_enabled(feature: str, config: Any, mesh: Mesh | None, model_axis: int) -> bool:
    return FEATURES[feature](config, mesh, model_axis)


def _weight_format(config: Any) -> dict[str, Any]:
    if config.use_bitnet:
        return {"weights": "bitnet", "precision": config.bitnet_precision}
    if config.use_affine_quantization:
        return {"weights": "affine", "bits": config.affine_bits,
                "symmetric": config.affine_symmetric}
    return {"weights": "float"}


def _linalg_params() -> dict[str, str]:
    return {"param_dtype": "$params", "compute_dtype": "$compute",
            "accumulate_dtype": "$accumulation"}


def sparsity_record(config: Any) -> dict[str, Any] | None:
    """The feed-forward's sparsity, as the dense MLP's linalg specs record it (``attrs.sparsity``).

    ``magnitude``: ``w_in`` and ``w_out`` keep their largest ``1 - ratio`` of
    entries (by absolute value, per layer); with ``adaptive_sparsity`` the
    training step prunes gradually instead, following ``schedule`` from
    ``start`` to ``end`` sparsity over ``steps`` (``decay_steps``).
    ``topk``: each token keeps its largest ``1 - ratio`` of the hidden
    activations between ``w_in`` and ``w_out``. ``None`` for Mixture of Rookies
    (its own sparsity is routing) or with sparsity off.
    """
    if not config.use_sparse or config.sparsity_method not in ("magnitude", "topk"):
        return None
    record: dict[str, Any] = {"method": config.sparsity_method, "ratio": config.sparsity_ratio}
    if config.sparsity_method == "magnitude" and config.adaptive_sparsity:
        record["schedule"] = {"kind": config.sparsity_schedule, "start": config.min_sparsity,
                              "end": config.max_sparsity, "steps": config.decay_steps}
    return record


def kernel_uses(config: Any) -> tuple[KernelUse, ...]:
    """Every kernel call of the network, for every feature; pruning keeps the enabled ones."""
    layers = config.num_layers
    weights = _weight_format(config)
    mm = _linalg_params()

    sparse = sparsity_record(config)

    def linalg(site: str, x: tuple[Dim, ...], w: tuple[Dim, ...], calls: int, feature: str = "model",
               quantized: bool = True) -> KernelUse:
        attrs = dict(weights) if quantized else {"weights": "float"}
        if sparse is not None and feature == "dense_mlp":
            attrs["sparsity"] = sparse
        return KernelUse(site, "linalg", feature, {"x": x, "w": w},
                         {"x": "$compute", "w": "$params"}, calls, params=dict(mm), attrs=attrs)

    qkv = {"q": ("B", "S", "Hl", "Dh"), "k": ("B", "S", "Hl", "Dh"), "v": ("B", "S", "Hl", "Dh")}
    counts = layer_counts(config.mixers, layers) if layers % len(config.mixers) == 0 \
        else {"attention": layers, "ssm": 0, "hyena": 0}
    attention = counts["attention"]
    attention_uses = (
        KernelUse("blocks.attention", "attention", "model", qkv,
                  {name: "$compute" for name in qkv}, attention, attrs={"causal": True}),
        linalg("blocks.wq", ("B", "S", "d"), ("d", "HDl"), attention),
        linalg("blocks.wk", ("B", "S", "d"), ("d", "HDl"), attention),
        linalg("blocks.wv", ("B", "S", "d"), ("d", "HDl"), attention),
        linalg("blocks.wo", ("B", "S", "HDl"), ("HDl", "d"), attention),
    ) if attention else ()
    return attention_uses + _mixer_uses(config, counts, linalg) + (
        linalg("blocks.w_in", ("N", "d"), ("d", "Fl"), layers, "dense_mlp"),
        linalg("blocks.w_out", ("N", "Fl"), ("Fl", "d"), layers, "dense_mlp"),
        KernelUse("blocks.moe", "moe", "mor",
                  {"x": ("N", "d"), "router": ("d", "E"), "w_in": ("E", "d", "Fel"),
                   "w_out": ("E", "Fel", "d")},
                  {"x": "$compute", "router": "$params", "w_in": "$params", "w_out": "$params"},
                  layers, attrs={"top_k": config.mor_top_k,
                                 "load_balancing": config.mor_load_balancing}),
        KernelUse("bottleneck.vq", "vq", "vq", {"x": ("N", "Dv"), "codebook": ("K", "Dv")},
                  {"x": "$compute", "codebook": "$vq_codebook"}, 1,
                  attrs={"commitment_weight": config.vq_commitment_weight,
                         "diversity_regularization": config.vq_diversity_regularization}),
        linalg("logits", ("B", "S", "d"), ("d", "Vl"), 1, quantized=False),
        KernelUse("grads.all_reduce", "collective", "data_parallel", {"x": ("Pl",)},
                  {"x": "$params"}, 1, attrs={"op": "all_reduce", "axes": ["data"]}),
    ) + _tensor_parallel_uses(layers, attention)


def _tensor_parallel_uses(layers: int, attention: int) -> tuple[KernelUse, ...]:
    """The collectives of a block split over the model axis (the explicit step's
    sequence-parallel layout, :mod:`capibara.model.tensor_parallel`): each device
    holds ``Nl`` of the data shard's token rows (``Nm`` padded to the axis)."""
    def collective(site: str, feature: str, op: str, shapes: Mapping[str, tuple[Dim, ...]],
                   dtypes: Mapping[str, str], calls: int) -> KernelUse:
        return KernelUse(site, "collective", feature, shapes, dtypes, calls,
                         attrs={"op": op, "axes": ["model"]})

    gathered = {"x": "$compute", "w": "$params"}
    uses = [
        collective("blocks.mlp_in", "model_parallel_mlp", "all_gather_matmul",
                   {"x": ("Nl", "d"), "w": ("d", "Fl")}, gathered, layers),
        collective("blocks.moe_in", "model_parallel_mor", "all_gather", {"x": ("Nl", "d")},
                   {"x": "float32"}, layers),
        collective("blocks.mlp_out", "model_parallel", "reduce_scatter", {"x": ("Nm", "d")},
                   {"x": "float32"}, layers),
    ]
    if attention:
        uses[:0] = [
            collective("blocks.attention_in", "model_parallel", "all_gather_matmul",
                       {"x": ("Nl", "d"), "w": ("d", "HDl")}, gathered, 3 * attention),
            collective("blocks.attention_out", "model_parallel", "reduce_scatter",
                       {"x": ("Nm", "d")}, {"x": "float32"}, attention),
        ]
    return tuple(uses)


def _mixer_uses(config: Any, counts: Mapping[str, int], linalg: Callable[..., KernelUse]
                ) -> tuple[KernelUse, ...]:
    """The kernel calls of ``ssm`` and ``hyena`` blocks (none for attention only).

    Their projections are float matmuls (weight quantization applies to the
    attention and feed-forward weights); the recurrence, the short conv and
    the long conv compute in float32. A hyena long convolution is one call
    per sample (the model maps it over the batch), ``d`` channels long.
    """
    d, width, n = config.hidden_size, config.ssm_conv_width, config.ssm_state_size
    f32 = {"x": "float32", "w": "float32"}
    uses: list[KernelUse] = []
    ssm = counts["ssm"]
    if ssm:
        e, r = ssm_inner(d), ssm_dt_rank(d)
        uses += [
            linalg("ssm_blocks.in_proj", ("B", "S", "d"), ("d", 2 * e), ssm, quantized=False),
            KernelUse("ssm_blocks.conv", "conv", "model", {"x": ("B", "S", e), "w": (width, e)},
                      f32, ssm),
            linalg("ssm_blocks.x_proj", ("B", "S", e), (e, r + 2 * n), ssm, quantized=False),
            linalg("ssm_blocks.dt_proj", ("B", "S", r), (r, e), ssm, quantized=False),
            KernelUse("ssm_blocks.scan", "scan", "model",
                      {"a": ("B", "S", e * n), "b": ("B", "S", e * n)},
                      {"a": "float32", "b": "float32"}, ssm),
            linalg("ssm_blocks.out_proj", ("B", "S", e), (e, "d"), ssm, quantized=False),
        ]
    hyena = counts["hyena"]
    if hyena:
        taps = hyena_filter_taps(config)
        uses += [
            linalg("hyena_blocks.in_proj", ("B", "S", "d"), ("d", 3 * d), hyena, quantized=False),
            KernelUse("hyena_blocks.conv", "conv", "model",
                      {"x": ("B", "S", 3 * d), "w": (width, 3 * d)}, f32, hyena),
            KernelUse("hyena_blocks.long_conv", "fft", "model", {"u": ("d", "S"), "k": ("d", taps)},
                      {"u": "float32", "k": "float32"}, hyena),
            linalg("hyena_blocks.out_proj", ("B", "S", "d"), ("d", "d"), hyena, quantized=False),
        ]
    return tuple(uses)
