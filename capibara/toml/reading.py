"""Reading a TOML file: bounded, regular bytes, strict UTF-8 (no parser here).

Both the full parse (:func:`capibara.toml.parse_file`) and the value-only read
of a clean check (:mod:`capibara.toml.plain`) read files through these.
"""

from __future__ import annotations

from capibara.diagnostics import ConfigError, Diagnostic, Source
from capibara.toml.limits import MAX_FILE_BYTES

__all__ = ["FILE_NOT_FOUND", "read_text", "shown_name"]

FILE_NOT_FOUND = "P001"


def shown_name(name: str) -> str:
    """A path as diagnostics and plans show it.

    A path's undecodable bytes arrive as lone surrogates; the name is shown to people and
    written into plans, which must be UTF-8, so it shows them as U+FFFD (found by fuzzing).
    """
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in name)


def read_text(name: str) -> str:
    """The text of the file ``name``; :class:`ConfigError` (P001-P003) when it cannot be read."""
    try:
        with open(name, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([Diagnostic.error(
            FILE_NOT_FOUND, f"file `{name}` not found",
            help="check the path; relative paths are read from the current directory")]) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError([Diagnostic.error(
            "P003", f"cannot read `{name}`: {reason[:1].lower()}{reason[1:]}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([Diagnostic.error(
            "P003", f"cannot read `{name}`: it is larger than {MAX_FILE_BYTES >> 20} MiB",
            help="a config is a few kilobytes; check that this is the file you meant")]) from None
    return _decode(data, name)


def _decode(data: bytes, name: str) -> str:
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
