"""cuDNN flash attention through ``jax.nn.dot_product_attention(implementation="cudnn")``.

The GPU anchor is the library kernel itself: it skips the causal upper
triangle and never materializes scores. cuDNN takes only fp16/bf16 inputs and
head dims that are multiples of 8 (at most 128 before Hopper, 256 from it);
whatever cuDNN refuses arrives here as its own ``NotImplementedError`` and
leaves as :class:`Unsupported` with cuDNN's reason.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from capibara.kernels.attention.inputs import check_inputs, default_scale, mask4
from capibara.kernels.base import Unsupported

__all__ = ["attention_cudnn"]

_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def attention_cudnn(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                    mask: jax.Array | None = None, scale: float | None = None) -> jax.Array:
    """cuDNN fused attention; refuses off GPU, for f32 inputs, and for head dims cuDNN lacks."""
    dims = check_inputs(q, k, v)
    backend = jax.default_backend()
    if backend != "gpu":
        raise Unsupported(f"cudnn attention needs a CUDA GPU, the default backend is {backend!r}")
    if q.dtype not in _DTYPES:
        raise Unsupported(f"cudnn attention takes float16 or bfloat16 inputs, got {q.dtype}")
    if dims.head_dim % 8 or dims.head_dim > 256:
        raise Unsupported(f"cudnn attention needs head_dim a multiple of 8 and at most 256, got {dims.head_dim}")
    try:
        return jax.nn.dot_product_attention(
            q, k, v, mask=mask4(mask, dims), scale=default_scale(dims, scale), is_causal=causal,
            implementation="cudnn")
    except NotImplementedError as refusal:
        raise Unsupported(f"cudnn refused this input: {refusal}") from refusal
