"""Loading prepared tokens with grain: fixed windows, shuffled by seed, sharded by process.

The token stream of a split is cut into consecutive windows of
``seq_len`` tokens (documents are already packed end to end, separated by
the end-of-sequence id). :func:`training_batches` shuffles the windows with
a seed (a new order each epoch), repeats them forever, gives process ``p``
of ``n`` every ``n``-th window and groups them into local batches: the
global batch of step ``k`` is the same windows whatever ``n`` is, only
their order within the batch differs. The iterator's state (grain's, a
small dict) is saved with each checkpoint, so a resumed run continues with
exactly the batch it would have seen::

    batches = training_batches("data/book", seq_len=256, global_batch=8, seed=0)
    iterator = iter(batches)
    tokens = next(iterator)          # int32 [8, 256]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from capibara.data.manifest import DataManifest, read_manifest

__all__ = ["TokenWindows", "training_batches", "eval_batches"]


class TokenWindows:
    """A grain random-access source: window ``i`` is tokens ``[i*seq_len, (i+1)*seq_len)``
    of one split, as int32, read from a memory map (nothing is loaded up front)."""

    def __init__(self, directory: str | os.PathLike, split: str, seq_len: int,
                 manifest: DataManifest | None = None) -> None:
        if seq_len < 2:
            raise ValueError(f"{seq_len=} must be at least 2 (one input and one target)")
        manifest = manifest or read_manifest(directory)
        entry = manifest.splits[split]
        self.seq_len = seq_len
        self._tokens = np.memmap(Path(directory) / entry.file, dtype=np.dtype(manifest.dtype).newbyteorder("<"),
                                 mode="r", shape=(entry.tokens,)) if entry.tokens else np.zeros(0, np.uint16)
        self._count = entry.tokens // seq_len

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self._count:
            raise IndexError(f"window {index} of {self._count}")
        start = index * self.seq_len
        return np.asarray(self._tokens[start:start + self.seq_len], dtype=np.int32)

    def __repr__(self) -> str:
        return f"TokenWindows({self._count} windows of {self.seq_len})"


def _check_shards(global_batch: int, process_count: int, process_index: int) -> int:
    if not 0 <= process_index < process_count:
        raise ValueError(f"{process_index=} must be in [0, {process_count=})")
    if global_batch % process_count:
        raise ValueError(f"{global_batch=} must be a multiple of {process_count=}")
    return global_batch // process_count


def training_batches(directory: str | os.PathLike, *, seq_len: int, global_batch: int, seed: int,
                     process_index: int = 0, process_count: int = 1,
                     manifest: DataManifest | None = None):
    """This process's endless stream of ``[global_batch / process_count, seq_len]`` int32
    batches from the ``train`` split (a ``grain.MapDataset``; ``iter`` it)."""
    import grain

    local = _check_shards(global_batch, process_count, process_index)
    windows = TokenWindows(directory, "train", seq_len, manifest)
    if not len(windows):
        raise ValueError(f"the train split holds no window of {seq_len} tokens")
    dataset = grain.MapDataset.source(windows).shuffle(seed=seed).repeat()
    return dataset[process_index::process_count].batch(local, drop_remainder=True)


def eval_batches(directory: str | os.PathLike, *, seq_len: int, global_batch: int, batches: int,
                 process_index: int = 0, process_count: int = 1,
                 manifest: DataManifest | None = None) -> list[np.ndarray]:
    """The held-out split's first ``batches`` batches (in order, wrapping around when the
    split is shorter), this process's share of each: the same every evaluation."""
    import grain

    local = _check_shards(global_batch, process_count, process_index)
    windows = TokenWindows(directory, "eval", seq_len, manifest)
    if not len(windows):
        raise ValueError(f"the eval split holds no window of {seq_len} tokens")
    dataset = grain.MapDataset.source(windows).repeat()
    dataset = dataset[process_index::process_count].batch(local, drop_remainder=True)
    return [dataset[i] for i in range(batches)]
