"""The command line's contract: verbs, exit statuses, output formats."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from capibara import cli, pipeline
from capibara.codes import CODES


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = cli.main(list(argv), out=out)
    return status, out.getvalue()


def test_explain_prints_the_table_entry() -> None:
    status, text = run("explain", "p001")
    assert status == 0
    assert text.startswith("P001: file not found\n\n")
    assert CODES["P001"].explanation in text


def test_explain_unknown_code_is_a_usage_error(capsys) -> None:
    status, _ = run("explain", "P00l")
    assert status == cli.EXIT_USAGE
    assert "unknown diagnostic code `P00l`" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys) -> None:
    assert run("frobnicate")[0] == cli.EXIT_USAGE
    assert run("check")[0] == cli.EXIT_USAGE
    assert "error:" in capsys.readouterr().err


def test_targets_marks_the_detected_host() -> None:
    status, text = run("targets")
    assert status == 0
    assert "tpu_v4-32" in text and "gpu-h100" in text
    marked = [line for line in text.splitlines() if line.startswith("*  ")]
    assert len(marked) == 1
    assert "* detected host:" in text


def test_internal_error_has_a_header_and_exit_70(monkeypatch, capsys) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "check", broken)
    status, _ = run("check", "x.toml")
    assert status == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("internal error: RuntimeError: boom\n")
    assert "Traceback" not in err


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "capibara", "explain", "P001"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("P001: file not found")
