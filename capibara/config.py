"""The seed's import path (PARAMS.md §c)::

    from capibara.config import ModularModelConfig, ConfigValidator, ConfigMigrator

``ModularModelConfig`` lives in :mod:`capibara.model_config`; the validator and
the migrator are resolved on first access (PEP 562), so importing this module
does not import the validation or legacy stages, and they may import
:mod:`capibara.model_config` without a cycle.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from capibara.model_config import ModularModelConfig, Provenance, UnknownFieldError

__all__ = ["ModularModelConfig", "ConfigValidator", "ConfigMigrator", "Provenance",
           "UnknownFieldError"]

_LAZY = {"ConfigValidator": "capibara.validate", "ConfigMigrator": "capibara.legacy"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'capibara.config' has no attribute {name!r}")
