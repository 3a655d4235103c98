"""The tokenizer: a SentencePiece model trained on the data, or one a user brings.

The model file is the ordinary SentencePiece ``.model``, so it can be reused
by any SentencePiece user (``sentencepiece.SentencePieceProcessor(model_file=...)``).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from capibara.diagnostics import ConfigError, Diagnostic

__all__ = ["Tokenizer", "train_tokenizer", "TOKENIZER_FAILED"]

TOKENIZER_FAILED = "D102"

#: Below this many pieces there is no room for the 256 byte pieces next to real
#: ones, so unknown characters map to ``<unk>`` instead of their UTF-8 bytes.
_BYTE_FALLBACK_MIN_VOCAB = 512
#: A 256k-piece model is a few MB; anything far larger is not a tokenizer.
_MAX_MODEL_BYTES = 256 << 20


class Tokenizer:
    """A loaded SentencePiece model: ``encode`` text to ids and ``decode`` ids to text."""

    def __init__(self, model: bytes, *, name: str = "<tokenizer>") -> None:
        import sentencepiece

        self.name = name
        self.model_bytes = model
        self._processor = sentencepiece.SentencePieceProcessor()
        try:
            self._processor.LoadFromSerializedProto(model)
        except (RuntimeError, OSError) as error:
            raise ConfigError([Diagnostic.error(
                TOKENIZER_FAILED, f"`{name}` is not a SentencePiece model ({error})",
                help="pass the `.model` file SentencePiece wrote, or omit --tokenizer to "
                     "train one on the text")]) from None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Tokenizer":
        path = Path(path)
        try:
            if not path.is_file():
                raise OSError("not a regular file")
            if path.stat().st_size > _MAX_MODEL_BYTES:
                raise OSError(f"larger than {_MAX_MODEL_BYTES >> 20} MiB, no SentencePiece model is")
            data = path.read_bytes()
        except OSError as error:
            raise ConfigError([Diagnostic.error(
                TOKENIZER_FAILED, f"tokenizer `{path}` cannot be read ({getattr(error, 'strerror', None) or error})",
                help="pass the path of a SentencePiece `.model` file")]) from None
        return cls(data, name=str(path))

    @property
    def vocab_size(self) -> int:
        return self._processor.GetPieceSize()

    @property
    def eos_id(self) -> int:
        return self._processor.eos_id()

    def encode(self, text: str) -> list[int]:
        return self._processor.EncodeAsIds(text)

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        """``encode`` of each text, in one call (SentencePiece batches it natively)."""
        return self._processor.EncodeAsIds(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        return self._processor.DecodeIds([int(i) for i in ids])


def train_tokenizer(lines: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a BPE SentencePiece model of exactly ``vocab_size`` pieces on ``lines``.

    Text too small for that many pieces is a :class:`ConfigError` (``D102``)
    saying how many it supports.
    """
    import sentencepiece

    model = io.BytesIO()
    text = [line for line in lines if line.strip()]
    try:
        sentencepiece.SentencePieceTrainer.Train(
            sentence_iterator=iter(text), model_writer=model, vocab_size=vocab_size,
            model_type="bpe", character_coverage=1.0, num_threads=os.cpu_count() or 1,
            byte_fallback=vocab_size >= _BYTE_FALLBACK_MIN_VOCAB, max_sentence_length=1 << 16,
            minloglevel=2)
    except RuntimeError as error:
        # SentencePiece prefixes its reason with a source location and the failed check.
        message = re.sub(r"^.*\]\s*", "", str(error).strip().splitlines()[-1]) or "training failed"
        raise ConfigError([Diagnostic.error(
            TOKENIZER_FAILED, f"cannot train a SentencePiece model of {vocab_size} pieces on "
                              f"this text: {message}",
            notes=(f"the text has {sum(map(len, text))} characters in {len(text)} lines",),
            help="give more text, or a smaller --vocab-size (and the same `model.vocab_size` "
                 "in the config)")]) from None
    return Tokenizer(model.getvalue(), name="tokenizer.model")
