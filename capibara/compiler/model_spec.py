"""What a built model is, without JAX: its spec, run policy, parameter layout and
the rules a live model applies to configuration updates.

:mod:`capibara.model.facade` computes with these; the compile-path tools read them
too (``capibara check CONFIG CHECKPOINT`` compares a checkpoint with the
parameters a config implies, ``--runtime`` updates are refused as a live
model refuses them) without importing JAX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

from capibara.diagnostics import ConfigError, Diagnostic

__all__ = [
    "ModelSpec",
    "RunPolicy",
    "WeightFormat",
    "FeedForwardSparsity",
    "tensor_parallel_refusal",
    "schedule_level",
    "VQ_WITHOUT_CODEBOOK",
    "live_update_diagnostics",
]

#: A plan that names a weight format or bit width this capibara cannot run
#: (the plan loader's code for plans from an incompatible compiler).
INCOMPATIBLE_PLAN = "R104"

#: ``bitnet_precision`` values that mean BitNet b1.58 ternary weights.
_TERNARY_PRECISIONS = ("1.58bit", "1.58b")


@dataclass(frozen=True)
class WeightFormat:
    """How a matmul's weight is quantized in the forward pass (a linalg kernel's ``attrs``).

    - ``float``: the weight as stored, under the precision policy.
    - ``affine``: ``bits``-bit integers (4, 8 or 16), symmetric or not, one
      scale per output column (``quantize_affine``); ``per_tensor`` uses one
      scale for the whole weight instead (BitNet's int8/int4 weights).
    - ``ternary``: BitNet b1.58, {-1, 0, 1} times the mean ``|w|`` (``ternarize``).
    """

    kind: str = "float"
    bits: int = 8
    symmetric: bool = True
    per_tensor: bool = False

    @classmethod
    def from_attrs(cls, attrs: Any, where: str = "a linalg kernel") -> "WeightFormat":
        """The format a kernel spec's ``attrs`` name, as the compiler writes them:
        ``{"weights": "float"}``, ``{"weights": "affine", "bits": 8, "symmetric": true}``
        or ``{"weights": "bitnet", "precision": "1.58bit" | "int8" | "int4"}``
        (``"ternary"`` is accepted for ``bitnet`` at 1.58 bits).

        A format or width this capibara cannot compute is refused with a
        ``ConfigError`` (``R104``) rather than run as float weights.
        """
        kind = attrs.get("weights", "float")
        if kind == "float":
            return cls()
        if kind == "ternary":
            return cls("ternary")
        if kind == "bitnet":
            precision = attrs.get("precision", "1.58bit")
            if precision in _TERNARY_PRECISIONS:
                return cls("ternary")
            if precision in ("int8", "int4"):
                return cls("affine", bits=int(precision[3:]), symmetric=True, per_tensor=True)
            raise _incompatible(f"{where} asks for BitNet weights at precision `{precision}`",
                                "BitNet weights are `1.58bit`, `int8` or `int4`")
        if kind == "affine":
            bits = attrs.get("bits", 8)
            if bits not in (4, 8, 16):
                raise _incompatible(f"{where} asks for {bits}-bit affine weights",
                                    "affine weights are 4, 8 or 16 bits")
            return cls("affine", bits=int(bits), symmetric=bool(attrs.get("symmetric", True)))
        raise _incompatible(f"{where} asks for `{kind}` weights",
                            "weight formats are `float`, `affine` and `bitnet`")

    def __str__(self) -> str:
        if self.kind == "affine":
            how = "per tensor" if self.per_tensor else "per column"
            return f"affine int{self.bits} {'symmetric' if self.symmetric else 'asymmetric'} {how}"
        return self.kind


@dataclass(frozen=True)
class FeedForwardSparsity:
    """The dense feed-forward's sparsity (a linalg spec's ``attrs.sparsity``, see
    :func:`capibara.compiler.kernel_uses.sparsity_record`).

    ``method``: ``magnitude`` (weight pruning of ``w_in`` and ``w_out``) or
    ``topk`` (activation sparsity between them); ``ratio``: the fraction of
    zeros. ``schedule`` (magnitude only, with ``adaptive_sparsity``): the
    training step prunes to ``level(step)`` instead, ``kind`` ``linear``,
    ``cosine`` or ``exponential`` from ``start`` to ``end`` over ``steps``.
    """

    method: str
    ratio: float
    schedule: tuple[str, float, float, int] | None = None

    @classmethod
    def from_attrs(cls, record: Any, where: str = "a linalg kernel") -> "FeedForwardSparsity":
        method = record.get("method")
        if method not in ("magnitude", "topk"):
            raise _incompatible(f"{where} asks for `{method}` sparsity",
                                "feed-forward sparsity is `magnitude` or `topk`")
        schedule = record.get("schedule")
        if schedule is not None:
            schedule = (str(schedule["kind"]), float(schedule["start"]), float(schedule["end"]),
                        int(schedule["steps"]))
        return cls(method, float(record["ratio"]), schedule)

    def level(self, step: int) -> float:
        """The fraction of zeros the training step prunes to after ``step`` steps."""
        if self.schedule is None:
            return self.ratio
        return schedule_level(*self.schedule, step)


def schedule_level(kind: str, start: float, end: float, steps: int, step: Any) -> Any:
    """Gradual pruning's sparsity at ``step`` of ``steps`` (then held at ``end``).

    With ``t = min(step / steps, 1)``: ``linear`` ``start + (end - start)·t``;
    ``cosine`` ``start + (end - start)·(1 - cos(πt))/2``; ``exponential``
    interpolates the kept fraction geometrically, ``1 - (1 - start)^(1-t)·(1 - end)^t``
    (fast pruning first, slow at the end). Works on Python numbers and on
    traced JAX scalars alike.
    """
    import numpy as np

    xp = np
    if not isinstance(step, (int, float)):
        import jax.numpy as xp  # a traced step inside the training step
    t = xp.clip(xp.asarray(step, xp.float32) / max(steps, 1), 0.0, 1.0)
    if kind == "linear":
        return start + (end - start) * t
    if kind == "cosine":
        return start + (end - start) * (1 - xp.cos(xp.pi * t)) / 2
    if kind == "exponential":
        return 1 - (1 - start) ** (1 - t) * (1 - end) ** t
    raise ValueError(f"unknown sparsity schedule {kind!r}; expected linear, cosine or exponential")


def _incompatible(message: str, note: str) -> ConfigError:
    return ConfigError([Diagnostic.error(
        INCOMPATIBLE_PLAN, message, notes=(note,),
        help="recompile the config with this capibara (`capibara compile`)")])


def tensor_parallel_refusal(ways: int, *, mixers: Sequence[str], quantized: Sequence[str],
                            topk: bool, heads: int, kv_heads: int,
                            mlp: tuple[str, int]) -> str | None:
    """Why the explicit sharded step cannot split a model ``ways`` ways over the
    ``model`` axis, or ``None``: from its mixers, the names of its quantized block
    weights, top-k activation sparsity and the sizes the axis splits. The
    compiler asks before a spec exists (a config with errors included), the
    model with its :class:`ModelSpec`."""
    if ways == 1:
        return None
    if set(mixers) != {"attention"}:
        return f"its {'/'.join(k for k in mixers if k != 'attention')} blocks are not split"
    if quantized:
        return f"its block weights {', '.join(sorted(quantized))} are quantized"
    if topk:
        return "top-k activation sparsity ranks the whole MLP width"
    for what, size in (("attention heads", heads), ("key/value heads", kv_heads), mlp):
        if size % ways:
            return f"{size} {what} do not split {ways} ways"
    return None


@dataclass(frozen=True)
class ModelSpec:
    """Everything fixed about a model once it is built: shapes, dtypes, loss weights,
    weight formats.

    ``vq_codes`` is ``None`` for a model without a VQ bottleneck and
    ``num_experts`` ``None`` for a dense feed-forward. ``param_dtype`` is the
    dtype parameters are stored (and trained) in; ``compute_dtype`` the one
    matmul and attention operands are rounded to (accumulation is float32).
    ``weights`` pairs a block matmul's parameter name (``wq`` … ``w_out``) with
    its :class:`WeightFormat` (absent: float). ``vq_codebook_dtype`` is the
    precision the VQ lookup reads the codebook in (``int8``: symmetric int8
    per code; ``None``: as stored). ``mixers`` is the repeating pattern of
    sequence mixers (:mod:`capibara.compiler.mixers`) with the sizes of its
    ``ssm`` and ``hyena`` blocks (``hyena_filter_length`` ``None``: the context).
    """

    vocab_size: int
    d_model: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    ffn_dim: int
    max_seq_len: int
    vq_codes: int | None = None
    num_experts: int | None = None
    top_k: int = 2
    expert_ffn_dim: int | None = None
    param_dtype: str = "float32"
    compute_dtype: str = "float32"
    vq_commitment_weight: float = 0.25
    vq_diversity_weight: float = 0.0
    load_balancing_weight: float = 0.0
    weights: tuple[tuple[str, WeightFormat], ...] = ()
    vq_codebook_dtype: str | None = None
    mixers: tuple[str, ...] = ("attention",)
    ssm_state_size: int = 16
    ssm_conv_width: int = 4
    hyena_filter_length: int | None = None
    ffn_sparsity: FeedForwardSparsity | None = None

    def __post_init__(self) -> None:
        if self.num_layers % len(self.mixers):
            raise ValueError(f"the mixers pattern {list(self.mixers)} does not tile "
                             f"num_layers={self.num_layers}")
        d, h, kv = self.d_model, self.num_heads, self.num_kv_heads
        if d % h:
            raise ValueError(f"d_model={d} must be a multiple of num_heads={h}")
        if h % kv:
            raise ValueError(f"num_heads={h} must be a multiple of num_kv_heads={kv}")
        if self.num_experts is not None and not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k={self.top_k} must be in [1, num_experts={self.num_experts}]")

    def weight_format(self, name: str) -> WeightFormat:
        """The format of block parameter ``name``'s weight (float unless ``weights`` says)."""
        return dict(self.weights).get(name, _FLOAT)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def attention_only(self) -> bool:
        """Every block is attention (one stacked block kind)."""
        return set(self.mixers) == {"attention"}

    def layer_counts(self) -> dict[str, int]:
        """Blocks of each mixer kind."""
        from capibara.compiler.mixers import layer_counts

        return layer_counts(self.mixers, self.num_layers)

    @property
    def filter_taps(self) -> int:
        """Taps of a hyena block's long filter."""
        return self.hyena_filter_length or self.max_seq_len

    @property
    def use_vq(self) -> bool:
        return self.vq_codes is not None

    @property
    def use_moe(self) -> bool:
        return self.num_experts is not None

    def tensor_parallel_refusal(self, ways: int) -> str | None:
        """Why the explicit sharded train step cannot split this model ``ways`` ways
        over the ``model`` axis (:mod:`capibara.model.tensor_parallel`), or ``None``."""
        return tensor_parallel_refusal(
            ways, mixers=self.mixers,
            quantized=[name for name, fmt in self.weights if fmt.kind != "float"],
            topk=self.ffn_sparsity is not None and self.ffn_sparsity.method == "topk",
            heads=self.num_heads, kv_heads=self.num_kv_heads,
            mlp=(("expert MLP width", self.expert_ffn_dim or 0) if self.use_moe
                 else ("MLP width", self.ffn_dim)))

    @property
    def vq_after_layer(self) -> int:
        """Blocks before the VQ bottleneck: the first half (rounded up)."""
        return (self.num_layers + 1) // 2

    @classmethod
    def from_plan(cls, plan: Any) -> "ModelSpec":
        """The spec a compiled plan describes: its shapes, precision, loss
        weights, the VQ codebook precision and each block matmul's weight
        format (its linalg kernel specs' ``attrs``; one spec may stand for
        several sites, its ``uses``)."""
        weights = []
        sparsity = None
        for kernel in plan.kernels:
            if kernel.family != "linalg":
                continue
            fmt = WeightFormat.from_attrs(kernel.attrs, f"kernel `{kernel.name}`")
            weights.extend((site.split(".", 1)[1], fmt) for site in (kernel.uses or (kernel.name,))
                           if site.startswith("blocks."))
            if "sparsity" in kernel.attrs:
                sparsity = FeedForwardSparsity.from_attrs(kernel.attrs["sparsity"],
                                                          f"kernel `{kernel.name}`")
        return cls.from_shape(plan.model, plan.precision, plan.loss, weights=tuple(weights),
                              sparsity=sparsity)

    @classmethod
    def from_shape(cls, shape: Any, precision: Any, loss: Any, *,
                   weights: tuple[tuple[str, WeightFormat], ...] = (),
                   sparsity: FeedForwardSparsity | None = None) -> "ModelSpec":
        """The spec of a plan's ``ModelShape``, ``Precision`` and ``LossWeights``,
        with the block matmuls' ``weights`` formats and the feed-forward's ``sparsity``."""
        from capibara.compiler.model_shape import mixer_facts_of

        codebook = getattr(precision, "vq_codebook", None) if shape.vq_codes else None
        mixers = mixer_facts_of(shape) if hasattr(shape, "mixers") else {}
        return cls(
            **{k: tuple(v) if k == "mixers" else v for k, v in mixers.items()},
            vocab_size=shape.vocab_size, d_model=shape.hidden_size,
            num_layers=shape.num_layers, num_heads=shape.num_heads,
            num_kv_heads=shape.num_heads, ffn_dim=shape.ffn_dim,
            max_seq_len=shape.max_seq_length, vq_codes=shape.vq_codes,
            num_experts=shape.num_experts, top_k=shape.experts_per_token or 1,
            expert_ffn_dim=shape.expert_ffn_dim,
            param_dtype=precision.params, compute_dtype=precision.compute,
            vq_commitment_weight=loss.vq_commitment,
            vq_diversity_weight=loss.vq_diversity,
            load_balancing_weight=loss.load_balancing,
            weights=tuple(sorted((name, fmt) for name, fmt in weights if fmt.kind != "float")),
            vq_codebook_dtype=None if codebook in (None, "auto") else codebook,
            ffn_sparsity=sparsity if shape.num_experts is None else None,
        )

    @classmethod
    def from_config(cls, config: Any, *, param_dtype: str = "float32",
                    compute_dtype: str = "float32") -> "ModelSpec":
        """The spec ``config`` describes, without compiling for a target.

        Shapes come from :func:`capibara.compiler.model_shape.model_shape` (the one place the
        derived sizes are computed: 4×-wide MLP, Rookies splitting that width)
        and weight formats from :func:`capibara.compiler.kernel_uses.kernel_uses` (the
        compiler's table of matmul sites); the dtypes, which a plan would
        choose for its target, are given here. ``vq_precision = "auto"`` leaves
        the codebook as stored (the target would decide).
        """
        from capibara.compiler.kernel_uses import feature_enabled, kernel_uses, sparsity_record
        from capibara.compiler.model_shape import loss_weights, model_shape

        weights = tuple(
            (use.site.split(".", 1)[1], WeightFormat.from_attrs(use.attrs, f"`{use.site}`"))
            for use in kernel_uses(config)
            if use.family == "linalg" and use.site.startswith("blocks.")
            and feature_enabled(use.feature, config, None, 1))
        precision = _Precision(param_dtype, compute_dtype,
                               config.vq_precision if config.use_vq else None)
        shape = model_shape(config)
        record = sparsity_record(config)
        return cls.from_shape(shape, precision, loss_weights(config, shape), weights=weights,
                              sparsity=None if record is None else
                              FeedForwardSparsity.from_attrs(record))

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's shape by its tree path, as ``jax.tree_util.keystr``
        prints it in :func:`capibara.model.facade.init_params`'s tree and checkpoints."""
        from capibara.compiler.mixers import STACKS, mixer_parameter_shapes

        d, dh = self.d_model, self.head_dim
        counts = self.layer_counts()
        L = counts["attention"]
        shapes = {
            "['blocks']['attn_norm']": (L, d),
            "['blocks']['wq']": (L, d, self.num_heads * dh),
            "['blocks']['wk']": (L, d, self.num_kv_heads * dh),
            "['blocks']['wv']": (L, d, self.num_kv_heads * dh),
            "['blocks']['wo']": (L, self.num_heads * dh, d),
        }
        for kind in ("ssm", "hyena"):
            if counts[kind]:
                shapes.update({f"['{STACKS[kind]}']['{name}']": (counts[kind], *shape)
                               for name, shape in mixer_parameter_shapes(
                                   kind, d, state_size=self.ssm_state_size,
                                   conv_width=self.ssm_conv_width).items()})
        for kind, stack in STACKS.items():
            if kind != "attention" and not counts[kind]:
                continue
            L = counts[kind]
            shapes[f"['{stack}']['ffn_norm']"] = (L, d)
            if self.use_moe:
                e, f = self.num_experts, self.expert_ffn_dim
                shapes[f"['{stack}']['router']"] = (L, d, e)
                shapes[f"['{stack}']['experts'].w_in"] = (L, e, d, f)
                shapes[f"['{stack}']['experts'].w_out"] = (L, e, f, d)
            else:
                shapes[f"['{stack}']['w_in']"] = (L, d, self.ffn_dim)
                shapes[f"['{stack}']['w_out']"] = (L, self.ffn_dim, d)
        shapes["['embed']"] = (self.vocab_size, d)
        shapes["['final_norm']"] = (d,)
        if self.use_vq:
            shapes["['codebook']"] = (self.vq_codes, d)
        return shapes

    def parameter_count(self) -> int:
        """Number of scalars in the parameter tree."""
        return sum(math.prod(shape) for shape in self.parameter_shapes().values())


_FLOAT = WeightFormat()


class _Precision(NamedTuple):
    params: str
    compute: str
    vq_codebook: str | None = None


@dataclass(frozen=True)
class RunPolicy:
    """How the compiled step trades memory for time (a plan's ``execution`` section).

    ``remat`` recomputes each block in the backward pass, keeping only its
    input (``gradient_checkpointing``); ``donate`` lets the training step
    reuse the old parameter and optimizer buffers; ``loss_chunk`` computes the
    output projection and cross-entropy that many tokens at a time, so the
    full ``[tokens, vocab]`` logits never exist in training (``None``: whole).
    ``saved_activation_dtype`` is the dtype those kept block inputs are stored
    in; ``offload_activations`` keeps them in host memory; ``jit = False``
    runs the model's functions op by op (``enable_jit``);
    ``shard_optimizer_state`` splits optimizer state over the data axis (ZeRO-1).
    """

    remat: bool = False
    donate: bool = True
    loss_chunk: int | None = None
    saved_activation_dtype: str = "float32"
    offload_activations: bool = False
    jit: bool = True
    shard_optimizer_state: bool = False

    @classmethod
    def from_config(cls, config: Any) -> "RunPolicy":
        """The policy ``config`` asks for before a target has a say
        (:func:`capibara.compiler.policy.memory_policy`, the one reading of the memory flags)."""
        from capibara.compiler.policy import memory_policy, shards_optimizer_state

        memory = memory_policy(config)
        return cls(remat=memory.remat, donate=memory.donate, loss_chunk=memory.loss_chunk,
                   saved_activation_dtype=memory.saved_activation_dtype,
                   offload_activations=memory.offload_activations, jit=bool(config.enable_jit),
                   shard_optimizer_state=shards_optimizer_state(config))

    @classmethod
    def from_execution(cls, execution: Any) -> "RunPolicy":
        """The policy a plan's :class:`~capibara.plan.Execution` records."""
        return cls(remat=execution.remat, donate=execution.donate,
                   loss_chunk=execution.loss_chunk,
                   saved_activation_dtype=execution.saved_activation_dtype,
                   offload_activations=execution.offload_activations, jit=execution.jit,
                   shard_optimizer_state=execution.shard_optimizer_state)



# --------------------------------------------------------------------------- live updates

#: ``use_vq`` turned on for a model built without codebooks.
VQ_WITHOUT_CODEBOOK = "R212"
#: A field that is not runtime-mutable changed (the schema's code for it).
NOT_RUNTIME_MUTABLE = "S501"


def live_update_diagnostics(built: Any, updated: Any, *, built_with_vq: bool | None = None) -> list[Diagnostic]:
    """Why a model running with config ``built`` cannot adopt ``updated``.

    Every field that differs must be runtime-mutable (marked so in the field table): one
    ``S501`` per field that is not, since only a rebuilt model can honour it.
    ``use_vq`` may turn on only if the model has codebooks (``built_with_vq``,
    by default ``built.use_vq``): at run time it is a bypass (``R212``).
    An empty list means the update is allowed.
    """
    from capibara.config.fieldtypes import format_value
    from capibara.config.fields import FIELDS, RUNTIME_MUTABLE

    diagnostics = []
    for f in FIELDS:
        old, new = getattr(built, f.name), getattr(updated, f.name)
        if old != new and f.name not in RUNTIME_MUTABLE:
            diagnostics.append(Diagnostic.error(
                NOT_RUNTIME_MUTABLE,
                f"`{f.name}` cannot change on a running model ({format_value(old)} to "
                f"{format_value(new)})",
                help="build a new model from the new config; only runtime-mutable fields "
                     "change in place"))
    has_codebook = built.use_vq if built_with_vq is None else built_with_vq
    if updated.use_vq and not has_codebook:
        diagnostics.append(Diagnostic.error(
            VQ_WITHOUT_CODEBOOK, "`use_vq` cannot be turned on for a model built without VQ codebooks",
            notes=("at run time `use_vq` only bypasses an existing bottleneck",),
            help="build the model with `use_vq = true`; set it to false at run time to bypass it"))
    return diagnostics
