"""``select-kernels``: an implementation and tile sizes per kernel, by the target's ranking and each family's selector."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping

from msgspec.structs import replace

from capibara.compiler.ir import KernelUse, Lowered
from capibara.compiler.passes.base import Pass, PassContext
from capibara.kernels.selection import Refusal
from capibara.kernels.specs import selectors as family_selectors


#: A selector: (use, ir) → the implementation's static params, or a Refusal.
Selector = Callable[[KernelUse, Lowered], "dict[str, Any] | Refusal"]

#: Every (family, implementation) the compiler can choose, and when it applies:
#: each family's ``spec.py`` (:mod:`capibara.kernels.specs`). The catalog
#: (targets.py) orders a target's implementations best first; the first that
#: applies wins. ``reference`` always applies.
SELECTORS: dict[tuple[str, str], Selector] = family_selectors()

#: Kernel families a TPU runs custom kernels for only when the config lists
#: them (``use_custom_kernels``, ``kernel_categories``); the others (vq, moe) are
#: always chosen by cost.
CUSTOM_CATEGORIES = frozenset({"linalg", "attention", "scan", "collective", "conv", "fft"})


def choose_implementation(use: KernelUse, ir: Lowered) -> tuple[str, dict[str, Any], str]:
    """``(implementation, params, reason)`` for ``use`` on ``ir``'s target."""
    config, target = ir.config, ir.target
    if config.compile_mode == "conservative":
        return "reference", _reference_params(use), "compile_mode = \"conservative\""
    if target.platform == "tpu" and use.family in CUSTOM_CATEGORIES:
        if not config.use_custom_kernels:
            return "reference", _reference_params(use), "use_custom_kernels = false"
        if use.family not in config.kernel_categories:
            return ("reference", _reference_params(use),
                    f"`{use.family}` is not in kernel_categories")
        if target.seed_device == "tpu_v4" and not config.use_tpu_v4_optimizations:
            return "reference", _reference_params(use), "tpu_v4_optimizations.enabled = false"
    refusals: list[str] = []
    for name in target.kernels.get(use.family, ("reference",)):
        selector = SELECTORS.get((use.family, name))
        if selector is None:
            continue
        chosen = selector(use, ir)
        if isinstance(chosen, Refusal):
            refusals.append(f"{name}: {chosen.reason}")
            continue
        best = target.kernels[use.family][0]
        why = (f"best on `{target.name}`" if name == best else
               f"best that applies on `{target.name}` ({'; '.join(refusals)})")
        return name, chosen, why
    return "reference", _reference_params(use), "; ".join(refusals) or "no other implementation"


def _reference_params(use: KernelUse) -> dict[str, Any]:
    # linalg's reference takes the precision policy too; the others take no tuning knobs.
    return dict(use.params) if use.family == "linalg" else {}


class SelectKernels(Pass, frozen=True):
    """Pick each kernel's implementation and static parameters (tile sizes) by cost model.

    ``compile_mode``: ``conservative`` keeps every reference implementation;
    ``default`` takes the best implementation that applies with the measured
    tile sizes; ``aggressive`` also takes larger tiles (see the ``*_TILE``
    tables). On a TPU, custom kernels follow ``use_custom_kernels`` and
    ``kernel_categories``.
    """

    name: ClassVar[str] = "select-kernels"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        chosen: list[KernelUse] = []
        decisions = []
        for use in ir.kernels:
            implementation, params, reason = choose_implementation(use, ir)
            chosen.append(replace(use, implementation=implementation, params=params))
            best = ir.target.kernels.get(use.family, ("reference",))[0]
            # Record every change, and why a kernel stays below the target's best.
            if implementation != use.implementation or implementation != best:
                decisions.append((f"kernels.{use.site}.implementation", use.implementation,
                                  implementation, reason + _params_note(params)))
        ir = replace(ir, kernels=tuple(chosen))
        for path, before, after, reason in decisions:
            ir = ir.decide(self.name, path, before, after, reason)
        return ir


def _params_note(params: Mapping[str, Any]) -> str:
    tiles = {k: v for k, v in params.items() if k.startswith("block")}
    return f"; {', '.join(f'{k} {v}' for k, v in tiles.items())}" if tiles else ""
