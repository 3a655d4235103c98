"""Huge pages for XLA's buffers: when they apply, the re-execution, the advice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from capibara.runtime import hugepages
from capibara.runtime.hugepages import HugePages, advice, classify

ROOT = Path(__file__).resolve().parents[2]
GLIBC = (2, 36)


@pytest.mark.parametrize(("environ", "mode", "version", "state"), [
    ({}, "madvise", GLIBC, "off"),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, "madvise", GLIBC, "on"),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"}, "madvise", GLIBC, "on"),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "madvise", GLIBC, "declined"),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", GLIBC, "off"),
    ({}, "always", GLIBC, "on"),
    ({}, "never", GLIBC, "unavailable"),
    ({}, "madvise", (2, 31), "unavailable"),
    ({}, None, GLIBC, "unavailable"),
    ({}, "madvise", None, "unavailable"),
])
def test_state_follows_the_kernel_glibc_and_the_user(environ, mode, version, state) -> None:
    assert classify(environ, mode, version).state == state


def test_advice_only_where_asking_would_help() -> None:
    off = classify({}, "madvise", GLIBC)
    assert "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in advice(off)
    for other in (classify({}, "always", GLIBC), classify({}, "never", GLIBC),
                  classify({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "madvise", GLIBC)):
        assert advice(other) is None


CHILD = """
import os
from capibara.runtime.hugepages import current, reexec_with_huge_pages
reexec_with_huge_pages()
print(current().state, os.environ.get("GLIBC_TUNABLES", ""))
"""


def _child(tunables: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.split()


needs_madvise = pytest.mark.skipif(
    hugepages.classify({}, hugepages._thp_mode(), hugepages._glibc_version()).state != "off",
    reason="this machine has no opt-in transparent huge pages for malloc (THP `madvise`, glibc 2.35+)")


@needs_madvise
def test_the_process_starts_again_with_the_tunable_added_to_the_users() -> None:
    assert _child(None) == ["on", "glibc.malloc.hugetlb=1"]
    assert _child("glibc.malloc.arena_max=2") == ["on", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"]


@needs_madvise
def test_a_user_who_declined_keeps_4k_pages() -> None:
    assert _child("glibc.malloc.hugetlb=0") == ["declined", "glibc.malloc.hugetlb=0"]


def test_loading_a_plan_notes_how_to_get_huge_pages(monkeypatch) -> None:
    from capibara.compiler.driver import compile_sources
    from capibara.runtime.loader import load_plan

    result = compile_sources([str(ROOT / "configs/development/development.toml")], target="cpu",
                             env=None, overrides=("model.hidden_size=64", "model.num_layers=2"))
    monkeypatch.setattr(hugepages, "current", lambda: HugePages("off", "4 KiB pages"))
    assert any("hugetlb=1" in note for note in load_plan(result.plan, cache=False).notes)
    monkeypatch.setattr(hugepages, "current", lambda: HugePages("on", "huge pages"))
    assert not any("hugetlb" in note for note in load_plan(result.plan, cache=False).notes)
