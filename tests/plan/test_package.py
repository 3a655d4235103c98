"""``capibara.plan`` is a package of small modules behind the old import path."""

from __future__ import annotations

import subprocess
import sys

import capibara.plan

#: Every public name of the single-module ``capibara/plan.py`` this package replaced.
OLD_PUBLIC = ["FORMAT", "Plan", "CompilerInfo", "TargetInfo", "ModelShape", "MemoryEstimate",
              "Precision", "Mesh", "Batch", "Execution", "KernelSpec", "Decision",
              "canonical_bytes", "compute_digest", "seal", "encode_plan", "decode_plan",
              "write_plan_file", "load_plan_file", "plan_format_for", "flat_view",
              "is_compatible", "Change", "diff_plans", "diff_configs", "format_changes",
              "explain_plan", "resolve_path", "summary", "config_of_plan"]


def test_every_old_public_name_still_imports_from_capibara_plan() -> None:
    for name in OLD_PUBLIC + ["freeze", "Origin", "LossWeights", "validate_plan"]:
        assert getattr(capibara.plan, name) is not None, name
        assert name in capibara.plan.__all__


def test_freeze_is_the_plan_packages_and_the_driver_calls_it() -> None:
    from capibara.compiler import driver
    from capibara.plan.freezer import freeze

    assert capibara.plan.freeze is freeze and driver.freeze is freeze


def test_importing_the_package_imports_no_module_until_a_name_is_used() -> None:
    script = ("import sys\nimport capibara.plan\nbefore = sorted(m for m in sys.modules "
              "if m.startswith('capibara.plan.'))\nfrom capibara.plan import load_plan_file\n"
              "after = sorted(m for m in sys.modules if m.startswith(('capibara.', 'jax')))\n"
              "print(before, after)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, after = done.stdout.strip().split("] [")
    assert before == "[", done.stdout
    assert "jax" not in after and "capibara.config" not in after, done.stdout
