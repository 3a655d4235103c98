"""The seed's front door: ``ConfigValidator`` and the hardware check."""

from __future__ import annotations

from typing import Any

import msgspec

from capibara.config.validate.hardware import resolve_device
from capibara.config.validate.engine import RULES, RuleContext
from capibara.config.validate.report import (FieldDiagnostic, explicit_device,
                                             get_validation_errors, run_rules)
from capibara.diagnostics import ConfigError


class ValidationResult(msgspec.Struct, frozen=True):
    """``is_valid`` is true when there is no error; ``errors`` and ``warnings``
    are :class:`FieldDiagnostic` values (``str()`` gives ``"field: message"``)."""

    errors: list[FieldDiagnostic]
    warnings: list[FieldDiagnostic]

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def diagnostics(self) -> list[FieldDiagnostic]:
        return self.errors + self.warnings


class HardwareCheck(msgspec.Struct, frozen=True):
    """The config against a machine.

    ``compatible`` is false when a hardware rule found an error;
    ``recommendations`` are concrete fixes in words (``"set `tpu_mesh_shape =
    [4, 4]`: 16 devices detected"``); ``detected_device`` is the device the
    config runs on there (``None`` if none can), ``target`` the machine.
    """

    target: Any
    detected_device: str | None
    errors: list[FieldDiagnostic]
    warnings: list[FieldDiagnostic]
    recommendations: list[str]

    @property
    def compatible(self) -> bool:
        return not self.errors

    @property
    def diagnostics(self) -> list[FieldDiagnostic]:
        return self.errors + self.warnings


#: Hardware rules whose fix depends on how many devices there are.
_COUNTING_CODES = frozenset({"H017", "H021", "H036"})


def _recommendation(d: FieldDiagnostic, target: Any) -> str | None:
    """A fix in words for the Python API: the help with flat field names (the
    names Python callers use) and, for hardware rules, what was detected."""
    if not d.help:
        return None
    from capibara.config.fields import FIELDS

    text = d.help
    for f in FIELDS:
        text = text.replace(f"`{f.path} ", f"`{f.name} ").replace(f"`{f.path}`", f"`{f.name}`")
    if d.code in _COUNTING_CODES:
        count = target.device_count
        text += f": {count} device{'s' if count != 1 else ''} detected on `{target.name}`"
    return text


def _target(target: Any) -> Any:
    from capibara.targets import Target, UnknownTarget, detect_host, get_target

    if target is None:
        return detect_host()
    if isinstance(target, Target):
        return target
    try:
        return get_target(str(target))
    except UnknownTarget as unknown:
        raise ConfigError([unknown.diagnostic()])


def check_hardware_compatibility(config: Any, target: Any = None, *,
                                 mode: str | None = None) -> HardwareCheck:
    """Check ``config`` against ``target`` (a catalog name such as ``"tpu_v4-32"``, a
    :class:`~capibara.targets.Target`, or ``None`` for the host, detected without
    importing JAX).  Runs the [HW] rules, and the device rules with the device
    resolved there (minus what :func:`get_validation_errors` already reports)."""
    machine = _target(target)
    device = resolve_device(config, machine)
    ctx = RuleContext(config, device, machine, mode)
    hardware = run_rules((r for _, r in sorted(RULES.items()) if r.scope == "hardware"), ctx)
    device_rules = [r for _, r in sorted(RULES.items()) if r.scope == "device"]
    already = set(run_rules(device_rules, RuleContext(config, explicit_device(config), None, mode)))
    found = hardware + [d for d in run_rules(device_rules, ctx) if d not in already]
    found.sort(key=lambda d: d.code)
    errors = [d for d in found if d.is_error]
    warnings = [d for d in found if not d.is_error]
    recommendations = [text for d in found if (text := _recommendation(d, machine))]
    return HardwareCheck(machine, device, errors, warnings, recommendations)


class ConfigValidator:
    """The seed's validator (``capibara.config.ConfigValidator``); stateless."""

    def validate_full_config(self, config: Any) -> ValidationResult:
        """Every rule that needs no hardware; never raises for an invalid config."""
        diagnostics = get_validation_errors(config)
        return ValidationResult([d for d in diagnostics if d.is_error],
                                [d for d in diagnostics if not d.is_error])

    def check_hardware_compatibility(self, config: Any, target: Any = None) -> HardwareCheck:
        """The [HW] rules against ``target`` (default: this host)."""
        return check_hardware_compatibility(config, target)
