"""Stage 5: the optimization passes, run by one pipeline.

A pass is a small frozen dataclass with a ``name`` and one method,
``apply(ir, ctx) -> ir`` (xdsl's shape): it receives a
:class:`~capibara.lower.Lowered` and returns a new one, appending any
diagnostics to ``ctx`` and recording every change it makes as a
:class:`~capibara.plan.Decision`. :class:`PassPipeline` runs a tuple of
passes with one callback between them, which is how ``--print-after STAGE``
and ``--time-stages`` work without any pass knowing about them.

The default pipeline, in order:

=================== ==========================================================
``resolve-mesh``    ``"auto"`` mesh → ``[data, model]`` from the device count
``prune-disabled``  drop kernels of features that are off; warn about settings
                    that have no effect on this target (``O1xx``)
``precision``       the precision policy the target can run
``memory-policy``   ``memory_optimization_level`` and ``compile_mode`` → donation,
                    chunked loss, saved-activation dtype
``fold-derived``    derived sizes (head_dim, MLP width, parameter count) and dtypes
                    folded into every kernel shape
``select-kernels``  implementation and tile sizes per kernel, by cost model
``resolve-batch``   ``"auto"`` batch → the largest that fits; the memory check
``dedupe-kernels``  identical kernel specs merged
=================== ==========================================================

Adding a pass is one class plus one line in :data:`PASSES`.
"""

from __future__ import annotations

import math
import time

import msgspec
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Mapping

from capibara.diagnostics import Diagnostic
from capibara.lower import (FEATURE_SWITCH, MESH_AXES, KernelUse, Lowered, estimate_memory,
                            feature_enabled, field_diagnostic, local_parameters, model_shape,
                            path_of, split_dim)
from capibara.plan import Mesh, Precision
from capibara.targets import GIB

__all__ = [
    "Pass",
    "PassContext",
    "PassPipeline",
    "PASSES",
    "DEFAULT_PIPELINE",
    "optimize",
    "describe",
    "choose_implementation",
    "Refusal",
]


@dataclass
class PassContext:
    """What passes share besides the IR: the diagnostics found so far."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


class Pass:
    """Base of every pass: a frozen dataclass whose fields are its options."""

    name: ClassVar[str]

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:  # pragma: no cover - abstract
        raise NotImplementedError


#: Called after each stage with (stage name, IR, seconds it took).
Callback = Callable[[str, Lowered, float], None]


@dataclass(frozen=True)
class PassPipeline:
    """Run ``passes`` in order, calling ``callback`` after each; stop after a pass with errors."""

    passes: tuple[Pass, ...]
    callback: Callback | None = None

    def run(self, ir: Lowered, ctx: PassContext) -> Lowered:
        for pass_ in self.passes:
            start = time.perf_counter()
            ir = pass_.apply(ir, ctx)
            if self.callback is not None:
                self.callback(pass_.name, ir, time.perf_counter() - start)
            if ctx.has_errors:
                break
        return ir


# --------------------------------------------------------------------------- resolve-mesh

#: Widest model axis the automatic mesh uses: tensor parallelism exchanges
#: activations twice per block, which stays cheap only inside one host's
#: fast interconnect (8 chips on a TPU v4/v6e host board, 8 GPUs on NVLink).
MAX_MODEL_AXIS = 8

INEFFECTIVE = "O101"
UNUSED_MODEL_AXIS = "O102"
CONSERVATIVE_IGNORES = "O103"


def _devices_available(ir: Lowered) -> int:
    target = ir.target
    if target.platform == "gpu":
        return min(ir.config.num_gpus, target.device_count)
    return target.device_count


@dataclass(frozen=True)
class ResolveMesh(Pass):
    """``tpu_mesh_shape = "auto"`` (or a non-TPU target) → a ``[data, model]`` mesh.

    The model axis is 1 unless ``model_parallel``; then it is the widest
    divisor of the device count that also divides ``num_heads`` and
    ``hidden_size`` (C20), up to :data:`MAX_MODEL_AXIS`. The data axis takes
    the rest, or 1 with ``data_parallel = false``.
    """

    name: ClassVar[str] = "resolve-mesh"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config = ir.config
        if ir.mesh is not None:
            if ir.mesh.size("model") > 1 and not config.model_parallel:
                ctx.diagnostics.append(field_diagnostic(
                    UNUSED_MODEL_AXIS,
                    f"the model axis of `tpu_mesh_shape` {list(ir.mesh.shape)} has "
                    f"{ir.mesh.size('model')} devices, but `model_parallel` is false: they all "
                    "compute the same thing",
                    config, ("tpu_mesh_shape", "model_parallel"),
                    {"tpu_mesh_shape": "model axis unused", "model_parallel": "off"},
                    help=f"set `{path_of('model_parallel')} = true` to split the model over it, "
                         f"or `{path_of('tpu_mesh_shape')} = [{ir.mesh.devices}]` for data "
                         "parallelism only", warning=True))
            return ir
        if isinstance(config.tpu_mesh_shape, list) and "tpu_mesh_shape" in ir.explicit:
            ctx.diagnostics.append(field_diagnostic(
                INEFFECTIVE, f"`tpu_mesh_shape` has no effect on `{ir.target.name}`: only TPU "
                             "meshes are set by hand",
                config, ("tpu_mesh_shape",), {"tpu_mesh_shape": "ignored here"},
                help="remove it, or compile for a TPU (`--target tpu_v4-32`)", warning=True))
        devices = _devices_available(ir)
        model = 1
        if config.model_parallel:
            model = max(m for m in range(1, min(devices, MAX_MODEL_AXIS) + 1)
                        if devices % m == 0 and config.num_heads % m == 0
                        and config.hidden_size % m == 0)
        data = devices // model if config.data_parallel else 1
        mesh = Mesh(shape=(data, model), axes=MESH_AXES)
        why = [f"{devices} device{'s' if devices != 1 else ''} on `{ir.target.name}`"]
        if config.model_parallel:
            why.append(f"model axis {model}: the widest ≤ {MAX_MODEL_AXIS} dividing "
                       f"{config.num_heads} heads and hidden size {config.hidden_size}")
        if not config.data_parallel:
            why.append("data_parallel = false: one replica")
        return ir.decide(self.name, "tpu_v4_optimizations.mesh_shape", config.tpu_mesh_shape,
                         list(mesh.shape), "; ".join(why), mesh=mesh)


# --------------------------------------------------------------------------- prune-disabled

#: Settings that act only on some targets: field → (predicate on the target, where it applies).
_TARGET_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "use_tpu_v4_optimizations": (lambda t: t.seed_device == "tpu_v4", "TPU v4"),
    "use_custom_kernels": (lambda t: t.platform == "tpu", "TPU"),
    "kernel_categories": (lambda t: t.platform == "tpu", "TPU"),
    "vq_use_tpu_optimizations": (lambda t: t.platform == "tpu", "TPU"),
    "vq_use_simd": (lambda t: t.platform == "cpu", "CPU"),
    "num_gpus": (lambda t: t.platform == "gpu", "GPU"),
    "gpu_memory_fraction": (lambda t: t.platform == "gpu", "GPU"),
    "gpu_memory_growth": (lambda t: t.platform == "gpu", "GPU"),
}

#: Settings a kernel family's selection reads only outside conservative mode.
_CUSTOM_KERNEL_SETTINGS = ("use_custom_kernels", "kernel_categories", "vq_use_tpu_optimizations",
                           "vq_use_simd")


@dataclass(frozen=True)
class PruneDisabled(Pass):
    """Drop the kernels of switched-off features; warn about settings without effect here.

    A feature that is off leaves no kernel (and, in the plan, no section).
    A setting written explicitly that does nothing on the resolved target is
    an ``O101`` warning, unless the validator already says so because the
    config names its device (``V015``, ``V024``, ``V037``): this pass covers
    ``device = "auto"`` and ``--target``. The validator's hardware check
    already judges the settings it resolves against the target itself (ARM
    optimizations ``V039``, collectives on one device ``V022``).
    """

    name: ClassVar[str] = "prune-disabled"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config, mesh = ir.config, ir.mesh
        kept: list[KernelUse] = []
        pruned: list[tuple[str, str]] = []
        for use in ir.kernels:
            if feature_enabled(use.feature, config, mesh, ir.model_axis):
                kept.append(use)
            else:
                pruned.append((use.site, use.feature))
        for site, feature in pruned:
            switch = FEATURE_SWITCH[feature]
            ir = ir.decide(self.name, f"kernels.{site}", site, None,
                           _pruned_reason(feature, switch, config, mesh))
        ir = replace(ir, kernels=tuple(kept))
        ctx.diagnostics.extend(self._ineffective(ir))
        return ir

    @staticmethod
    def _ineffective(ir: Lowered) -> list[Diagnostic]:
        config, target = ir.config, ir.target
        if config.device != "auto" and target.seed_device == config.device:
            return []  # the validator checked these settings against the named device
        found = []
        for name, (applies, where) in _TARGET_ONLY.items():
            if name not in ir.explicit or applies(target):
                continue
            if isinstance(getattr(config, name), bool) and not getattr(config, name):
                continue  # switching a feature off where it does not exist is harmless
            found.append(field_diagnostic(
                INEFFECTIVE, f"`{name}` has no effect on `{target.name}`: it applies on {where} only",
                config, (name,), {name: f"{where} only"},
                help=f"remove `{path_of(name)}` when compiling for `{target.name}`", warning=True))
        if config.compile_mode == "conservative":
            ignored = [n for n in _CUSTOM_KERNEL_SETTINGS
                       if n in ir.explicit and getattr(config, n)]
            for name in ignored:
                found.append(field_diagnostic(
                    CONSERVATIVE_IGNORES,
                    f"`{name}` has no effect: `compile_mode` \"conservative\" keeps every kernel's "
                    "reference implementation",
                    config, (name, "compile_mode"),
                    {name: "ignored", "compile_mode": "reference kernels only"},
                    help=f"remove `{path_of(name)}`, or use `{path_of('compile_mode')} = \"default\"`",
                    warning=True))
        return found


def _pruned_reason(feature: str, switch: str, config: Any, mesh: Mesh | None) -> str:
    if feature == "data_parallel":
        return "one data-parallel replica: no gradient all-reduce"
    if feature == "model_parallel":
        return "no model parallelism: no activation all-reduce"
    if feature == "dense_mlp":
        return "Mixture of Rookies replaces the dense MLP (sparsity.method = \"mor\")"
    if feature == "mor":
        if not config.use_sparse:
            return "sparsity.enabled = false"
        return f"sparsity.method = \"{config.sparsity_method}\" is not Mixture of Rookies"
    return f"`{path_of(switch)}` = false"


# --------------------------------------------------------------------------- precision


def _fast_bf16(ir: Lowered) -> bool:
    """Whether bf16 matmuls beat f32 on the target (AMX / AVX512-BF16 / SVE-BF16, MXU, tensor cores)."""
    return ir.target.has_fast_bf16


@dataclass(frozen=True)
class PrecisionPolicy(Pass):
    """The precision the target can run (A28, V13).

    - bf16 compute on a CPU without bf16 matrix units becomes float32: a bf16
      dot there is converted to float32 first and runs slower than float32
      (DESIGN.md §5); with AMX/AVX512-BF16 it runs ~4× faster, so it stays.
    - ``vq_precision = "auto"`` becomes bfloat16 where the compute is
      bfloat16 on a TPU or GPU, float32 elsewhere; ``int8`` stays int8.
    """

    name: ClassVar[str] = "precision"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        p = ir.precision
        if "bfloat16" in (p.compute, p.params) and not _fast_bf16(ir):
            changed = Precision(
                params="float32" if p.params == "bfloat16" else p.params, compute="float32",
                accumulation=p.accumulation, vq_codebook=p.vq_codebook, loss_scaling=False)
            ir = ir.decide(self.name, "precision.compute", p.compute, "float32",
                           f"`{ir.target.name}` has no bf16 matrix units (no amx_bf16/avx512_bf16): "
                           "a bf16 dot runs slower there than float32", precision=changed)
            p = changed
        if p.vq_codebook == "auto":
            auto = ("bfloat16" if p.compute == "bfloat16" and ir.target.platform in ("tpu", "gpu")
                    else "float32")
            ir = ir.decide(self.name, "vector_quantization.precision", "auto", auto,
                           f"codebooks follow the {p.compute} compute on {ir.target.platform}"
                           if auto == "bfloat16" else
                           f"float32 codebooks on {ir.target.platform} (bfloat16 only pays on TPU/GPU)",
                           precision=msgspec.structs.replace(p, vq_codebook=auto))
        return ir


# --------------------------------------------------------------------------- memory-policy


@dataclass(frozen=True)
class ApplyMemoryPolicy(Pass):
    """``compile_mode = "aggressive"`` donates buffers whatever the memory level.

    The level's own effects (donation at ≥ 1, chunked loss at ≥ 2, compute-dtype
    saved activations at 3) are set in lowering (:func:`capibara.lower.memory_policy`)
    and recorded here, so ``capibara explain`` shows why each is on.
    """

    name: ClassVar[str] = "memory-policy"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config, policy = ir.config, ir.policy
        level = config.memory_optimization_level
        if not policy.donate and config.compile_mode == "aggressive":
            ir = ir.decide(self.name, "execution.donate", False, True,
                           "compile_mode = \"aggressive\" donates buffers at any memory level",
                           policy=replace(policy, donate=True))
        elif policy.donate:
            ir = ir.decide(self.name, "execution.donate", False, True,
                           f"memory_optimization_level {level} ≥ 1: the update step reuses the old "
                           "weight and optimizer-state buffers")
        if policy.loss_chunk is not None:
            ir = ir.decide(self.name, "execution.loss_chunk", None, policy.loss_chunk,
                           f"memory_optimization_level {level} ≥ 2: the output projection and loss "
                           f"run over {policy.loss_chunk}-token chunks")
        if policy.saved_activation_dtype != "float32":
            ir = ir.decide(self.name, "execution.saved_activation_dtype", "float32",
                           policy.saved_activation_dtype,
                           f"memory_optimization_level 3: block inputs are kept in "
                           f"{policy.saved_activation_dtype} for the backward pass")
        return ir


# --------------------------------------------------------------------------- fold-derived


@dataclass(frozen=True)
class FoldDerived(Pass):
    """Fold the derived sizes and the precision into every kernel's shapes, dtypes and params.

    Binds every symbol of :data:`capibara.lower.SYMBOLS` except the batch
    (``B``, ``N``), which ``resolve-batch`` binds.
    """

    name: ClassVar[str] = "fold-derived"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config = ir.config
        model = model_shape(config)
        ir = ir.decide(self.name, "model.head_dim", None, model.head_dim,
                       f"hidden_size {model.hidden_size} / num_heads {model.num_heads}", model=model)
        ir = ir.decide(self.name, "model.parameter_count", None, model.parameter_count,
                       "12·L·d² + V·d, norms, VQ codebook and Mixture-of-Rookies experts")
        m = ir.model_axis
        heads = split_dim(model.num_heads, m)
        sizes: dict[str, int] = {
            "S": model.max_seq_length, "d": model.hidden_size, "Hl": heads,
            "Dh": model.head_dim, "HDl": heads * model.head_dim,
            "Fl": split_dim(model.ffn_dim, m), "Vl": split_dim(model.vocab_size, m),
            "Pl": local_parameters(model, m),
        }
        if model.vq_codes:
            sizes.update(K=model.vq_codes, Dv=model.vq_embedding_dim or model.hidden_size)
        if model.num_experts:
            sizes.update(E=model.num_experts, Fel=split_dim(model.expert_ffn_dim or 0, m))
        dtypes = _dtype_bindings(ir.precision)
        kernels = tuple(_bind(use, sizes, dtypes) for use in ir.kernels)
        return replace(ir, kernels=kernels)


def _dtype_bindings(p: Precision) -> dict[str, str]:
    return {"$params": p.params, "$compute": p.compute, "$accumulation": p.accumulation,
            "$vq_codebook": p.vq_codebook or p.compute}


def _bind(use: KernelUse, sizes: Mapping[str, int], dtypes: Mapping[str, str]) -> KernelUse:
    shapes = {name: tuple(sizes.get(d, d) if isinstance(d, str) else d for d in shape)
              for name, shape in use.shapes.items()}
    return replace(use, shapes=shapes,
                   dtypes={k: dtypes.get(v, v) for k, v in use.dtypes.items()},
                   params={k: dtypes.get(v, v) if isinstance(v, str) else v
                           for k, v in use.params.items()})


# --------------------------------------------------------------------------- select-kernels


@dataclass(frozen=True)
class Refusal:
    """Why an implementation does not apply to a kernel use."""

    reason: str


#: A selector: (use, ir) → the implementation's static params, or a Refusal.
Selector = Callable[[KernelUse, Lowered], "dict[str, Any] | Refusal"]


def _tile(length: int, cap: int, floor: int = 16) -> int | None:
    """The largest power of two ≤ ``cap`` that divides ``length`` (a short sequence is one tile)."""
    if length <= cap:
        return length
    size = 1 << (cap.bit_length() - 1)
    while size >= floor:
        if length % size == 0:
            return size
        size //= 2
    return None


#: CPU attention tile: 512 × 512 was the fastest of 128–1024 at S = 2048 on this
#: machine (630 ms at 128, 355 ms at 512; kernels/attention/cpu.py BlockSizes);
#: ``aggressive`` allows 1024, which wins at longer sequences when memory allows.
CPU_ATTENTION_TILE = {"default": 512, "aggressive": 1024}
#: TPU attention tile per MXU edge: v4's MXU is 128 wide, v6e's 256 (targets.py);
#: ``aggressive`` takes 4 MXU edges per tile, as the Pallas kernel's larger presets do.
TPU_TILES_PER_MXU = {"default": 1, "aggressive": 4}
#: VQ rows per block. CPU: measured at N65536 D768 K64 (kernels/vq/blocked.py),
#: 512-1024 rows are fastest and larger blocks slower (4096: +15-25%), since the
#: block's rows (3 MiB at 1024 x 768 f32) must stay in cache from the score
#: product to the exact error; ``aggressive`` gains nothing there. Accelerators
#: run the loop's iterations one after another, so their blocks are larger
#: (4096 rows x 128 codes x 4 B = 2 MiB of scores); ``aggressive`` doubles it.
VQ_BLOCK_ROWS = {"cpu": {"default": 1024, "aggressive": 1024},
                 "accelerator": {"default": 4096, "aggressive": 8192}}


def _mode(ir: Lowered) -> str:
    return "aggressive" if ir.config.compile_mode == "aggressive" else "default"


def _seq(use: KernelUse) -> int:
    return int(use.shapes["q"][1])


def _attention_cpu(use: KernelUse, ir: Lowered, *, bf16: bool) -> dict[str, Any] | Refusal:
    compute = use.dtypes["q"]
    if bf16 != (compute == "bfloat16"):
        return Refusal(f"the compute dtype is {compute}")
    tile = _tile(_seq(use), CPU_ATTENTION_TILE[_mode(ir)])
    if tile is None:
        return Refusal(f"sequence length {_seq(use)} has no power-of-two tile ≥ 16")
    params: dict[str, Any] = {"block_q": tile, "block_kv": tile}
    if not bf16:
        params["compute_dtype"] = compute
    return params


def _attention_cudnn(use: KernelUse, ir: Lowered) -> dict[str, Any] | Refusal:
    compute, head_dim = use.dtypes["q"], int(use.shapes["q"][3])
    if compute not in ("bfloat16", "float16"):
        return Refusal(f"cuDNN flash attention takes float16/bfloat16, the compute dtype is {compute}")
    if head_dim % 8 or head_dim > 256:
        return Refusal(f"cuDNN needs head_dim a multiple of 8 and ≤ 256, got {head_dim}")
    return {}


#: A TPU vector register row holds 128 lanes: a key tile narrower than that
#: wastes most of every load, so longer sequences need a multiple of 128.
TPU_LANES = 128


def _attention_tpu(use: KernelUse, ir: Lowered) -> dict[str, Any] | Refusal:
    edge = ir.target.matmul_tile[0] * TPU_TILES_PER_MXU[_mode(ir)]
    tile = _tile(_seq(use), edge, floor=TPU_LANES)
    if tile is None:
        return Refusal(f"sequence length {_seq(use)} is not a multiple of {TPU_LANES}")
    return {"block_q": tile, "block_kv": tile}


def _vq_blocked(use: KernelUse, ir: Lowered, *, int8: bool) -> dict[str, Any] | Refusal:
    codebook = use.dtypes["codebook"]
    if int8 != (codebook == "int8"):
        return Refusal(f"the codebook is {codebook}")
    config, target = ir.config, ir.target
    if target.platform == "tpu" and not config.vq_use_tpu_optimizations:
        return Refusal("vector_quantization.use_tpu_optimizations = false")
    if target.platform == "cpu" and not config.vq_use_simd:
        return Refusal("vector_quantization.use_simd = false")
    rows = VQ_BLOCK_ROWS["cpu" if target.platform == "cpu" else "accelerator"]
    params: dict[str, Any] = {"block_rows": rows[_mode(ir)]}
    if not int8:
        params["compute_dtype"] = "bfloat16" if codebook == "bfloat16" else "float32"
    return params


#: Expert capacity per token share (dispatch drops the assignments beyond it):
#: 1.25 is the Switch Transformer's training default with a load-balancing loss
#: keeping experts even; without that loss routing skews, so 2.0; ``aggressive``
#: trades a few more drops for tighter buffers.
MOE_CAPACITY = {"balanced": 1.25, "unbalanced": 2.0, "aggressive": 1.0}


def _moe_dispatch(use: KernelUse, ir: Lowered) -> dict[str, Any] | Refusal:
    experts, top_k = int(use.shapes["router"][1]), int(use.attrs["top_k"])
    if top_k >= experts:
        return Refusal(f"top_k {top_k} of {experts} experts runs every expert on every token")
    if not use.attrs.get("load_balancing"):
        return {"capacity_factor": MOE_CAPACITY["unbalanced"]}
    return {"capacity_factor": MOE_CAPACITY["aggressive" if _mode(ir) == "aggressive" else "balanced"]}


#: Smallest all-reduce worth two collectives: below it the extra round trip costs
#: more than the halved reads save (the measured anchor is 64 MiB over 8 devices).
TWO_PHASE_MIN_BYTES = 1 << 20


def _collective_decomposed(use: KernelUse, ir: Lowered) -> dict[str, Any] | Refusal:
    # Two-phase writes its result into the input's buffer when the input is
    # donated; without donation every phase allocates a fresh output and psum
    # wins (64 MiB x 8 host devices: 1.1x psum donated, 0.75x not, huge pages;
    # 2.8-3.8x and 0.74-0.92x with 4 KiB pages). The loader donates it exactly
    # when the plan donates buffers.
    if use.attrs.get("op") == "all_reduce" and not ir.policy.donate:
        return Refusal("buffers are not donated (memory_optimization_level 0), and a two-phase "
                       "all-reduce beats psum only in place")
    # The batch is not bound yet (it depends on these choices): count one sample,
    # a lower bound on the size.
    size = math.prod(d if isinstance(d, int) else 1 for d in use.shapes["x"]) \
        * _DTYPE_BYTES.get(use.dtypes["x"], 4)
    if size < TWO_PHASE_MIN_BYTES:
        return Refusal(f"{size} bytes is below the {TWO_PHASE_MIN_BYTES}-byte two-phase threshold")
    return {}


_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


def _always(use: KernelUse, ir: Lowered) -> dict[str, Any]:
    return dict(use.params)


#: Every (family, implementation) the compiler can choose, and when it applies.
#: The catalog (targets.py) orders a target's implementations best first; the
#: first that applies wins. ``reference`` always applies.
SELECTORS: dict[tuple[str, str], Selector] = {
    ("attention", "cpu_bf16"): lambda u, ir: _attention_cpu(u, ir, bf16=True),
    ("attention", "cpu_blocked"): lambda u, ir: _attention_cpu(u, ir, bf16=False),
    ("attention", "cudnn"): _attention_cudnn,
    ("attention", "pallas_tpu"): _attention_tpu,
    ("attention", "reference"): lambda u, ir: {},
    ("linalg", "xla"): _always,
    ("linalg", "reference"): _always,
    ("vq", "int8"): lambda u, ir: _vq_blocked(u, ir, int8=True),
    ("vq", "xla"): lambda u, ir: _vq_blocked(u, ir, int8=False),
    ("vq", "reference"): lambda u, ir: {},
    ("moe", "dispatch"): _moe_dispatch,
    ("moe", "reference"): lambda u, ir: {},
    ("collective", "decomposed"): _collective_decomposed,
    ("collective", "reference"): lambda u, ir: {},
}

#: Kernel families a TPU runs custom kernels for only when the config lists
#: them (T13/T14); the others (vq, moe) are always chosen by cost.
CUSTOM_CATEGORIES = frozenset({"linalg", "attention", "scan", "collective", "conv", "fft"})


def choose_implementation(use: KernelUse, ir: Lowered) -> tuple[str, dict[str, Any], str]:
    """``(implementation, params, reason)`` for ``use`` on ``ir``'s target."""
    config, target = ir.config, ir.target
    if config.compile_mode == "conservative":
        return "reference", _reference_params(use), "compile_mode = \"conservative\""
    if target.platform == "tpu" and use.family in CUSTOM_CATEGORIES:
        if not config.use_custom_kernels:
            return "reference", _reference_params(use), "use_custom_kernels = false"
        if use.family not in config.kernel_categories:
            return ("reference", _reference_params(use),
                    f"`{use.family}` is not in kernel_categories")
        if target.seed_device == "tpu_v4" and not config.use_tpu_v4_optimizations:
            return "reference", _reference_params(use), "tpu_v4_optimizations.enabled = false"
    refusals: list[str] = []
    for name in target.kernels.get(use.family, ("reference",)):
        selector = SELECTORS.get((use.family, name))
        if selector is None:
            continue
        chosen = selector(use, ir)
        if isinstance(chosen, Refusal):
            refusals.append(f"{name}: {chosen.reason}")
            continue
        best = target.kernels[use.family][0]
        why = (f"best on `{target.name}`" if name == best else
               f"best that applies on `{target.name}` ({'; '.join(refusals)})")
        return name, chosen, why
    return "reference", _reference_params(use), "; ".join(refusals) or "no other implementation"


def _reference_params(use: KernelUse) -> dict[str, Any]:
    # linalg's reference takes the precision policy too; the others take no tuning knobs.
    return dict(use.params) if use.family == "linalg" else {}


@dataclass(frozen=True)
class SelectKernels(Pass):
    """Pick each kernel's implementation and static parameters (tile sizes) by cost model.

    ``compile_mode``: ``conservative`` keeps every reference implementation;
    ``default`` takes the best implementation that applies with the measured
    tile sizes; ``aggressive`` also takes larger tiles (see the ``*_TILE``
    tables). On a TPU, custom kernels follow ``use_custom_kernels`` and
    ``kernel_categories``.
    """

    name: ClassVar[str] = "select-kernels"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        chosen: list[KernelUse] = []
        decisions = []
        for use in ir.kernels:
            implementation, params, reason = choose_implementation(use, ir)
            chosen.append(replace(use, implementation=implementation, params=params))
            best = ir.target.kernels.get(use.family, ("reference",))[0]
            # Record every change, and why a kernel stays below the target's best.
            if implementation != use.implementation or implementation != best:
                decisions.append((f"kernels.{use.site}.implementation", use.implementation,
                                  implementation, reason + _params_note(params)))
        ir = replace(ir, kernels=tuple(chosen))
        for path, before, after, reason in decisions:
            ir = ir.decide(self.name, path, before, after, reason)
        return ir


def _params_note(params: Mapping[str, Any]) -> str:
    tiles = {k: v for k, v in params.items() if k.startswith("block")}
    return f"; {', '.join(f'{k} {v}' for k, v in tiles.items())}" if tiles else ""


# --------------------------------------------------------------------------- resolve-batch

#: Fraction of the memory limit the estimate may fill: XLA keeps its own
#: buffers (compiled executables, collectives' staging) and fragments.
MEMORY_HEADROOM = 0.9

BATCH_SPLIT = "H021"
DOES_NOT_FIT = "H204"
NO_BATCH = "H205"


def _workspace(ir: Lowered) -> tuple[int, bool]:
    """Per-sample kernel scratch bytes and whether attention materializes its scores."""
    per_sample, scores = 0, False
    for use in ir.kernels:
        if use.family == "attention":
            heads, seq = int(use.shapes["q"][2]), int(use.shapes["q"][1])
            if use.implementation == "reference":
                scores = True
            elif "block_q" in use.params:
                per_sample = max(per_sample, heads * use.params["block_q"] * use.params["block_kv"] * 4)
            else:
                per_sample = max(per_sample, heads * seq * 4)
        elif use.family == "vq" and use.implementation == "reference":
            seq = ir.model.max_seq_length if ir.model else 0
            per_sample = max(per_sample, seq * int(use.shapes["codebook"][0]) * 4)
    return per_sample, scores


@dataclass(frozen=True)
class ResolveBatch(Pass):
    """``batch_size = "auto"`` → the largest global batch that fits, and the memory check.

    The batch is global (A26): a multiple of the data-parallel degree, at
    most ``max_batch_size``, and for ``"auto"`` the largest whose estimated
    peak (:func:`capibara.lower.estimate_memory`) stays within
    :data:`MEMORY_HEADROOM` of the memory limit. An explicit batch that does
    not fit is an error (``H204``), as is a model that does not fit even one
    sample per device.
    """

    name: ClassVar[str] = "resolve-batch"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config, mesh = ir.config, ir.mesh
        assert mesh is not None and ir.model is not None, "resolve-mesh and fold-derived run first"
        dp = mesh.size("data")
        per_sample_ws, scores = _workspace(ir)

        def estimate(per_device: int):
            return estimate_memory(config, ir.model, mesh=mesh, model_axis=ir.model_axis,
                                   per_device_batch=per_device, precision=ir.precision,
                                   policy=ir.policy, workspace_per_sample=per_sample_ws,
                                   attention_materializes_scores=scores, limit=ir.memory_limit)

        budget = None if ir.memory_limit is None else int(ir.memory_limit * MEMORY_HEADROOM)
        if ir.batch is not None:
            if ir.batch % dp or ir.batch < dp:
                if _mesh_was_auto(ir):  # an explicit mesh was checked by the validator (H021)
                    ctx.diagnostics.append(_batch_split(ir, dp))
                return ir
            per_device = ir.batch // dp
            memory = estimate(per_device)
            if budget is not None and memory.total > budget:
                ctx.diagnostics.append(_does_not_fit(ir, memory, per_device, estimate))
                return replace(ir, memory=memory)
            reason = f"batch_size {ir.batch} over {dp} data-parallel replica{'s' if dp > 1 else ''}"
            global_size = ir.batch
        else:
            cap = config.max_batch_size // dp
            if cap < 1:
                ctx.diagnostics.append(field_diagnostic(
                    NO_BATCH, f"`max_batch_size` {config.max_batch_size} cannot give each of the "
                              f"{dp} data-parallel replicas one sample",
                    config, ("max_batch_size", "tpu_mesh_shape"),
                    {"max_batch_size": f"fewer than {dp}"},
                    help=f"set `{path_of('max_batch_size')} = {dp}` or more"))
                return ir
            one, two = estimate(1), estimate(2)
            if budget is not None and one.total > budget:
                ctx.diagnostics.append(_does_not_fit(ir, one, 1, estimate))
                return replace(ir, memory=one)
            per_device = cap
            if budget is not None:
                per_sample = two.total - one.total
                fits = 1 + (budget - one.total) // per_sample if per_sample > 0 else cap
                per_device = max(1, min(cap, fits))
            global_size = per_device * dp
            why = [f"{per_device} per device × {dp} replica{'s' if dp > 1 else ''}"]
            if per_device == cap:
                why.append(f"capped by max_batch_size {config.max_batch_size}")
            else:
                why.append(f"the largest that fits {_gib(budget)} "
                           f"({MEMORY_HEADROOM:.0%} of the {_gib(ir.memory_limit)} limit)")
            reason = "; ".join(why)
            memory = estimate(per_device)
        kernels = tuple(_bind_batch(use, per_device, ir.model.max_seq_length)
                        for use in ir.kernels)
        ir = replace(ir, kernels=kernels, memory=memory)
        return ir.decide(self.name, "deployment.batch_size", config.batch_size, global_size, reason,
                         batch=global_size)


def _mesh_was_auto(ir: Lowered) -> bool:
    return not isinstance(ir.config.tpu_mesh_shape, list) or ir.target.platform != "tpu"


def _bind_batch(use: KernelUse, per_device: int, seq: int) -> KernelUse:
    """Bind the batch symbols: ``B`` samples and ``N = B·S`` tokens per device."""
    sizes = {"B": per_device, "N": per_device * seq}
    return replace(use, shapes={name: tuple(sizes.get(d, d) if isinstance(d, str) else d
                                            for d in shape)
                                for name, shape in use.shapes.items()})


def _gib(n: int | None) -> str:
    return "no limit" if n is None else f"{n / GIB:.1f} GiB"


def _batch_split(ir: Lowered, dp: int) -> Diagnostic:
    config = ir.config
    fixed = max(dp, (ir.batch // dp) * dp)
    return field_diagnostic(
        BATCH_SPLIT, f"`batch_size` {ir.batch} does not split across {dp} data-parallel replicas "
                     f"(the devices of `{ir.target.name}`)",
        config, ("batch_size",), {"batch_size": f"not a multiple of {dp}"},
        help=f"set `{path_of('batch_size')} = {fixed}` (a multiple of {dp}), or \"auto\"")


def _does_not_fit(ir: Lowered, memory, per_device: int, estimate) -> Diagnostic:
    config = ir.config
    parts = (f"weights {_gib(memory.weights)}, gradients {_gib(memory.gradients)}, optimizer "
             f"state {_gib(memory.optimizer_state)}"
             + (" (twice: no buffer donation)" if memory.update_copies == 2 else "")
             + f", activations {_gib(memory.activations)}, workspace {_gib(memory.workspace)}")
    fixes = []
    if ir.batch is not None and per_device > 1:
        fits = [b for b in range(per_device - 1, 0, -1)
                if estimate(b).total <= int(ir.memory_limit * MEMORY_HEADROOM)]
        if fits:
            fixes.append(f"`{path_of('batch_size')} = {fits[0] * ir.data_parallel}`")
    if not ir.policy.remat:
        fixes.append(f"`{path_of('gradient_checkpointing')} = true`")
    if config.memory_optimization_level < 3:
        fixes.append(f"`{path_of('memory_optimization_level')} = 3`")
    if not config.model_parallel and ir.target.device_count > 1:
        fixes.append(f"`{path_of('model_parallel')} = true`")
    names = ("batch_size",) if ir.batch is not None else ("hidden_size", "num_layers")
    limits = ("memory_limit_gb", "tpu_memory_limit_gb") if ir.target.platform == "tpu" else \
        ("memory_limit_gb",)
    limit_fields = [n for n in limits if n in ir.explicit]
    return field_diagnostic(
        DOES_NOT_FIT,
        f"the training step needs about {_gib(memory.total)} per device with {per_device} "
        f"sample{'s' if per_device != 1 else ''} each, more than the {_gib(ir.memory_limit)} "
        f"limit on `{ir.target.name}`",
        config, (*names, *limit_fields),
        {names[0]: "too large for the device memory", **{n: "the limit" for n in limit_fields}},
        notes=(parts, f"the estimate must stay within {MEMORY_HEADROOM:.0%} of the limit"),
        help=("try " + ", or ".join(fixes)) if fixes else "compile for a device with more memory")


# --------------------------------------------------------------------------- dedupe-kernels


@dataclass(frozen=True)
class DedupeKernels(Pass):
    """Merge kernel uses that are the same kernel (family, implementation, params,
    shapes, dtypes, attrs): the runtime compiles each once. The merged spec
    keeps the first site's name, lists every site in ``uses`` and sums the calls."""

    name: ClassVar[str] = "dedupe-kernels"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        groups: dict[tuple, list[KernelUse]] = {}
        for use in ir.kernels:
            key = (use.family, use.implementation, _frozen(use.params), _frozen(use.shapes),
                   _frozen(use.dtypes), _frozen(use.attrs))
            groups.setdefault(key, []).append(use)
        merged = []
        for uses in groups.values():
            first = uses[0]
            sites = tuple(u.site for u in uses)
            merged.append(replace(first, calls_per_step=sum(u.calls_per_step for u in uses),
                                  uses=sites))
            if len(uses) > 1:
                ir = ir.decide(self.name, f"kernels.{first.site}", list(sites[:1]), list(sites),
                               f"{len(uses)} call sites run the same kernel")
        return replace(ir, kernels=tuple(merged))


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


# --------------------------------------------------------------------------- registry

#: Every pass by name (``--print-after`` names them); one line per pass.
PASSES: dict[str, type[Pass]] = {p.name: p for p in (
    ResolveMesh, PruneDisabled, PrecisionPolicy, ApplyMemoryPolicy, FoldDerived, SelectKernels,
    ResolveBatch, DedupeKernels)}

#: The order the compiler runs them in.
DEFAULT_PIPELINE: tuple[Pass, ...] = tuple(cls() for cls in PASSES.values())


def optimize(ir: Lowered, ctx: PassContext | None = None, *,
             callback: Callback | None = None) -> tuple[Lowered, list[Diagnostic]]:
    """Run :data:`DEFAULT_PIPELINE` on ``ir``; returns the result and the diagnostics."""
    ctx = ctx or PassContext()
    result = PassPipeline(DEFAULT_PIPELINE, callback).run(ir, ctx)
    return result, ctx.diagnostics


# --------------------------------------------------------------------------- printing


def describe(ir: Lowered) -> str:
    """The IR as text (what ``--print-after STAGE`` prints)."""
    p, policy = ir.precision, ir.policy
    lines = [
        f"machine    {ir.machine.name}",
        f"target     {ir.target.name} ({ir.target.platform}, {ir.target.device_count} "
        f"device{'s' if ir.target.device_count != 1 else ''})",
        f"mesh       {'auto' if ir.mesh is None else list(ir.mesh.shape)}",
        f"batch      {'auto' if ir.batch is None else ir.batch}",
        f"precision  params {p.params}, compute {p.compute}, accumulation {p.accumulation}"
        + (f", vq codebook {p.vq_codebook}" if p.vq_codebook else ""),
        f"execution  remat {policy.remat}, donate {policy.donate}, loss chunk {policy.loss_chunk}, "
        f"saved activations {policy.saved_activation_dtype}, offload {policy.offload_activations}",
        f"memory     limit {_gib(ir.memory_limit)}"
        + (f", estimate {_gib(ir.memory.total)}" if ir.memory else ""),
        "kernels",
    ]
    for use in ir.kernels:
        args = ", ".join(f"{name}[{','.join(map(str, shape))}]:{use.dtypes.get(name, '?')}"
                         for name, shape in use.shapes.items())
        params = ", ".join(f"{k}={v}" for k, v in use.params.items())
        lines.append(f"  {use.site:<18} {use.family}/{use.implementation}"
                     f"{f' {{{params}}}' if params else ''} ({args}) ×{use.calls_per_step}")
    lines.append(f"decisions  {len(ir.decisions)}")
    return "\n".join(lines)
