"""The compile path stays pure Python: checking a config never imports JAX."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import io, sys
import capibara.cli.app as cli
status = cli.main(["check", "--no-env", "configs/production/tpu_v4.toml"], out=io.StringIO())
heavy = sorted(m for m in ("jax", "jaxlib", "numpy") if m in sys.modules)
print(status, heavy)
"""


def test_check_never_imports_jax() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert proc.stdout.split()[-1] == "[]", proc.stdout
