"""``select-kernels``: an implementation and tile sizes per kernel, by the target's ranking and each family's selector."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Mapping

from capibara.compiler.lower import KernelUse, Lowered
from capibara.compiler.passes.base import Pass, PassContext
from capibara.kernels.refusal import Refusal
from capibara.kernels.specs import selectors as family_selectors


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
    **family_selectors(),
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
