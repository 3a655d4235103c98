"""What the compiler knows about the attention family, without JAX: tile sizes
per target and when each variant applies (the ``select-kernels`` pass asks)."""

from __future__ import annotations

from typing import Any

from capibara.kernels.selection import Refusal, tuning_mode

__all__ = ["RANKING", "work", "CPU_ATTENTION_TILE", "SELECTORS", "TPU_LANES", "TPU_TILES_PER_MXU", "tile"]

#: CPU attention tile: 512 × 512 was the fastest of 128–1024 at S = 2048
#: (benchmarks/kernels_attention.py; BlockSizes in cpu.py); ``aggressive`` allows
#: 1024, which wins at longer sequences when memory allows.
CPU_ATTENTION_TILE = {"default": 512, "aggressive": 1024}
#: TPU attention tile per MXU edge: v4's MXU is 128 wide, v6e's 256 (targets.py);
#: ``aggressive`` takes 4 MXU edges per tile, as the Pallas kernel's larger presets do.
TPU_TILES_PER_MXU = {"default": 1, "aggressive": 4}
#: A TPU vector register row holds 128 lanes: a key tile narrower than that
#: wastes most of every load, so longer sequences need a multiple of 128.
TPU_LANES = 128


def tile(length: int, cap: int, floor: int = 16) -> int | None:
    """The largest power of two ≤ ``cap`` that divides ``length`` (a short sequence is one tile)."""
    if length <= cap:
        return length
    size = 1 << (cap.bit_length() - 1)
    while size >= floor:
        if length % size == 0:
            return size
        size //= 2
    return None


def _seq(use: Any) -> int:
    return int(use.shapes["q"][1])


def _cpu(use: Any, ir: Any, *, bf16: bool) -> dict[str, Any] | Refusal:
    compute = use.dtypes["q"]
    if bf16 != (compute == "bfloat16"):
        return Refusal(f"the compute dtype is {compute}")
    size = tile(_seq(use), CPU_ATTENTION_TILE[tuning_mode(ir)])
    if size is None:
        return Refusal(f"sequence length {_seq(use)} has no power-of-two tile ≥ 16")
    params: dict[str, Any] = {"block_q": size, "block_kv": size}
    if not bf16:
        params["compute_dtype"] = compute
    return params


def _cudnn(use: Any, ir: Any) -> dict[str, Any] | Refusal:
    compute, head_dim = use.dtypes["q"], int(use.shapes["q"][3])
    if compute not in ("bfloat16", "float16"):
        return Refusal(f"cuDNN flash attention takes float16/bfloat16, the compute dtype is {compute}")
    if head_dim % 8 or head_dim > 256:
        return Refusal(f"cuDNN needs head_dim a multiple of 8 and ≤ 256, got {head_dim}")
    return {}


def _tpu(use: Any, ir: Any) -> dict[str, Any] | Refusal:
    edge = ir.target.matmul_tile[0] * TPU_TILES_PER_MXU[tuning_mode(ir)]
    size = tile(_seq(use), edge, floor=TPU_LANES)
    if size is None:
        return Refusal(f"sequence length {_seq(use)} is not a multiple of {TPU_LANES}")
    return {"block_q": size, "block_kv": size}


#: Implementations best first per platform (targets.py builds the catalog from these).
RANKING = {"cpu": ("cpu_bf16", "cpu_blocked", "reference"), "gpu": ("cudnn", "reference"),
           "tpu": ("pallas_tpu", "reference")}

SELECTORS = {
    "cpu_bf16": lambda use, ir: _cpu(use, ir, bf16=True),
    "cpu_blocked": lambda use, ir: _cpu(use, ir, bf16=False),
    "cudnn": _cudnn,
    "pallas_tpu": _tpu,
    "reference": lambda use, ir: {},
}


def work(shapes: Any, dtypes: Any, attrs: Any) -> tuple[float, str]:
    """FLOPs of one call: two matmuls of ``q kᵀ`` and ``p v``, halved when causal."""
    b, sq, h, d = shapes["q"]
    flops = 4.0 * b * h * sq * shapes["k"][1] * d
    return (flops / 2 if attrs.get("causal") else flops), "FLOP"
