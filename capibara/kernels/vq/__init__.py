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
>>> from capibara.kernels.vq import vq
>>> r = vq(jnp.array([[0.9, 0.1], [0.0, 2.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]]))
>>> r.indices.tolist(), r.quantized.tolist()
([0, 1], [[1.0, 0.0], [0.0, 1.0]])

The compile path imports :mod:`.spec` (selectors, tile tables) without JAX,
so the exports below load from :mod:`.api` on first use.
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

# The JAX half loads on first use, not when spec.py is imported.
_EXPORTS = {name: "capibara.kernels.vq.api" for name in (
    "VARIANTS", "VQResult", "quantize_codebook", "vq",
)}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
