"""The JAX half of the attention family: what ``capibara.kernels.attention`` exports."""

from __future__ import annotations

import dataclasses

import jax

from capibara.kernels.attention.cpu import BlockSizes, attention_cpu_blocked
from capibara.kernels.attention.gpu import attention_cudnn
from capibara.kernels.attention.reference import attention_reference
from capibara.kernels.attention.tpu import attention_pallas_tpu
from capibara.kernels.base import EVERYWHERE, Variant, lookup

__all__ = ["BlockSizes", "VARIANTS", "attention"]

_BLOCKS = dataclasses.asdict(BlockSizes())

VARIANTS: dict[str, Variant] = {
    "reference": Variant(
        "attention", "reference", attention_reference, EVERYWHERE, {},
        "full score matrix, f32 softmax; the oracle and the fallback"),
    "cpu_blocked": Variant(
        "attention", "cpu_blocked", attention_cpu_blocked, EVERYWHERE, {**_BLOCKS, "compute_dtype": None},
        "online-softmax tiles with causal block skipping; matmul operands in compute_dtype"),
    "cpu_bf16": Variant(
        "attention", "cpu_bf16", attention_cpu_blocked, EVERYWHERE, {**_BLOCKS, "compute_dtype": "bfloat16"},
        "cpu_blocked with bf16 matmul operands and f32 accumulation (AMX / AVX512-BF16)"),
    "cudnn": Variant(
        "attention", "cudnn", attention_cudnn, ("gpu",), {},
        "cuDNN flash attention via jax.nn.dot_product_attention (fp16/bf16)"),
    "pallas_tpu": Variant(
        "attention", "pallas_tpu", attention_pallas_tpu, ("tpu",), {"block_q": 128, "block_kv": 128},
        "JAX's Pallas TPU flash-attention kernel"),
}


def attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
              mask: jax.Array | None = None, scale: float | None = None,
              implementation: str = "reference", **static) -> jax.Array:
    """Attention with the named variant; ``static`` are its tile sizes / compute dtype.

    q ``[batch, seq_q, heads, head_dim]``, k/v ``[batch, seq_kv, kv_heads, head_dim]``,
    ``mask`` boolean ``[batch, seq_kv]`` or broadcastable to ``[batch, heads,
    seq_q, seq_kv]`` (True = keep), ``scale`` defaults to ``1/sqrt(head_dim)``.
    Returns q's shape and dtype.
    """
    return lookup(VARIANTS, "attention", implementation)(q, k, v, causal=causal, mask=mask, scale=scale, **static)
