"""Legacy dicts: :class:`ConfigMigrator`, the seed's v2 → v3 migration of a flat dict.

:func:`translate_mapping` reads the same :data:`~.rules.LEGACY_KEYS` table as
the TOML rewrite, so a dict and a file with the same keys migrate alike.
"""

from __future__ import annotations

from typing import Any, Mapping

import msgspec

from capibara.config.fieldtypes import format_value, join_words
from capibara.config.legacy.rules import (LEGACY_CONFLICT, LEGACY_KEYS, V2_ONLY_DEVICES,
                                          LegacyValueError, same)
from capibara.diagnostics import Diagnostic

__all__ = ["is_legacy_mapping", "translate_mapping", "Migration", "ConfigMigrator"]


def is_legacy_mapping(values: Mapping[str, Any]) -> bool:
    """Whether a flat dict is a v2 config: it holds a key only v2 had, or a v2-only
    device name (``{"device": "gpu"}`` alone is a valid v3 dict and stays one)."""
    if any(key in values and not rule.also_v3 for key, rule in LEGACY_KEYS.items()):
        return True
    device = values.get("device")
    return isinstance(device, str) and device.lower() in V2_ONLY_DEVICES


class Migration(msgspec.Struct, frozen=True):
    """A migrated config and what the migration found (warnings; no errors)."""

    config: Any
    diagnostics: tuple[Diagnostic, ...]


def _unknown_key(name: Any) -> Diagnostic:
    from capibara.config.fieldtypes import closest
    from capibara.config.values import UNKNOWN_FIELD
    from capibara.config.fields import FIELD_BY_NAME

    near = closest(str(name), [*LEGACY_KEYS, *FIELD_BY_NAME], cutoff=0.7)
    return Diagnostic.error(
        UNKNOWN_FIELD, f"unknown legacy key `{name}`",
        help=f"did you mean `{near}`?" if near else
        "a legacy config holds `model_size`, `use_quantum`, `device` and v3 field names")


def translate_mapping(legacy: Mapping[str, Any]) -> tuple[dict[str, Any], list[Diagnostic]]:
    """A flat legacy dict → checked v3 assignments by field name, and diagnostics.

    Reads the same :data:`LEGACY_KEYS` table as :func:`rewrite_document`: each
    legacy key's translation is applied, v3 field names pass through, explicit
    v3 values win over what a legacy key implies, and a direct contradiction
    (``use_quantum=True`` with ``use_vq=False``) is an error.  Every assignment's
    provenance is ``legacy``.
    """
    from capibara.config.values import Provenance, check_value
    from capibara.config.fields import FIELD_BY_NAME

    diagnostics: list[Diagnostic] = []
    unknown = [key for key in legacy if key not in FIELD_BY_NAME and key not in LEGACY_KEYS]
    diagnostics.extend(_unknown_key(key) for key in unknown)
    convert = is_legacy_mapping(legacy)
    # field -> (value, provenance detail, implied?)
    wanted: dict[str, tuple[Any, str, bool]] = {}
    explicit = {key: value for key, value in legacy.items() if key in FIELD_BY_NAME
                and not (convert and key in LEGACY_KEYS)}
    for key, value in explicit.items():
        wanted[key] = (value, f"`{key}` in the legacy config", False)
    if convert:
        for key, rule in LEGACY_KEYS.items():
            if key not in legacy:
                continue
            raw = legacy[key]
            try:
                translation = rule.translate(raw)
            except LegacyValueError as problem:
                diagnostics.append(Diagnostic.error(problem.code, problem.message,
                                                    help=problem.help))
                continue
            origin = f"legacy `{key} = {format_value(raw)}`"
            applied: list[str] = []
            for assignment in translation.assignments:
                if assignment.field in explicit:
                    given = explicit[assignment.field]
                    if not assignment.implied and not same(given, assignment.value):
                        diagnostics.append(Diagnostic.error(
                            LEGACY_CONFLICT, f"`{key}` = {format_value(raw)} means "
                            f"`{assignment.field}` = {format_value(assignment.value)}, but "
                            f"`{assignment.field}` = {format_value(given)} is also given",
                            help=f"keep one of `{key}` and `{assignment.field}`, or make "
                                 "them agree"))
                    continue
                wanted[assignment.field] = (assignment.value, origin, assignment.implied)
                applied.append(f"`{assignment.field} = {format_value(assignment.value)}`")
            if translation.notes:
                diagnostics.append(Diagnostic.warning(
                    rule.code, f"legacy `{key} = {format_value(raw)}` became {join_words(applied)}"
                    if applied else f"legacy `{key} = {format_value(raw)}` changed nothing",
                    notes=translation.notes))
    assignments: dict[str, Any] = {}
    for name, (value, detail, _) in wanted.items():
        result = check_value(name, value, Provenance("legacy", None, detail))
        if isinstance(result, Diagnostic):
            diagnostics.append(result)
        else:
            assignments[name] = result
    return assignments, diagnostics


class ConfigMigrator:
    """The seed's migrator (``capibara.config.ConfigMigrator``): v2.x dicts → v3 configs.

    Stateless.  The environment is never read, so a migration gives the same
    config on every machine.
    """

    def migrate(self, legacy_config: Mapping[str, Any]) -> Migration:
        """Migrate and validate; returns the config with the migration's warnings.

        Raises :class:`~capibara.diagnostics.ConfigError` (a ``ValueError``)
        listing every unknown key, unusable legacy value, contradiction, or
        cross-field error of the result.
        """
        from capibara.diagnostics import ConfigError
        from capibara.config.model_config import build_config, raise_for
        from capibara.config.validate import get_validation_errors

        if not isinstance(legacy_config, Mapping):
            raise TypeError(f"migrate_from_legacy expects a mapping, got "
                            f"{type(legacy_config).__name__}")
        assignments, diagnostics = translate_mapping(legacy_config)
        raise_for(diagnostics)
        config = build_config(assignments)
        problems = get_validation_errors(config)
        if any(d.is_error for d in problems):
            raise ConfigError([*diagnostics, *problems])
        return Migration(config, tuple(diagnostics) + tuple(problems))

    def migrate_from_legacy(self, legacy_config: Mapping[str, Any]) -> Any:
        """The seed's call: a legacy dict → ``ModularModelConfig``.

        ``{"model_size": "600m", "use_quantum": True, "device": "tpu_v4"}`` gives
        ``model_name="capibara_600m"``, 2048 hidden × 12 layers × 32 heads,
        ``use_vq=True``, ``device="tpu_v4"`` and ``use_tpu_v4_optimizations=True``.
        Warnings (shapes to check against the checkpoint, the generic ``"tpu"``)
        are issued as :class:`capibara.config.model_config.ConfigWarning`.
        """
        import warnings

        from capibara.config.values import ConfigWarning

        migration = self.migrate(legacy_config)
        for diagnostic in migration.diagnostics:
            if diagnostic.code.startswith("L"):
                warnings.warn(_plain(diagnostic), ConfigWarning, stacklevel=2)
        return migration.config


def _plain(diagnostic: Diagnostic) -> str:
    from capibara.diagnostics import escape

    return escape("; ".join((diagnostic.message, *diagnostic.notes)))
