"""Inputs the fuzzers once crashed on, and the seed corpus, run through their targets.

``fuzz/regressions/<target>/<name>`` holds one input per fixed crash (see
``fuzz/README.md``); each must now pass its target of ``fuzz/targets.py``,
which lets nothing but :class:`ConfigError` out and checks what it renders.
The seed corpus (``fuzz/corpus.py``: bundled configs, golden cases, every
field's ``--set``, compiled plans) must pass too, so a harness never starts
from a crashing seed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
REGRESSIONS = sorted(p for p in (FUZZ / "regressions").glob("*/*") if p.is_file())


# fuzz/ is a folder of scripts that import each other by name, as the harnesses run them
sys.path.insert(0, str(FUZZ))
import corpus  # noqa: E402
import targets  # noqa: E402


def test_every_regression_names_a_target() -> None:
    assert REGRESSIONS, "fuzz/regressions is empty"
    assert {p.parent.name for p in REGRESSIONS} <= set(targets.TARGETS)


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixed_crash_stays_fixed(path: Path) -> None:
    targets.run_target(path.parent.name, path.read_bytes())


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_seed_corpus_passes_its_target(name: str) -> None:
    seeds = corpus.seeds(name)
    assert len(seeds) >= 10
    for data in seeds:
        targets.run_target(name, data)
