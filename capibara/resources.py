"""Where the grammars and bundled configs live, installed or in a checkout.

A wheel carries them inside the package (``capibara/_data/``, see
``pyproject.toml``); in a source checkout they sit at the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


def grammar_path(filename: str) -> Path:
    """Path of a grammar file such as ``toml.lark``."""
    return _data_dir("grammar") / filename


def configs_dir() -> Path:
    """The folder of bundled configs (``production/``, ``development/``, …)."""
    return _data_dir("configs")
