"""``dedupe-kernels``: identical kernel specs merged."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from msgspec.structs import replace

from capibara.compiler.ir import KernelUse, Lowered
from capibara.compiler.passes.base import Pass, PassContext


class DedupeKernels(Pass, frozen=True):
    """Merge kernel uses that are the same kernel (family, implementation, params,
    shapes, dtypes, attrs): the runtime compiles each once. The merged spec
    keeps the first site's name, lists every site in ``uses`` and sums the calls."""

    name: ClassVar[str] = "dedupe-kernels"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        groups: dict[tuple, list[KernelUse]] = {}
        for use in ir.kernels:
            key = (use.family, use.implementation, _frozen(use.params), _frozen(use.shapes),
                   _frozen(use.dtypes), _frozen(use.attrs))
            groups.setdefault(key, []).append(use)
        merged = []
        for uses in groups.values():
            first = uses[0]
            sites = tuple(u.site for u in uses)
            merged.append(replace(first, calls_per_step=sum(u.calls_per_step for u in uses),
                                  uses=sites))
            if len(uses) > 1:
                ir = ir.decide(self.name, f"kernels.{first.site}", list(sites[:1]), list(sites),
                               f"{len(uses)} call sites run the same kernel")
        return replace(ir, kernels=tuple(merged))


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value
