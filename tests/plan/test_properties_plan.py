"""Properties of plans and of the passes that make them.

- encoding: a plan decodes from its JSON and msgpack bytes to itself, and a
  plan file written atomically loads back (its own verification passes);
- corruption: any truncation or byte change of a plan file is refused with an
  ``R1xx`` diagnostic or, where the change is invisible to the decoder (JSON
  white space), loads the very same plan: never a different one;
- determinism: the same inputs give the same digest, in this process and in
  processes with other hash seeds;
- passes: after ``lower`` and after each pass the IR is still valid (see
  :func:`ir_problems`), and the pipeline ends in a plan that verifies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import assume, given, strategies as st

from capibara.compiler.driver import compile_config, compile_sources
from capibara.diagnostics import ConfigError
from capibara.compiler.ir import DTYPE_SYMBOLS, SYMBOLS, Lowered
from capibara.plan import MESH_AXES
from capibara.config.model_config import ModularModelConfig
from capibara.compiler.passes.registry import DEFAULT_PIPELINE
from capibara.compiler.passes.select_kernels import SELECTORS
from capibara.plan import (compute_digest, decode_plan, encode_plan, load_plan_file,
                           write_plan_file)
from capibara.config.fields import FIELDS
from capibara.testing.config_strategies import configs

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = sorted((ROOT / "configs").rglob("*.toml"))
TARGET_NAMES = [None, "cpu", "cpu-arm", "gpu-h100", "tpu_v4-32", "tpu_v6e-8"]
DTYPES = {"float32", "bfloat16", "float16", "int8", "int4", "int16", "int32", "ternary"}


@st.composite
def small_configs(draw: st.DrawFn) -> ModularModelConfig:
    """A config with a few explicit fields: most of these pass the cross-field rules."""
    fields = draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique_by=lambda f: f.name))
    return ModularModelConfig(**draw(configs(tuple(fields))))


def _plan(config: ModularModelConfig, target):
    result = compile_config(config, target)
    assume(result.plan is not None)
    return result.plan


@given(small_configs(), st.sampled_from(TARGET_NAMES))
def test_plan_bytes_decode_to_the_same_plan(config, target) -> None:
    plan = _plan(config, target)
    assert plan.digest == compute_digest(plan)
    for fmt in ("json", "msgpack"):
        data = encode_plan(plan, fmt)
        assert decode_plan(data, f"p.{fmt}", fmt) == plan
        assert encode_plan(decode_plan(data, f"p.{fmt}", fmt), fmt) == data


def without_places(plan):
    """``plan`` with what depends on where values were written blanked: provenance,
    the ``file:line:col`` of each warning, the digest."""
    warnings = tuple(w[w.index("warning["):] for w in plan.warnings)
    return msgspec.structs.replace(plan, provenance={}, warnings=warnings, digest="")


@given(small_configs(), st.sampled_from(TARGET_NAMES))
def test_same_inputs_same_digest(tmp_path_factory, config, target) -> None:
    plan = _plan(config, target)
    assert compile_config(config, target).plan.digest == plan.digest
    # the same values reached another way (keywords, a file) make the same plan but for places
    explicit = {name: getattr(config, name) for name in config.explicit_fields}
    again = compile_config(ModularModelConfig(**explicit), target).plan
    path = tmp_path_factory.mktemp("same") / "c.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    from_file = compile_sources([path], target=target, env=None).plan
    assert without_places(again) == without_places(plan) == without_places(from_file)


@given(small_configs(), st.sampled_from(TARGET_NAMES), st.sampled_from(["json", "msgpack"]),
       st.data())
def test_a_damaged_plan_is_refused_never_misread(config, target, fmt, data) -> None:
    plan = _plan(config, target)
    blob = encode_plan(plan, fmt)
    kind = data.draw(st.sampled_from(["truncate", "flip", "replace"]))
    at = data.draw(st.integers(0, len(blob) - 1))
    if kind == "truncate":
        damaged = blob[:at]
    elif kind == "flip":
        damaged = blob[:at] + bytes([blob[at] ^ (1 << data.draw(st.integers(0, 7)))]) + blob[at + 1:]
    else:
        damaged = blob[:at] + bytes([data.draw(st.integers(0, 255))]) + blob[at + 1:]
    try:
        loaded = decode_plan(damaged, "p", fmt)
    except ConfigError as error:
        assert [d.code for d in error.diagnostics] in (["R102"], ["R103"], ["R104"], ["R105"])
        return
    assert loaded == plan


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_written_plans_pass_their_own_verification(tmp_path: Path, fmt: str) -> None:
    for path in BUNDLED:
        for target in TARGET_NAMES:
            plan = compile_sources([path], target=target, env=None).plan
            if plan is None:
                continue
            written = write_plan_file(plan, tmp_path / f"{path.stem}.plan.{fmt}", fmt)
            assert load_plan_file(written, fmt) == plan
            assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


_DIGESTS = """
import json, sys
from pathlib import Path
from capibara.compiler.driver import compile_sources
out = {}
for path in sorted(Path("configs").rglob("*.toml")):
    for target in %r:
        plan = compile_sources([path], target=target, env=None).plan
        out[f"{path}@{target}"] = plan and plan.digest
print(json.dumps(out))
"""


def test_digests_do_not_depend_on_the_process_hash_seed() -> None:
    """Set and dict order vary with PYTHONHASHSEED; a plan must not."""
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        env = {k: v for k, v in env.items() if not k.startswith("CAPIBARA_")}
        done = subprocess.run([sys.executable, "-c", _DIGESTS % (TARGET_NAMES[1:],)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]
    assert sum(digest is not None for digest in runs[0].values()) >= len(BUNDLED)


# --------------------------------------------------------------------------- passes


def ir_problems(ir: Lowered, before: Lowered | None, stage: str) -> list[str]:
    """Why ``ir`` (after ``stage``) is not a valid IR; ``before`` is the IR the stage received.

    Valid: the config is untouched; decisions are only appended; what was
    resolved (model, mesh, batch, memory) stays resolved; the mesh has one
    size of at least 1 per axis and fits the target; every kernel names a
    known implementation, has calls, and shapes whose dimensions are
    positive integers or known symbols and dtypes that are dtypes or
    policy placeholders; no call site is lost except by pruning (and the
    collectives ``sharded-step`` drops, each with its decision), and merged
    sites stay listed in ``uses``.
    """
    problems = []
    if before is not None:
        if ir.config is not before.config:
            problems.append("the config changed")
        if ir.decisions[:len(before.decisions)] != before.decisions:
            problems.append("earlier decisions were changed or dropped")
        for name in ("model", "mesh", "batch", "memory"):
            if getattr(before, name) is not None and getattr(ir, name) is None:
                problems.append(f"{name} was resolved and is not any more")
        sites = {s for u in ir.kernels for s in (u.uses or (u.site,))}
        lost = {s for u in before.kernels for s in (u.uses or (u.site,))} - sites
        if stage == "sharded-step":  # drops collectives where XLA partitions the step, saying so
            collective = {s for u in before.kernels if u.family == "collective"
                          for s in (u.uses or (u.site,))}
            said = {d.path.removeprefix("kernels.") for d in ir.decisions[len(before.decisions):]}
            lost -= collective & said
        if lost and stage != "prune-disabled":
            problems.append(f"kernel sites lost: {sorted(lost)}")
    if ir.mesh is not None:
        if len(ir.mesh.shape) != len(ir.mesh.axes) or not set(ir.mesh.axes) <= set(MESH_AXES) \
                or min(ir.mesh.shape, default=1) < 1:
            problems.append(f"bad mesh {ir.mesh}")
        elif ir.mesh.devices > ir.target.device_count:
            problems.append(f"mesh {ir.mesh.shape} needs more than {ir.target.device_count} devices")
    if ir.batch is not None and ir.batch < 1:
        problems.append(f"batch {ir.batch}")
    for use in ir.kernels:
        if use.implementation != "reference" and (use.family, use.implementation) not in SELECTORS:
            problems.append(f"{use.site}: unknown implementation {use.implementation}")
        if use.calls_per_step < 1:
            problems.append(f"{use.site}: {use.calls_per_step} calls per step")
        for name, shape in use.shapes.items():
            for dim in shape:
                if isinstance(dim, str) and dim not in SYMBOLS or isinstance(dim, int) and dim < 1:
                    problems.append(f"{use.site}.{name}: dimension {dim!r}")
        for name, dtype in use.dtypes.items():
            if dtype not in DTYPES and dtype not in DTYPE_SYMBOLS:
                problems.append(f"{use.site}.{name}: dtype {dtype!r}")
    return problems


def _check_every_stage(config, target) -> tuple[object, list[tuple[str, Lowered]]]:
    seen: list[tuple[str, Lowered]] = []
    result = compile_config(config, target, callback=lambda stage, ir, _: seen.append((stage, ir)))
    previous = None
    # a stage that reports an error may leave an invalid IR: the driver stops there
    for stage, ir in seen if result.plan is not None else seen[:-1]:
        assert ir_problems(ir, previous, stage) == [], stage
        previous = ir
    return result, seen


@given(small_configs(), st.sampled_from(TARGET_NAMES))
def test_every_pass_keeps_the_ir_valid(config, target) -> None:
    result, seen = _check_every_stage(config, target)
    if result.plan is None:
        return
    assert [stage for stage, _ in seen] == ["lower", *(p.name for p in DEFAULT_PIPELINE)]
    final = seen[-1][1]
    assert all(isinstance(d, int) for u in final.kernels for s in u.shapes.values() for d in s)
    assert all(d not in DTYPE_SYMBOLS for u in final.kernels for d in u.dtypes.values())
    assert decode_plan(encode_plan(result.plan)) == result.plan


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_pass_keeps_the_bundled_configs_valid(path: Path) -> None:
    from capibara.config.sources import resolve_config

    config = resolve_config([path], env=None).config
    for target in TARGET_NAMES:
        _check_every_stage(config, target)
