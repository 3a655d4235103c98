"""Hostile plans for tests, fuzzing and golden cases: valid plans changed and
resealed with :func:`capibara.plan.seal`, as anyone can, plus byte-level ones
(deep nesting) that no Struct can hold.

    base = small_plan()
    data = resealed_bytes(HOSTILE["family-dotdot-os"].change(base))

Each :class:`Hostile` names the code a loader must refuse it with.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import msgspec

from capibara.plan import KernelSpec, Plan, encode_plan, seal

__all__ = ["Hostile", "HOSTILE", "small_plan", "resealed_bytes", "nested_plan_bytes",
           "replace_kernel"]


class Hostile(NamedTuple):
    """One hostile change: what it does to a plan, and the code that refuses it."""

    change: Callable[[Plan], Plan]
    code: str
    what: str


@functools.cache
def small_plan() -> Plan:
    """A small CPU plan with every model kernel family (attention, linalg, Mixture-of-Rookies, VQ)."""
    from capibara.compiler.driver import compile_config
    from capibara.config.model_config import ModularModelConfig

    config = ModularModelConfig(
        hidden_size=64, num_layers=2, num_heads=4, vocab_size=128, max_seq_length=64,
        batch_size=2, use_vq=True, vq_codes=64, use_sparse=True, sparsity_method="mor",
        mor_num_experts=4, mor_top_k=2, device="cpu")
    result = compile_config(config, "cpu")
    if result.plan is None:
        raise AssertionError([str(d) for d in result.diagnostics])
    return result.plan


def resealed_bytes(plan: Plan) -> bytes:
    """``plan`` as a JSON plan file whose digest matches its contents."""
    return encode_plan(seal(plan))


def nested_plan_bytes(depth: int) -> bytes:
    """A ~2 KB JSON object that starts like a plan and nests ``depth`` arrays deep."""
    return b'{"format": "capibara.plan/2", "config": ' + b"[" * depth + b"]" * depth + b"}"


def replace_kernel(plan: Plan, of: str, **changes: Any) -> Plan:
    """``plan`` with the first kernel of family ``of`` changed (struct fields by keyword)."""
    kernels = list(plan.kernels)
    index = next(i for i, k in enumerate(kernels) if k.family == of)
    kernels[index] = msgspec.structs.replace(kernels[index], **changes)
    return msgspec.structs.replace(plan, kernels=tuple(kernels))


def _kernel_dict(plan: Plan, family: str, field: str, key: str, value: Any) -> Plan:
    spec: KernelSpec = next(k for k in plan.kernels if k.family == family)
    return replace_kernel(plan, family, **{field: {**getattr(spec, field), key: value}})


def _without_config(plan: Plan, path: str) -> Plan:
    return msgspec.structs.replace(plan, config={k: v for k, v in plan.config.items() if k != path})


def _model(plan: Plan, **changes: Any) -> Plan:
    return msgspec.structs.replace(plan, model=msgspec.structs.replace(plan.model, **changes))


def _mesh(plan: Plan, shape: tuple, axes: tuple) -> Plan:
    return msgspec.structs.replace(plan, mesh=msgspec.structs.replace(plan.mesh, shape=shape, axes=axes))


#: Resealed plans a loader must refuse, by name.
HOSTILE: dict[str, Hostile] = {
    "family-unknown": Hostile(lambda p: replace_kernel(p, "attention", family="flashy"),
                              "R111", "a kernel family capibara does not have"),
    "family-base": Hostile(lambda p: replace_kernel(p, "attention", family="base"),
                           "R111", "the family `base` (a module beside the families)"),
    "family-dotdot-os": Hostile(lambda p: replace_kernel(p, "attention", family="..os"),
                                "R111", "the family `..os` (a path out of the kernels package)"),
    "implementation-unknown": Hostile(lambda p: replace_kernel(p, "attention", implementation="magic"),
                                      "R111", "an attention implementation capibara does not have"),
    "shape-negative": Hostile(lambda p: _kernel_dict(p, "attention", "shapes", "q", (2, -64, 4, 16)),
                              "R110", "a negative axis"),
    "shape-4e9": Hostile(lambda p: _kernel_dict(p, "linalg", "shapes", "w", (64, 4_000_000_000)),
                         "R110", "an axis of 4e9"),
    "dtype-float1024": Hostile(lambda p: _kernel_dict(p, "attention", "dtypes", "q", "float1024"),
                               "R110", "dtype `float1024`"),
    "block_q-zero": Hostile(lambda p: _kernel_dict(p, "attention", "params", "block_q", 0),
                            "R110", "`block_q` 0"),
    "block_q-string": Hostile(lambda p: _kernel_dict(p, "attention", "params", "block_q", "64"),
                              "R110", "`block_q` a string"),
    "mesh-axes-mismatch": Hostile(lambda p: _mesh(p, (1, 1), ("data",)),
                                  "R112", "two mesh sizes for one axis"),
    "mesh-zero": Hostile(lambda p: _mesh(p, (0, 1), ("data", "model")),
                         "R110", "a mesh of [0, 1]"),
    "mesh-too-large": Hostile(lambda p: _mesh(p, (64, 1), ("data", "model")),
                              "R112", "a mesh larger than the target's devices"),
    "top_k-above-experts": Hostile(lambda p: _kernel_dict(p, "moe", "attrs", "top_k", 9),
                                   "R112", "`top_k` 9 of 4 experts"),
    "config-key-missing": Hostile(lambda p: _without_config(p, "model.vocab_size"),
                                  "R110", "the config without `model.vocab_size`"),
    "vocab-zero": Hostile(lambda p: _model(p, vocab_size=0), "R110", "a vocabulary of 0"),
    "kernel-name-escape": Hostile(lambda p: replace_kernel(p, "attention", name="a\x1b]0;x\x07\x1b[2J"),
                                  "R110", "a kernel name that would retitle and clear a terminal"),
}
