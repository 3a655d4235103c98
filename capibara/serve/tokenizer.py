"""Text in and out: a SentencePiece model (``--tokenizer FILE.model``).

Without one the server still serves token IDs (``/v1/generate``); text
requests get a 400 that names ``--tokenizer``.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["Tokenizer", "tokenizer_problem", "MAX_TOKENIZER_BYTES"]

#: SentencePiece models are a few MB; a bigger file is not one.
MAX_TOKENIZER_BYTES = 256 << 20


class Tokenizer:
    """Encode text to token IDs and decode them back (SentencePiece)."""

    def __init__(self, path: str) -> None:
        import sentencepiece

        from capibara.files import read_regular_file

        self._sp = sentencepiece.SentencePieceProcessor()
        self._sp.LoadFromSerializedProto(read_regular_file(path, MAX_TOKENIZER_BYTES))
        self.vocab_size = int(self._sp.GetPieceSize())

    def encode(self, text: str) -> list[int]:
        ids = list(self._sp.EncodeAsIds(text))
        bos = self._sp.bos_id()
        return [bos, *ids] if bos >= 0 else ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.DecodeIds([int(i) for i in ids])


def tokenizer_problem(path: str, vocab_size: int) -> str | None:
    """Why ``path`` cannot tokenize for a model of ``vocab_size`` tokens, or ``None``."""
    try:
        tokenizer = Tokenizer(path)
    except (OSError, ValueError) as error:
        return getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
    except RuntimeError:  # sentencepiece's word for a file that is not a model
        return "not a SentencePiece model"
    if tokenizer.vocab_size > vocab_size:
        return (f"its vocabulary has {tokenizer.vocab_size} pieces, more than the model's "
                f"`vocab_size` {vocab_size}")
    return None
