"""The cache directory check walks every ancestor, as ssh does for its files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from capibara.resources import cache_directory_problem, private_directory


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    parent = tmp_path / "shared"
    leaf = parent / "mine" / "cache"
    leaf.mkdir(parents=True, mode=0o700)
    for path in (parent, parent / "mine", leaf):
        path.chmod(0o700)
    return parent, leaf


def test_a_private_tree_is_used(tmp_path) -> None:
    _, leaf = _tree(tmp_path)
    assert private_directory(leaf, top=tmp_path) == leaf
    assert cache_directory_problem(leaf, top=tmp_path) is None


def test_a_parent_others_can_write_refuses_the_cache(tmp_path) -> None:
    # Whoever can write the parent can swap the folder under it after the check.
    parent, leaf = _tree(tmp_path)
    parent.chmod(0o777)
    assert private_directory(leaf, top=tmp_path) is None
    problem = cache_directory_problem(leaf, top=tmp_path)
    assert problem is not None and str(parent) in problem and "writable" in problem


def test_a_sticky_parent_is_safe(tmp_path) -> None:
    # Like /tmp: others may add entries but cannot rename or remove this user's.
    parent, leaf = _tree(tmp_path)
    parent.chmod(0o1777)
    assert private_directory(leaf, top=tmp_path) == leaf


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_parent_owned_by_another_user_refuses_the_cache(tmp_path) -> None:
    parent, leaf = _tree(tmp_path)
    os.chown(parent, 54321, 54321)
    problem = cache_directory_problem(leaf, top=tmp_path)
    assert problem is not None and "owned by" in problem


def test_the_walk_stops_at_the_top(tmp_path) -> None:
    # The top (the user's home or the cache root) is checked; what is above it is not.
    parent, leaf = _tree(tmp_path)
    tmp_path.chmod(0o777)
    try:
        assert private_directory(leaf, top=parent) == leaf
        assert private_directory(leaf, top=tmp_path) is None
    finally:
        tmp_path.chmod(0o700)


def test_a_refused_compilation_cache_is_noted_once(tmp_path, monkeypatch) -> None:
    from capibara.compiler.driver import compile_sources
    from capibara.runtime.loader import load_plan

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir(mode=0o700)
    (tmp_path / "cache").chmod(0o777)
    result = compile_sources([str(root / "configs/development/development.toml")], target="cpu",
                             env=None, overrides=("model.hidden_size=64", "model.num_layers=1"))
    compiled = load_plan(result.plan)
    assert compiled.cache is None and compiled.executables is None
    refused = [note for note in compiled.notes if "cache" in note and "refused" in note]
    assert len(refused) == 1 and "writable" in refused[0], compiled.notes
