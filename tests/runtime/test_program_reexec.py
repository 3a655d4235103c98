"""`capibara run` starts its process again for huge pages only as the program
(the console script, `python -m capibara`), never from a library call of main()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from capibara.runtime import hugepages

ROOT = Path(__file__).resolve().parents[2]

needs_madvise = pytest.mark.skipif(
    hugepages.classify({}, hugepages._thp_mode(), hugepages._glibc_version()).state != "off",
    reason="this machine has no opt-in transparent huge pages for malloc (THP `madvise`, "
           "glibc 2.35+), so nothing would be re-executed")

#: A caller with a side effect, then `capibara run` on a plan that is not there
#: (the re-execution happens after parsing, before the plan is read).
CALLER = """
import sys
print("side effect", flush=True)
sys.argv = ["capibara", "run", "missing.plan.json"]
from capibara.cli import main
status = main()
print("returned", status, flush=True)
"""


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}


@needs_madvise
def test_a_library_call_of_main_never_starts_the_process_again(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", CALLER], cwd=tmp_path, env=_environment(),
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["side effect", "returned 1"], done.stdout + done.stderr


@needs_madvise
def test_a_script_on_standard_input_runs(tmp_path) -> None:
    # Started again, `python -` would find its standard input already read, and exit 0.
    done = subprocess.run([sys.executable, "-"], input=CALLER, cwd=tmp_path, env=_environment(),
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["side effect", "returned 1"], done.stdout + done.stderr


@needs_madvise
def test_the_program_starts_again_with_huge_pages(tmp_path) -> None:
    script = tmp_path / "show.py"
    script.write_text("import os, sys\n"
                      "from capibara.cli.app import program\n"
                      "print(os.environ.get('GLIBC_TUNABLES'), flush=True)\n"
                      "sys.exit(program())\n")
    done = subprocess.run([sys.executable, str(script), "run", "missing.plan.json"], cwd=tmp_path,
                          env=_environment(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == ["None", f"{hugepages.TUNABLE}=1"], done.stdout
