"""Stage 4: lower a checked config for a target.

``lower(config, target)`` turns a :class:`~capibara.config.model_config.ModularModelConfig`
and a machine into :class:`~capibara.compiler.ir.Lowered`: the device the
model runs on, the mesh the config asks for, the precision and memory policy
it asks for (:mod:`capibara.compiler.policy`), and one kernel use per place
the model calls a kernel (:mod:`capibara.compiler.kernel_uses`). Nothing here
is chosen for speed yet: every kernel starts at its family's ``reference``
implementation and shapes keep symbolic dimensions (``"B"``, the per-device
batch) until the optimizer (:mod:`capibara.compiler.passes`) resolves them.

The hardware rules run here, once (:mod:`capibara.compiler.hardware`).

Imports no JAX.
"""

from __future__ import annotations

from typing import Any

from capibara.compiler.hardware import check_hardware
from capibara.compiler.ir import Lowered
from capibara.compiler.kernel_uses import kernel_uses
from capibara.compiler.policy import memory_limit_bytes, memory_policy, requested_precision
from capibara.diagnostics import Diagnostic
from capibara.targets import Target

__all__ = ["lower"]


def lower(config: Any, target: Target | str | None = None) -> tuple[Lowered, list[Diagnostic]]:
    """Lower ``config`` for ``target`` (see the module docstring); never raises for bad input.

    Returns the IR and every diagnostic found; the caller stops before
    optimizing if any is an error.
    """
    precision = requested_precision(config)
    hardware = check_hardware(config, target, precision)
    device = hardware.device
    lowered = Lowered(
        config=config, machine=hardware.machine, target=device, model=None, mesh=hardware.mesh,
        batch=config.batch_size if isinstance(config.batch_size, int) else None,
        precision=precision, policy=memory_policy(config), kernels=kernel_uses(config),
        memory_limit=memory_limit_bytes(config, device), explicit=config.explicit_fields)
    if hardware.fell_from is not None:
        lowered = lowered.decide(
            "lower", "hardware.device", hardware.fell_from, device.seed_device,
            f"`{hardware.machine.name}` has no {hardware.fell_from} device; hardware_fallback "
            f"moves to {device.seed_device} ({device.name})")
    elif config.device == "auto":
        lowered = lowered.decide("lower", "hardware.device", "auto", device.seed_device,
                                 f"the machine is `{hardware.machine.name}`")
    if config.use_vq and config.vq_enterprise_mode and device.seed_device != "tpu_v6" \
            and config.vq_fallback_strategy != "none":
        lowered = lowered.decide(
            "lower", "vector_quantization.enterprise_mode", True, False,
            f"`{device.name}` is not a TPU v6: vq_fallback_strategy = "
            f"\"{config.vq_fallback_strategy}\" keeps the {config.vq_codes} codes and turns the "
            "adaptive ML and cost management off",
            effective={**lowered.effective, "vq_enterprise_mode": False, "vq_cost_management": False})
    return lowered, list(hardware.diagnostics)
