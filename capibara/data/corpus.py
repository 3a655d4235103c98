"""``capibara data prepare``: text files in, a tokenizer, token files and a manifest out.

Each text file is split into documents at blank lines; every document is
encoded and followed by the end-of-sequence id, and the documents are
concatenated into one token stream (training packs it into fixed windows,
so no token is padding). The last ``eval_fraction`` of the stream is the
held-out split. Every file is written under a temporary name and renamed
into place, the manifest last::

    manifest = prepare(["book.txt"], "data/book", vocab_size=4096)
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from capibara.data.manifest import (DataManifest, Source, Split, data_error, file_sha256,
                                    write_manifest)
from capibara.data.tokenizer import Tokenizer, train_tokenizer
from capibara.diagnostics import ConfigError, Diagnostic

__all__ = ["prepare", "TOKENIZER_FILE", "DEFAULT_EVAL_FRACTION"]

TOKENIZER_FILE = "tokenizer.model"
DEFAULT_EVAL_FRACTION = 0.05
#: One text file may be at most this large: it is read whole to train the tokenizer.
MAX_TEXT_BYTES = 1 << 30

TEXT_UNREADABLE = "D103"


def _text_error(path: Path, reason: str) -> ConfigError:
    return ConfigError([Diagnostic.error(
        TEXT_UNREADABLE, f"text file `{path}` cannot be used: {reason}",
        help="pass regular UTF-8 text files")])


def _read_text(path: Path) -> tuple[str, Source]:
    try:
        info = os.stat(path)
    except OSError as error:
        raise _text_error(path, error.strerror or str(error)) from None
    if not stat.S_ISREG(info.st_mode):
        raise _text_error(path, "not a regular file")
    if info.st_size > MAX_TEXT_BYTES:
        raise _text_error(path, f"{info.st_size} bytes, more than the {MAX_TEXT_BYTES} allowed")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _text_error(path, f"not UTF-8 (byte {error.start})") from None
    return text, Source(name=str(path), bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def _documents(text: str) -> Iterator[str]:
    paragraph: list[str] = []
    for line in text.splitlines():
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            yield " ".join(paragraph)
            paragraph = []
    if paragraph:
        yield " ".join(paragraph)


def _write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def prepare(text_files: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
            vocab_size: int | None = None, tokenizer: str | os.PathLike | None = None,
            eval_fraction: float = DEFAULT_EVAL_FRACTION) -> DataManifest:
    """Tokenize ``text_files`` into ``out_dir``; return the manifest written there.

    Exactly one of ``vocab_size`` (train a SentencePiece model of that size on
    the text) and ``tokenizer`` (an existing ``.model`` file) is given.
    """
    if (vocab_size is None) == (tokenizer is None):
        raise ValueError("give exactly one of vocab_size and tokenizer")
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"{eval_fraction=} must be between 0 and 1")
    if not text_files:
        raise ValueError("no text files given")
    out = Path(out_dir)
    texts = [_read_text(Path(p)) for p in text_files]
    if tokenizer is not None:
        model = Tokenizer.from_file(tokenizer)
    else:
        model = train_tokenizer((line for text, _ in texts for line in text.splitlines()),
                                vocab_size)
    documents = [doc for text, _ in texts for doc in _documents(text)]
    if not documents:
        raise _text_error(Path(text_files[0]), "no text in any of the files")
    dtype = np.uint16 if model.vocab_size <= 1 << 16 else np.uint32
    eos = model.eos_id if model.eos_id >= 0 else 0
    encoded = model.encode_many(documents)
    stream = np.fromiter((token for ids in encoded for token in (*ids, eos)), dtype=dtype)
    held_out = max(1, int(round(len(stream) * eval_fraction)))
    splits_data = {"train": stream[:-held_out], "eval": stream[-held_out:]}

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise data_error(out, f"cannot create it ({error.strerror or error})",
                         help="choose a directory you can write") from None
    inputs = {Path(p).resolve() for p in text_files}
    outputs = [out / TOKENIZER_FILE, *(out / f"{name}.tokens" for name in splits_data)]
    for path in outputs:
        if path.resolve() in inputs:
            raise data_error(out, f"`{path.name}` is one of the input files; it would be replaced",
                             help="write the prepared data to another directory")
    _write_atomic(out / TOKENIZER_FILE, model.model_bytes)
    splits = {}
    for name, tokens in splits_data.items():
        path = out / f"{name}.tokens"
        _write_atomic(path, tokens.astype(np.dtype(dtype).newbyteorder("<")).tobytes())
        splits[name] = Split(file=path.name, tokens=int(tokens.size), sha256=file_sha256(path))
    tokenizer_sha = hashlib.sha256(model.model_bytes).hexdigest()
    digest = hashlib.sha256("\n".join(
        [tokenizer_sha, *(f"{n}:{s.sha256}" for n, s in sorted(splits.items()))]).encode()).hexdigest()
    manifest = DataManifest(
        tokenizer=TOKENIZER_FILE, tokenizer_sha256=tokenizer_sha, vocab_size=model.vocab_size,
        eos_id=eos, dtype=np.dtype(dtype).name, splits=splits,
        sources=tuple(source for _, source in texts), digest=f"sha256:{digest}")
    write_manifest(out, manifest)
    return manifest
