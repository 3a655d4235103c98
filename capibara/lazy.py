"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package names what it offers and where it lives; nothing is imported until a
name is first used, so ``capibara check`` never pays for the runtime and JAX.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Mapping


def lazy_exports(package: str, namespace: dict[str, Any],
                 exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``exports`` (name -> defining module)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(import_module(exports[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
