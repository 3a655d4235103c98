"""Regenerate the plan files the golden cases read (run from the repository root):

    python tests/golden/plans/make_plans.py

A change to the plan layout changes every digest, so these are rebuilt rather
than edited. ``old-format.plan.json`` is a real plan of the previous format and
is kept as it is. Then ``pytest tests/test_golden.py --update-golden``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from capibara.compiler.driver import compile_sources  # noqa: E402
from capibara.plan import encode_plan  # noqa: E402
from capibara.targets import get_target  # noqa: E402
from capibara.testing.plans import (HOSTILE, nested_plan_bytes, resealed_bytes,  # noqa: E402
                                    small_plan)

GOLDEN = ROOT / "tests" / "golden"
PLANS = GOLDEN / "plans"
SMALL = ["model.hidden_size=64", "model.max_seq_length=64", "model.num_layers=2",
         "hardware.hardware_fallback=false"]


def compiled(paths: list[str], target: str, sets: list[str] = ()) -> bytes:
    result = compile_sources(paths, target=get_target(target), env=None, overrides=list(sets))
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    return encode_plan(result.plan)


def main() -> None:
    os.chdir(ROOT)
    dev = ["configs/development/development.toml"]
    (GOLDEN / "R301-tpu-plan-on-cpu.plan.json").write_bytes(
        compiled(dev, "tpu_v4-8", [*SMALL, "deployment.batch_size=4"]))
    (GOLDEN / "R302-eight-devices-on-one.plan.json").write_bytes(
        compiled(dev, "cpux8", [*SMALL, "deployment.batch_size=8"]))
    production = compiled(dev, "tpu_v4-8", [*SMALL[:3], "deployment.batch_size=32"])
    edited = production.replace(b'"global_size": 32', b'"global_size": 64', 1)
    assert edited != production
    (PLANS / "edited.plan.json").write_bytes(edited)
    (PLANS / "truncated.plan.json").write_bytes(production[:400])
    (PLANS / "future.plan.json").write_bytes(b'{\n  "format": "capibara.plan/9",\n  "digest": "sha256:0"\n}\n')
    (PLANS / "nested.plan.json").write_bytes(nested_plan_bytes(1000))
    device = PLANS / "device.plan.json"
    device.unlink(missing_ok=True)
    device.symlink_to("/dev/zero")
    for name in ("family-dotdot-os", "block_q-zero", "mesh-axes-mismatch"):
        (PLANS / f"resealed-{name}.plan.json").write_bytes(
            resealed_bytes(HOSTILE[name].change(small_plan())))


if __name__ == "__main__":
    main()
