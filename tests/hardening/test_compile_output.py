"""`capibara compile -o` never replaces an input, a device, a FIFO, a read-only file,
and cleans the temporaries a killed compile left behind."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from capibara.plan import load_plan_file

from .conftest import DEV


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mine.toml"
    path.write_bytes(DEV.read_bytes())
    return path


def test_the_input_config_is_never_overwritten(config: Path, run, monkeypatch) -> None:
    monkeypatch.chdir(config.parent)
    before = config.read_bytes()
    for output in ("mine.toml", str(config), "./mine.toml"):
        status, text = run("compile", "mine.toml", "--target", "cpu", "-o", output)
        assert status == 1, text
        assert "error[P004]: refusing to write the plan to" in text
        assert "that is the config `mine.toml` this compile reads" in text
    assert config.read_bytes() == before


def test_an_input_reached_through_a_link_is_never_overwritten(config: Path, run) -> None:
    link = config.parent / "out.plan.json"
    link.symlink_to(config)
    before = config.read_bytes()
    status, text = run("compile", config, "--target", "cpu", "-o", link)
    assert status == 1 and f"that is the config `{config}` this compile reads" in text
    assert config.read_bytes() == before


def test_dev_null_is_never_replaced(config: Path) -> None:
    """Asked of the check alone: were it to regress, a compile run as root would replace
    the machine's /dev/null (the CLI path is covered with a FIFO and a directory below)."""
    from capibara.cli.plan import output_refusal

    refusal = output_refusal("/dev/null", [str(config)])
    assert refusal is not None and refusal.code == "P004"
    assert refusal.message == ("refusing to write the plan to `/dev/null`: it is a character "
                               "device, not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_or_directory_is_refused(config: Path, fifo: Path, run) -> None:
    status, text = run("compile", config, "--target", "cpu", "-o", fifo)
    assert status == 1 and "it is a named pipe (FIFO), not a regular file" in text
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    status, text = run("compile", config, "--target", "cpu", "-o", config.parent)
    assert status == 1 and "it is a directory, not a regular file" in text


def test_a_read_only_plan_is_left_alone(config: Path, run) -> None:
    plan = config.parent / "old.plan.json"
    plan.write_text("{}")
    plan.chmod(0o444)
    status, text = run("compile", config, "--target", "cpu", "-o", plan)
    assert status == 1 and "it is read-only" in text
    assert plan.read_text() == "{}"


def test_a_symlink_is_written_through_and_stays_a_link(config: Path, run) -> None:
    real = config.parent / "real.plan.json"
    real.write_text("{}")
    link = config.parent / "link.plan.json"
    link.symlink_to("real.plan.json")
    status, text = run("compile", config, "--target", "cpu", "-o", link)
    assert status == 0, text
    assert link.is_symlink() and load_plan_file(real).target.name == "cpu"


def test_a_dangling_symlink_is_not_written_through(config: Path, run) -> None:
    link = config.parent / "link.plan.json"
    link.symlink_to("nowhere/plan.json")
    status, text = run("compile", config, "--target", "cpu", "-o", link)
    assert status == 1 and "symbolic link to `nowhere/plan.json`, which does not exist" in text
    assert link.is_symlink()


def test_an_empty_output_is_a_usage_error(config: Path, run, monkeypatch) -> None:
    monkeypatch.chdir(config.parent)
    status, text = run("compile", config, "--target", "cpu", "-o", "")
    assert status == 2 and "`-o` needs a path" in text
    assert sorted(p.name for p in config.parent.iterdir()) == ["mine.toml"]


def test_stale_temporaries_of_a_killed_compile_are_removed(config: Path, run) -> None:
    folder = config.parent
    old = time.time() - 3600
    stale = folder / ".mine.plan.json.k9x_2abc.tmp"
    fresh = folder / ".mine.plan.json.q1w2e3r4.tmp"  # maybe another compile's write right now
    unrelated = folder / ".mine.plan.json.notours.tmp"
    other = folder / ".other.plan.json.k9x_2abc.tmp"
    for path in (stale, fresh, unrelated, other):
        path.write_text("partial")
    for path in (stale, unrelated, other):
        os.utime(path, (old, old))
    status, text = run("compile", config, "--target", "cpu", "-o", folder / "mine.plan.json")
    assert status == 0, text
    assert not stale.exists()
    assert fresh.exists() and unrelated.exists() and other.exists()


def test_a_binary_plan_is_not_written_to_a_terminal(config: Path, capsys) -> None:
    import pty

    import capibara.cli.app as cli

    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        status = cli.main(["compile", str(config), "--target", "cpu", "-o", "-",
                           "--format", "msgpack"], out=terminal)
    os.close(leader)
    assert status == 2
    assert "a msgpack plan is binary and is not written to a terminal" in capsys.readouterr().err
