"""The process settings a plan asks for: GPU memory variables, debug checks, a profiler
trace, logging, the distributed defaults and fast start-up, as ``capibara run`` applies them.

The environment is checked in real ``capibara run`` processes (JAX reads the
variables when it starts a backend, so they must be set before); the GPU's
own response to them needs a GPU and is not checked here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capibara.compiler.driver import compile_config
from capibara.config import ModularModelConfig
from capibara.plan import write_plan_file
from capibara.runtime.environment import (ProcessSettings, apply_environment, configure_logging,
                                          process_settings)

TINY = dict(hidden_size=64, num_layers=2, num_heads=4, vocab_size=128, max_seq_length=32,
            use_vq=False)


def plan_for(target: str = "cpu", **fields):
    result = compile_config(ModularModelConfig(**{**TINY, **fields}), target)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    return result.plan


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XLA_PYTHON_CLIENT")}
    return subprocess.run([sys.executable, "-m", "capibara", "run", *args], capture_output=True,
                          text=True, cwd=cwd, env={**environ, **(env or {})}, timeout=600)


def test_settings_follow_the_plan_fields() -> None:
    gpu = process_settings(plan_for("gpu-h100", gpu_memory_fraction=0.5, gpu_memory_growth=False))
    assert gpu.platform == "gpu"
    assert gpu.environment == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5",
                               "XLA_PYTHON_CLIENT_PREALLOCATE": "true"}
    default = process_settings(plan_for())
    assert default.environment["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"  # growth by default
    assert (default.jax_flags, default.trace, default.log_level) == ({}, False, "INFO")
    assert (default.num_processes, default.process_id, default.skip_warmup) == (None, None, False)
    loud = process_settings(plan_for(jax_debug_mode=True, profile_performance=True,
                                     debug_mode=True, structured_logging=False, fast_startup=True))
    assert loud.jax_flags == {"jax_debug_nans": True, "jax_debug_infs": True}
    assert loud.trace and loud.trace_fields == ("profile_performance",)
    assert (loud.log_level, loud.structured_logging, loud.skip_warmup) == ("DEBUG", False, True)
    job = process_settings(plan_for(distributed_training=True, world_size=4, local_rank=3))
    assert (job.num_processes, job.process_id) == (4, 3)


def test_gpu_variables_only_for_a_gpu_plan_and_the_users_own_win() -> None:
    settings = ProcessSettings(platform="gpu", environment={
        "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5", "XLA_PYTHON_CLIENT_PREALLOCATE": "true"})
    environ = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if "jax" in sys.modules:  # this process may have started JAX already: the note says so
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            assert "already started" in apply_environment(settings, environ)[0]
            return
    notes = apply_environment(settings, environ)
    assert environ == {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5",
                       "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert "from the environment wins" in notes[1]
    cpu = ProcessSettings(platform="cpu", environment=settings.environment)
    assert apply_environment(cpu, environ := {}) == [] and environ == {}


@pytest.mark.slow
def test_run_sets_the_gpu_variables_before_jax_starts(tmp_path) -> None:
    write_plan_file(plan_for("gpu-h100", gpu_memory_fraction=0.5, gpu_memory_growth=False),
                    tmp_path / "gpu.plan.json")
    proc = run(["gpu.plan.json"], tmp_path)
    # this machine has no GPU, so the plan is refused after the variables are set
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["note       XLA_PYTHON_CLIENT_MEM_FRACTION=0.5 (gpu_memory_fraction)",
                         "note       XLA_PYTHON_CLIENT_PREALLOCATE=true (gpu_memory_growth)"], proc
    assert "R301" in proc.stderr or proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_run_turns_on_debug_checks_a_trace_and_json_logs(tmp_path) -> None:
    write_plan_file(plan_for(jax_debug_mode=True, trace_execution=True, log_level="DEBUG",
                             structured_logging=True, fast_startup=True),
                    tmp_path / "debug.plan.json")
    proc = run(["debug.plan.json", "--run-dir", "trace"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "note       fast_startup: kernels compile on first call" in out
    assert "note       jax_debug_mode: jax_debug_nans, jax_debug_infs on" in out
    assert "warmup" not in out
    assert "trace      jax.profiler trace of this run in trace (trace_execution)" in out
    assert list((tmp_path / "trace").rglob("*.xplane.pb")), "no profiler trace written"
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert records and {r["logger"] for r in records} == {"capibara.run"}
    assert {"INFO", "DEBUG"} <= {r["level"] for r in records}
    assert records[0]["message"].startswith("loaded plan sha256:")


def test_plain_logs_at_the_plans_level(capsys) -> None:
    import io
    import logging

    stream = io.StringIO()
    logger = configure_logging(ProcessSettings(platform="cpu", log_level="WARNING",
                                               structured_logging=False), stream)
    logging.getLogger("capibara.run").info("hidden")
    logging.getLogger("capibara.run").warning("shown")
    assert stream.getvalue() == "WARNING capibara.run: shown\n"
    configure_logging(ProcessSettings(platform="cpu"), io.StringIO())
    assert len([h for h in logger.handlers if getattr(h, "_capibara_handler", False)]) == 1


def test_distributed_fields_are_the_flags_defaults_and_flags_win(tmp_path) -> None:
    from capibara.cli.run import _process_setup, distributed_disagreements

    path = tmp_path / "job.plan.json"
    write_plan_file(plan_for(distributed_training=True, world_size=2, local_rank=1), path)
    args = argparse.Namespace(plan=str(path), num_processes=None, process_id=None,
                              no_warmup=False, message_format="human")
    assert isinstance(_process_setup(args, open(os.devnull, "w")), ProcessSettings)
    assert (args.num_processes, args.process_id) == (2, 1)
    assert distributed_disagreements(args, 2, 1) == []
    flags = argparse.Namespace(plan=str(path), num_processes=3, process_id=0, no_warmup=False,
                               message_format="human")
    _process_setup(flags, open(os.devnull, "w"))
    assert (flags.num_processes, flags.process_id) == (3, 0)
    found = distributed_disagreements(flags, 3, 0)
    assert [d.code for d in found] == ["R303", "R303"] and all(not d.is_error for d in found)
    assert "the plan's `world_size` says 2" in found[0].message
    assert any("deployment.world_size` = 2" in note for note in found[0].notes)
