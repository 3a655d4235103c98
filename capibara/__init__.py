"""capibara: a compiler for machine-learning model configurations.

    capibara check configs/production/tpu_v4.toml

Public API (imported lazily, so ``import capibara`` stays cheap and the
compile path never imports JAX):

- :class:`ConfigError`, :class:`Diagnostic`, :class:`Span`: errors with places.
- :mod:`capibara.toml`: the exact TOML 1.0 front end with spans.
- :mod:`capibara.config`: ``ModularModelConfig``, ``ConfigValidator``, ``ConfigMigrator``.
- ``compile(config_or_paths, *, target=None, overrides=None) -> Plan``.
- ``load_plan(path_or_plan) -> CompiledPlan`` (imports JAX), ``Model`` (imports JAX).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from capibara.diagnostics import ConfigError, Diagnostic, Span

__version__ = "0.1.0"

__all__ = ["ConfigError", "Diagnostic", "Span", "__version__", "compile", "load_plan",
           "Plan", "load_plan_file", "diff_plans", "explain_plan", "CompiledPlan", "Model",
           "ModularModelConfig", "ConfigValidator", "ConfigMigrator"]

# name -> module that defines it; resolved on first access (PEP 562), so that
# `import capibara` stays cheap and only the runtime names import JAX.
_LAZY: dict[str, str] = {
    "compile": "capibara.compiler",
    "Plan": "capibara.plan",
    "load_plan_file": "capibara.plan",
    "diff_plans": "capibara.plan",
    "explain_plan": "capibara.plan",
    "load_plan": "capibara.runtime",
    "CompiledPlan": "capibara.runtime",
    "Model": "capibara.model",
    "ModularModelConfig": "capibara.config",
    "ConfigValidator": "capibara.config",
    "ConfigMigrator": "capibara.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'capibara' has no attribute {name!r}")
