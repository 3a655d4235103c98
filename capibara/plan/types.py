"""The plan's types: frozen msgspec Structs that say everything the runtime needs.

A :class:`Plan` is the compiler's last value: target, mesh, precision, batch,
loss weights, one :class:`KernelSpec` per kernel with its static parameters,
shapes and dtypes, plus everything a person needs to trust it (the resolved
config, where each value came from as an :class:`Origin`, the optimizer's
decisions). Encoding lives in :mod:`capibara.plan.codec`, the whole-plan check
in :mod:`capibara.plan.validate`. This module imports no JAX.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import msgspec

__all__ = [
    "FORMAT",
    "FORMAT_FAMILY",
    "MESH_AXES",
    "DTYPES",
    "ORIGIN_KINDS",
    "Plan",
    "CompilerInfo",
    "TargetInfo",
    "ModelShape",
    "MemoryEstimate",
    "Precision",
    "Mesh",
    "Batch",
    "Execution",
    "LossWeights",
    "KernelSpec",
    "Decision",
    "Origin",
]

#: The format tag every plan carries. ``/2``: provenance is a structured
#: :class:`Origin` (``/1`` stored it as text) and the loss weights are recorded.
FORMAT = "capibara.plan/2"
FORMAT_FAMILY = "capibara.plan/"

#: The mesh axes a plan may name, in the order the compiler writes them.
MESH_AXES = ("data", "model")

#: The most elements one array (or one memory figure, in bytes) may hold: 2⁴⁸, far past any device.
MAX_ELEMENTS = 2**48
#: The dtypes a plan may name for an array, a precision or a kernel parameter.
DTYPES = ("float32", "bfloat16", "float16", "float8_e4m3fn", "int8")


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Shared policy for every plan struct.

    ``frozen``: a plan is a value; passes build new ones instead of mutating.
    ``forbid_unknown_fields``: a field this compiler does not know means the
    file came from somewhere else, and guessing would half-use it.
    Subclasses also pass ``kw_only=True`` (msgspec does not inherit it): construction
    sites name every field, so adding one is safe.
    """


class CompilerInfo(_Frozen, kw_only=True):
    """Which compiler wrote the plan; :func:`is_compatible` decides who may load it."""

    name: str = "capibara"
    version: str


class TargetInfo(_Frozen, kw_only=True):
    """The target the plan was lowered for (a copy of the catalog entry's facts).

    ``cpu_features`` keeps only the host flags the compiler acted on (bf16
    and AMX units, vector widths), so two hosts that differ in unrelated flags
    produce the same plan.
    """

    name: str
    platform: str
    device_kind: str
    device_count: int
    memory_per_device_gib: float | None
    native_dtypes: tuple[str, ...]
    matmul_tile: tuple[int, int]
    cpu_features: tuple[str, ...] = ()


class ModelShape(_Frozen, kw_only=True):
    """Model dimensions and the sizes derived from them.

    ``parameter_count`` is ``12·L·d² + V·d`` (attention
    4d² and a 4×-wide MLP 8d² per layer, tied embeddings) plus the RMSNorm
    scales, the VQ codebook ``K·d_vq`` and the Mixture-of-Rookies routers
    ``L·d·E`` (see :func:`capibara.compiler.model_shape.model_shape`). With Mixture of
    Rookies, ``num_experts`` experts of ``expert_ffn_dim`` each split the MLP
    width and ``experts_per_token`` of them run per token. ``mixers`` is the
    per-block pattern of sequence mixers (``model.mixers``) with the sizes its
    ``ssm`` and ``hyena`` blocks use; all four are absent for attention only.
    """

    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    ffn_dim: int
    vocab_size: int
    max_seq_length: int
    parameter_count: int
    vq_codes: int | None = None
    vq_embedding_dim: int | None = None
    num_experts: int | None = None
    experts_per_token: int | None = None
    expert_ffn_dim: int | None = None
    # Sequence mixers other than attention: absent (UNSET) for an all-attention
    # model, so its plan says nothing about mixers it does not have.
    mixers: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET
    ssm_state_size: int | msgspec.UnsetType = msgspec.UNSET
    ssm_conv_width: int | msgspec.UnsetType = msgspec.UNSET
    hyena_filter_length: int | msgspec.UnsetType = msgspec.UNSET


class MemoryEstimate(_Frozen, kw_only=True):
    """Bytes per device at the peak of one training step.

    ``weights`` + ``gradients`` + ``optimizer_state`` follow the mesh (model
    parallelism splits all three; optimizer sharding splits the state over
    the data axis too); the state is kept in the weights' dtype, gradients in
    float32. ``activations`` is what the backward pass keeps for the
    per-device batch plus the largest working set of one block (or of the
    loss head); ``workspace`` the temporaries that do not grow with the
    batch (block parameters the step copies, one block's float32 weight
    gradients). Without buffer donation the update step writes new weights
    and state beside the old ones (``update_copies`` = 2): ``total`` is
    ``weights + optimizer_state + gradients`` plus the larger of
    ``activations + workspace`` and the second copy (XLA reuses the new
    buffers for temporaries until the update writes them); with donation,
    plus ``activations + workspace``. ``limit`` is the effective cap
    (smallest of the physical memory and the config's limits), ``None`` when
    nothing is known.
    """

    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    workspace: int
    update_copies: int
    total: int
    limit: int | None


class Precision(_Frozen, kw_only=True):
    """The precision policy: master weights, matmul inputs, matmul accumulation."""

    params: str
    compute: str
    accumulation: str
    vq_codebook: str | None = None
    loss_scaling: bool = False


class Mesh(_Frozen, kw_only=True):
    """The device mesh: ``shape[i]`` devices along axis ``axes[i]`` (``data``, ``model``)."""

    shape: tuple[int, ...]
    axes: tuple[str, ...]

    @property
    def devices(self) -> int:
        return math.prod(self.shape)

    def size(self, axis: str) -> int:
        """Devices along ``axis``; 1 for an axis the mesh does not have."""
        return self.shape[self.axes.index(axis)] if axis in self.axes else 1


class Execution(_Frozen, kw_only=True):
    """How the runtime runs the step (see :class:`capibara.compiler.policy.MemoryPolicy`).

    ``remat``: recompute each block in the backward pass, keeping its input;
    ``donate``: the update step reuses the old weight and optimizer buffers;
    ``loss_chunk``: tokens per chunk of the output projection and loss
    (``None``: whole); ``saved_activation_dtype``: the dtype kept block inputs
    are stored in; ``offload_activations``: kept inputs live in host memory;
    ``jit`` and ``cache_compiled``: the config's ``enable_jit`` and
    ``cache_compiled_functions``.
    """

    remat: bool
    donate: bool
    loss_chunk: int | None
    saved_activation_dtype: str
    offload_activations: bool
    jit: bool
    cache_compiled: bool
    #: Optimizer state split over the data axis (ZeRO-1, ``optimizer_sharding``).
    shard_optimizer_state: bool = False


class Batch(_Frozen, kw_only=True):
    """The resolved batch: ``global_size`` samples per step, split over the data axis."""

    global_size: int
    per_device: int
    max_size: int
    adaptive: bool


class KernelSpec(_Frozen, kw_only=True):
    """One kernel the model runs, specialized for the plan.

    ``family`` is a folder under ``capibara/kernels/``; ``implementation`` a
    name in that family's ``VARIANTS``; ``params`` its static keyword
    arguments (tile sizes, chunk lengths, flags); ``shapes`` and ``dtypes``
    describe each array argument *per device* (the shard one device sees).
    ``attrs`` are facts about the call the runtime needs that are not the
    kernel's keyword arguments (``causal``, the weight format, ``top_k``).
    ``uses`` names the places in the model that call it (several after
    deduplication) and ``calls_per_step`` how often a forward step calls it.
    """

    name: str
    family: str
    implementation: str
    params: dict[str, Any] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    attrs: dict[str, Any] = {}
    uses: tuple[str, ...] = ()
    calls_per_step: int = 1


class LossWeights(_Frozen, kw_only=True):
    """The weights of the training loss's auxiliary terms, as the compiler chose them.

    ``vq_commitment``: the VQ bottleneck's commitment term; ``vq_diversity``:
    its codebook-usage term (0 when off); ``load_balancing``: the
    Mixture-of-Rookies load-balancing term (0 without experts or when off).
    Recorded so the runtime builds the model from the plan, not from a config
    rebuilt out of it.
    """

    vq_commitment: float = 0.0
    vq_diversity: float = 0.0
    load_balancing: float = 0.0


#: Where a config value can come from; ``default`` and ``derived`` are implicit,
#: the others count as set explicitly.
OriginKind = Literal["default", "file", "env", "set", "keyword", "legacy", "derived", "runtime"]
ORIGIN_KINDS: tuple[str, ...] = get_args(OriginKind)
_IMPLICIT = frozenset({"default", "derived"})


class Origin(_Frozen, kw_only=True, omit_defaults=True):
    """Where a config value in the plan came from: ``kind`` (one of
    :data:`ORIGIN_KINDS`), the place it was written (``file``, 1-based ``line``
    and ``column``; ``file`` names the variable or ``--set`` argument for
    those kinds) and ``detail`` (the key as written, how it was derived).
    Defaults are left out of the file, so a default value reads ``{"kind": "default"}``."""

    kind: OriginKind
    file: str | None = None
    line: int | None = None
    column: int | None = None
    detail: str = ""

    @property
    def explicit(self) -> bool:
        """Whether the value was set (anywhere) rather than defaulted or derived."""
        return self.kind not in _IMPLICIT

    def __str__(self) -> str:
        where = f" {self.file}:{self.line}:{self.column}" if self.file is not None else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind}{where}{detail}"


class Decision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Why a value in the plan is what it is: pass ``pass_`` changed ``path``.

    Written in the file as ``{"pass": ..., "path": ..., "before": ...,
    "after": ..., "reason": ...}``; ``path`` uses the one printed form shared
    with diagnostics and ``--set`` (``model.hidden_size``) or a plan path
    (``kernels.attention.implementation``).
    """

    pass_: str = msgspec.field(name="pass")
    path: str
    before: Any
    after: Any
    reason: str


class Plan(_Frozen, kw_only=True):
    """A compiled configuration (see the module docstring; encoded by :mod:`capibara.plan.codec`)."""

    format: str = FORMAT
    compiler: CompilerInfo
    target: TargetInfo
    model: ModelShape
    memory: MemoryEstimate
    precision: Precision
    mesh: Mesh
    batch: Batch
    execution: Execution
    loss: LossWeights
    kernels: tuple[KernelSpec, ...]
    training: dict[str, Any]
    runtime: dict[str, Any]
    services: dict[str, dict[str, Any]]
    config: dict[str, Any]
    provenance: dict[str, Origin]
    decisions: tuple[Decision, ...]
    warnings: tuple[str, ...] = ()
    #: What the plan records that nothing acts on, one sentence each (not warnings:
    #: the config is valid, these fields are simply inert).
    notes: tuple[str, ...] = ()
    digest: str = ""

    def kernel(self, name: str) -> KernelSpec:
        """The kernel spec called ``name``; ``KeyError`` if the plan has none."""
        for spec in self.kernels:
            if spec.name == name:
                return spec
        raise KeyError(name)


