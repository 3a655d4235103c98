"""The TOML 1.0 front end: text to plain values, with the span of every key and value.

:func:`loads` returns exactly what :func:`tomllib.loads` returns; :func:`parse`
also keeps where each key, value and table header was written (a
:class:`Document`). Modules: :mod:`~capibara.toml.document` (the API),
:mod:`~capibara.toml.locate` (the places in a text tomllib accepted, found
without a parser), :mod:`~capibara.toml.positions` (how places are recorded),
:mod:`~capibara.toml.builder` (the full parser's values and places),
:mod:`~capibara.toml.scalars` (strings, numbers, dates), :mod:`~capibara.toml.syntax`
(syntax errors explained), :mod:`~capibara.toml.keypath` (printing key paths),
:mod:`~capibara.toml.reading` (reading files), :mod:`~capibara.toml.limits`, and
:mod:`~capibara.toml.plain` (values without places, for a clean check). Names
are imported on first use, and lark (the full parser) is loaded only for a
text tomllib refuses.
"""

from capibara.lazy import lazy_exports

__all__ = ["Document", "MAX_FILE_BYTES", "MAX_NESTING", "format_path", "load", "loads", "parse",
           "parse_bytes", "parse_file", "read_bytes"]

__getattr__ = lazy_exports(__name__, globals(), {
    "Document": "capibara.toml.document",
    "MAX_FILE_BYTES": "capibara.toml.limits",
    "MAX_NESTING": "capibara.toml.limits",
    "format_path": "capibara.toml.keypath",
    "load": "capibara.toml.document",
    "loads": "capibara.toml.document",
    "parse": "capibara.toml.document",
    "parse_file": "capibara.toml.document",
    "parse_bytes": "capibara.toml.document",
    "read_bytes": "capibara.toml.reading",
})
