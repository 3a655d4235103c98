"""Saved executables: a second load of a plan skips tracing, lowering and compiling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from capibara.compiler.driver import compile_sources

ROOT = Path(__file__).resolve().parents[2]
DEV = str(ROOT / "configs" / "development" / "development.toml")
SMALL = ("model.hidden_size=64", "model.num_layers=2", "model.num_heads=2",
         "model.max_seq_length=64", "deployment.batch_size=8")


@pytest.fixture(scope="module")
def plan():
    result = compile_sources([DEV], target="cpu", env=None, overrides=SMALL)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    return result.plan


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _leaves(tree) -> list[np.ndarray]:
    import jax

    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def _entries(compiled) -> list[Path]:
    return sorted(compiled.executables.directory.glob("*.export"))


def test_a_second_load_takes_every_kernel_from_the_cache(plan, cache_home) -> None:
    from capibara.runtime.loader import load_plan

    first = load_plan(plan)
    first.warmup(progress=None)
    assert not any(k.from_cache for k in first.kernels)
    assert len(_entries(first)) == len(first.kernels)
    second = load_plan(plan)
    second.warmup(progress=None)
    assert all(k.from_cache for k in second.kernels)
    for a, b in zip(first.kernels, second.kernels):
        inputs = a.example_inputs(seed=3)
        for x, y in zip(_leaves(a.compiled(*inputs)), _leaves(b.compiled(*inputs))):
            np.testing.assert_array_equal(x, y)  # the same executable: bit for bit


def _logits(compiled):
    return compiled.kernels["logits"]


def test_a_damaged_entry_is_compiled_again_and_replaced(plan, cache_home) -> None:
    from capibara.runtime.loader import load_plan

    compiled = load_plan(plan)
    _logits(compiled).warmup(cache=compiled.executables)
    (entry,) = _entries(compiled)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    again = load_plan(plan)
    _logits(again).warmup(cache=again.executables)
    assert not _logits(again).from_cache
    third = load_plan(plan)
    _logits(third).warmup(cache=third.executables)
    assert _logits(third).from_cache  # the rewritten entry is whole


def test_an_entry_others_can_write_is_never_loaded(plan, cache_home) -> None:
    from capibara.runtime.loader import load_plan

    compiled = load_plan(plan)
    _logits(compiled).warmup(cache=compiled.executables)
    (entry,) = _entries(compiled)
    entry.chmod(0o666)
    again = load_plan(plan)
    _logits(again).warmup(cache=again.executables)
    assert not _logits(again).from_cache


def test_changed_kernel_source_is_a_miss(plan, cache_home, monkeypatch) -> None:
    import capibara.runtime.executables
    from capibara.runtime.loader import load_plan

    compiled = load_plan(plan)
    _logits(compiled).warmup(cache=compiled.executables)
    monkeypatch.setattr(capibara.runtime.executables, "source_fingerprint", lambda: "edited kernels")
    again = load_plan(plan)
    _logits(again).warmup(cache=again.executables)
    assert not _logits(again).from_cache


def test_notes_made_while_tracing_travel_with_the_executable(plan, cache_home) -> None:
    import jax

    from capibara.kernels.base import Unsupported
    from capibara.runtime.loader import BoundKernel, _with_fallback, load_plan

    def refuses(x, w):
        raise Unsupported("this variant wants a wider matrix")

    def reference(x, w):
        return x @ w

    compiled = load_plan(plan)
    spec = _logits(compiled).spec

    def kernel() -> BoundKernel:
        notes: list[str] = []
        fn = jax.jit(_with_fallback(refuses, reference, notes, spec.name))
        return BoundKernel(spec, fn, ("x", "w"), lambda a: (a["x"], a["w"]), "refusing", notes)

    first = kernel()
    first.warmup(cache=compiled.executables)
    assert first.notes == [f"{spec.name}: this variant wants a wider matrix; using the reference"]
    second = kernel()
    second.warmup(cache=compiled.executables)
    assert second.from_cache and second.notes == first.notes


def test_no_cache_when_the_plan_loads_without_one(plan, cache_home) -> None:
    from capibara.runtime.loader import load_plan

    compiled = load_plan(plan, cache=False)
    assert compiled.executables is None
    compiled.warmup(progress=None)
    assert not (cache_home / "capibara").exists()


SHARDED = """
import sys
import numpy as np
from capibara.compiler.driver import compile_sources
from capibara.runtime.loader import load_plan
result = compile_sources([sys.argv[1]], target="cpux8", env=None, overrides=sys.argv[2:])
for attempt in ("compiled", "cached"):
    compiled = load_plan(result.plan)
    compiled.warmup(progress=None)
    kernel = compiled.kernels.collective
    x, = kernel.example_inputs()
    blocks = np.asarray(x, np.float64).reshape(8, -1)  # x is split over the 8 devices
    out = np.asarray(kernel.compiled(x))
    assert x.is_deleted() == kernel.donates  # an in-place all-reduce consumed its input
    # f32 sums of 8 terms of size <= ~0.5, in another order: a few ulps, ~1e-6.
    print(attempt, kernel.from_cache, np.allclose(out, np.tile(blocks.sum(0), 8), atol=1e-5))
"""


@pytest.mark.slow
def test_a_collective_over_eight_devices_runs_from_the_cache(tmp_path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    # replicated optimizer state: the explicit sharded step, whose plan records the all-reduce
    explicit = "tpu_v4_optimizations.optimizer_sharding=false"
    out = subprocess.run([sys.executable, "-c", SHARDED, DEV, *SMALL, explicit], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["compiled False True", "cached True True"], out.stdout


def test_other_xla_flags_are_a_miss(plan, cache_home, monkeypatch) -> None:
    from capibara.runtime.loader import load_plan

    compiled = load_plan(plan)
    _logits(compiled).warmup(cache=compiled.executables)
    # read when the key is made: an executable built under other codegen flags is not reused
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    again = load_plan(plan)
    _logits(again).warmup(cache=again.executables)
    assert not _logits(again).from_cache
