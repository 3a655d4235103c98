"""``memory-policy``: ``memory_optimization_level`` and ``compile_mode`` become donation, chunked loss and the saved-activation dtype."""

from __future__ import annotations

from typing import ClassVar

from msgspec.structs import replace

from capibara.compiler.ir import Lowered
from capibara.compiler.passes.base import Pass, PassContext


class ApplyMemoryPolicy(Pass, frozen=True):
    """``compile_mode = "aggressive"`` donates buffers whatever the memory level.

    The level's own effects (donation at ≥ 1, chunked loss at ≥ 2, compute-dtype
    saved activations at 3) are set in lowering (:func:`capibara.compiler.policy.memory_policy`)
    and recorded here, so ``capibara explain`` shows why each is on.
    """

    name: ClassVar[str] = "memory-policy"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config, policy = ir.config, ir.policy
        level = config.memory_optimization_level
        if not policy.donate and config.compile_mode == "aggressive":
            ir = ir.decide(self.name, "execution.donate", False, True,
                           "compile_mode = \"aggressive\" donates buffers at any memory level",
                           policy=replace(policy, donate=True))
        elif policy.donate:
            ir = ir.decide(self.name, "execution.donate", False, True,
                           f"memory_optimization_level {level} ≥ 1: the update step reuses the old "
                           "weight and optimizer-state buffers")
        if policy.loss_chunk is not None:
            ir = ir.decide(self.name, "execution.loss_chunk", None, policy.loss_chunk,
                           f"memory_optimization_level {level} ≥ 2: the output projection and loss "
                           f"run over {policy.loss_chunk}-token chunks")
        if policy.saved_activation_dtype != "float32":
            ir = ir.decide(self.name, "execution.saved_activation_dtype", "float32",
                           policy.saved_activation_dtype,
                           f"memory_optimization_level 3: block inputs are kept in "
                           f"{policy.saved_activation_dtype} for the backward pass")
        return ir
