"""Configs and migrate targets are read only as regular files, bounded, and a symlink
loop is reported as a loop."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from capibara import toml
from capibara.diagnostics import ConfigError
from capibara.files import FileProblem, read_regular_file


def test_read_regular_file_reads_a_file_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_bytes(b"x" * 10)
    assert read_regular_file(path, 10) == b"x" * 10
    with pytest.raises(FileProblem) as info:
        read_regular_file(path, 9)
    assert info.value.kind == "too-large"


@pytest.mark.parametrize("path, kind, words", [
    ("/dev/zero", "not-regular", "a character device"),
    ("/dev/null", "not-regular", "a character device"),
    ("/", "not-regular", "a directory"),
])
def test_read_regular_file_refuses_what_is_not_a_regular_file(path, kind, words) -> None:
    with pytest.raises(FileProblem) as info:
        read_regular_file(path, 1 << 20)
    assert info.value.kind == kind and words in info.value.reason


def test_a_fifo_is_refused_at_once(fifo: Path) -> None:
    start = time.monotonic()
    with pytest.raises(FileProblem) as info:
        read_regular_file(fifo, 1 << 20)
    assert info.value.kind == "not-regular" and "named pipe (FIFO)" in info.value.reason
    assert time.monotonic() - start < 1


def test_a_fifo_config_is_a_diagnostic_for_check_compile_and_migrate(fifo: Path, run) -> None:
    for argv in (["check", fifo], ["compile", fifo, "-o", "-"], ["migrate", fifo],
                 ["migrate", "--write", fifo]):
        status, text = run(*argv)
        assert status == 1, (argv, text)
        assert f"error[P003]: cannot read `{fifo}`: it is a named pipe (FIFO), not a regular " \
               "file" in text, argv


def test_a_device_as_config_is_refused_without_reading_it(run) -> None:
    status, text = run("check", "/dev/zero")
    assert status == 1
    assert "error[P003]: cannot read `/dev/zero`: it is a character device" in text


def test_a_symlink_loop_is_reported_as_a_loop_not_as_missing(tmp_path: Path, run) -> None:
    (tmp_path / "a.toml").symlink_to(tmp_path / "b.toml")
    (tmp_path / "b.toml").symlink_to(tmp_path / "a.toml")
    for argv in (["check", tmp_path / "a.toml"], ["migrate", "--write", tmp_path / "a.toml"]):
        status, text = run(*argv)
        assert status == 1, text
        assert "symbolic link loop" in text and "not found" not in text, argv


def test_a_dangling_symlink_says_where_it_points(tmp_path: Path) -> None:
    (tmp_path / "a.toml").symlink_to("gone.toml")
    with pytest.raises(ConfigError) as info:
        toml.parse_file(tmp_path / "a.toml")
    [error] = info.value.diagnostics
    assert error.code == "P001"
    assert "symbolic link to `gone.toml`, which does not exist" in error.message


def test_a_config_over_the_limit_is_refused_by_every_reader(tmp_path: Path, run) -> None:
    path = tmp_path / "big.toml"
    with open(path, "wb") as handle:
        handle.truncate(toml.MAX_FILE_BYTES + 1)
    for argv in (["check", path], ["migrate", path], ["migrate", "--write", path]):
        status, text = run(*argv)
        assert status == 1 and "larger than 1 MiB" in text, argv


def test_a_directory_as_migrate_target_is_a_diagnostic(tmp_path: Path, run) -> None:
    status, text = run("migrate", "--write", tmp_path)
    assert status == 1
    assert "it is a directory, not a regular file" in text
