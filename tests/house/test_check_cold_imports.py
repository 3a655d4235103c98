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

#: Prints ``status`` and every dataclass the capibara modules loaded so far define.
DATACLASS_SCAN = """
found = sorted(
    f"{name}.{attr}" for name, module in list(sys.modules.items())
    if name.startswith("capibara") for attr, value in vars(module).items()
    if isinstance(value, type) and value.__module__ == name
    and "__dataclass_fields__" in vars(value))
print(status, " ".join(found))
"""

SCRIPT = """
import io, sys
import capibara.cli.app as cli
status = cli.main(["check", "--no-env", "configs/production/tpu_v4.toml"], out=io.StringIO())
""" + DATACLASS_SCAN

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


IMPORTS_SCRIPT = """
import io, sys
import tomllib, msgspec
anchor = set(sys.modules)
from capibara import cli
status = cli.main(["check", "--no-env", "configs/production/tpu_v4.toml"], out=io.StringIO())
print(status, " ".join(sorted(m for m in set(sys.modules) - anchor if not m.startswith("_"))))
"""

#: What a clean `capibara check` may import beyond what the anchor of
#: benchmarks/cold_start.py (`import tomllib, msgspec`) imports: the CLI and the
#: parser of its one verb, the field table, the decoder and the validator rules; the TOML
#: values come from tomllib, so no parser (lark), no plan, writer, code table,
#: compiler or targets. A module added here costs every check its import time.
CHECK_PATH_MODULES = {
    "capibara", "capibara.lazy", "capibara.diagnostics",
    "capibara.cli", "capibara.cli.app", "capibara.cli.output", "capibara.cli.plan",
    "capibara.compiler", "capibara.compiler.check",
    "capibara.toml", "capibara.toml.limits", "capibara.toml.reading", "capibara.toml.plain",
    "capibara.config", "capibara.config.fields", "capibara.config.fieldtypes",
    "capibara.config.values", "capibara.config.model_config", "capibara.config.decode",
    "capibara.config.legacy", "capibara.config.legacy.rules", "capibara.config.legacy.rewrite",
    "capibara.config.sources",
    "capibara.config.validate", "capibara.config.validate.engine",
    "capibara.config.validate.report", "capibara.config.validate.front",
    "capibara.config.validate.architecture", "capibara.config.validate.deployment",
    "capibara.config.validate.enterprise", "capibara.config.validate.parallelism",
    "capibara.config.validate.sparsity", "capibara.config.validate.training",
    "capibara.config.validate.vq", "capibara.config.validate.typical",
    "capibara.config.validate.hardware", "capibara.files",
    # the standard library beyond the anchor: argparse (with gettext and locale for its
    # messages), dataclasses for the diagnostics (with copy and weakref), bisect for lines
    "argparse", "gettext", "locale", "dataclasses", "copy", "weakref", "errno", "bisect",
    "unicodedata",  # display widths for carets and escaping (a C module, ~0.1 ms)
}


def test_clean_check_imports_only_what_it_needs() -> None:
    proc = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    status, *imported = proc.stdout.split()
    assert status == "0", proc.stdout + proc.stderr
    extra = sorted(set(imported) - CHECK_PATH_MODULES)
    assert not extra, f"a clean check now imports {extra}: import them where they are needed"
    assert "capibara.config.fields" in imported  # the scan itself sees the check's modules
