"""``resolve-mesh``: an ``"auto"`` mesh becomes ``[data, model]`` from the device count."""

from __future__ import annotations

from typing import ClassVar

from capibara.compiler.ir import Lowered
from capibara.compiler.located import field_diagnostic, path_of
from capibara.plan import MESH_AXES
from capibara.compiler.passes.base import Pass, PassContext
from capibara.plan import Mesh

#: Widest model axis the automatic mesh uses: tensor parallelism exchanges
#: activations twice per block, which stays cheap only inside one host's
#: fast interconnect (8 chips on a TPU v4/v6e host board, 8 GPUs on NVLink).
MAX_MODEL_AXIS = 8

INEFFECTIVE = "O101"
UNUSED_MODEL_AXIS = "O102"
CONSERVATIVE_IGNORES = "O103"


def _devices_available(ir: Lowered) -> int:
    target = ir.target
    if target.platform == "gpu":
        return min(ir.config.num_gpus, target.device_count)
    return target.device_count


class ResolveMesh(Pass, frozen=True):
    """``tpu_mesh_shape = "auto"`` (or a non-TPU target) → a ``[data, model]`` mesh.

    The model axis is 1 unless ``model_parallel``; then it is the widest
    divisor of the device count that also divides ``num_heads`` and
    ``hidden_size``, up to :data:`MAX_MODEL_AXIS`. The data axis takes
    the rest, or 1 with ``data_parallel = false``.
    """

    name: ClassVar[str] = "resolve-mesh"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config = ir.config
        if ir.mesh is not None:
            if ir.mesh.size("model") > 1 and not config.model_parallel:
                ctx.diagnostics.append(field_diagnostic(
                    UNUSED_MODEL_AXIS,
                    f"the model axis of `tpu_mesh_shape` {list(ir.mesh.shape)} has "
                    f"{ir.mesh.size('model')} devices, but `model_parallel` is false: they all "
                    "compute the same thing",
                    config, ("tpu_mesh_shape", "model_parallel"),
                    {"tpu_mesh_shape": "model axis unused", "model_parallel": "off"},
                    help=f"set `{path_of('model_parallel')} = true` to split the model over it, "
                         f"or `{path_of('tpu_mesh_shape')} = [{ir.mesh.devices}]` for data "
                         "parallelism only", warning=True))
            return ir
        if isinstance(config.tpu_mesh_shape, list) and "tpu_mesh_shape" in ir.explicit:
            ctx.diagnostics.append(field_diagnostic(
                INEFFECTIVE, f"`tpu_mesh_shape` has no effect on `{ir.target.name}`: only TPU "
                             "meshes are set by hand",
                config, ("tpu_mesh_shape",), {"tpu_mesh_shape": "ignored here"},
                help="remove it, or compile for a TPU (`--target tpu_v4-32`)", warning=True))
        devices = _devices_available(ir)
        model = 1
        if config.model_parallel:
            model = max(m for m in range(1, min(devices, MAX_MODEL_AXIS) + 1)
                        if devices % m == 0 and config.num_heads % m == 0
                        and config.hidden_size % m == 0)
        data = devices // model if config.data_parallel else 1
        mesh = Mesh(shape=(data, model), axes=MESH_AXES)
        why = [f"{devices} device{'s' if devices != 1 else ''} on `{ir.target.name}`"]
        if config.model_parallel:
            why.append(f"model axis {model}: the widest ≤ {MAX_MODEL_AXIS} dividing "
                       f"{config.num_heads} heads and hidden size {config.hidden_size}")
        if not config.data_parallel:
            why.append("data_parallel = false: one replica")
        return ir.decide(self.name, "tpu_v4_optimizations.mesh_shape", config.tpu_mesh_shape,
                         list(mesh.shape), "; ".join(why), mesh=mesh)
