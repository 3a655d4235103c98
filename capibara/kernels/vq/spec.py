"""What the compiler knows about the vq family, without JAX: rows per block per
target and when each variant applies (the ``select-kernels`` pass asks)."""

from __future__ import annotations

from typing import Any

from capibara.kernels.selection import Refusal, tuning_mode

__all__ = ["RANKING", "work", "SELECTORS", "VQ_BLOCK_ROWS"]

#: VQ rows per block. CPU: 512-1024 rows are fastest and larger blocks slower
#: (benchmarks/kernels_vq.py at N65536 D768 K64), since the block's rows must
#: stay in cache from the score product to the exact error; ``aggressive`` gains
#: nothing there. Accelerators run the loop's iterations one after another, so
#: their blocks are larger (4096 rows x 128 codes x 4 B = 2 MiB of scores);
#: ``aggressive`` doubles it.
VQ_BLOCK_ROWS = {"cpu": {"default": 1024, "aggressive": 1024},
                 "accelerator": {"default": 4096, "aggressive": 8192}}


def _blocked(use: Any, ir: Any, *, int8: bool) -> dict[str, Any] | Refusal:
    codebook = use.dtypes["codebook"]
    if int8 != (codebook == "int8"):
        return Refusal(f"the codebook is {codebook}")
    config, target = ir.config, ir.target
    if target.platform == "tpu" and not config.vq_use_tpu_optimizations:
        return Refusal("vector_quantization.use_tpu_optimizations = false")
    if target.platform == "cpu" and not config.vq_use_simd:
        return Refusal("vector_quantization.use_simd = false")
    rows = VQ_BLOCK_ROWS["cpu" if target.platform == "cpu" else "accelerator"]
    params: dict[str, Any] = {"block_rows": rows[tuning_mode(ir)]}
    if not int8:
        params["compute_dtype"] = "bfloat16" if codebook == "bfloat16" else "float32"
    return params


#: Implementations best first per platform.
RANKING = {platform: ("int8", "xla", "reference") for platform in ("cpu", "gpu", "tpu")}

SELECTORS = {
    "int8": lambda use, ir: _blocked(use, ir, int8=True),
    "xla": lambda use, ir: _blocked(use, ir, int8=False),
    "reference": lambda use, ir: {},
}


def work(shapes: Any, dtypes: Any, attrs: Any) -> tuple[float, str]:
    """FLOPs of the score product ``x cᵀ``."""
    (n, d), (k, _) = shapes["x"], shapes["codebook"]
    return 2.0 * n * d * k, "FLOP"
