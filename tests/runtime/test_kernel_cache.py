"""The kernel cache across processes: a damaged, removed, stale or raced entry
never breaks a later run (each case failed with ``NOT_FOUND: Function … not
found`` from the third process on when entries were pickled executables)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The smallest plan with every kind of kernel `run` has on a CPU: reference kernels
#: (conservative) compile fastest, and the cache treats every variant alike.
TINY = ("model.hidden_size=32", "model.num_layers=1", "model.num_heads=1",
        "model.max_seq_length=16", "deployment.batch_size=1", "model.vocab_size=64",
        "vector_quantization.enabled=false", "sparsity.enabled=false",
        'performance.compile_mode="conservative"')

#: Warm one kernel through the cache, run it on fixed inputs, say where it came from.
CHILD = """
import hashlib, sys
import numpy as np
from capibara.runtime.loader import load_plan
compiled = load_plan(sys.argv[1])
kernel = compiled.kernels["logits"]
kernel.warmup(cache=compiled.executables)
out = np.asarray(kernel.compiled(*kernel.example_inputs(seed=1)))
print(kernel.from_cache, hashlib.sha256(out.tobytes()).hexdigest()[:16])
"""


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    from capibara.compiler.driver import compile_sources
    from capibara.plan import write_plan_file

    result = compile_sources([ROOT / "configs/development/development.toml"], target="cpu",
                             env=None, overrides=TINY)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    path = tmp_path_factory.mktemp("plan") / "tiny.plan.json"
    write_plan_file(result.plan, path)
    return path


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(cache), "JAX_PLATFORMS": "cpu"}


def _child(plan_file: Path, cache: Path) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(plan_file)], env=_env(cache),
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    from_cache, digest = done.stdout.split()
    return from_cache, digest


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file() and p.parent.name == "exports")


def test_a_repaired_entry_is_whole_in_every_later_process(plan_file, tmp_path) -> None:
    assert _child(plan_file, tmp_path)[0] == "False"
    expected = _child(plan_file, tmp_path)
    (entry,) = _entries(tmp_path)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    # Repaired while JAX's own cache still holds the compiled kernel …
    assert _child(plan_file, tmp_path) == ("False", expected[1])
    # … and what was written then runs in the next process.
    assert _child(plan_file, tmp_path) == expected == ("True", expected[1])


def test_entries_removed_while_jax_keeps_its_cache(plan_file, tmp_path) -> None:
    first = _child(plan_file, tmp_path)
    for entry in _entries(tmp_path):
        entry.unlink()
    assert _child(plan_file, tmp_path) == first
    assert _child(plan_file, tmp_path) == ("True", first[1])


def _warm(plan_file: Path, *names: str):
    from capibara.runtime.loader import load_plan

    compiled = load_plan(plan_file)
    for name in names:
        compiled.kernels[name].warmup(cache=compiled.executables)
    return compiled


def _reference(kernel) -> list[np.ndarray]:
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(kernel.fn(*kernel.example_inputs(seed=2)))]


def _outputs(kernel) -> list[np.ndarray]:
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(kernel.compiled(*kernel.example_inputs(seed=2)))]


def test_an_entry_for_another_kernel_is_a_miss(plan_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compiled = _warm(plan_file, "logits", "blocks.w_in")
    cache = compiled.executables
    logits, w_in = compiled.kernels["logits"], compiled.kernels["blocks.w_in"]
    # A stale entry: whole, private, but written for another kernel.
    cache._path(logits).write_bytes(cache._path(w_in).read_bytes())
    again = _warm(plan_file, "logits").kernels["logits"]
    assert not again.from_cache
    for got, want in zip(_outputs(again), _reference(again), strict=True):
        np.testing.assert_array_equal(got, want)
    assert _warm(plan_file, "logits").kernels["logits"].from_cache  # and it was replaced


@pytest.mark.parametrize("damage", ["flip a byte", "empty", "not ours", "fifo", "directory"])
def test_a_damaged_entry_is_traced_again(plan_file, tmp_path, monkeypatch, damage) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compiled = _warm(plan_file, "logits")
    entry = compiled.executables._path(compiled.kernels["logits"])
    data = entry.read_bytes()
    entry.unlink()
    if damage == "flip a byte":
        entry.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "not ours":
        entry.write_bytes(b"\x80\x04K\x01.")  # a pickle: never read as one
    elif damage == "fifo":
        os.mkfifo(entry)  # reading it would wait forever for a writer
    else:
        entry.mkdir()
    again = _warm(plan_file, "logits").kernels["logits"]
    assert not again.from_cache
    for got, want in zip(_outputs(again), _reference(again), strict=True):
        np.testing.assert_array_equal(got, want)


def _capibara_run(plan_file: Path, cache: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "capibara", "run", str(plan_file)],
                            env=_env(cache), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _results(process: subprocess.Popen) -> list[str]:
    """Each kernel's name and output digest, from `capibara run`'s table."""
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    rows = [line.split() for line in out.splitlines() if " out " in line]
    assert len(rows) == 5, out
    return [f"{row[0]} {row[-1]}" for row in rows]


@pytest.mark.slow
def test_first_runs_started_together_all_compute_the_same(plan_file, tmp_path) -> None:
    # Two processes of one jax.distributed launch on a host start at the same instant.
    seen = set()
    for attempt in range(5):
        cache = tmp_path / f"cache{attempt}"
        pair = [_capibara_run(plan_file, cache), _capibara_run(plan_file, cache)]
        results = [_results(process) for process in pair]
        results.append(_results(_capibara_run(plan_file, cache)))
        seen.update(tuple(r) for r in results)
    assert len(seen) == 1, seen


def test_a_kernel_that_cannot_be_kept_says_why_and_still_runs(plan_file, tmp_path,
                                                              monkeypatch) -> None:
    from jax import export

    def unavailable(self, vjp_order=0):
        raise ModuleNotFoundError("No module named 'flatbuffers'", name="flatbuffers")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(export.Exported, "serialize", unavailable)
    kernel = _warm(plan_file, "logits").kernels["logits"]
    assert kernel.not_kept == "flatbuffers is not installed (pip install 'capibara[kernel-cache]')"
    assert not _entries(tmp_path)
    for got, want in zip(_outputs(kernel), _reference(kernel), strict=True):
        np.testing.assert_array_equal(got, want)
