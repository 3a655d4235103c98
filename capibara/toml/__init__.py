"""The TOML 1.0 front end: text to plain values, with the span of every key and value.

:func:`loads` returns exactly what :func:`tomllib.loads` returns; :func:`parse`
also keeps where each key, value and table header was written (a
:class:`Document`). Modules: :mod:`~capibara.toml.document` (the API),
:mod:`~capibara.toml.builder` (values from the parse), :mod:`~capibara.toml.scalars`
(strings, numbers, dates), :mod:`~capibara.toml.syntax` (syntax errors explained),
:mod:`~capibara.toml.keypath` (printing key paths).
"""

from capibara.toml.document import (MAX_FILE_BYTES, MAX_NESTING, Document, format_path, load,
                                    loads, parse, parse_bytes, parse_file, read_bytes)

__all__ = ["Document", "MAX_FILE_BYTES", "MAX_NESTING", "format_path", "load", "loads", "parse",
           "parse_bytes", "parse_file", "read_bytes"]
