"""The JSON Schema (draft 2020-12) of the TOML layout, generated from the field table.

Editors that understand JSON Schema for TOML (Taplo, Even Better TOML) use it
for completion, hover docs and checks::

    capibara schema > capibara.config.fields.json

Every section is an object with ``additionalProperties: false``; every key,
canonical or alias, is a property with its field's description, type, range
or enum and default.  Aliases (``[tpu_v6_features]``, ``cache_optimized``)
are properties too, described as the other spelling they are.  What a schema
cannot say (alias conflicts, cross-field rules, derived defaults) is left to
``capibara check``.
"""

from __future__ import annotations

from typing import Any

from capibara.config.fields import ALIAS_SECTIONS, FIELDS, SECTIONS, Field, field_at, keys_of

__all__ = ["json_schema", "SCHEMA_ID"]

SCHEMA_ID = "https://capibara.dev/schema/config-v3.json"


def _property(field: Field, section: str, key: str) -> dict[str, Any]:
    schema = dict(field.type.json_schema())
    canonical = (section, key) == (field.section, field.key)
    description = f"{field.doc} (`{field.name}`, {field.id})"
    if not canonical:
        description = (f"another spelling of [{field.section}] {field.key}: {description}; "
                       "both given with different values is an error")
    if field.derived:
        description += f"; when unset: {field.derived}"
    if field.runtime:
        description += "; may change at run time"
    schema["description"] = description
    if field.default is not None:
        schema["default"] = field.type.to_toml(field.default)
    if field.env:
        schema["description"] += "; environment: " + ", ".join(field.env)
    return schema


def _section(name: str, doc: str) -> dict[str, Any]:
    properties = {}
    for key in keys_of(name):
        field = field_at(name, key)
        assert field is not None
        properties[key] = _property(field, name, key)
    return {"type": "object", "description": doc, "properties": properties,
            "additionalProperties": False}


def json_schema() -> dict[str, Any]:
    """The schema as a JSON-ready dict (``json.dumps(json_schema(), indent=2)``)."""
    sections = {name: _section(name, doc) for name, doc in SECTIONS.items()}
    sections.update({name: _section(name, doc) for name, doc in ALIAS_SECTIONS.items()})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "capibara model configuration (TOML)",
        "description": f"ModularModelConfig: {len(FIELDS)} fields in {len(SECTIONS)} sections. "
                       "Generated from capibara.config.fields.FIELDS.",
        "type": "object",
        "properties": sections,
        "additionalProperties": False,
    }
