"""vq: nearest-codebook vector quantization with a straight-through estimator.

``vq(x, codebook)`` replaces each vector of ``x: [..., dim]`` by its nearest
row of ``codebook: [codes, dim]`` and returns a :class:`VQResult` with the
indices and the VQ-VAE losses (commitment, codebook), a code-usage diversity
regularizer and the perplexity; see :class:`VQResult` for the exact
definitions.

Adaptive threshold (``vq_adaptive_threshold``, in [0, 1]): a vector whose
relative squared error to its nearest code, ``||x - c||² / ||x||²``, exceeds
the threshold is *bypassed*: it passes through unquantized (its row of
``quantized`` is ``x``). 0 bypasses everything but exact matches, 1 bypasses
only vectors for which the zero vector would be a better code; ``None`` (the
default) quantizes everything.

Variants (all accept a float codebook or an int8 one from
:func:`quantize_codebook`):

- ``reference``: the full ``[N, K]`` distance matrix in float32; the oracle.
- ``xla``: lookup and losses blocked over rows (``block_rows``), optional
  bf16 score product (``compute_dtype``); the output is one gather.
- ``int8``: the same, with the lookup in int8 x int8 -> int32.

>>> import jax.numpy as jnp
>>> r = vq(jnp.array([[0.9, 0.1], [0.0, 2.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]]))
>>> r.indices.tolist(), r.quantized.tolist()
([0, 1], [[1.0, 0.0], [0.0, 1.0]])
"""

from __future__ import annotations

import jax

from capibara.kernels.base import Variant
from capibara.kernels.linalg import AffineWeight
from capibara.kernels.vq.blocked import BLOCK_ROWS, vq_int8, vq_xla
from capibara.kernels.vq.inputs import quantize_codebook
from capibara.kernels.vq.reference import vq_reference
from capibara.kernels.vq.result import VQResult

__all__ = ["VARIANTS", "VQResult", "quantize_codebook", "vq"]

_EVERYWHERE = ("cpu", "gpu", "tpu")

VARIANTS: dict[str, Variant] = {
    "reference": Variant("vq", "reference", vq_reference, _EVERYWHERE, {},
                         "full float32 distance matrix; the oracle and the fallback"),
    "xla": Variant("vq", "xla", vq_xla, _EVERYWHERE,
                   {"block_rows": BLOCK_ROWS, "compute_dtype": "float32"},
                   "row blocks for the lookup and losses (bf16 score operands optional), one gather for the output"),
    "int8": Variant("vq", "int8", vq_int8, _EVERYWHERE, {"block_rows": BLOCK_ROWS},
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
