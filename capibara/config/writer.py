"""Write a config as TOML in the canonical layout (``ModularModelConfig.to_toml``).

Only the value kinds the field table uses occur: booleans, integers, finite
floats, strings and flat arrays of those.  Floats are written with ``repr``,
which round-trips exactly and is valid TOML (``1e-08``, ``0.65``, ``32.0``).
"""

from __future__ import annotations

import math
from typing import Any, Collection, Mapping

from capibara.config.fieldtypes import toml_string
from capibara.config.fields import FIELDS, SECTIONS

__all__ = ["write_config", "write_values", "toml_value"]


def toml_value(value: Any) -> str:
    """One value in TOML syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML config values must be finite, got {value!r}")
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML spelling for {type(value).__name__}")


def write_config(config: Any, names: Collection[str]) -> str:
    """The fields ``names`` of ``config``, grouped by canonical section, in table order."""
    return write_values({name: getattr(config, name) for name in names})


def write_values(values: Mapping[str, Any]) -> str:
    """Field values by field name as TOML, grouped by canonical section, in table order."""
    blocks = []
    for section in SECTIONS:
        lines = [f"{f.key} = {toml_value(f.type.to_toml(values[f.name]))}"
                 for f in FIELDS if f.section == section and f.name in values]
        if lines:
            blocks.append(f"[{section}]\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)
