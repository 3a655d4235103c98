"""No argument, environment value or unwritable stdout makes a verb exit 70."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capibara.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
DEV = str(ROOT / "configs/development/development.toml")
TINY = ("model.hidden_size=32", "model.num_layers=1", "model.num_heads=1",
        "model.max_seq_length=16", "deployment.batch_size=1", "model.vocab_size=64")


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> str:
    from capibara.compiler.driver import compile_sources
    from capibara.plan import write_plan_file

    result = compile_sources([DEV], target="cpu", env=None, overrides=TINY)
    assert result.plan is not None
    path = tmp_path_factory.mktemp("plan") / "tiny.plan.json"
    write_plan_file(result.plan, path)
    return str(path)


@pytest.mark.parametrize(("arguments", "says"), [
    (["--benchmark", "--repeat", "0"], "--repeat must be at least 1"),
    (["--generate", "-5"], "--generate must be at least 1"),
    (["--generate", "0"], "--generate must be at least 1"),  # not the benchmark instead
    (["--process-id", "5", "--num-processes", "1", "--coordinator", "127.0.0.1:8476"],
     "--process-id must be between 0 and 0"),
    (["--process-id", "0", "--num-processes", "0", "--coordinator", "127.0.0.1:8476"],
     "--num-processes must be at least 1"),
    (["--process-id", "0", "--num-processes", "1", "--coordinator", "not a host"],
     "--coordinator wants HOST:PORT"),
    (["--process-id", "0", "--num-processes", "1", "--coordinator", "not a host:80"],
     "not a host name or IP address"),
    (["--process-id", "0", "--num-processes", "1", "--coordinator", "127.0.0.1:99999"],
     "a port from 1 to 65535"),
    # without --coordinator the pair is allowed (JAX looks for a cluster manager), but
    # not one alone, nor --coordinator without them
    (["--num-processes", "2"], "--num-processes and --process-id go together"),
    (["--coordinator", "127.0.0.1:8476"], "go together"),
])
def test_bad_run_arguments_are_usage_errors(plan_file, arguments, says, capsys) -> None:
    # Checked before the plan is read or JAX imported: no plan work is done.
    assert main(["run", plan_file, *arguments], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


def test_generating_past_the_models_length_is_a_usage_error(plan_file, capsys, monkeypatch,
                                                             tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["run", plan_file, "--generate", "9"], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "holds 16 tokens" in err and "at most 8" in err, err


@pytest.mark.parametrize(("verb", "value"), [
    (verb, value) for verb in (["targets"], ["check", DEV, "--target", "auto"],
                               ["compile", DEV, "--target", "auto", "-o", "-"])
    for value in ("nonsense", "cpux8")] + [(["run", "PLAN"], "nonsense")])
def test_the_host_target_variable(verb, value, plan_file, monkeypatch, capsys,
                                  tmp_path) -> None:
    from capibara.targets import detect_host

    monkeypatch.setenv("CAPIBARA_HOST_TARGET", value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    detect_host.cache_clear()
    try:
        argv = [plan_file if a == "PLAN" else a for a in verb]
        if verb[0] == "run":
            argv += ["--no-warmup"]
        out = io.StringIO()
        status = main(argv, out=out)
    finally:
        detect_host.cache_clear()
    err = capsys.readouterr().err
    assert "internal error" not in err, err
    if value == "cpux8":  # once asked the host for `cpu`, which asked `cpux8`, … (RecursionError)
        assert status in (0, 1), err
    elif status == 1:  # the compile path's located diagnostic
        assert "unknown target" in out.getvalue() + err
    else:  # named, with what to do; the value itself is not echoed
        assert status == 2 and "CAPIBARA_HOST_TARGET does not name a known target" in err, err


def _verb(arguments: list[str], stdout) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capibara", *arguments], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "CAPIBARA_HOST_TARGET": "cpu"})


VERBS = [["targets"], ["schema"], ["explain", "P101"], ["check", DEV],
         ["compile", DEV, "-o", "-"]]


@pytest.mark.parametrize("arguments", VERBS, ids=lambda a: a[0])
def test_a_full_standard_output_is_an_error_not_a_bug(arguments) -> None:
    with open("/dev/full", "w") as full:
        done = _verb(arguments, full)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().endswith("error: cannot write to standard output: "
                                        "No space left on device"), done.stderr


@pytest.mark.parametrize("arguments", VERBS[:3], ids=lambda a: a[0])
def test_a_closed_standard_output_is_an_error_not_a_bug(arguments) -> None:
    done = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "capibara",
                           *arguments], stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "cannot write to standard output" in done.stderr, done.stderr


def test_a_reader_that_stops_early_is_not_an_error() -> None:
    with subprocess.Popen([sys.executable, "-m", "capibara", "schema"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=ROOT) as process:
        process.stdout.read(10)
        process.stdout.close()
        err = process.stderr.read().decode()
    assert process.returncode == 0, err
    assert "Exception ignored" not in err and "internal error" not in err, err
