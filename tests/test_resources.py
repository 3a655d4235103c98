"""Per-user caches: the lark parser cache is used only where it is safe."""

from __future__ import annotations

import os

from capibara.toml.builder import DocumentBuilder
from capibara.resources import lark_parser, user_cache_dir


def test_cache_is_written_then_used_and_parses_alike(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lark_parser("toml.lark", DocumentBuilder())
    (entry,) = (tmp_path / "capibara" / "lark").glob("toml-*.lark-cache")
    stamp = entry.stat().st_mtime_ns
    cached = lark_parser("toml.lark", DocumentBuilder())
    assert entry.stat().st_mtime_ns == stamp  # loaded, not rewritten
    assert cached.terminals and cached.options.parser == "lalr"
    assert oct((tmp_path / "capibara" / "lark").stat().st_mode & 0o777) == "0o700"


def test_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lark_parser("toml.lark", DocumentBuilder())
    (entry,) = (tmp_path / "capibara" / "lark").glob("toml-*.lark-cache")
    entry.write_bytes(b"not a pickle")
    assert lark_parser("toml.lark", DocumentBuilder()).terminals


def test_a_directory_others_can_write_is_never_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shared = tmp_path / "capibara" / "lark"
    shared.mkdir(parents=True)
    os.chmod(shared, 0o777)
    assert user_cache_dir("lark") is None
    lark_parser("toml.lark", DocumentBuilder())
    assert not list(shared.iterdir())  # built in memory, nothing written or read there
