"""The JAX half of the vq family: what ``capibara.kernels.vq`` exports."""

from __future__ import annotations

import jax

from capibara.kernels.base import EVERYWHERE, Variant
from capibara.kernels.linalg import AffineWeight
from capibara.kernels.vq.blocked import BLOCK_ROWS, vq_int8, vq_xla
from capibara.kernels.vq.inputs import quantize_codebook
from capibara.kernels.vq.reference import vq_reference
from capibara.kernels.vq.result import VQResult

__all__ = ["VARIANTS", "VQResult", "quantize_codebook", "vq"]

VARIANTS: dict[str, Variant] = {
    "reference": Variant("vq", "reference", vq_reference, EVERYWHERE, {},
                         "full float32 distance matrix; the oracle and the fallback"),
    "xla": Variant("vq", "xla", vq_xla, EVERYWHERE,
                   {"block_rows": BLOCK_ROWS, "compute_dtype": "float32"},
                   "row blocks for the lookup and losses (bf16 score operands optional), one gather for the output"),
    "int8": Variant("vq", "int8", vq_int8, EVERYWHERE, {"block_rows": BLOCK_ROWS},
                    "row blocks, int8 x int8 -> int32 lookup, one gather for the output"),
}


def vq(
    x: jax.Array,
    codebook: jax.Array | AffineWeight,
    *,
    commitment_weight: float = 0.25,
    adaptive_threshold: float | None = None,
    diversity_temperature: float = 1.0,
    implementation: str = "reference",
    **static,
) -> VQResult:
    """Quantize ``x`` against ``codebook`` with the named variant; see the module doc."""
    return VARIANTS[implementation](
        x, codebook, commitment_weight=commitment_weight, adaptive_threshold=adaptive_threshold,
        diversity_temperature=diversity_temperature, **static)
