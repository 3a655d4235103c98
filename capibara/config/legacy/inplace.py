"""``capibara migrate --write``: a v2 file replaced by its v3 text, atomically.

The new text goes beside the file and is renamed over it, so a crash leaves
the old file or the new one; a file that changed meanwhile, or whose owner
could not be kept, is refused (P004) rather than overwritten.
"""

from __future__ import annotations

import os

from capibara.config.legacy.edits import migrate_document
from capibara.diagnostics import Diagnostic

__all__ = ["write_migrated", "CANNOT_WRITE"]


def write_migrated(path: str | os.PathLike[str]) -> tuple[bool, tuple[Diagnostic, ...]]:
    """``capibara migrate --write``: rewrite a v2 file in place, atomically.

    Returns ``(changed, diagnostics)``; a file with nothing to migrate is not
    touched. The new text goes to a temporary file beside the file, takes its
    mode, owner, group and byte-order mark, is flushed to disk and then
    replaces it with :func:`os.replace`, so a crash leaves the old file or the
    new one, never half of one. A symbolic link is followed: the file it points
    at is migrated and the link stays a link. A file with other hard links gets
    a new inode, so its other names keep the old text (as with ``sed -i``). Raises
    :class:`~capibara.diagnostics.ConfigError` (P004, nothing written) when the
    file is read-only, its folder cannot be written, its owner could not be
    kept, or it changed while it was being migrated.
    """
    from capibara import toml
    from capibara.files import is_writable

    given = os.fspath(path)
    target = os.path.realpath(given)
    before = _stat(target)
    data = toml.read_bytes(given)
    read_only = before is not None and not is_writable(target, before)
    doc = toml.parse_bytes(data, given)
    new_text, diagnostics = migrate_document(doc)
    if new_text == doc.source.text:
        return False, diagnostics
    if read_only:
        raise _unwritable(given, "the file is read-only",
                          "make it writable (`chmod u+w`) if it should change, or print the "
                          "migrated text with `capibara migrate FILE` and save it elsewhere")
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    _replace_if_unchanged(target, given, before, data, bom + new_text.encode("utf-8"))
    return True, diagnostics


#: The code of every refusal to write a file in place (explained in capibara/codes.py).
CANNOT_WRITE = "P004"


def _unwritable(shown: str, reason: str, help: str) -> Exception:
    from capibara.diagnostics import ConfigError

    return ConfigError([Diagnostic.error(
        CANNOT_WRITE, f"cannot rewrite `{shown}`: {reason}; nothing was written", help=help)])


def _stat(target: str) -> os.stat_result | None:
    try:
        return os.stat(target)
    except OSError:
        return None  # reading it next says why, with its own code


def _replace_if_unchanged(target: str, shown: str, before: os.stat_result | None,
                          old: bytes, new: bytes) -> None:
    """Write ``new`` beside ``target`` and rename it over ``target``, unless ``target``
    no longer holds ``old`` just before the rename (another edit would be lost)."""
    import contextlib
    import stat
    import tempfile

    from capibara.files import TEMPORARY, os_reason, remove_stale_temporaries

    directory = os.path.dirname(target) or "."
    remove_stale_temporaries(target, TEMPORARY)  # left by a migrate that was killed
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.",
                                             suffix=".tmp", dir=directory)
    except OSError as error:
        raise _unwritable(shown, f"its folder cannot be written ({os_reason(error)})",
                          "print the migrated text with `capibara migrate FILE` and save it "
                          "where you can write") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            if before is not None:
                _keep_owner(stream.fileno(), before, shown)
                os.fchmod(stream.fileno(), stat.S_IMODE(before.st_mode))
            stream.write(new)
            stream.flush()
            os.fsync(stream.fileno())
        # Another editor may have saved the file while it was being migrated: compare
        # what is there now with what was read, as late as possible, and keep their edit.
        if not _still_holds(target, before, old):
            raise _unwritable(shown, "it changed while it was being migrated",
                              "run `capibara migrate --write` again on the new version")
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _unwritable(shown, os_reason(error), "check the disk and the file's "
                              "permissions; the original is unchanged") from None
        raise


def _still_holds(target: str, before: os.stat_result | None, old: bytes) -> bool:
    """Whether ``target`` is still the file that was read, with the bytes it had."""
    from capibara import toml
    from capibara.diagnostics import ConfigError

    now = _stat(target)
    if before is None or now is None or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
        return False
    try:
        return toml.read_bytes(target) == old
    except ConfigError:
        return False


def _keep_owner(fd: int, before: os.stat_result, shown: str) -> None:
    """Give the new file the old one's owner and group, or refuse to replace it."""
    if os.fstat(fd).st_uid == before.st_uid and os.fstat(fd).st_gid == before.st_gid:
        return
    try:
        os.fchown(fd, before.st_uid, before.st_gid)
    except PermissionError:
        raise _unwritable(shown, "it belongs to another user or group, and a rewritten file "
                          "would belong to you", "run it as the file's owner, or print the "
                          "migrated text with `capibara migrate FILE`") from None
