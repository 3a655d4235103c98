"""linalg: dense products under a precision policy, affine int8/4/16 and BitNet ternary.

One kernel, ``dense(x, w)``, whose weight is a float array, an
:class:`AffineWeight` or a :class:`TernaryWeight`; the named entry points below
are that kernel with the weight spelled out. Variants:

- ``reference``: the exact math in float32 (operands rounded as the fast path
  rounds them); runs everywhere, the test oracle and the fallback.
- ``xla``: one ``dot_general`` with ``preferred_element_type`` (bf16 x bf16 ->
  f32 on AMX / MXU), and int8 x int8 -> int32 for int8-stored weights.

>>> import jax.numpy as jnp
>>> from capibara.kernels.linalg import int8_matmul, matmul, quantize_affine
>>> x, w = jnp.ones((4, 8)), jnp.ones((8, 2))
>>> matmul(x, w, compute_dtype="bfloat16", implementation="xla").dtype
dtype('float32')
>>> int8_matmul(x, *quantize_affine(w), implementation="xla").shape
(4, 2)

The compile path imports :mod:`.spec` (selectors, tile tables) without JAX,
so the exports below load from :mod:`.api` on first use.
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

# The JAX half loads on first use, not when spec.py is imported.
_EXPORTS = {name: "capibara.kernels.linalg.api" for name in (
    "AFFINE_BITS", "AffineWeight", "MAX_INT8_CONTRACTION", "Policy", "TernaryWeight",
    "VARIANTS", "dense", "dequantize", "int8_matmul", "matmul", "quantize_affine",
    "quantize_rows", "quantize_weight", "ternarize", "ternary_matmul",
)}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
