"""The TOML front end's limits beyond TOML itself (no parser here)."""

from __future__ import annotations

__all__ = ["MAX_FILE_BYTES", "MAX_NESTING"]

MAX_NESTING = 128
"""Deepest nesting of arrays and inline tables, and most parts in one key.

Nothing in the parser recurses, but the code that consumes a value often does
(comparisons, ``copy.deepcopy``, encoders), and Python stops at about 1000
frames; a document nested deeper than any real configuration is refused here,
with a diagnostic, instead of failing later with a ``RecursionError``."""

#: The largest config file read, in bytes. The bundled configs are ~4 KB; parsing a
#: mebibyte takes about a second here, so a larger file (or an endless one such as
#: `/dev/zero`) is refused before it is read whole rather than tying up the machine.
MAX_FILE_BYTES = 1 << 20
