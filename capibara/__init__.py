"""capibara: a compiler for machine-learning model configurations.

    capibara check configs/production/tpu_v4.toml

Public API (imported lazily, so ``import capibara`` stays cheap and the
compile path never imports JAX):

- :class:`ConfigError`, :class:`Diagnostic`, :class:`Span`: errors with places.
- :mod:`capibara.toml`: the exact TOML 1.0 front end with spans.
- :mod:`capibara.config`: ``ModularModelConfig``, ``ConfigValidator``, ``ConfigMigrator``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from capibara.diagnostics import ConfigError, Diagnostic, Span

__version__ = "0.1.0"

__all__ = ["ConfigError", "Diagnostic", "Span", "__version__"]

# name -> module that defines it; resolved on first access (PEP 562).
_LAZY: dict[str, str] = {}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'capibara' has no attribute {name!r}")
