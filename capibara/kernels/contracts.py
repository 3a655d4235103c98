"""What a plan may say about each kernel family, without importing JAX.

A plan names a family, one of its implementations, static parameters, array
shapes and dtypes, and call attributes; :mod:`capibara.plan.validate` checks
each against the family's :class:`Contract` before the runtime imports the
family. Keeping this JAX-free lets ``capibara check PLAN`` refuse a plan that
names ``..os`` or a 4e9-long axis without loading any kernel.

A new family (or variant) adds its entry here; ``tests/plan/test_contracts.py``
checks every folder under ``capibara/kernels/`` has one and that it matches the
family's ``VARIANTS`` (names, static parameters, array arguments). When a family
gains a JAX-free spec module of its own, :func:`contract` is the one place that
reads it.

Domains (strings, so the table reads as data):

- ``"size"``: an int in 1 … 2³¹ − 1; ``"size?"``: that or ``null``;
- ``"dtype"``: a dtype plans may name (:data:`capibara.plan.types.DTYPES`); ``"dtype?"``: or ``null``;
- ``"bool"``; ``"weight"``: a finite number ≥ 0; ``"factor"``: a finite number > 0;
- ``"axes"``: a non-empty list of the plan's mesh axes, each once;
- a tuple: one of those values.

Shapes are symbolic: one letter per axis, the same letter the same length
across a spec's arrays; ``"..."`` first stands for any leading axes.
"""

from __future__ import annotations

from typing import Any, Mapping

import msgspec

__all__ = ["Contract", "CONTRACTS", "contract", "families"]


class Contract(msgspec.Struct, frozen=True, kw_only=True):
    """One family's plan contract: its implementations, each implementation's
    static parameters (name → domain), the array arguments (name → symbolic
    shape; those in ``optional`` only some calls take), the call attributes
    (name → domain), and attribute bounds (attribute → the shape symbol it may
    not exceed, e.g. ``top_k`` ≤ ``E``)."""

    variants: Mapping[str, Mapping[str, Any]]
    arguments: Mapping[str, tuple[str, ...]]
    attrs: Mapping[str, Any] = {}
    bounds: Mapping[str, str] = {}
    optional: tuple[str, ...] = ()


_ATTENTION_BLOCKS = {"block_q": "size", "block_kv": "size", "heads_per_step": "size?",
                     "compute_dtype": "dtype?"}
_MATMUL = {"param_dtype": "dtype?", "compute_dtype": "dtype?", "accumulate_dtype": "dtype?",
           "output_dtype": "dtype?"}
_MOE = {"top_k": "size", "activation": ("gelu", "relu", "silu")}
_VQ_BLOCKS = {"block_rows": "size", "compute_dtype": "dtype?"}

#: Family name → contract. Every variant's static parameters, as its ``defaults`` name them.
CONTRACTS: dict[str, Contract] = {
    "attention": Contract(
        variants={"reference": {}, "cpu_blocked": _ATTENTION_BLOCKS,
                  "cpu_bf16": _ATTENTION_BLOCKS, "cudnn": {},
                  "pallas_tpu": {"block_q": "size", "block_kv": "size"}},
        arguments={"q": ("B", "S", "H", "D"), "k": ("B", "T", "H", "D"), "v": ("B", "T", "H", "D")},
        attrs={"causal": "bool"}),
    "linalg": Contract(
        variants={"reference": _MATMUL, "xla": _MATMUL},
        arguments={"x": ("...", "K"), "w": ("K", "N")},
        attrs={"weights": ("float", "affine", "bitnet", "ternary"), "bits": (4, 8, 16),
               "symmetric": "bool", "precision": ("1.58bit", "1.58b", "int8", "int4"),
               "sparsity": "sparsity"}),
    "moe": Contract(
        variants={"reference": _MOE, "dispatch": {**_MOE, "capacity_factor": "factor"}},
        arguments={"x": ("N", "D"), "router": ("D", "E"), "w_in": ("E", "D", "F"),
                   "w_out": ("E", "F", "D")},
        attrs={"top_k": "size", "load_balancing": "bool"},
        bounds={"top_k": "E"}),
    "vq": Contract(
        variants={"reference": {}, "xla": _VQ_BLOCKS, "int8": {"block_rows": "size"}},
        arguments={"x": ("N", "D"), "codebook": ("K", "D")},
        attrs={"commitment_weight": "weight", "diversity_regularization": "bool"}),
    "collective": Contract(
        variants={"reference": {}, "decomposed": {}},
        # ``w``: the local weight of an ``all_gather_matmul``.
        arguments={"x": ("...",), "w": ("...",)}, optional=("w",),
        attrs={"op": ("all_reduce", "all_gather", "reduce_scatter", "all_gather_matmul"),
               "axes": "axes"}),
    "scan": Contract(
        variants={"reference": {}, "sequential": {}, "chunked": {"chunk": "size"},
                  "associative": {}},
        arguments={"a": ("B", "T", "D"), "b": ("B", "T", "D")}),
    "fft": Contract(
        variants={"reference": {}, "fft": {}, "direct": {"taps_per_step": "size"}},
        arguments={"u": ("C", "L"), "k": ("C", "K")}),
    "conv": Contract(
        variants={"reference": {}, "shift_add": {}},
        arguments={"x": ("B", "T", "C"), "w": ("W", "C")}),
}


def contract(family: str) -> Contract | None:
    """The plan contract of kernel family ``family``; ``None`` if capibara has no such family."""
    return CONTRACTS.get(family) if isinstance(family, str) else None


def families() -> tuple[str, ...]:
    """Every family a plan may name, sorted."""
    return tuple(sorted(CONTRACTS))
