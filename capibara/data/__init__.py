"""Training data: prepare text into tokens (:func:`prepare`), load them with grain.

    from capibara.data import prepare, training_batches
    prepare(["book.txt"], "data/book", vocab_size=4096)
    batches = iter(training_batches("data/book", seq_len=256, global_batch=8, seed=0))
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

_EXPORTS = {
    "prepare": "capibara.data.corpus",
    "DataManifest": "capibara.data.manifest",
    "read_manifest": "capibara.data.manifest",
    "Tokenizer": "capibara.data.tokenizer",
    "train_tokenizer": "capibara.data.tokenizer",
    "TokenWindows": "capibara.data.source",
    "training_batches": "capibara.data.source",
    "eval_batches": "capibara.data.source",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
