"""Stage 4: lower a checked config for a target.

``lower(config, target)`` turns a :class:`~capibara.config.model_config.ModularModelConfig`
and a machine into :class:`Lowered`: the device the model runs on, its shape
and derived sizes, the mesh the config asks for, the precision policy it
asks for, the memory policy, and one :class:`KernelUse` per place the model
calls a kernel. Nothing here is chosen for speed yet: every kernel starts at
its family's ``reference`` implementation and shapes keep symbolic
dimensions (``"B"``, the per-device batch) until the optimizer
(:mod:`capibara.compiler.passes`) resolves them.

What runs (the network of :mod:`capibara.model.facade`)::

    per block (num_layers of them), its mixer by the ``mixers`` pattern:
        attention: RMSNorm → q/k/v projections (linalg) → attention → output projection (linalg)
        ssm: RMSNorm → in_proj (linalg) → short conv (conv) → x_proj, dt_proj (linalg)
             → recurrence (scan) → out_proj (linalg)
        hyena: RMSNorm → in_proj (linalg) → short conv (conv) → long conv (fft) → out_proj
        then RMSNorm → dense MLP (linalg w_in, w_out) or Mixture of Rookies (moe)
    VQ bottleneck after the first half of the blocks (vq), when use_vq
    tied output projection onto the vocabulary (linalg)
    gradient all-reduce over the data axis, activation all-reduces over the
    model axis (collective), when the mesh has more than one device

Hardware rules (PARAMS.md §b [HW]) come from :func:`capibara.config.validate.check_hardware_compatibility`
(``H0xx``: mesh vs device count, batch vs replicas, memory limits, device
presence and fallback, GPU count); this stage adds what only lowering can
see (``H2xx``): a mesh with more axes than ``[data, model]``, dtypes the
target does not compute natively, and the enterprise VQ path on a machine
without TPU v6 when the config forbids a fallback. The memory estimate
against the memory limit is checked where the batch is resolved
(:mod:`capibara.compiler.passes`), after the passes that change memory use.

Imports no JAX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import msgspec

from capibara.diagnostics import Diagnostic, Severity, Span
from capibara.plan import (MESH_AXES, Decision, LossWeights, MemoryEstimate, Mesh, ModelShape,
                           Precision)
from capibara.config.fields import FIELD_BY_NAME
from capibara.compiler.mixers import layer_counts, mixer_parameter_count, ssm_inner, ssm_dt_rank
from capibara.targets import CATALOG, GIB, Target, detect_host, get_target

__all__ = [
    "Dim",
    "KernelUse",
    "MemoryPolicy",
    "Lowered",
    "lower",
    "resolve_machine",
    "model_shape",
    "loss_weights",
    "LOAD_BALANCING_WEIGHT",
    "DIVERSITY_WEIGHT",
    "requested_precision",
    "memory_policy",
    "memory_limit_bytes",
    "estimate_memory",
    "feature_enabled",
    "FEATURES",
    "MESH_AXES",
    "path_of",
    "field_span",
    "field_diagnostic",
    "split_dim",
    "hyena_filter_taps",
    "mixer_facts_of",
    "local_parameters",
    "shards_optimizer_state",
    "sparsity_record",
]

#: A dimension: an int, or a symbol the optimizer folds (see :data:`SYMBOLS`).
Dim = int | str

#: Symbols that may appear in kernel shapes before folding, and what they mean.
SYMBOLS = {
    "B": "per-device batch",
    "S": "sequence length (max_seq_length)",
    "N": "tokens per device (B·S)",
    "d": "hidden size",
    "Hl": "attention heads per device",
    "Dh": "head dimension",
    "HDl": "attention width per device (Hl·Dh)",
    "Fl": "MLP width per device",
    "Vl": "vocabulary rows per device",
    "K": "VQ codes",
    "Dv": "VQ vector dimension",
    "E": "experts",
    "Fel": "expert MLP width per device",
    "Pl": "parameters per device",
}

#: dtype placeholders filled from the precision policy.
DTYPE_SYMBOLS = ("$params", "$compute", "$accumulation", "$vq_codebook")


def path_of(name: str) -> str:
    """The printed path of field ``name`` (``model.hidden_size``); plan paths pass through."""
    f = FIELD_BY_NAME.get(name)
    return f.path if f is not None else name


def field_span(config: Any, name: str) -> Span | None:
    """Where field ``name`` was written, if it came from text."""
    return config.provenance(name).span


# --------------------------------------------------------------------------- IR


@dataclass(frozen=True, slots=True)
class KernelUse:
    """One place the model calls a kernel, before and during optimization.

    ``site`` names the call site (``blocks.wq``); ``feature`` the entry of
    :data:`FEATURES` that must hold for the call to exist. ``shapes`` and
    ``dtypes`` map each array argument to its per-device shape and dtype;
    both may hold symbols until the ``fold-derived`` and ``resolve-batch``
    passes bind them. ``params`` are the implementation's static keyword
    arguments; ``attrs`` facts the runtime needs that are not keyword
    arguments of the kernel (``causal``, the weight format). ``uses`` lists
    the sites merged into this one by ``dedupe-kernels`` (empty before).
    """

    site: str
    family: str
    feature: str
    shapes: Mapping[str, tuple[Dim, ...]]
    dtypes: Mapping[str, str]
    calls_per_step: int = 1
    implementation: str = "reference"
    params: Mapping[str, Any] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    uses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MemoryPolicy:
    """How the step trades memory for time (``memory_optimization_level``, flags, ``compile_mode``).

    - ``remat``: recompute each block's insides in the backward pass, keeping
      only its input (``gradient_checkpointing``).
    - ``donate``: the update step reuses the buffers of the old weights and
      optimizer state (level ≥ 1, or ``compile_mode = "aggressive"``).
    - ``loss_chunk``: tokens per chunk of the output projection and loss, so
      the full ``[B, S, vocab]`` logits never exist at once (level ≥ 2);
      ``None`` computes them whole.
    - ``saved_activation_dtype``: the dtype block inputs are kept in for the
      backward pass (level 3 keeps them in the compute dtype).
    - ``offload_activations``: saved block inputs live in host memory
      (``activation_offloading``).
    - ``shard_optimizer_state``: optimizer state split over the data axis
      (:func:`shards_optimizer_state`).
    """

    remat: bool
    donate: bool
    loss_chunk: int | None
    saved_activation_dtype: str
    offload_activations: bool
    shard_optimizer_state: bool = False


@dataclass(frozen=True, slots=True)
class Lowered:
    """The compiler's value between lowering and the plan (see the module docstring).

    ``mesh`` and ``batch`` are ``None`` while ``"auto"``; ``model`` is
    ``None`` until ``fold-derived`` computes the derived sizes, ``memory``
    until the batch is known. ``effective`` holds field values that differ
    from the config on this target (by flat name), e.g. TPU v6 features
    turned off by a fallback; the plan's runtime and service sections use them.
    ``explicit`` is ``config.explicit_fields``, read once (it is computed on
    every access). ``machine`` is the machine the
    config was compiled for, ``target`` the device on it the model runs on
    (the same unless a hardware fallback moved to the host CPU).
    """

    config: Any
    machine: Target
    target: Target
    model: ModelShape | None
    mesh: Mesh | None
    batch: int | None
    precision: Precision
    policy: MemoryPolicy
    kernels: tuple[KernelUse, ...]
    memory_limit: int | None
    memory: MemoryEstimate | None = None
    loss: LossWeights | None = None
    decisions: tuple[Decision, ...] = ()
    effective: Mapping[str, Any] = field(default_factory=dict)
    explicit: frozenset[str] = frozenset()

    def decide(self, pass_: str, path: str, before: Any, after: Any, reason: str,
               **changes: Any) -> "Lowered":
        """A copy with ``changes`` applied and the decision recorded."""
        decision = Decision(pass_, path, before, after, reason)
        return replace(self, decisions=self.decisions + (decision,), **changes)

    @property
    def model_axis(self) -> int:
        """Devices the model is split over (1 without model parallelism)."""
        if self.mesh is None or not self.config.model_parallel:
            return 1
        return self.mesh.size("model")

    @property
    def data_parallel(self) -> int:
        """Replicas the batch is split over: the mesh's data axis."""
        return 1 if self.mesh is None else self.mesh.size("data")


# --------------------------------------------------------------------------- features

#: When each kernel use exists: feature name → predicate on (config, mesh, model axis).
FEATURES: dict[str, Callable[[Any, Mesh | None, int], bool]] = {
    "model": lambda c, mesh, m: True,
    "vq": lambda c, mesh, m: bool(c.use_vq),
    "mor": lambda c, mesh, m: bool(c.use_sparse and c.sparsity_method == "mor"),
    "dense_mlp": lambda c, mesh, m: not (c.use_sparse and c.sparsity_method == "mor"),
    "data_parallel": lambda c, mesh, m: mesh is not None and mesh.size("data") > 1,
    "model_parallel": lambda c, mesh, m: m > 1,
}

#: The config switch a feature follows, for the reason a pruned kernel gives.
FEATURE_SWITCH = {
    "vq": "use_vq",
    "mor": "sparsity_method",
    "dense_mlp": "sparsity_method",
    "data_parallel": "tpu_mesh_shape",
    "model_parallel": "model_parallel",
}


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
        KernelUse("blocks.all_reduce", "collective", "model_parallel", {"x": ("B", "S", "d")},
                  {"x": "float32"}, 2 * layers, attrs={"op": "all_reduce", "axes": ["model"]}),
    )


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


def hyena_filter_taps(config: Any) -> int:
    """Taps of a hyena block's filter: ``hyena_filter_length``, or the context length."""
    length = config.hyena_filter_length
    return config.max_seq_length if length is None else min(length, config.max_seq_length)


# --------------------------------------------------------------------------- model facts


def split_dim(size: int, ways: int) -> int:
    """A dimension's share per device: split only when it divides evenly (as the runtime does)."""
    return size // ways if ways > 1 and size % ways == 0 else size


def model_shape(config: Any) -> ModelShape:
    """The model's dimensions and parameter count (see :class:`~capibara.plan.ModelShape`).

    The count is PARAMS.md §e.2's ``12·L·d² + V·d`` (attention 4d², a 4×-wide
    MLP 8d² per layer, tied embeddings) plus the RMSNorm scales
    (``2·L·d + d``), the VQ codebook (``K·d_vq``) and, with Mixture of
    Rookies, each layer's router (``d·E``). Rookies are small experts: the
    ``E`` experts split the MLP's width between them (``4d // E`` each), so
    routing adds no MLP parameters and a token runs ``top_k / E`` of the
    MLP (the 0.75 expert sparsity of 2-of-8 routing). This keeps the
    seed's parameter counts (≈109.5 M for the 768 × 12 tier, PARAMS.md §d.5).
    """
    d, layers, heads = config.hidden_size, config.num_layers, config.num_heads
    head_dim = d // heads
    ffn = 4 * d
    mor = config.use_sparse and config.sparsity_method == "mor"
    experts = config.mor_num_experts if mor else None
    expert_ffn = ffn // experts if experts else None
    vq_dim = (config.vq_embedding_dim or d) if config.use_vq else None
    shape = ModelShape(**_mixer_facts(config),
        hidden_size=d, num_layers=layers, num_heads=heads, head_dim=head_dim, ffn_dim=ffn,
        vocab_size=config.vocab_size, max_seq_length=config.max_seq_length,
        parameter_count=0,
        vq_codes=config.vq_codes if config.use_vq else None, vq_embedding_dim=vq_dim,
        num_experts=experts, experts_per_token=config.mor_top_k if mor else None,
        expert_ffn_dim=expert_ffn)
    return msgspec.structs.replace(shape, parameter_count=local_parameters(shape, 1))


#: Weight of the Mixture-of-Rookies load-balancing loss when
#: ``mor_load_balancing`` is on: the Switch Transformer's α = 0.01, small enough
#: not to fight the language-model loss, large enough to keep experts in use.
LOAD_BALANCING_WEIGHT = 0.01
#: Weight of the codebook-usage (diversity) term when
#: ``vq_diversity_regularization`` is on.
DIVERSITY_WEIGHT = 0.1


def loss_weights(config: Any, model: ModelShape) -> LossWeights:
    """The auxiliary loss terms' weights for ``config``'s model: the VQ
    commitment weight as configured, the diversity and load-balancing terms at
    their fixed weights when switched on (and when the model has experts)."""
    return LossWeights(
        vq_commitment=float(config.vq_commitment_weight),
        vq_diversity=DIVERSITY_WEIGHT if config.vq_diversity_regularization else 0.0,
        load_balancing=(LOAD_BALANCING_WEIGHT if model.num_experts and config.mor_load_balancing
                        else 0.0))


def _mixer_facts(config: Any) -> dict[str, Any]:
    """The plan's record of a pattern with ``ssm`` or ``hyena`` blocks (empty for attention only)."""
    pattern = tuple(config.mixers)
    if set(pattern) == {"attention"} or config.num_layers % len(pattern):
        return {}
    facts: dict[str, Any] = {"mixers": pattern}
    if "ssm" in pattern or "hyena" in pattern:
        facts["ssm_conv_width"] = config.ssm_conv_width
    if "ssm" in pattern:
        facts["ssm_state_size"] = config.ssm_state_size
    if "hyena" in pattern:
        facts["hyena_filter_length"] = hyena_filter_taps(config)
    return facts


def _mixer_parameters(d: int, counts: Mapping[str, int], facts: Mapping[str, Any]) -> int:
    """Parameters of the ``ssm`` and ``hyena`` mixers (their feed-forwards are counted per layer)."""
    return sum(counts[kind] * mixer_parameter_count(
        kind, d, state_size=facts.get("ssm_state_size", 1), conv_width=facts["ssm_conv_width"])
        for kind in ("ssm", "hyena") if counts.get(kind))


def requested_precision(config: Any) -> Precision:
    """The precision the config asks for, before the target has a say.

    ``mixed_precision``: float32 master weights, low-precision compute
    (bfloat16 with ``use_bfloat16``, else float16 with loss scaling), float32
    accumulation. Without it, weights and compute share one dtype.
    """
    low = "bfloat16" if config.use_bfloat16 else "float16"
    if config.mixed_precision:
        params, compute = "float32", low
    else:
        params = compute = "bfloat16" if config.use_bfloat16 else "float32"
    return Precision(params=params, compute=compute, accumulation="float32",
                     vq_codebook=config.vq_precision if config.use_vq else None,
                     loss_scaling=compute == "float16")


#: Tokens per chunk of the output projection and loss at memory level ≥ 2: large
#: enough that each chunk's matmul stays efficient (1024 × vocab), small enough that
#: the logits of a 2048-token, 32k-vocabulary sample drop from 256 MiB to 128 MiB per chunk.
LOSS_CHUNK = 1024


def memory_policy(config: Any) -> MemoryPolicy:
    """The memory policy the config asks for (``memory_optimization_level``).

    Explicit flags always win; the level controls only what no flag covers:

    ====== =====================================================================
    level  effect (cumulative)
    ====== =====================================================================
    0      none
    1      donate weight and optimizer-state buffers to the update step
    2      output projection and loss in chunks of :data:`LOSS_CHUNK` tokens
    3      block inputs kept for the backward pass in the compute dtype
    ====== =====================================================================
    """
    level = config.memory_optimization_level
    low = requested_precision(config).compute
    return MemoryPolicy(
        remat=bool(config.gradient_checkpointing),
        donate=level >= 1,
        loss_chunk=LOSS_CHUNK if level >= 2 else None,
        saved_activation_dtype=low if level >= 3 else "float32",
        offload_activations=bool(config.activation_offloading),
        shard_optimizer_state=shards_optimizer_state(config))


def memory_limit_bytes(config: Any, target: Target) -> int | None:
    """The per-device memory cap: the smallest of the physical memory and the config's limits.

    TPU: ``min(HBM, tpu_memory_limit_gb, memory_limit_gb)``; GPU:
    ``min(gpu_memory_fraction × HBM, memory_limit_gb)``; CPU: the host memory
    split over the host's devices, capped by ``memory_limit_gb``.
    ``None`` when nothing is known (a catalog CPU without a limit).
    """
    caps: list[float] = []
    physical = target.memory_per_device_gib
    if target.platform == "tpu":
        caps.append(config.tpu_memory_limit_gb)
    if physical is not None:
        if target.platform == "gpu":
            caps.append(config.gpu_memory_fraction * physical)
        elif target.platform == "cpu":
            caps.append(physical / target.device_count)
        else:
            caps.append(physical)
    if config.memory_limit_gb is not None:
        caps.append(config.memory_limit_gb)
    return int(min(caps) * GIB) if caps else None


_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1, "auto": 4}

#: Optimizer state per parameter, in float32 slots: Adam's two moments, RMSprop's one.
OPTIMIZER_SLOTS = {"adamw": 2, "rmsprop": 1, "sgd": 0}


def estimate_memory(config: Any, model: ModelShape, *, mesh: Mesh, model_axis: int,
                    per_device_batch: int, precision: Precision, policy: MemoryPolicy,
                    workspace_per_sample: int, attention_materializes_scores: bool,
                    limit: int | None) -> MemoryEstimate:
    """Bytes per device at the peak of a training step (see :class:`~capibara.plan.MemoryEstimate`).

    Activations follow the network of :mod:`capibara.model.facade`, counted per
    sample and layer: the float32 residual stream and norms (5·S·d), q/k/v
    and the attention output in the compute dtype plus the rotary float32
    copies of q and k, the MLP's two float32 activations (4d wide each; with
    Mixture of Rookies, ``top_k`` experts' worth), and the S×S scores and
    probabilities per head when the attention kernel materializes them. With
    rematerialization only each block's input is kept, plus one block's
    activations while it is recomputed. The output projection keeps float32
    logits and log-probabilities for the whole sequence, or one chunk.
    """
    m = model_axis
    s, d = model.max_seq_length, model.hidden_size
    heads_local = split_dim(model.num_heads, m)
    width_local = heads_local * model.head_dim
    compute = _BYTES[precision.compute]
    param_bytes = _BYTES[precision.params]
    params_local = local_parameters(model, m)
    weights = params_local * param_bytes
    gradients = params_local * param_bytes
    slots = OPTIMIZER_SLOTS[config.optimizer]
    shards = mesh.size("data") if shards_optimizer_state(config) else 1
    optimizer_state = math.ceil(params_local * 4 * slots / shards)

    if model.num_experts:
        mlp_width = (model.experts_per_token or 1) * split_dim(model.expert_ffn_dim or 0, m)
        router = s * model.num_experts * 4
    else:
        mlp_width, router = split_dim(model.ffn_dim, m), 0
    scores = 2 * heads_local * s * s * 4 if attention_materializes_scores else heads_local * s * 4
    shared = 5 * s * d * 4 + 2 * s * mlp_width * 4 + router
    block = shared + s * width_local * (4 * compute + 2 * 4) + scores
    facts = mixer_facts_of(model)
    blocks = {"attention": block, **_mixer_block_bytes(s, d, shared, facts)}
    counts = layer_counts(facts["mixers"], model.num_layers) if facts \
        else {"attention": model.num_layers}
    largest = max(b for kind, b in blocks.items() if counts.get(kind))
    if policy.remat:
        saved = s * d * _BYTES[policy.saved_activation_dtype]
        kept = 0 if policy.offload_activations else model.num_layers * saved
        per_sample = kept + largest
    else:
        per_sample = largest if policy.offload_activations else \
            sum(counts.get(kind, 0) * b for kind, b in blocks.items())
    tokens = min(policy.loss_chunk, s) if policy.loss_chunk else s
    per_sample += 2 * tokens * split_dim(model.vocab_size, m) * 4
    activations = per_sample * per_device_batch
    workspace = workspace_per_sample * per_device_batch
    copies = 1 if policy.donate else 2
    total = (weights + optimizer_state) * copies + gradients + activations + workspace
    return MemoryEstimate(weights=weights, gradients=gradients, optimizer_state=optimizer_state,
                          activations=activations, workspace=workspace, update_copies=copies,
                          total=total, limit=limit)


def shards_optimizer_state(config: Any) -> bool:
    """Whether optimizer state is split over the data axis (ZeRO-1): ``optimizer_sharding``
    unless ``sharding_strategy = "disabled"``. The estimate and the model both ask here."""
    return bool(config.optimizer_sharding and config.sharding_strategy != "disabled")


def _mixer_block_bytes(s: int, d: int, shared: int, facts: Mapping[str, Any]) -> dict[str, int]:
    """Activation bytes per sample of one ``ssm`` or ``hyena`` block (float32 throughout).

    ``ssm``: the projections and conv output (2E + E + E + R + 2N wide) plus
    the recurrence's inputs and its states, ``3·S·E·N``: the SSM states are
    the largest tensor of the block. ``hyena``: three streams before and after
    their short conv, the long conv's input, output and filter, and the FFT's
    padded complex spectra (about ``4·S·d`` floats).
    """
    found = {}
    if "ssm_state_size" in facts:
        e, r, n = ssm_inner(d), ssm_dt_rank(d), facts["ssm_state_size"]
        found["ssm"] = shared + s * (5 * e + r + 2 * n) * 4 + 3 * s * e * n * 4
    if "hyena_filter_length" in facts:
        found["hyena"] = shared + s * (6 * d + 2 * d + 4 * d) * 4 + d * facts["hyena_filter_length"] * 4
    return found


def local_parameters(model: ModelShape, m: int) -> int:
    """Parameters one device holds: the vocabulary, heads and MLP width split over a
    model axis of ``m`` devices; with ``m = 1``, the model's parameter count."""
    d, layers = model.hidden_size, model.num_layers
    heads_local = split_dim(model.num_heads, m)
    attention = 4 * d * heads_local * model.head_dim
    if model.num_experts:
        mlp = d * model.num_experts + 2 * model.num_experts * d * split_dim(model.expert_ffn_dim or 0, m)
    else:
        mlp = 2 * d * split_dim(model.ffn_dim, m)
    codebook = (model.vq_codes or 0) * (model.vq_embedding_dim or 0)
    facts = mixer_facts_of(model)
    counts = layer_counts(facts["mixers"], layers) if facts else {"attention": layers}
    return (split_dim(model.vocab_size, m) * d + layers * (mlp + d)
            + counts["attention"] * (attention + d) + _mixer_parameters(d, counts, facts)
            + d + codebook)


def mixer_facts_of(model: ModelShape) -> dict[str, Any]:
    """The mixer fields a plan's :class:`ModelShape` records (empty for attention only)."""
    names = ("mixers", "ssm_state_size", "ssm_conv_width", "hyena_filter_length")
    return {n: getattr(model, n) for n in names if getattr(model, n) is not msgspec.UNSET}


# --------------------------------------------------------------------------- machine and device


def field_diagnostic(code: str, message: str, config: Any, names: Sequence[str],
                     labels: Mapping[str, str], *, help: str | None = None,
                     notes: Sequence[str] = (), warning: bool = False) -> Diagnostic:
    """A diagnostic about fields, placed by the one function that does that
    (:func:`capibara.config.validate.report.field_diagnostic`)."""
    from capibara.config.validate.report import field_diagnostic as placed

    severity = Severity.WARNING if warning else Severity.ERROR
    return placed(code, severity, message, config, names, labels, help=help, notes=notes)


def resolve_machine(target: Target | str | None) -> Target:
    """The machine to compile for: a catalog name, a :class:`Target`, or the detected host."""
    if target is None:
        return detect_host()
    if isinstance(target, Target):
        return target
    return get_target(target)


def _host_cpu(machine: Target) -> Target:
    """The CPU of ``machine``: itself if it is one; the detected CPU of this host; a plain x86 otherwise."""
    if machine.platform == "cpu":
        return machine
    if machine is detect_host():
        return get_target("cpu")
    return CATALOG["cpu"]


def _device_target(config: Any, machine: Target) -> tuple[Target, str | None]:
    """The device the model runs on and, for a fallback, the device it ran instead of."""
    from capibara.config.validate import resolve_device

    device = resolve_device(config, machine)
    if device is None or device == machine.seed_device:
        return machine, None
    # The machine's own CPU: asked for by name, or reached by fallback.
    return _host_cpu(machine), None if device == config.device else config.device


# --------------------------------------------------------------------------- lower


MESH_RANK = "H201"
DTYPE_NOT_NATIVE = "H202"
ENTERPRISE_VQ_UNAVAILABLE = "H203"
EMPTY_EXPERTS = "H206"
TARGET_OVERRIDES_DEVICE = "H207"
#: The device rule a named target makes moot (the target is the device).
_DEVICE_PRESENT = "H035"


def _named(target: Target | str | None) -> bool:
    """Whether the caller named the machine (``--target``), rather than asking for this host
    (``None``, ``"auto"``, or the detected host itself, as the plan loader re-lowers)."""
    if target is None or (isinstance(target, str) and target == "auto"):
        return False
    return not (isinstance(target, Target) and target is detect_host())


def lower(config: Any, target: Target | str | None = None) -> tuple[Lowered, list[Diagnostic]]:
    """Lower ``config`` for ``target`` (see the module docstring); never raises for bad input.

    Returns the IR and every diagnostic found; the caller stops before
    optimizing if any is an error.
    """
    from capibara.config.validate import check_hardware_compatibility

    machine = resolve_machine(target)
    check = check_hardware_compatibility(config, machine)
    diagnostics: list[Diagnostic] = list(check.errors) + list(check.warnings)
    if _named(target):
        # The target named by the caller wins over the config's `device` (which picks
        # among a host's devices when no target is named). A fallback that reaches the
        # target's own device is the validator's H035; any other disagreement is H207.
        from capibara.config.validate import resolve_device

        device_target, fell_from = machine, None
        reaches = resolve_device(config, machine) == machine.seed_device
        if not reaches:
            diagnostics = [d for d in diagnostics if d.code != _DEVICE_PRESENT]
        if config.device not in ("auto", machine.seed_device) and not reaches:
            diagnostics.append(field_diagnostic(
                TARGET_OVERRIDES_DEVICE,
                f"`device` is \"{config.device}\", but the target `{machine.name}` is "
                f"{machine.seed_device}: the named target wins",
                config, ("device",), {"device": f"not {machine.seed_device}"},
                help=f"set `{path_of('device')} = \"{machine.seed_device}\"` (or \"auto\"), or "
                     f"name a {config.device} target", warning=True))
    else:
        device_target, fell_from = _device_target(config, machine)

    lowered = Lowered(
        config=config, machine=machine, target=device_target, model=None,
        mesh=None, batch=config.batch_size if isinstance(config.batch_size, int) else None,
        precision=requested_precision(config), policy=memory_policy(config),
        kernels=kernel_uses(config), memory_limit=memory_limit_bytes(config, device_target),
        explicit=config.explicit_fields)
    if fell_from is not None:
        lowered = lowered.decide(
            "lower", "hardware.device", fell_from, device_target.seed_device,
            f"`{machine.name}` has no {fell_from} device; hardware_fallback moves to "
            f"{device_target.seed_device} ({device_target.name})")
    elif config.device == "auto":
        lowered = lowered.decide("lower", "hardware.device", "auto", device_target.seed_device,
                                 f"the machine is `{machine.name}`")

    mesh = config.tpu_mesh_shape
    if isinstance(mesh, list) and device_target.platform == "tpu":
        if len(mesh) > len(MESH_AXES):
            diagnostics.append(field_diagnostic(
                MESH_RANK, f"`tpu_mesh_shape` has {len(mesh)} axes; capibara meshes have at most "
                           f"{len(MESH_AXES)}, `[data, model]`",
                config, ("tpu_mesh_shape",), {"tpu_mesh_shape": f"{len(mesh)} axes"},
                help=f"fold the extra axes into one: `{path_of('tpu_mesh_shape')} = "
                     f"[{math.prod(mesh[:-1])}, {mesh[-1]}]`"))
        else:
            shape = tuple(mesh) + (1,) * (len(MESH_AXES) - len(mesh))
            lowered = replace(lowered, mesh=Mesh(shape=shape, axes=MESH_AXES))

    diagnostics.extend(_dtype_diagnostics(lowered))
    diagnostics.extend(_enterprise_vq(config, device_target))
    diagnostics.extend(_rookie_width(config))
    if config.use_vq and config.vq_enterprise_mode and device_target.seed_device != "tpu_v6" \
            and config.vq_fallback_strategy != "none":
        lowered = lowered.decide(
            "lower", "vector_quantization.enterprise_mode", True, False,
            f"`{device_target.name}` is not a TPU v6: vq_fallback_strategy = "
            f"\"{config.vq_fallback_strategy}\" keeps the {config.vq_codes} codes and turns the "
            "adaptive ML and cost management off",
            effective={**lowered.effective, "vq_enterprise_mode": False, "vq_cost_management": False})
    return lowered, diagnostics


def _dtype_diagnostics(lowered: Lowered) -> list[Diagnostic]:
    """Dtypes the config asks for that the target only emulates (warnings).

    float16 on a TPU is the validator's (``V026`` compute, ``V016`` codebooks,
    judged against the resolved device); this covers every other target.
    """
    config, target = lowered.config, lowered.target
    found: list[Diagnostic] = []
    if target.platform == "tpu":
        return found
    if lowered.precision.compute == "float16" and "float16" not in target.native_dtypes:
        found.append(field_diagnostic(
            DTYPE_NOT_NATIVE, f"float16 compute is not native on `{target.name}`: XLA converts "
                              "every float16 operation to float32 and back",
            config, ("use_bfloat16", "mixed_precision"),
            {"use_bfloat16": "float16 instead", "mixed_precision": "low-precision compute"},
            help=f"set `{path_of('use_bfloat16')} = true`"
                 + ("" if "bfloat16" in target.native_dtypes else
                    f", or `{path_of('mixed_precision')} = false` for float32"),
            warning=True))
    codebook = lowered.precision.vq_codebook
    if codebook in ("float16", "bfloat16", "int8") and codebook not in target.native_dtypes:
        native = ", ".join(f"`{d}`" for d in target.native_dtypes)
        found.append(field_diagnostic(
            DTYPE_NOT_NATIVE, f"`vq_precision` {codebook} is not native on `{target.name}`",
            config, ("vq_precision",), {"vq_precision": "emulated"},
            help=f"use one of {native}, or \"auto\"", warning=True,
            notes=(f"`{target.name}` computes natively in {native}",)))
    return found


def _rookie_width(config: Any) -> list[Diagnostic]:
    """Rookies split the 4·hidden MLP width; more experts than that leaves them empty."""
    if not (config.use_sparse and config.sparsity_method == "mor"):
        return []
    width, experts = 4 * config.hidden_size, config.mor_num_experts
    if experts <= width:
        return []
    return [field_diagnostic(
        EMPTY_EXPERTS, f"{experts} experts split a {width}-wide MLP into experts of width 0",
        config, ("mor_num_experts", "hidden_size"),
        {"mor_num_experts": f"more than {width}", "hidden_size": f"MLP width {width}"},
        help=f"use at most {width} experts (`{path_of('mor_num_experts')} = 8` is the default)",
        notes=("Mixture of Rookies divides the dense MLP's width (4 × hidden_size) among its "
               "experts, so each needs a share of at least one unit",))]


def _enterprise_vq(config: Any, target: Target) -> list[Diagnostic]:
    """The enterprise VQ path needs TPU v6; ``vq_fallback_strategy = "none"`` forbids the fallback."""
    if not (config.use_vq and config.vq_enterprise_mode) or target.seed_device == "tpu_v6":
        return []
    if config.vq_fallback_strategy != "none":
        return []
    return [field_diagnostic(
        ENTERPRISE_VQ_UNAVAILABLE,
        f"the enterprise VQ path needs a TPU v6, and `{target.name}` is not one",
        config, ("vq_fallback_strategy", "vq_enterprise_mode"),
        {"vq_fallback_strategy": "no fallback allowed", "vq_enterprise_mode": "TPU v6 only"},
        help=f"compile for a TPU v6 (`--target tpu_v6e-8`), or set "
             f"`{path_of('vq_fallback_strategy')} = \"tpu_v4\"` to keep the 128 codes without "
             "the adaptive features elsewhere")]
