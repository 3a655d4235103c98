"""The configuration language: fields, values, files, layering, rules, migration.

The seed's import path::

    from capibara.config import ModularModelConfig, ConfigValidator, ConfigMigrator

Modules: :mod:`~capibara.config.fields` (the field table every reader shares),
:mod:`~capibara.config.fieldtypes`, :mod:`~capibara.config.model_config`
(``ModularModelConfig``), :mod:`~capibara.config.sources` (files < env < ``--set``),
:mod:`~capibara.config.decode`, :mod:`~capibara.config.overrides`,
:mod:`~capibara.config.legacy` (v2 → v3), :mod:`~capibara.config.validate`,
:mod:`~capibara.config.writer` and :mod:`~capibara.config.jsonschema`.
Names resolve on first use, so importing one module loads only what it needs.
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

_EXPORTS = {
    "ModularModelConfig": "capibara.config.model_config",
    "Provenance": "capibara.config.model_config",
    "UnknownFieldError": "capibara.config.model_config",
    "ConfigValidator": "capibara.config.validate",
    "ConfigMigrator": "capibara.config.legacy",
    "resolve_config": "capibara.config.sources",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
