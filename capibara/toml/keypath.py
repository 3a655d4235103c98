"""The one printed form of a path into a TOML document."""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["format_path", "quote_key"]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
            "\f": "\\f", "\r": "\\r"}


def quote_key(key: str) -> str:
    """``key`` as TOML writes it: bare when it can be, else a basic string."""
    if _BARE.fullmatch(key):
        return key
    out = []
    for char in key:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def format_path(path: Iterable[str | int]) -> str:
    """Print a path of keys and array indices: ``products[0].name``.

    Keys are written as in TOML (``site."google.com"``), indices in brackets;
    this is the form every diagnostic, ``--set`` and ``explain`` uses.

    >>> format_path(("model", "hidden_size"))
    'model.hidden_size'
    >>> format_path(("tpu_v4_optimizations", "mesh_shape", 1))
    'tpu_v4_optimizations.mesh_shape[1]'
    >>> format_path(("site", "google.com"))
    'site."google.com"'
    """
    out: list[str] = []
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        else:
            if out:
                out.append(".")
            out.append(quote_key(part))
    return "".join(out)
