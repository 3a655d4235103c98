"""The optimization passes: one module each, one registry, one pipeline.

A pass is a small frozen Struct with a ``name`` and one method,
``apply(ir, ctx) -> ir`` (xdsl's shape): it receives a
:class:`~capibara.compiler.ir.Lowered` and returns a new one, appending any
diagnostics to ``ctx`` and recording every change it makes as a
:class:`~capibara.plan.Decision`. :class:`PassPipeline` runs a tuple of
passes with one callback between them, which is how ``--print-after STAGE``
and ``--time-stages`` work without any pass knowing about them.

The default pipeline, in order:

=================== ==========================================================
``resolve-mesh``    ``"auto"`` mesh → ``[data, model]`` from the device count
``prune-disabled``  drop kernels of features that are off; warn about settings
                    that have no effect on this target (``O1xx``)
``sharded-step``    on several devices: the explicit ``shard_map`` step with the
                    plan's collective kernels, or XLA's partitioning (no collectives)
``precision``       the precision policy the target can run
``memory-policy``   ``memory_optimization_level`` and ``compile_mode`` → donation,
                    chunked loss, saved-activation dtype
``fold-derived``    derived sizes (head_dim, MLP width, parameter count) and dtypes
                    folded into every kernel shape
``select-kernels``  implementation and tile sizes per kernel, by cost model
``resolve-batch``   ``"auto"`` batch → the largest that fits; the memory check
``dedupe-kernels``  identical kernel specs merged
=================== ==========================================================

Adding a pass is one module plus one line in :data:`PASSES`.
"""

from __future__ import annotations

from capibara.compiler.ir import Lowered
from capibara.compiler.passes.base import Callback, Pass, PassContext, PassPipeline
from capibara.compiler.passes.dedupe_kernels import DedupeKernels
from capibara.compiler.passes.fold_derived import FoldDerived
from capibara.compiler.passes.memory_policy import ApplyMemoryPolicy
from capibara.compiler.passes.precision import PrecisionPolicy
from capibara.compiler.passes.prune_disabled import PruneDisabled
from capibara.compiler.passes.resolve_batch import ResolveBatch, format_gib
from capibara.compiler.passes.resolve_mesh import ResolveMesh
from capibara.compiler.passes.select_kernels import SelectKernels
from capibara.compiler.passes.sharded_step import ShardedStep
from capibara.diagnostics import Diagnostic

#: Every pass by name (``--print-after`` names them); one line per pass.
PASSES: dict[str, type[Pass]] = {p.name: p for p in (
    ResolveMesh, PruneDisabled, ShardedStep, PrecisionPolicy, ApplyMemoryPolicy, FoldDerived,
    SelectKernels, ResolveBatch, DedupeKernels)}

#: The order the compiler runs them in.
DEFAULT_PIPELINE: tuple[Pass, ...] = tuple(cls() for cls in PASSES.values())


def optimize(ir: Lowered, ctx: PassContext | None = None, *,
             callback: Callback | None = None) -> tuple[Lowered, list[Diagnostic]]:
    """Run :data:`DEFAULT_PIPELINE` on ``ir``; returns the result and the diagnostics."""
    ctx = ctx or PassContext()
    result = PassPipeline(DEFAULT_PIPELINE, callback).run(ir, ctx)
    return result, ctx.diagnostics




def describe(ir: Lowered) -> str:
    """The IR as text (what ``--print-after STAGE`` prints)."""
    p, policy = ir.precision, ir.policy
    lines = [
        f"machine    {ir.machine.name}",
        f"target     {ir.target.name} ({ir.target.platform}, {ir.target.device_count} "
        f"device{'s' if ir.target.device_count != 1 else ''})",
        f"mesh       {'auto' if ir.mesh is None else list(ir.mesh.shape)}",
        f"batch      {'auto' if ir.batch is None else ir.batch}",
        f"precision  params {p.params}, compute {p.compute}, accumulation {p.accumulation}"
        + (f", vq codebook {p.vq_codebook}" if p.vq_codebook else ""),
        f"execution  remat {policy.remat}, donate {policy.donate}, loss chunk {policy.loss_chunk}, "
        f"saved activations {policy.saved_activation_dtype}, offload {policy.offload_activations}",
        f"memory     limit {format_gib(ir.memory_limit)}"
        + (f", estimate {format_gib(ir.memory.total)}" if ir.memory else ""),
        "kernels",
    ]
    for use in ir.kernels:
        args = ", ".join(f"{name}[{','.join(map(str, shape))}]:{use.dtypes.get(name, '?')}"
                         for name, shape in use.shapes.items())
        params = ", ".join(f"{k}={v}" for k, v in use.params.items())
        lines.append(f"  {use.site:<18} {use.family}/{use.implementation}"
                     f"{f' {{{params}}}' if params else ''} ({args}) ×{use.calls_per_step}")
    lines.append(f"decisions  {len(ir.decisions)}")
    return "\n".join(lines)
