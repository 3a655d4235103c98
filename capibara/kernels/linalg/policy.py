"""The precision policy of a dense product, as the plan writes it.

A plan carries dtypes as strings (``"bfloat16"``); kernels take either the
string or a NumPy/JAX dtype. ``Policy`` normalizes both and holds the one
rule that fills in an unset output dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["Policy"]


def _dtype_or_none(dtype: Any) -> np.dtype | None:
    return None if dtype is None else jnp.dtype(dtype)


@dataclass(frozen=True)
class Policy:
    """Which dtype each stage of ``x @ w`` uses.

    - ``param_dtype``: the dtype the weight is held in (``None``: as given).
      A bf16 policy rounds f32 master weights here, as a bf16 model would.
    - ``compute_dtype``: both operands are cast to it before the product.
    - ``accumulate_dtype``: the dtype the sum is accumulated in
      (``preferred_element_type``); bf16 operands with f32 accumulation is the
      AMX path on x86 and the MXU path on TPU.
    - ``output_dtype``: the result's dtype (``None``: the accumulate dtype).
    """

    param_dtype: Any = None
    compute_dtype: Any = "float32"
    accumulate_dtype: Any = "float32"
    output_dtype: Any = None

    @classmethod
    def of(cls, *, param_dtype: Any = None, compute_dtype: Any = "float32",
           accumulate_dtype: Any = "float32", output_dtype: Any = None) -> "Policy":
        """Build a policy with every dtype normalized to a ``numpy.dtype``."""
        accumulate = jnp.dtype(accumulate_dtype)
        return cls(_dtype_or_none(param_dtype), jnp.dtype(compute_dtype), accumulate,
                   _dtype_or_none(output_dtype) or accumulate)

    @property
    def dot_precision(self) -> lax.Precision:
        """f32 operands ask for full f32 passes: on TPU the default would
        silently round them to bf16, which is not what an f32 policy means."""
        if self.compute_dtype == np.dtype(np.float32):
            return lax.Precision.HIGHEST
        return lax.Precision.DEFAULT
