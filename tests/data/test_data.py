"""capibara.data: preparing text, verifying a data directory, and grain batches."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import capibara.cli.app as cli
from capibara.data import Tokenizer, prepare, read_manifest
from capibara.data.source import TokenWindows, eval_batches, training_batches
from capibara.diagnostics import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TALES = ROOT / "data" / "tales.txt"


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "story.txt"
    path.write_text(TALES.read_text()[:30_000])
    return path


@pytest.fixture(scope="module")
def prepared(text, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    prepare([text], out, vocab_size=96)
    return out


def test_prepared_tokens_decode_back_to_the_documents(text, prepared) -> None:
    manifest = read_manifest(prepared)
    assert manifest.vocab_size == 96 and manifest.dtype == "uint16"
    tokenizer = Tokenizer.from_file(prepared / manifest.tokenizer)
    stream = np.concatenate([np.fromfile(prepared / s.file, "<u2") for s in manifest.splits.values()])
    documents = [tokenizer.decode(doc.tolist())
                 for doc in np.split(stream, np.flatnonzero(stream == manifest.eos_id) + 1) if doc.size]
    expected = [" ".join(p.split()) for p in text.read_text().split("\n\n") if p.strip()]
    assert [d.replace(tokenizer.decode([manifest.eos_id]), "") for d in documents] == expected
    assert manifest.splits["eval"].tokens == round(stream.size * 0.05)


def test_an_existing_tokenizer_gives_the_same_tokens(text, prepared, tmp_path) -> None:
    again = prepare([text], tmp_path, tokenizer=prepared / "tokenizer.model")
    assert again.digest == read_manifest(prepared).digest


def test_damaged_or_swapped_files_are_refused(prepared, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    tokens = copy / "train.tokens"
    tokens.write_bytes(tokens.read_bytes()[:-2])
    with pytest.raises(ConfigError, match=r"D101.*holds \d+ bytes, the manifest says"):
        read_manifest(copy)
    shutil.copy(prepared / "train.tokens", tokens)
    data = bytearray((copy / "eval.tokens").read_bytes())
    data[0] ^= 1
    (copy / "eval.tokens").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"D101.*`eval.tokens` does not match its digest"):
        read_manifest(copy)


def test_prepare_refuses_to_replace_its_input(tmp_path) -> None:
    source = tmp_path / "train.tokens"
    source.write_text(TALES.read_text()[:20_000])
    with pytest.raises(ConfigError, match="is one of the input files"):
        prepare([source], tmp_path, vocab_size=64)
    assert source.read_text().startswith(TALES.read_text()[:100])


def test_windows_are_shuffled_by_seed_and_repeat_each_window_once_per_epoch(prepared) -> None:
    windows = TokenWindows(prepared, "train", 128)
    count = len(windows)
    def take(seed):
        batches = training_batches(prepared, seq_len=128, global_batch=4, seed=seed)
        return [batches[i] for i in range(count // 4)]  # random access: batch i of the stream

    first, again, other = take(0), take(0), take(1)
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, other))
    # One epoch: no window twice (the template text repeats a few windows word for word).
    seen = Counter(tuple(row) for batch in first for row in batch.tolist())
    source = Counter(tuple(windows[i].tolist()) for i in range(count))
    assert sum(seen.values()) == count // 4 * 4 and not seen - source


@pytest.mark.parametrize("processes", [2, 4])
def test_process_shards_make_up_the_single_process_global_batch(prepared, processes) -> None:
    whole = training_batches(prepared, seq_len=16, global_batch=8, seed=3)
    shards = [training_batches(prepared, seq_len=16, global_batch=8, seed=3,
                               process_index=i, process_count=processes) for i in range(processes)]
    for step in (0, 1, 2, 50, 1000):
        global_batch = whole[step]
        parts = [shard[step] for shard in shards]
        assert all(p.shape == (8 // processes, 16) for p in parts)
        assert sorted(map(tuple, np.concatenate(parts).tolist())) == sorted(map(tuple, global_batch.tolist()))


def test_eval_batches_are_the_same_every_time(prepared) -> None:
    a = eval_batches(prepared, seq_len=16, global_batch=4, batches=3)
    b = eval_batches(prepared, seq_len=16, global_batch=4, batches=3)
    assert len(a) == 3 and all((x == y).all() for x, y in zip(a, b))


def test_cli_prepare_writes_a_manifest_and_says_so(text, tmp_path, capsys) -> None:
    import io

    out = io.StringIO()
    status = cli.main(["data", "prepare", str(text), "-o", str(tmp_path / "d"), "--vocab-size", "80"],
                      out=out)
    assert status == 0, capsys.readouterr().err
    assert "prepared" in out.getvalue() and "(80 pieces)" in out.getvalue()
    assert read_manifest(tmp_path / "d").vocab_size == 80
