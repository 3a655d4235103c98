"""Plan files are read only when regular, bounded in size, and nested no deeper than a plan.

Each case failed before: ``/dev/zero`` was read until memory ran out, a FIFO hung
every verb, a 1 GB file was read whole before it was refused, and a 2 KB plan
nested 1000 deep raised ``RecursionError`` (exit 70 in ``check``).
"""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import msgspec
import pytest

from capibara.diagnostics import ConfigError
from capibara.plan import (MAX_PLAN_BYTES, MAX_PLAN_DEPTH, decode_plan, encode_plan, load_plan_file,
                           read_plan_bytes)
from capibara.testing.plans import nested_plan_bytes, small_plan


def refused(path, **kwargs) -> tuple[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_plan_file(path, **kwargs)
    (diagnostic,) = caught.value.diagnostics
    return diagnostic.code, diagnostic.message


@pytest.fixture
def alarm():
    """Fail, rather than hang the suite, when a read blocks."""
    def fire(*_):
        raise TimeoutError("the read blocked")
    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_dev_zero_is_refused_as_a_device() -> None:
    with pytest.raises(ConfigError) as caught:
        load_plan_file("/dev/zero")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "R106" and "character device" in diagnostic.message


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.plan.json"
    link.symlink_to("/dev/zero")
    assert refused(link)[0] == "R106"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, alarm) -> None:
    fifo = tmp_path / "pipe.plan.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as caught:
        load_plan_file(fifo)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "R106" and "FIFO" in diagnostic.message


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path)[0] == "R106"


def test_a_1gb_file_is_refused_before_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.plan.json"
    with open(big, "wb") as handle:  # sparse: no disk blocks, but 1 GB to a reader
        handle.truncate(1 << 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, message = refused(big)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert code == "R107" and "too large" in message
    assert grown_kib < 64 * 1024  # nothing near the file's size was read


def test_a_file_at_the_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    path = tmp_path / "limit.bin"
    path.write_bytes(b" " * 100)
    assert read_plan_bytes(path, limit=100) == b" " * 100
    with pytest.raises(ConfigError) as caught:
        read_plan_bytes(path, limit=99)
    assert caught.value.diagnostics[0].code == "R107"
    assert MAX_PLAN_BYTES > 100 * len(encode_plan(small_plan()))


def test_a_symlink_loop_is_named_as_one(tmp_path: Path) -> None:
    loop = tmp_path / "loop.plan.json"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError) as caught:
        load_plan_file(loop)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "R101" and "symbolic link loop" in " ".join(diagnostic.notes)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path, fmt: str, depth: int) -> None:
    data = nested_plan_bytes(depth)
    if fmt == "msgpack":  # the same nesting in the other container, built without recursion
        data = b"\x81\xa6config" + b"\x91" * depth + b"\x90"
    path = tmp_path / f"deep.plan.{fmt}"
    path.write_bytes(data)
    code, message = refused(path)
    assert code == "R107" and "nested too deeply" in message


def test_nesting_just_past_the_bound_is_refused_and_a_real_plan_is_well_within_it() -> None:
    within = nested_plan_bytes(MAX_PLAN_DEPTH - 1)  # the object itself is one level
    with pytest.raises(ConfigError) as caught:
        decode_plan(within)
    assert caught.value.diagnostics[0].code != "R107"  # gets as far as the format check
    with pytest.raises(ConfigError) as caught:
        decode_plan(nested_plan_bytes(MAX_PLAN_DEPTH))
    assert caught.value.diagnostics[0].code == "R107"
    raw = msgspec.json.decode(encode_plan(small_plan()))
    from capibara.plan.codec import _depth

    assert _depth(raw, MAX_PLAN_DEPTH) <= MAX_PLAN_DEPTH // 2
