"""``prune-disabled``: drop kernels of features that are off; warn about settings that have no effect on this target."""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from msgspec.structs import replace

from capibara.compiler.ir import KernelUse, Lowered
from capibara.compiler.kernel_uses import FEATURE_SWITCH, feature_enabled
from capibara.compiler.located import field_diagnostic, path_of
from capibara.compiler.passes.base import Pass, PassContext
from capibara.compiler.passes.resolve_mesh import CONSERVATIVE_IGNORES, INEFFECTIVE
from capibara.diagnostics import Diagnostic
from capibara.plan import Mesh

#: Settings that act only on some targets: field → (predicate on the target, where it applies).
_TARGET_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "use_tpu_v4_optimizations": (lambda t: t.seed_device == "tpu_v4", "TPU v4"),
    "use_custom_kernels": (lambda t: t.platform == "tpu", "TPU"),
    "kernel_categories": (lambda t: t.platform == "tpu", "TPU"),
    "vq_use_tpu_optimizations": (lambda t: t.platform == "tpu", "TPU"),
    "vq_use_simd": (lambda t: t.platform == "cpu", "CPU"),
    "num_gpus": (lambda t: t.platform == "gpu", "GPU"),
    "gpu_memory_fraction": (lambda t: t.platform == "gpu", "GPU"),
    "gpu_memory_growth": (lambda t: t.platform == "gpu", "GPU"),
}

#: Settings a kernel family's selection reads only outside conservative mode.
_CUSTOM_KERNEL_SETTINGS = ("use_custom_kernels", "kernel_categories", "vq_use_tpu_optimizations",
                           "vq_use_simd")


class PruneDisabled(Pass, frozen=True):
    """Drop the kernels of switched-off features; warn about settings without effect here.

    A feature that is off leaves no kernel (and, in the plan, no section).
    A setting written explicitly that does nothing on the resolved target is
    an ``O101`` warning, unless the validator already says so because the
    config names its device (``V015``, ``V024``, ``V037``): this pass covers
    ``device = "auto"`` and ``--target``. The validator's hardware check
    already judges the settings it resolves against the target itself (ARM
    optimizations ``V039``, collectives on one device ``V022``).
    """

    name: ClassVar[str] = "prune-disabled"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config, mesh = ir.config, ir.mesh
        kept: list[KernelUse] = []
        pruned: list[tuple[str, str]] = []
        for use in ir.kernels:
            if feature_enabled(use.feature, config, mesh, ir.model_axis):
                kept.append(use)
            else:
                pruned.append((use.site, use.feature))
        for site, feature in pruned:
            switch = FEATURE_SWITCH[feature]
            ir = ir.decide(self.name, f"kernels.{site}", site, None,
                           _pruned_reason(feature, switch, config, mesh))
        ir = replace(ir, kernels=tuple(kept))
        ctx.diagnostics.extend(self._ineffective(ir))
        return ir

    @staticmethod
    def _ineffective(ir: Lowered) -> list[Diagnostic]:
        config, target = ir.config, ir.target
        if config.device != "auto" and target.seed_device == config.device:
            return []  # the validator checked these settings against the named device
        found = []
        for name, (applies, where) in _TARGET_ONLY.items():
            if name not in ir.explicit or applies(target):
                continue
            if isinstance(getattr(config, name), bool) and not getattr(config, name):
                continue  # switching a feature off where it does not exist is harmless
            found.append(field_diagnostic(
                INEFFECTIVE, f"`{name}` has no effect on `{target.name}`: it applies on {where} only",
                config, (name,), {name: f"{where} only"},
                help=f"remove `{path_of(name)}` when compiling for `{target.name}`", warning=True))
        if config.compile_mode == "conservative":
            ignored = [n for n in _CUSTOM_KERNEL_SETTINGS
                       if n in ir.explicit and getattr(config, n)]
            for name in ignored:
                found.append(field_diagnostic(
                    CONSERVATIVE_IGNORES,
                    f"`{name}` has no effect: `compile_mode` \"conservative\" keeps every kernel's "
                    "reference implementation",
                    config, (name, "compile_mode"),
                    {name: "ignored", "compile_mode": "reference kernels only"},
                    help=f"remove `{path_of(name)}`, or use `{path_of('compile_mode')} = \"default\"`",
                    warning=True))
        return found


def _pruned_reason(feature: str, switch: str, config: Any, mesh: Mesh | None) -> str:
    if feature == "data_parallel":
        return "one data-parallel replica: no gradient all-reduce"
    if feature.startswith("model_parallel"):
        if mesh is not None and mesh.size("model") > 1 or config.model_parallel:
            return ("Mixture of Rookies replaces the dense MLP" if feature == "model_parallel_mlp"
                    else "the feed-forward is the dense MLP")
        return "no model parallelism: no collectives over the model axis"
    if feature == "dense_mlp":
        return "Mixture of Rookies replaces the dense MLP (sparsity.method = \"mor\")"
    if feature == "mor":
        if not config.use_sparse:
            return "sparsity.enabled = false"
        return f"sparsity.method = \"{config.sparsity_method}\" is not Mixture of Rookies"
    return f"`{path_of(switch)}` = false"
