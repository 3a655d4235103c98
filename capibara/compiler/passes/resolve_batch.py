"""``resolve-batch``: an ``"auto"`` batch becomes the largest that fits; the memory check."""

from __future__ import annotations

from typing import ClassVar

from msgspec.structs import replace

from capibara.compiler.ir import KernelUse, Lowered
from capibara.compiler.located import field_diagnostic, path_of
from capibara.compiler.memory import estimate_memory
from capibara.compiler.passes.base import Pass, PassContext
from capibara.diagnostics import Diagnostic
from capibara.plan.types import MAX_ELEMENTS
from capibara.targets import GIB

#: Fraction of the memory limit the estimate may fill: XLA keeps its own
#: buffers (compiled executables, collectives' staging) and fragments.
MEMORY_HEADROOM = 0.9

BATCH_SPLIT = "H021"
DOES_NOT_FIT = "H204"
NO_BATCH = "H205"


class ResolveBatch(Pass, frozen=True):
    """``batch_size = "auto"`` → the largest global batch that fits, and the memory check.

    The batch is global: a multiple of the data-parallel degree, at
    most ``max_batch_size``, and for ``"auto"`` the largest whose estimated
    peak (:func:`capibara.compiler.memory.estimate_memory`) stays within
    :data:`MEMORY_HEADROOM` of the memory limit. An explicit batch that does
    not fit is an error (``H204``), as is a model that does not fit even one
    sample per device.
    """

    name: ClassVar[str] = "resolve-batch"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config, mesh = ir.config, ir.mesh
        assert mesh is not None and ir.model is not None, "resolve-mesh and fold-derived run first"
        dp = mesh.size("data")

        def estimate(per_device: int):
            return estimate_memory(config, ir.model, mesh=mesh, model_axis=ir.model_axis,
                                   per_device_batch=per_device, precision=ir.precision,
                                   policy=ir.policy, kernels=ir.kernels,
                                   platform=ir.target.platform, limit=ir.memory_limit)

        # Without a known limit the batch still stays within what a plan records.
        budget = MAX_ELEMENTS if ir.memory_limit is None else int(ir.memory_limit * MEMORY_HEADROOM)
        if ir.batch is not None:
            if ir.batch % dp or ir.batch < dp:
                if _mesh_was_auto(ir):  # an explicit mesh was checked by the validator (H021)
                    ctx.diagnostics.append(_batch_split(ir, dp))
                return ir
            per_device = ir.batch // dp
            memory = estimate(per_device)
            if memory.total > budget:
                ctx.diagnostics.append(_does_not_fit(ir, memory, per_device, estimate, budget))
                return replace(ir, memory=memory)
            reason = f"batch_size {ir.batch} over {dp} data-parallel replica{'s' if dp > 1 else ''}"
            global_size = ir.batch
        else:
            cap = config.max_batch_size // dp
            if cap < 1:
                ctx.diagnostics.append(field_diagnostic(
                    NO_BATCH, f"`max_batch_size` {config.max_batch_size} cannot give each of the "
                              f"{dp} data-parallel replicas one sample",
                    config, ("max_batch_size", "tpu_mesh_shape"),
                    {"max_batch_size": f"fewer than {dp}"},
                    help=f"set `{path_of('max_batch_size')} = {dp}` or more"))
                return ir
            one = estimate(1)
            if one.total > budget:
                ctx.diagnostics.append(_does_not_fit(ir, one, 1, estimate, budget))
                return replace(ir, memory=one)
            per_device = _largest_fitting(estimate, cap, budget)
            global_size = per_device * dp
            why = [f"{per_device} per device × {dp} replica{'s' if dp > 1 else ''}"]
            if per_device == cap:
                why.append(f"capped by max_batch_size {config.max_batch_size}")
            elif ir.memory_limit is None:
                why.append(f"the largest within the {format_gib(budget)} a plan records")
            else:
                why.append(f"the largest that fits {format_gib(budget)} "
                           f"({MEMORY_HEADROOM:.0%} of the {format_gib(ir.memory_limit)} limit)")
            reason = "; ".join(why)
            memory = estimate(per_device)
        kernels = tuple(_bind_batch(use, per_device, ir.model.max_seq_length, ir.model_axis)
                        for use in ir.kernels)
        ir = replace(ir, kernels=kernels, memory=memory)
        return ir.decide(self.name, "deployment.batch_size", config.batch_size, global_size, reason,
                         batch=global_size)


def _largest_fitting(estimate, cap: int, budget: int) -> int:
    """The largest per-device batch in ``1..cap`` whose estimate stays within ``budget``
    (the estimate grows with the batch; one sample is known to fit)."""
    low, high = 1, cap
    while low < high:
        middle = (low + high + 1) // 2
        if estimate(middle).total <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def _mesh_was_auto(ir: Lowered) -> bool:
    return not isinstance(ir.config.tpu_mesh_shape, list) or ir.target.platform != "tpu"


def _bind_batch(use: KernelUse, per_device: int, seq: int, model_axis: int) -> KernelUse:
    """Bind the batch symbols: ``B`` samples and ``N = B·S`` tokens per device, that
    padded to a multiple of the model axis (``Nm``) and one device's rows of it (``Nl``)."""
    rows = -(-per_device * seq // model_axis)
    sizes = {"B": per_device, "N": per_device * seq, "Nm": rows * model_axis, "Nl": rows}
    return replace(use, shapes={name: tuple(sizes.get(d, d) if isinstance(d, str) else d
                                            for d in shape)
                                for name, shape in use.shapes.items()})


def format_gib(n: int | None) -> str:
    return "no limit" if n is None else f"{n / GIB:.1f} GiB"


def _batch_split(ir: Lowered, dp: int) -> Diagnostic:
    config = ir.config
    fixed = max(dp, (ir.batch // dp) * dp)
    return field_diagnostic(
        BATCH_SPLIT, f"`batch_size` {ir.batch} does not split across {dp} data-parallel replicas "
                     f"(the devices of `{ir.target.name}`)",
        config, ("batch_size",), {"batch_size": f"not a multiple of {dp}"},
        help=f"set `{path_of('batch_size')} = {fixed}` (a multiple of {dp}), or \"auto\"")


def _does_not_fit(ir: Lowered, memory, per_device: int, estimate, budget: int) -> Diagnostic:
    config = ir.config
    parts = (f"weights {format_gib(memory.weights)}, gradients {format_gib(memory.gradients)}, optimizer "
             f"state {format_gib(memory.optimizer_state)}"
             + (" (twice: no buffer donation)" if memory.update_copies == 2 else "")
             + f", activations {format_gib(memory.activations)}, workspace {format_gib(memory.workspace)}")
    fixes = []
    if ir.batch is not None and per_device > 1 and estimate(1).total <= budget:
        fits = _largest_fitting(estimate, per_device - 1, budget)
        fixes.append(f"`{path_of('batch_size')} = {fits * ir.data_parallel}`")
    if not ir.policy.remat:
        fixes.append(f"`{path_of('gradient_checkpointing')} = true`")
    if config.memory_optimization_level < 3:
        fixes.append(f"`{path_of('memory_optimization_level')} = 3`")
    if not config.model_parallel and ir.target.device_count > 1:
        fixes.append(f"`{path_of('model_parallel')} = true`")
    names = ("batch_size",) if ir.batch is not None else ("hidden_size", "num_layers")
    limits = ("memory_limit_gb", "tpu_memory_limit_gb") if ir.target.platform == "tpu" else \
        ("memory_limit_gb",)
    limit_fields = [n for n in limits if n in ir.explicit]
    if ir.memory_limit is None:
        beyond = f"the {format_gib(budget)} a plan records (more than any device holds)"
        rule = "with no memory limit known the estimate must stay within what a plan records"
    else:
        beyond = f"the {format_gib(ir.memory_limit)} limit on `{ir.target.name}`"
        rule = f"the estimate must stay within {MEMORY_HEADROOM:.0%} of the limit"
    return field_diagnostic(
        DOES_NOT_FIT,
        f"the training step needs about {format_gib(memory.total)} per device with {per_device} "
        f"sample{'s' if per_device != 1 else ''} each, more than {beyond}",
        config, (*names, *limit_fields),
        {names[0]: "too large for the device memory", **{n: "the limit" for n in limit_fields}},
        notes=(parts, rule),
        help=("try " + ", or ".join(fixes)) if fixes else "compile for a device with more memory")
