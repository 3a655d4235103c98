"""Reading and replacing the user's files safely: regular files only, bounded, atomic.

Every file capibara reads on a user's behalf (configs, plans, checkpoint
manifests) goes through :func:`read_regular_file`, so a FIFO never hangs a
verb, ``/dev/zero`` never fills memory and a symlink loop is reported as
one. Callers turn a :class:`FileProblem` into their own diagnostic code::

    try:
        data = read_regular_file(path, limit=1 << 20)
    except FileProblem as problem:
        ...  # problem.kind is "missing", "loop", "not-regular", "too-large" or "unreadable"
"""

from __future__ import annotations

import os
import re
import stat
import time

__all__ = ["FileProblem", "read_regular_file", "describe_kind", "is_writable", "os_reason",
           "folder_and_name", "replace_atomically", "remove_stale_temporaries",
           "STALE_AFTER_SECONDS", "TEMPORARY"]


class FileProblem(OSError):
    """Why a file was not read: ``kind`` names the case, ``reason`` says it in words
    (lower case, no period: it follows ``cannot read `NAME`: ``)."""

    def __init__(self, kind: str, path: str, reason: str) -> None:
        super().__init__(f"cannot read {path!r}: {reason}")
        self.kind = kind
        self.path = path
        self.reason = reason


def describe_kind(mode: int) -> str:
    """What a non-regular file is, in words: ``a directory``, ``a named pipe (FIFO)``..."""
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return words
    return "not a regular file"


def is_writable(path: str | os.PathLike[str], info: os.stat_result) -> bool:
    """Whether a careful tool may replace the file: this user may write it, and it is
    not write-protected (no write bit at all), which ``access`` ignores for root."""
    return os.access(path, os.W_OK) and bool(info.st_mode & 0o222)


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Symbolic links are followed. Raises :class:`FileProblem` for a missing file,
    a symlink loop, anything that is not a regular file (directory, FIFO,
    device, socket), a file larger than ``limit`` bytes, or an I/O error. The
    file is opened without blocking, so a FIFO with no writer is refused at
    once instead of waiting forever, and its kind is checked on the open
    descriptor, so it cannot be swapped between the check and the read.
    """
    name = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags)
    except OSError as error:
        raise _problem(name, error) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem("not-regular", name,
                              f"it is {describe_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise _too_large(name, limit)
        chunks, total = [], 0
        while total <= limit:  # the size may grow after fstat: stop one byte past the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise _too_large(name, limit)
        return b"".join(chunks)
    except FileProblem:
        raise
    except OSError as error:
        raise _problem(name, error) from None
    finally:
        os.close(fd)


def _too_large(name: str, limit: int) -> FileProblem:
    size = f"{limit >> 20} MiB" if limit >= 1 << 20 and not limit % (1 << 20) else f"{limit} bytes"
    return FileProblem("too-large", name, f"it is larger than {size}")


def _problem(name: str, error: OSError) -> FileProblem:
    import errno

    if error.errno == errno.ELOOP:
        return FileProblem("loop", name, "it is a symbolic link loop (the links never "
                                         "reach a file)")
    if error.errno == errno.ENOENT:
        if os.path.islink(name):
            return FileProblem("missing", name, f"it is a symbolic link to "
                                                f"`{os.readlink(name)}`, which does not exist")
        return FileProblem("missing", name, "no such file")
    if error.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing with no reader
        return FileProblem("not-regular", name, "it is not a regular file")
    return FileProblem("unreadable", name, os_reason(error))


def os_reason(error: OSError) -> str:
    """The operating system's reason for ``error``, lower case to follow a colon."""
    reason = error.strerror or str(error)
    return reason[:1].lower() + reason[1:]


#: A temporary older than this is a leftover of a killed write: no live write of a
#: plan or config (megabytes at most) takes longer.
STALE_AFTER_SECONDS = 600

#: The names of the temporaries capibara's atomic writes make beside a file NAME:
#: ``tempfile.mkstemp(prefix=f".{NAME}.", suffix=".tmp")`` (8 random characters), as
#: :func:`replace_atomically` names its own.
TEMPORARY = r"\.{name}\.[a-z0-9_]{8}\.tmp"

# the characters tempfile.mkstemp draws a name's random part from
_RANDOM_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def folder_and_name(target: str | os.PathLike[str]) -> tuple[str, str]:
    """The folder ``target`` is in and its name, as pathlib's ``parent`` and ``name``
    give them; pathlib is imported only for a name ending in ``/`` or ``/.`` (which
    it reads as the folder itself): a cold ``capibara compile -o FILE`` would pay ~2 ms
    for it otherwise (benchmarks/cold_start.py)."""
    folder, name = os.path.split(os.fspath(target))
    if name in ("", "."):
        from pathlib import Path

        path = Path(target)
        return str(path.parent), path.name
    return folder or ".", name


def replace_atomically(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically: into a new temporary beside it (named as
    :data:`TEMPORARY` says), flushed to the disk, then moved over ``target``.

    A reader never sees a half-written file, and a crash leaves the previous one (if
    any) intact; the temporary is removed when the write fails. The file gets the
    mode a plain ``open()`` would give it. What :func:`tempfile.mkstemp` does, whose
    import (with :mod:`random` and :mod:`shutil`) costs ~2 ms of a cold compile.
    """
    folder, name = folder_and_name(target)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        random = "".join(_RANDOM_CHARACTERS[byte % len(_RANDOM_CHARACTERS)]
                         for byte in os.urandom(8))
        temporary = os.path.join(folder, f".{name}.{random}.tmp")
        try:
            fd = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name beside {os.fspath(target)!r}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, os.path.join(folder, name))
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def remove_stale_temporaries(target: str | os.PathLike[str], pattern: str) -> list[str]:
    """Delete leftovers of killed atomic writes of ``target``; returns those removed.

    ``pattern`` is a regular expression for the temporaries' names beside
    ``target`` (``{name}`` stands for the target's escaped file name). Only
    regular files that match it exactly, belong to this user and are older than
    :data:`STALE_AFTER_SECONDS` are removed: a fresh one may be another
    process's write in progress.
    """
    folder, target_name = folder_and_name(target)
    matcher = re.compile(pattern.replace("{name}", re.escape(target_name)))
    removed: list[str] = []
    now = time.time()
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not matcher.fullmatch(name):
            continue
        candidate = os.path.join(folder, name)
        try:
            info = os.lstat(candidate)
            if (stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
                    and now - info.st_mtime > STALE_AFTER_SECONDS):
                os.unlink(candidate)
                removed.append(candidate)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed
