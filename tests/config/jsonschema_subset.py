"""A validator for exactly the JSON Schema keywords ``capibara.config.jsonschema`` emits.

Small on purpose (the ``jsonschema`` package would add four dependencies, one
of them compiled, for one test): type, enum, const, minimum/maximum and their
exclusive forms, pattern, anyOf, items, minItems, maxItems, uniqueItems, properties and
additionalProperties.  Annotations (description, default, title) are ignored.
An unknown keyword is an error, so the schema cannot drift past this validator.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

KNOWN = {"$schema", "$id", "title", "description", "default", "type", "enum", "const",
         "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "anyOf",
         "items", "minItems", "maxItems", "uniqueItems", "properties", "additionalProperties"}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def errors(schema: dict[str, Any], value: Any, path: str = "$") -> Iterator[str]:
    """Every way ``value`` fails ``schema`` (empty when it is valid)."""
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"{path}: keywords outside the subset: {sorted(unknown)}")
    if "type" in schema and not _TYPES[schema["type"]](value):
        yield f"{path}: not of type {schema['type']}"
        return
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        yield f"{path}: not in enum"
    if "const" in schema and value != schema["const"]:
        yield f"{path}: not {schema['const']!r}"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{path}: below minimum"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{path}: above maximum"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            yield f"{path}: not above exclusiveMinimum"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            yield f"{path}: not below exclusiveMaximum"
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        yield f"{path}: does not match {schema['pattern']}"
    if "anyOf" in schema and not any(not list(errors(s, value, path)) for s in schema["anyOf"]):
        yield f"{path}: matches none of anyOf"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield f"{path}: too few items"
        if len(value) > schema.get("maxItems", len(value)):
            yield f"{path}: too many items"
        if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            yield f"{path}: items not unique"
        if "items" in schema:
            for i, item in enumerate(value):
                yield from errors(schema["items"], item, f"{path}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                yield from errors(properties[key], item, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                yield f"{path}: unexpected property {key!r}"
