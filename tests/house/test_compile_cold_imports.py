"""What a cold `capibara compile` imports and builds (benchmarks/cold_start.py, issue 14).

The compile path is the check path (tests/house/test_check_cold_imports.py)
and the compiler's own modules: lowering, the passes, the kernel families'
selectors, the target catalog, the plan and its encoding. The TOML values come
from tomllib and their places from capibara.toml.locate, so no parser (lark)
is loaded for a valid file; nothing writes a plan file through pathlib or
tempfile. Checked in fresh processes, where the import cost is paid; no timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.house.test_check_cold_imports import CHECK_PATH_MODULES, DATACLASS_SCAN

ROOT = Path(__file__).resolve().parents[2]

IMPORTS_SCRIPT = """
import io, sys
import tomllib, msgspec
anchor = set(sys.modules)
from capibara import cli

class Output(io.StringIO):
    buffer = io.BytesIO()

status = cli.main({args!r}, out=Output())
print(status, " ".join(sorted(m for m in set(sys.modules) - anchor if not m.startswith("_"))))
"""

#: What `capibara compile` may import beyond the check path's modules. A module added
#: here costs every compile its import time.
COMPILE_PATH_MODULES = CHECK_PATH_MODULES | {
    "capibara.compiler.driver", "capibara.compiler.lower", "capibara.compiler.ir",
    "capibara.compiler.policy", "capibara.compiler.hardware", "capibara.compiler.located",
    "capibara.compiler.kernel_uses", "capibara.compiler.mixers", "capibara.compiler.model_shape",
    "capibara.compiler.memory", "capibara.compiler.passes", "capibara.compiler.passes.base",
    "capibara.compiler.passes.registry", "capibara.compiler.passes.resolve_mesh",
    "capibara.compiler.passes.prune_disabled", "capibara.compiler.passes.precision",
    "capibara.compiler.passes.memory_policy", "capibara.compiler.passes.fold_derived",
    "capibara.compiler.passes.select_kernels", "capibara.compiler.passes.resolve_batch",
    "capibara.compiler.passes.sharded_step",
    "capibara.compiler.passes.dedupe_kernels",
    # the targets and the kernel families' selectors and rankings (no JAX)
    "capibara.targets", "capibara.kernels", "capibara.kernels.specs", "capibara.kernels.selection",
    *(f"capibara.kernels.{family}{part}" for family in (
        "attention", "scan", "collective", "fft", "vq", "linalg", "conv", "moe")
      for part in ("", ".spec")),
    "capibara.kernels.fft.cost",
    # the plan: its types, freezing, the canonical encoding and digest, the summary
    "capibara.plan", "capibara.plan.types", "capibara.plan.freezer", "capibara.plan.codec",
    "capibara.plan.explain", "capibara.plan.diff", "capibara.plan.views",
    # the TOML document with its places, found without a parser
    "capibara.toml.document", "capibara.toml.locate", "capibara.toml.positions",
    "capibara.toml.keypath",
}


def imported_by(args: list[str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT.format(args=args)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    status, *imported = proc.stdout.split()
    assert status == "0", proc.stdout + proc.stderr
    return imported


@pytest.mark.parametrize("args", [
    # a clean config, the plan on standard output
    ["compile", "--no-env", "configs/specialized/tpu_v6_vq_v33.toml", "--target", "cpu", "-o", "-"],
    # benchmarks/cold_start.py's compile: a config with warnings, shown with their source lines
    # (--no-env: a CAPIBARA_* variable of the test's environment would be a warning of its own)
    ["compile", "--no-env", "configs/production/tpu_v4.toml", "--target", "cpu", "-o", "-"],
    # the plan written to a file
    ["compile", "--no-env", "configs/specialized/tpu_v6_vq_v33.toml", "--target", "cpu",
     "-o", "{tmp}/tpu_v6_vq_v33.plan.json"],
], ids=["clean", "warnings", "to-a-file"])
def test_compile_imports_only_what_it_needs(args: list[str], tmp_path: Path) -> None:
    imported = imported_by([arg.replace("{tmp}", str(tmp_path)) for arg in args])
    extra = sorted(set(imported) - COMPILE_PATH_MODULES)
    assert not extra, f"a compile now imports {extra}: import them where they are needed"
    assert "capibara.compiler.passes.registry" in imported  # the scan itself sees the compiler


DATACLASS_SCRIPT = """
import io, sys
import capibara.cli.app as cli

class Output(io.StringIO):
    buffer = io.BytesIO()

status = cli.main(["compile", "--no-env", "configs/production/tpu_v4.toml", "--target", "cpu",
                   "-o", "-"], out=Output())
""" + DATACLASS_SCAN

#: The dataclasses a compile may define: the diagnostics (see the check's test) and
#: the target, whose users call ``dataclasses.replace`` on it. Creating a dataclass
#: costs ~0.2 ms and more per field; the compiler's records (the IR, the passes) are Structs.
ALLOWED = {"capibara.diagnostics.Span", "capibara.diagnostics.Label",
           "capibara.diagnostics.Diagnostic", "capibara.config.validate.report.FieldDiagnostic",
           "capibara.targets.Target"}


def test_compile_defines_no_other_dataclasses() -> None:
    proc = subprocess.run([sys.executable, "-c", DATACLASS_SCRIPT], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    status, *found = proc.stdout.split()
    assert status == "0", proc.stdout + proc.stderr
    assert set(found) <= ALLOWED, f"dataclasses on the compile path: {sorted(set(found) - ALLOWED)}"
    assert "capibara.targets.Target" in found  # the scan itself sees the compiler's modules
