"""The manifest of a prepared data directory: which tokenizer, which token files, and their digests.

A data directory holds ``tokenizer.model`` (SentencePiece), one raw
little-endian token file per split (``train.tokens``, ``eval.tokens``) and
``data.json``, this manifest. The manifest is read bounded and checked
against the files before any of them is used, so a truncated copy or a
tokenizer swapped after preparation is a diagnostic, not wrong training.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec

from capibara.diagnostics import ConfigError, Diagnostic
from capibara.files import FileProblem, read_regular_file

__all__ = ["DataManifest", "Split", "Source", "MANIFEST", "FORMAT", "read_manifest",
           "write_manifest", "file_sha256", "data_error"]

FORMAT = "capibara.data/1"
MANIFEST = "data.json"
#: A manifest is a few hundred bytes per source file; anything far larger is not one.
MAX_MANIFEST_BYTES = 1 << 20

DATA_UNREADABLE = "D101"


class Split(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One split's token file: its name in the directory, token count and sha256."""

    file: str
    tokens: int
    sha256: str


class Source(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A text file the tokens came from: its name as given, size and sha256."""

    name: str
    bytes: int
    sha256: str


class DataManifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a data directory holds; ``digest`` names the whole data set (tokenizer and tokens)."""

    format: str = FORMAT
    tokenizer: str
    tokenizer_sha256: str
    vocab_size: int
    eos_id: int
    dtype: str
    splits: dict[str, Split]
    sources: tuple[Source, ...]
    digest: str


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_error(directory: str | os.PathLike, reason: str, *, help: str | None = None) -> ConfigError:
    return ConfigError([Diagnostic.error(
        DATA_UNREADABLE, f"data directory `{directory}` cannot be used: {reason}",
        help=help or "prepare it again with `capibara data prepare TEXT... -o DIR`")])


def read_manifest(directory: str | os.PathLike, *, verify: bool = True) -> DataManifest:
    """The manifest of ``directory``, its files checked (sizes always, digests if ``verify``).

    Raises :class:`ConfigError` (``D101``) naming what is wrong.
    """
    root = Path(directory)
    try:
        raw = read_regular_file(root / MANIFEST, MAX_MANIFEST_BYTES)
    except FileProblem as problem:
        reason = (f"`{MANIFEST}` is missing" if problem.kind == "missing"
                  else f"`{MANIFEST}` is unreadable ({problem.reason})")
        raise data_error(root, reason) from None
    try:
        manifest = msgspec.json.decode(raw, type=DataManifest)
    except msgspec.DecodeError as error:
        raise data_error(root, f"`{MANIFEST}` is malformed ({error})") from None
    if manifest.format != FORMAT:
        raise data_error(root, f"format `{manifest.format}` is not `{FORMAT}`")
    if manifest.dtype not in ("uint16", "uint32"):
        raise data_error(root, f"token dtype `{manifest.dtype}` is not uint16 or uint32")
    width = 2 if manifest.dtype == "uint16" else 4
    for name, split in manifest.splits.items():
        path = root / split.file
        if Path(split.file).name != split.file:
            raise data_error(root, f"split `{name}` names `{split.file}`, not a file of this directory")
        try:
            size = path.stat().st_size
        except OSError:
            raise data_error(root, f"token file `{split.file}` is missing") from None
        if size != split.tokens * width:
            raise data_error(root, f"token file `{split.file}` holds {size} bytes, the manifest "
                                   f"says {split.tokens} tokens of {width} bytes")
        if verify and file_sha256(path) != split.sha256:
            raise data_error(root, f"token file `{split.file}` does not match its digest")
    if Path(manifest.tokenizer).name != manifest.tokenizer:
        raise data_error(root, f"tokenizer `{manifest.tokenizer}` is not a file of this directory")
    try:
        tokenizer_digest = file_sha256(root / manifest.tokenizer)
    except OSError:
        raise data_error(root, f"tokenizer `{manifest.tokenizer}` is missing") from None
    if tokenizer_digest != manifest.tokenizer_sha256:
        raise data_error(root, f"tokenizer `{manifest.tokenizer}` does not match its digest "
                               "(replaced after the tokens were written)")
    return manifest


def write_manifest(directory: str | os.PathLike, manifest: DataManifest) -> Path:
    """Write ``data.json`` atomically (a temporary file renamed into place)."""
    root = Path(directory)
    final = root / MANIFEST
    temp = root / f".{MANIFEST}.{os.getpid()}.tmp"
    with open(temp, "wb") as handle:
        handle.write(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, final)
    return final
