"""`capibara migrate --write` never loses data: conflicts, concurrent edits, links,
mode, owner, byte-order mark, read-only files and folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from capibara.config.legacy import inplace
from capibara.config.legacy import migrate_toml

V2 = 'model_size = "600m"  # the old size\nuse_quantum = true\n'


def test_two_model_sizes_that_disagree_are_l012_not_a_silent_600m(tmp_path: Path, run) -> None:
    text = 'model_size = "600m"\n[model]\nmodel_size = "1.3b"\n'
    path = tmp_path / "c.toml"
    path.write_text(text)
    status, out = run("migrate", "--write", path)
    assert status == 1
    assert 'error[L012]: `[model] model_size` = "1.3b" contradicts `model_size` = "600m"' in out
    assert path.read_text() == text
    assert out.count("error[L012]") == 1


def test_two_model_sizes_that_agree_migrate() -> None:
    text, _ = migrate_toml('model_size = "600m"\n[model]\nmodel_size = "0.6b"\n')
    assert "num_layers = 12" in text and "model_size" not in text


def test_an_edit_made_while_migrate_runs_is_kept(tmp_path: Path, run, monkeypatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text(V2)
    edited = V2 + "# the user's edit\n"
    original = inplace.migrate_document

    def another_editor_saves_meanwhile(doc):
        path.write_text(edited)  # in place, as editors that keep the inode do
        return original(doc)

    monkeypatch.setattr(inplace, "migrate_document", another_editor_saves_meanwhile)
    status, out = run("migrate", "--write", path)
    assert status == 1
    assert "error[P004]" in out and "changed while it was being migrated" in out
    assert path.read_text() == edited
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]  # no temporary left


def test_a_file_replaced_while_migrate_runs_is_kept(tmp_path: Path, run, monkeypatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text(V2)
    original = inplace.migrate_document

    def another_editor_renames_over_it(doc):
        (tmp_path / "new").write_text(V2)  # same bytes, a new file (an atomic save)
        os.replace(tmp_path / "new", path)
        return original(doc)

    monkeypatch.setattr(inplace, "migrate_document", another_editor_renames_over_it)
    assert run("migrate", "--write", path)[0] == 1
    assert path.read_text() == V2


def test_a_symlinked_config_migrates_its_target_and_stays_a_link(tmp_path: Path, run) -> None:
    real = tmp_path / "real.toml"
    real.write_text(V2)
    link = tmp_path / "link.toml"
    link.symlink_to("real.toml")
    status, out = run("migrate", "--write", link)
    assert status == 0, out
    assert link.is_symlink() and os.readlink(link) == "real.toml"
    assert "use_quantum" not in real.read_text() and "[model]" in real.read_text()


def test_mode_and_byte_order_mark_and_line_endings_are_kept(tmp_path: Path, run) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + V2.replace("\n", "\r\n").encode())
    path.chmod(0o640)
    assert run("migrate", "--write", path)[0] == 0
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"[model]\r\n" in data
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make a file owned by another user")
def test_owner_and_group_are_kept(tmp_path: Path, run) -> None:
    path = tmp_path / "c.toml"
    path.write_text(V2)
    os.chown(path, 4321, 4322)
    assert run("migrate", "--write", path)[0] == 0
    assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322)
    assert "[model]" in path.read_text()


def test_a_read_only_file_is_refused(tmp_path: Path, run) -> None:
    path = tmp_path / "c.toml"
    path.write_text(V2)
    path.chmod(0o444)
    status, out = run("migrate", "--write", path)
    assert status == 1
    assert f"error[P004]: cannot rewrite `{path}`: the file is read-only" in out
    assert path.read_text() == V2


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only folder")
def test_a_read_only_folder_is_a_diagnostic(tmp_path: Path, run) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "c.toml"
    path.write_text(V2)
    folder.chmod(0o555)
    try:
        status, out = run("migrate", "--write", path)
    finally:
        folder.chmod(0o755)
    assert status == 1 and "its folder cannot be written" in out
    assert path.read_text() == V2


def test_a_folder_that_cannot_take_the_new_file_is_a_diagnostic(tmp_path: Path, run,
                                                                 monkeypatch) -> None:
    """The write path as any user meets it: here the folder is gone by the time the new
    text is written (root can write in a read-only folder, so that case runs as non-root)."""
    folder = tmp_path / "gone"
    folder.mkdir()
    path = folder / "c.toml"
    path.write_text(V2)
    original = inplace.migrate_document

    def folder_removed_meanwhile(doc):
        result = original(doc)
        path.unlink()
        folder.rmdir()
        return result

    monkeypatch.setattr(inplace, "migrate_document", folder_removed_meanwhile)
    status, out = run("migrate", "--write", path)
    assert status == 1 and "error[P004]" in out and "its folder cannot be written" in out


def test_a_killed_migrate_leaves_nothing_the_next_one_keeps(tmp_path: Path, run) -> None:
    import time

    path = tmp_path / "c.toml"
    path.write_text(V2)
    stale = tmp_path / ".c.toml.a1b2c3d4.tmp"  # what a migrate killed before its rename leaves
    fresh = tmp_path / ".c.toml.e5f6g7h8.tmp"  # maybe another migrate writing right now
    for leftover in (stale, fresh):
        leftover.write_text("partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert run("migrate", "--write", path)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, "c.toml"]
