"""What a cold `capibara check` builds at import time (benchmarks/cold_start.py, issue 2).

Creating a dataclass runs generated code through ``exec`` for each of its
methods, about 0.5 ms per class here against ~0.01 ms for a ``msgspec.Struct``;
the records of the check path are Structs. The diagnostics stay dataclasses
(code outside the check path calls ``dataclasses.replace`` on them). Checked
in a fresh process, where the import cost is paid; no timing involved.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import io, sys
import capibara.cli.app as cli
status = cli.main(["check", "--no-env", "configs/production/tpu_v4.toml"], out=io.StringIO())
found = sorted(
    f"{name}.{attr}" for name, module in list(sys.modules.items())
    if name.startswith("capibara") for attr, value in vars(module).items()
    if isinstance(value, type) and value.__module__ == name
    and "__dataclass_fields__" in vars(value))
print(status, " ".join(found))
"""

#: The dataclasses a check may define: the diagnostics and their one subclass.
ALLOWED = {"capibara.diagnostics.Span", "capibara.diagnostics.Label",
           "capibara.diagnostics.Diagnostic", "capibara.config.validate.report.FieldDiagnostic"}


def test_check_defines_no_other_dataclasses() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    status, *found = proc.stdout.split()
    assert status == "0", proc.stdout + proc.stderr
    assert set(found) <= ALLOWED, f"dataclasses on the check path: {sorted(set(found) - ALLOWED)}"
    assert "capibara.diagnostics.Diagnostic" in found  # the scan itself sees dataclasses
