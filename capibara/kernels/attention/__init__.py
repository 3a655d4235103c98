"""attention: softmax(q kᵀ · scale) v, causal or not, grouped/multi-query heads.

Layout and semantics follow ``jax.nn.dot_product_attention`` (see
:mod:`capibara.kernels.attention.inputs`). Variants:

- ``reference``: the full score matrix and one f32 softmax; the oracle and the fallback.
- ``cpu_blocked``: flash-style online softmax over ``block_q`` x ``block_kv``
  tiles with causal block skipping and a FlashAttention-2 backward;
  ``compute_dtype`` picks the matmul operand dtype (f32 accumulation always).
- ``cpu_bf16``: ``cpu_blocked`` with bf16 matmul operands (AMX / AVX512-BF16).
- ``cudnn``: cuDNN flash attention (GPU, fp16/bf16).
- ``pallas_tpu``: JAX's Pallas TPU flash-attention kernel.

>>> import jax.numpy as jnp
>>> from capibara.kernels.attention import attention
>>> q = k = v = jnp.ones((1, 8, 2, 4))
>>> attention(q, k, v, causal=True, implementation="cpu_blocked", block_q=4, block_kv=4).shape
(1, 8, 2, 4)

The compile path imports :mod:`.spec` (selectors, tile tables) without JAX,
so the exports below load from :mod:`.api` on first use.
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

# The JAX half loads on first use, not when spec.py is imported.
_EXPORTS = {name: "capibara.kernels.attention.api"
            for name in ("BlockSizes", "VARIANTS", "attention")}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
