"""Workspace settings: the ``[tool.capibara]`` table of ``pyproject.toml``.

The nearest ``pyproject.toml`` above a config file that has a
``[tool.capibara]`` table holds the settings for it::

    [tool.capibara]
    target = "tpu_v4-32"
    layers = [["configs/base.toml", "configs/prod.toml"]]

- ``target``: every config file is also checked against this machine, as
  ``capibara check --target NAME`` checks it (a catalog name, ``auto`` or
  ``cpu``; ``capibara targets`` lists them).
- ``layers``: stacks of files, lowest first, as they are passed to
  ``capibara check`` (later files win key by key). A file in a stack is checked
  with the files below it; hover and go-to-definition follow a value to the
  file of the stack that sets it in the end. Paths are relative to the
  ``pyproject.toml``.

Settings are read again whenever the file changes. Problems in them are
reported with their place and the table is then ignored (never half applied).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from capibara.diagnostics import ConfigError

SETTINGS_FILE = "pyproject.toml"
KEYS = {"target": "the machine to check against (as `capibara check --target`)",
        "layers": "stacks of config files, lowest first (as `capibara check A B`)"}


class Settings(NamedTuple):
    """The settings that apply to a config file; ``problems`` say why a table was ignored."""

    origin: Path | None = None
    target: str | None = None
    layers: tuple[tuple[str, ...], ...] = ()
    problems: tuple[str, ...] = ()

    def stack(self, path: str) -> tuple[str, ...]:
        """The files ``path`` is layered on, then ``path`` itself, then the files above it."""
        for files in self.layers:
            if path in files:
                return files
        return (path,)


_cache: dict[Path, tuple[int, Settings]] = {}


def settings_for(path: str) -> Settings:
    """The settings for the config file at ``path`` (absolute)."""
    directory = Path(path).parent
    for folder in (directory, *directory.parents):
        candidate = folder / SETTINGS_FILE
        try:
            stamp = candidate.stat().st_mtime_ns
        except OSError:
            continue
        cached = _cache.get(candidate)
        if cached is None or cached[0] != stamp:
            cached = stamp, _read(candidate)
            _cache[candidate] = cached
        if cached[1].origin is not None:
            return cached[1]
    return Settings()


def _read(pyproject: Path) -> Settings:
    """The ``[tool.capibara]`` table of one file (``origin`` None when it has none)."""
    from capibara import toml

    try:
        doc = toml.parse_file(pyproject)
    except ConfigError as error:
        return Settings(pyproject, problems=tuple(str(d) for d in error.diagnostics))
    table = doc.value.get("tool", {}).get("capibara") if isinstance(doc.value.get("tool"), dict) \
        else None
    if not isinstance(table, dict):
        return Settings()
    problems: list[str] = []

    def where(*path: str) -> str:
        span = doc.key_span(("tool", "capibara", *path))
        return f"{span}: " if span is not None else f"{pyproject}: "

    for key in table:
        if key not in KEYS:
            problems.append(f"{where(key)}unknown key `{key}` in `[tool.capibara]`; the keys are "
                            + ", ".join(f"`{k}`" for k in KEYS))
    target = table.get("target")
    if target is not None and not isinstance(target, str):
        problems.append(f"{where('target')}`target` must be a target name such as "
                        "`\"tpu_v4-32\"` (see `capibara targets`)")
    layers = table.get("layers", [])
    stacks: list[tuple[str, ...]] = []
    if not (isinstance(layers, list) and all(
            isinstance(s, list) and s and all(isinstance(f, str) for f in s) for s in layers)):
        problems.append(f"{where('layers')}`layers` must be a list of stacks, each a list of "
                        'file names, lowest first: `[["base.toml", "prod.toml"]]`')
    else:
        base = pyproject.parent
        stacks = [tuple(os.path.normpath(base / f) for f in files) for files in layers]
    if problems:
        return Settings(pyproject, problems=tuple(problems))
    return Settings(pyproject, target, tuple(stacks))
