"""Reading the small files a server is given: keys, certificates, tokenizers."""

from __future__ import annotations

import os
import stat

__all__ = ["read_small_file", "MAX_FILE_BYTES"]

#: Key files, certificates and tokenizers are small; a bigger file is a wrong path.
MAX_FILE_BYTES = 64 << 20


def read_small_file(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ``ValueError`` otherwise."""
    # Non-blocking, so that a FIFO named by mistake is refused instead of waited on.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise ValueError(f"`{path}` is not a regular file")
    with os.fdopen(descriptor, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"`{path}` is larger than {limit} bytes")
    return data
