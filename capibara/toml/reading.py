"""Reading a TOML file: bounded, regular bytes, strict UTF-8 (no parser here).

Both the full parse (:func:`capibara.toml.parse_file`) and the value-only read
of a clean check (:mod:`capibara.toml.plain`) read files through these, and
every other reader of a config (migrate, diff, ``from_toml``) goes through
:func:`read_bytes`.
"""

from __future__ import annotations

import os

from capibara.diagnostics import ConfigError, Diagnostic, Source
from capibara.toml.limits import MAX_FILE_BYTES

__all__ = ["FILE_NOT_FOUND", "read_bytes", "read_text", "decode", "shown_name"]

FILE_NOT_FOUND = "P001"


def shown_name(path: str | os.PathLike[str]) -> str:
    """A path as diagnostics and plans show it.

    A path's undecodable bytes arrive as lone surrogates; the name is shown to people and
    written into plans, which must be UTF-8, so it shows them as U+FFFD (found by fuzzing).
    """
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in os.fspath(path))


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a config file, read as every config is read: a regular file of at
    most :data:`MAX_FILE_BYTES`; :class:`ConfigError` (P001, P003) otherwise."""
    from capibara.files import FileProblem, read_regular_file

    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except FileProblem as problem:
        raise ConfigError([_unread(shown_name(path), problem)]) from None


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a config file; :class:`ConfigError` (P001-P003) when it cannot be read."""
    return decode(read_bytes(path), shown_name(path))


def _unread(shown: str, problem) -> Diagnostic:
    """The diagnostic for a config file :func:`capibara.files.read_regular_file` refused."""
    if problem.kind == "missing":
        return Diagnostic.error(
            FILE_NOT_FOUND, f"file `{shown}` not found" if problem.reason == "no such file"
            else f"file `{shown}` not found: {problem.reason}",
            help="check the path; relative paths are read from the current directory")
    helps = {"too-large": "a config is a few kilobytes; check that this is the file you meant",
             "not-regular": "pass the path of a TOML file",
             "loop": "point the link at the file itself (`ls -l` shows where each link leads)"}
    return Diagnostic.error("P003", f"cannot read `{shown}`: {problem.reason}",
                            help=helps.get(problem.kind))


def decode(data: bytes, name: str) -> str:
    """Decode a TOML file's bytes: strict UTF-8, a leading byte-order mark dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        # Show the file as far as it can be read, with the bad byte replaced.
        shown = data.decode("utf-8", errors="replace")
        offset = len(data[: error.start].decode("utf-8"))
        source = Source(name, shown)
        bad = data[error.start: error.end]
        raise ConfigError([Diagnostic.error(
            "P002", f"file is not valid UTF-8: byte {bad[0]:#04x} at byte offset {error.start}",
            source.span(offset, offset + 1), label="not UTF-8",
            help="save the file as UTF-8")]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text
