"""What the compiler knows about the collective family, without JAX: when the
two-phase all-reduce pays (the ``select-kernels`` pass asks)."""

from __future__ import annotations

import math
from typing import Any

from capibara.kernels.selection import Refusal

__all__ = ["RANKING", "SELECTORS", "TWO_PHASE_MIN_BYTES"]

#: Smallest all-reduce worth two collectives: below it the extra round trip costs
#: more than the halved reads save (the measured anchor is 64 MiB over 8 devices).
TWO_PHASE_MIN_BYTES = 1 << 20

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


def _decomposed(use: Any, ir: Any) -> dict[str, Any] | Refusal:
    # Two-phase writes its result into the input's buffer when the input is
    # donated; without donation every phase allocates a fresh output and psum
    # wins (benchmarks/kernels_collective.py: 64 MiB x 8 host devices, 1.1x psum
    # donated, 0.75x not). The loader donates it exactly when the plan donates buffers.
    if use.attrs.get("op") == "all_reduce" and not ir.policy.donate:
        return Refusal("buffers are not donated (memory_optimization_level 0), and a two-phase "
                       "all-reduce beats psum only in place")
    # The batch is not bound yet (it depends on these choices): count one sample,
    # a lower bound on the size.
    size = math.prod(d if isinstance(d, int) else 1 for d in use.shapes["x"]) \
        * _DTYPE_BYTES.get(use.dtypes["x"], 4)
    if size < TWO_PHASE_MIN_BYTES:
        return Refusal(f"{size} bytes is below the {TWO_PHASE_MIN_BYTES}-byte two-phase threshold")
    return {}


#: Implementations best first per platform. XLA:CPU's psum has every host device
#: sum every block; the two-phase reduce-scatter + all-gather reads each element
#: about twice. NCCL and the TPU interconnect already run psum as a bandwidth-optimal ring.
RANKING = {"cpu": ("decomposed", "reference"), "gpu": ("reference",), "tpu": ("reference",)}

SELECTORS = {
    "decomposed": _decomposed,
    "reference": lambda use, ir: {},
}
