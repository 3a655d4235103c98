"""The hardware check: whether the machine can run what the config asks for.

One stage, run by :func:`capibara.compiler.lower.lower` for every compile and
check. It runs the validator's hardware-scoped rules (``H0xx``, in
:mod:`capibara.config.validate.hardware`; also behind
``ConfigValidator.check_hardware_compatibility``) and adds what needs the
resolved device (``H2xx``): a mesh with more axes than ``[data, model]``,
dtypes the target does not compute natively, the enterprise VQ path off
TPU v6 when no fallback is allowed, more Rookie experts than MLP width, and a
named target that overrides ``device``. The memory fit and the batch split
(``H204``, ``H205``) need the resolved batch and are checked where it is
resolved (:mod:`capibara.compiler.passes.resolve_batch`).

Imports no JAX.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from capibara.compiler.located import field_diagnostic, path_of
from capibara.diagnostics import Diagnostic
from capibara.plan import MESH_AXES, Mesh, Precision
from capibara.targets import CATALOG, Target, detect_host, get_target

__all__ = ["Hardware", "check_hardware", "resolve_machine"]


def resolve_machine(target: Target | str | None) -> Target:
    """The machine to compile for: a catalog name, a :class:`Target`, or the detected host."""
    if target is None:
        return detect_host()
    if isinstance(target, Target):
        return target
    return get_target(target)


def _host_cpu(machine: Target) -> Target:
    """The CPU of ``machine``: itself if it is one; the detected CPU of this host; a plain x86 otherwise."""
    if machine.platform == "cpu":
        return machine
    if machine is detect_host():
        return get_target("cpu")
    return CATALOG["cpu"]


def _device_target(config: Any, machine: Target) -> tuple[Target, str | None]:
    """The device the model runs on and, for a fallback, the device it ran instead of."""
    from capibara.config.validate import resolve_device

    device = resolve_device(config, machine)
    if device is None or device == machine.seed_device:
        return machine, None
    # The machine's own CPU: asked for by name, or reached by fallback.
    return _host_cpu(machine), None if device == config.device else config.device


MESH_RANK = "H201"


DTYPE_NOT_NATIVE = "H202"


ENTERPRISE_VQ_UNAVAILABLE = "H203"


EMPTY_EXPERTS = "H206"


TARGET_OVERRIDES_DEVICE = "H207"


#: The device rule a named target makes moot (the target is the device).
_DEVICE_PRESENT = "H035"


def _named(target: Target | str | None) -> bool:
    """Whether the caller named the machine (``--target``), rather than asking for this host
    (``None``, ``"auto"``, or the detected host itself, as the plan loader re-lowers)."""
    if target is None or (isinstance(target, str) and target == "auto"):
        return False
    return not (isinstance(target, Target) and target is detect_host())


class Hardware(msgspec.Struct, frozen=True):
    """What the hardware check found: the machine compiled for, the device on it the model
    runs on (the host CPU after a fallback, which ``fell_from`` names), the config's
    explicit mesh (``None`` while "auto" or when it has too many axes), and the diagnostics."""

    machine: Target
    device: Target
    fell_from: str | None
    mesh: Mesh | None
    diagnostics: tuple[Diagnostic, ...]


def check_hardware(config: Any, target: Target | str | None, precision: Precision) -> Hardware:
    """Run every hardware rule for ``config`` on ``target`` (see the module docstring).

    ``precision`` is the precision the config asks for; the dtype rules judge it
    against the resolved device. Never raises for bad input.
    """
    from capibara.config.validate import check_hardware_compatibility, resolve_device

    machine = resolve_machine(target)
    check = check_hardware_compatibility(config, machine)
    diagnostics: list[Diagnostic] = list(check.errors) + list(check.warnings)
    if _named(target):
        # The target named by the caller wins over the config's `device` (which picks
        # among a host's devices when no target is named). A fallback that reaches the
        # target's own device is the validator's H035; any other disagreement is H207.
        device, fell_from = machine, None
        reaches = resolve_device(config, machine) == machine.seed_device
        if not reaches:
            diagnostics = [d for d in diagnostics if d.code != _DEVICE_PRESENT]
        if config.device not in ("auto", machine.seed_device) and not reaches:
            diagnostics.append(field_diagnostic(
                TARGET_OVERRIDES_DEVICE,
                f"`device` is \"{config.device}\", but the target `{machine.name}` is "
                f"{machine.seed_device}: the named target wins",
                config, ("device",), {"device": f"not {machine.seed_device}"},
                help=f"set `{path_of('device')} = \"{machine.seed_device}\"` (or \"auto\"), or "
                     f"name a {config.device} target", warning=True))
    else:
        device, fell_from = _device_target(config, machine)

    mesh = None
    shape = config.tpu_mesh_shape
    if isinstance(shape, list) and device.platform == "tpu":
        if len(shape) > len(MESH_AXES):
            diagnostics.append(field_diagnostic(
                MESH_RANK, f"`tpu_mesh_shape` has {len(shape)} axes; capibara meshes have at most "
                           f"{len(MESH_AXES)}, `[data, model]`",
                config, ("tpu_mesh_shape",), {"tpu_mesh_shape": f"{len(shape)} axes"},
                help=f"fold the extra axes into one: `{path_of('tpu_mesh_shape')} = "
                     f"[{math.prod(shape[:-1])}, {shape[-1]}]`"))
        else:
            mesh = Mesh(shape=tuple(shape) + (1,) * (len(MESH_AXES) - len(shape)), axes=MESH_AXES)

    diagnostics.extend(_dtype_diagnostics(config, device, precision))
    diagnostics.extend(_enterprise_vq(config, device))
    diagnostics.extend(_rookie_width(config))
    return Hardware(machine, device, fell_from, mesh, tuple(diagnostics))


def _dtype_diagnostics(config: Any, target: Target, precision: Precision) -> list[Diagnostic]:
    """Dtypes the config asks for that the target only emulates (warnings).

    float16 on a TPU is the validator's (``V026`` compute, ``V016`` codebooks,
    judged against the resolved device); this covers every other target.
    """
    found: list[Diagnostic] = []
    if target.platform == "tpu":
        return found
    if precision.compute == "float16" and "float16" not in target.native_dtypes:
        found.append(field_diagnostic(
            DTYPE_NOT_NATIVE, f"float16 compute is not native on `{target.name}`: XLA converts "
                              "every float16 operation to float32 and back",
            config, ("use_bfloat16", "mixed_precision"),
            {"use_bfloat16": "float16 instead", "mixed_precision": "low-precision compute"},
            help=f"set `{path_of('use_bfloat16')} = true`"
                 + ("" if "bfloat16" in target.native_dtypes else
                    f", or `{path_of('mixed_precision')} = false` for float32"),
            warning=True))
    codebook = precision.vq_codebook
    if codebook in ("float16", "bfloat16", "int8") and codebook not in target.native_dtypes:
        native = ", ".join(f"`{d}`" for d in target.native_dtypes)
        found.append(field_diagnostic(
            DTYPE_NOT_NATIVE, f"`vq_precision` {codebook} is not native on `{target.name}`",
            config, ("vq_precision",), {"vq_precision": "emulated"},
            help=f"use one of {native}, or \"auto\"", warning=True,
            notes=(f"`{target.name}` computes natively in {native}",)))
    return found


def _rookie_width(config: Any) -> list[Diagnostic]:
    """Rookies split the 4·hidden MLP width; more experts than that leaves them empty."""
    if not (config.use_sparse and config.sparsity_method == "mor"):
        return []
    width, experts = 4 * config.hidden_size, config.mor_num_experts
    if experts <= width:
        return []
    return [field_diagnostic(
        EMPTY_EXPERTS, f"{experts} experts split a {width}-wide MLP into experts of width 0",
        config, ("mor_num_experts", "hidden_size"),
        {"mor_num_experts": f"more than {width}", "hidden_size": f"MLP width {width}"},
        help=f"use at most {width} experts (`{path_of('mor_num_experts')} = 8` is the default)",
        notes=("Mixture of Rookies divides the dense MLP's width (4 × hidden_size) among its "
               "experts, so each needs a share of at least one unit",))]


def _enterprise_vq(config: Any, target: Target) -> list[Diagnostic]:
    """The enterprise VQ path needs TPU v6; ``vq_fallback_strategy = "none"`` forbids the fallback."""
    if not (config.use_vq and config.vq_enterprise_mode) or target.seed_device == "tpu_v6":
        return []
    if config.vq_fallback_strategy != "none":
        return []
    return [field_diagnostic(
        ENTERPRISE_VQ_UNAVAILABLE,
        f"the enterprise VQ path needs a TPU v6, and `{target.name}` is not one",
        config, ("vq_fallback_strategy", "vq_enterprise_mode"),
        {"vq_fallback_strategy": "no fallback allowed", "vq_enterprise_mode": "TPU v6 only"},
        help=f"compile for a TPU v6 (`--target tpu_v6e-8`), or set "
             f"`{path_of('vq_fallback_strategy')} = \"tpu_v4\"` to keep the 128 codes without "
             "the adaptive features elsewhere")]
