"""Helpers for the hardening tests: the CLI in process, and FIFOs that cannot hang a test."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

import capibara.cli.app as cli
from capibara.compiler import check as pipeline

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "configs/development/development.toml"


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.setattr(pipeline, "ENVIRON", {})


@pytest.fixture
def run(capsys):
    """``run(*argv)`` -> (exit status, stdout + stderr) of ``capibara`` in this process."""

    def call(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        out = io.StringIO()
        status = cli.main([os.fspath(a) for a in argv], out=out)
        return status, out.getvalue() + capsys.readouterr().err

    return call


@pytest.fixture
def fifo(tmp_path):
    """A named pipe no one writes to. Were a reader to block on it, a watchdog opens it
    for writing after 5 s and closes it, so the test fails (empty input) instead of hanging."""
    path = tmp_path / "pipe.toml"
    os.mkfifo(path)
    done = threading.Event()

    def watchdog() -> None:
        deadline = time.monotonic() + 5
        while not done.wait(0.1):
            if time.monotonic() < deadline:
                continue
            try:  # succeeds only while a reader is blocked in open()
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    yield path
    done.set()
    thread.join()
