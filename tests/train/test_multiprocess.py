"""Training across processes on 127.0.0.1: two processes × 4 devices match one × 8, the explicit
sharded step across them matches XLA's partitioning, and a SIGTERM to one of them stops both
after saving, from where a restart reaches the same end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import capibara

from .test_train import CONFIG, DATA

STEPS = 8
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plan")
    config = folder / "tiny.toml"
    config.write_text(CONFIG.replace("batch_size = 4", "batch_size = 8"))
    path = folder / "tiny.plan.json"
    from capibara.plan import write_plan_file

    write_plan_file(capibara.compile(config, target="cpux8", env=None), path)
    return path


@pytest.fixture(scope="module")
def explicit_plan(tmp_path_factory) -> Path:
    """The same model with its optimizer state replicated: on cpu the explicit sharded
    step (``shard_map``, the plan's gradient all-reduce) is the faster one there."""
    folder = tmp_path_factory.mktemp("explicit")
    config = folder / "tiny.toml"
    config.write_text(CONFIG.replace("batch_size = 4", "batch_size = 8")
                      + "\n[tpu_v4_optimizations]\noptimizer_sharding = false\n")
    path = folder / "tiny.plan.json"
    from capibara.plan import write_plan_file

    plan = capibara.compile(config, target="cpux8", env=None)
    assert [k.name for k in plan.kernels if k.family == "collective"] == ["grads.all_reduce"]
    write_plan_file(plan, path)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jax-cache")


def launch(plan: Path, run_dir: Path, cache: Path, *, processes: int) -> list[subprocess.Popen]:
    devices = 8 // processes
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "XDG_CACHE_HOME": str(cache)}
    command = [sys.executable, "-m", "capibara", "train", str(plan), "--data", str(DATA),
               "--run-dir", str(run_dir), "--steps", str(STEPS), "--log-every", "1",
               "--eval-every", "4", "--eval-batches", "1"]
    if processes == 1:
        return [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    port = free_port()
    return [subprocess.Popen(command + ["--coordinator", f"127.0.0.1:{port}", "--num-processes",
                                        str(processes), "--process-id", str(i)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(processes)]


def finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[int]:
    codes = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        codes.append(proc.returncode)
        proc.stderr_text = err  # type: ignore[attr-defined]
    return codes


def losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def final_params(run_dir: Path) -> list[np.ndarray]:
    """The newest checkpoint's parameters, read as host arrays (this process has one device)."""
    import jax
    import orbax.checkpoint as ocp

    step = max(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    path = run_dir / "checkpoints" / str(step) / "state"
    reader = ocp.PyTreeCheckpointer()
    layout = reader.metadata(path).item_metadata.tree
    state = reader.restore(path, restore_args=jax.tree.map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray), layout))
    return [np.asarray(x, np.float32) for x in jax.tree.leaves(state["params"])]


@pytest.fixture(scope="module")
def two_by_four(plan, cache, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("two-by-four")
    procs = launch(plan, run_dir, cache, processes=2)
    codes = finish(procs)
    assert codes == [0, 0], [p.stderr_text[-2000:] for p in procs]
    return run_dir


def test_two_processes_of_four_devices_train_like_one_of_eight(plan, cache, two_by_four, tmp_path) -> None:
    procs = launch(plan, tmp_path, cache, processes=1)
    assert finish(procs) == [0], procs[0].stderr_text[-2000:]
    one, two = losses(tmp_path), losses(two_by_four)
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))
    # float32 sums in another order (the batch's rows are spread over other devices)
    assert [two[s] for s in sorted(two)] == pytest.approx([one[s] for s in sorted(one)], rel=1e-5)
    for a, b in zip(final_params(tmp_path), final_params(two_by_four)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_explicit_sharded_step_trains_across_processes_like_xla_partitioning(
        explicit_plan, cache, two_by_four, tmp_path) -> None:
    # each process's devices reduce the gradient with the other's through the plan's kernel
    procs = launch(explicit_plan, tmp_path, cache, processes=2)
    assert finish(procs) == [0, 0], [p.stderr_text[-2000:] for p in procs]
    explicit, automatic = losses(tmp_path), losses(two_by_four)
    assert sorted(explicit) == list(range(1, STEPS + 1))
    # the same losses, up to float32 sums in another order, which Adam (it divides each
    # gradient by its own size) turns into visible steps for gradients near zero
    assert [explicit[s] for s in sorted(explicit)] == pytest.approx(
        [automatic[s] for s in sorted(automatic)], rel=1e-4)


def test_sigterm_to_one_process_stops_both_and_a_restart_reaches_the_same_end(
        plan, cache, two_by_four, tmp_path) -> None:
    procs = launch(plan, tmp_path, cache, processes=2)
    log = tmp_path / "log.jsonl"
    deadline = time.monotonic() + 240
    while not (log.exists() and '"event": "start"' in log.read_text()):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate()[1][-2000:] for p in procs]
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
    codes = finish(procs)
    assert codes == [128 + signal.SIGTERM] * 2, [p.stderr_text[-2000:] for p in procs]
    stopped_at = max(losses(tmp_path), default=0)
    assert stopped_at < STEPS
    assert finish(launch(plan, tmp_path, cache, processes=2)) == [0, 0]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    events = [r["event"] for r in records if "event" in r]
    # each process compiles its train step ahead of the first step (no kernel cache
    # across processes); the primary logs it
    assert [e for e in events if e != "compile"] == ["start", "stop", "resume", "finish"]
    assert events.count("compile") == 2
    for a, b in zip(final_params(tmp_path), final_params(two_by_four)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
