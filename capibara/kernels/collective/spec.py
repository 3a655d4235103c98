"""What the compiler knows about the collective family, without JAX: which
sharded train step is faster on a platform (the ``sharded-step`` pass asks),
and when the two-phase all-reduce pays (``select-kernels`` asks)."""

from __future__ import annotations

import math
from typing import Any

from capibara.kernels.selection import Refusal

__all__ = ["RANKING", "SELECTORS", "STEP", "TWO_PHASE_MIN_BYTES"]

#: Smallest all-reduce worth two collectives: below it the extra round trip costs
#: more than the halved reads save (the measured anchor is 64 MiB over 8 devices).
TWO_PHASE_MIN_BYTES = 1 << 20

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


#: Where a plan's mesh has more than one device and ``sharding_strategy`` is
#: ``"auto"``: platform → whether the optimizer state is split over the data
#: axis (ZeRO-1) → the faster train step, ``"explicit"`` (``shard_map`` with the
#: plan's collective kernels) or ``"automatic"`` (XLA partitions the jitted
#: step), and why. The cpu rows are measured: benchmarks/sharded_step.py,
#: 8 host devices, d512 L2 S128, meshes [8, 1] and [4, 2].
STEP: dict[str, dict[bool, tuple[str, str]]] = {
    "cpu": {
        True: ("automatic", "XLA reduce-scatters the gradients onto the split optimizer "
                            "state: the explicit step, which all-reduces them, ran at 0.89x "
                            "(data-parallel) and 0.98x (data × model) of its speed "
                            "(benchmarks/sharded_step.py)"),
        False: ("explicit", "one bucketed gradient all-reduce: the explicit step ran 1.20x "
                            "(data-parallel) and 1.11x (data × model) as fast as XLA's "
                            "partitioning (benchmarks/sharded_step.py)"),
    },
    # Not measured here (no multi-device GPU or TPU): XLA's partitioner overlaps its
    # reductions with the backward pass (asynchronous collectives), which the explicit
    # step's one reduction after it cannot; with ZeRO-1 it also reduce-scatters.
    "gpu": {True: ("automatic", "not measured on GPUs: XLA's partitioning reduce-scatters "
                                "onto the split optimizer state, as measured on cpu"),
            False: ("automatic", "not measured on GPUs: XLA overlaps its gradient "
                                 "reductions with the backward pass (asynchronous "
                                 "collectives); the explicit step reduces after it")},
    "tpu": {True: ("automatic", "not measured on TPUs: XLA's partitioning reduce-scatters "
                                "onto the split optimizer state, as measured on cpu"),
            False: ("automatic", "not measured on TPUs: XLA overlaps its gradient "
                                 "reductions with the backward pass (asynchronous "
                                 "collectives); the explicit step reduces after it")},
}


def _decomposed(use: Any, ir: Any) -> dict[str, Any] | Refusal:
    # Two-phase writes its result into the input's buffer when the input is
    # donated; without donation every phase allocates a fresh output and psum
    # wins (benchmarks/kernels_collective.py: 64 MiB x 8 host devices, 1.1x psum
    # donated, 0.75x not). The loader donates it exactly when the plan donates buffers.
    op = use.attrs.get("op")
    if op in ("all_gather", "reduce_scatter"):
        return Refusal(f"it runs the same primitive as the reference for {op}")
    if op == "all_reduce" and not ir.policy.donate:
        return Refusal("buffers are not donated (memory_optimization_level 0), and a two-phase "
                       "all-reduce beats psum only in place")
    # The batch is not bound yet (it depends on these choices): count one sample,
    # a lower bound on the size.
    size = math.prod(d if isinstance(d, int) else 1 for d in use.shapes["x"]) \
        * _DTYPE_BYTES.get(use.dtypes["x"], 4)
    if size < TWO_PHASE_MIN_BYTES:
        what = "two-phase" if op == "all_reduce" else "ring"
        return Refusal(f"{size} bytes is below the {TWO_PHASE_MIN_BYTES}-byte {what} threshold")
    return {}


#: Implementations best first per platform. XLA:CPU's psum has every host device
#: sum every block; the two-phase reduce-scatter + all-gather reads each element
#: about twice. NCCL and the TPU interconnect already run psum as a bandwidth-optimal ring.
RANKING = {"cpu": ("decomposed", "reference"), "gpu": ("reference",), "tpu": ("reference",)}

SELECTORS = {
    "decomposed": _decomposed,
    "reference": lambda use, ir: {},
}
