"""Flat views of a plan: ``(path, leaf)`` pairs in canonical order, the one
spelling of a plan path that ``diff``, ``explain`` and the golden views share."""

from __future__ import annotations

from typing import Any, Iterator

import msgspec

__all__ = ["flat_view"]

_JSON = msgspec.json.Encoder(order="sorted")


def _to_builtins(value: Any) -> Any:
    # Through JSON so a view holds exactly what a plan file holds (lists, not tuples).
    return msgspec.json.decode(_JSON.encode(value))


def flat_view(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(path, leaf)`` pairs of a plan (or any struct/dict), in canonical order.

    Kernel specs are keyed by their name (``kernels.attention.implementation``)
    and decisions by position, so a path names the same thing in two plans.
    """
    return list(_flatten(_to_builtins(value), prefix))


def _flatten(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        if not value:
            yield prefix, {}
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)) and prefix == "kernels":
        for spec in value:
            yield from _flatten({k: v for k, v in spec.items() if k != "name"},
                                f"kernels.{spec['name']}")
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


