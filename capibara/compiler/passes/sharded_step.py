"""``sharded-step``: on several devices, the explicit ``shard_map`` train step with the plan's collective kernels, or XLA's partitioning."""

from __future__ import annotations

from typing import ClassVar

from msgspec.structs import replace

from capibara.compiler.ir import Lowered
from capibara.compiler.located import field_diagnostic, path_of
from capibara.compiler.passes.base import Pass, PassContext
from capibara.compiler.policy import shards_optimizer_state

#: The plan path the choice is recorded under (``capibara explain PLAN execution``).
PATH = "execution.sharded_step"

MANUAL_CANNOT_SPLIT = "O104"


class ShardedStep(Pass, frozen=True):
    """Choose how a multi-device plan trains, and keep the collectives only if they run.

    ``explicit``: the model's train step is a ``shard_map`` over the mesh whose
    gradient reduction (and, split over the model axis, tensor-parallel
    projections) are the plan's collective kernels
    (:mod:`capibara.model.sharded_step`). ``automatic``: ``jax.jit`` of the
    global step over sharded arrays, XLA inserting its own reductions; the
    plan then records no collective kernel, since the model would call none.

    ``sharding_strategy = "manual"`` asks for the explicit step; ``"auto"``
    takes the faster one on the target's platform (the collective family's
    measured ``STEP`` table, by whether the optimizer state is split over the
    data axis). The explicit step splits the model over the ``model`` axis
    only where it can (``tensor_parallel_refusal``); otherwise
    ``auto`` trains automatically and ``manual`` is an ``O104`` error.
    """

    name: ClassVar[str] = "sharded-step"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        collectives = [use for use in ir.kernels if use.family == "collective"]
        if not collectives:  # one device: nothing to reduce
            return ir
        config = ir.config
        step, reason = self._choice(ir)
        if step is None:
            ctx.diagnostics.append(field_diagnostic(
                MANUAL_CANNOT_SPLIT,
                f"`sharding_strategy` \"manual\" asks for the explicit sharded step, but it "
                f"cannot split this model over the {ir.model_axis}-device model axis: {reason}",
                config, ("sharding_strategy", "model_parallel"),
                {"sharding_strategy": "explicit step", "model_parallel": "splits the model"},
                help=f"set `{path_of('sharding_strategy')} = \"auto\"` (XLA partitions the "
                     f"step), or `{path_of('model_parallel')} = false`"))
            return ir
        ir = ir.decide(self.name, PATH, config.sharding_strategy, step, reason)
        if step == "explicit":
            return ir
        for use in collectives:
            ir = ir.decide(self.name, f"kernels.{use.site}", use.site, None,
                           "XLA's automatic partitioning inserts its own collectives")
        return replace(ir, kernels=tuple(u for u in ir.kernels if u.family != "collective"))

    @staticmethod
    def _choice(ir: Lowered) -> tuple[str | None, str]:
        """``(step, why)``; ``(None, why)`` when ``manual`` asks for what cannot be."""
        from capibara.compiler.model_shape import model_shape
        from capibara.compiler.model_spec import tensor_parallel_refusal
        from capibara.kernels.collective.spec import STEP

        config = ir.config
        # From the config's values, not a ModelSpec: a config with errors still reaches
        # the passes (`capibara check` reports every stage), and a spec would refuse it.
        shape = model_shape(config)
        refusal = tensor_parallel_refusal(
            ir.model_axis, mixers=tuple(config.mixers),
            quantized=[u.site.split(".", 1)[1] for u in ir.kernels if u.family == "linalg"
                       and u.site.startswith("blocks.") and u.attrs.get("weights") != "float"],
            topk=bool(config.use_sparse and config.sparsity_method == "topk"),
            heads=shape.num_heads, kv_heads=shape.num_heads,
            mlp=(("expert MLP width", shape.expert_ffn_dim or 0) if shape.num_experts
                 else ("MLP width", shape.ffn_dim)))
        if config.sharding_strategy == "manual":
            if refusal is not None:
                return None, refusal
            return "explicit", "sharding_strategy = \"manual\""
        zero = shards_optimizer_state(config)
        step, why = STEP[ir.target.platform][zero]
        state = "optimizer state split over data" if zero else "optimizer state replicated"
        if step == "explicit" and refusal is not None:
            return "automatic", (f"the explicit step cannot split this model over the "
                                 f"{ir.model_axis}-device model axis: {refusal}")
        return step, f"{ir.target.platform}, {state}: {why}"
