"""Golden plans: every bundled config × a representative target of each family.

Each ``tests/plan/golden_plans/matrix/CONFIG--TARGET.txt`` holds what compiling
``configs/.../CONFIG.toml`` for ``TARGET`` (no environment) gives: every
diagnostic as one line, then, when it compiles, the plan's summary (without
its digest, so an unrelated change elsewhere in the plan shows up only in the
full views). ``tests/plan/golden_plans/views/*.txt`` hold the full flat view of a
few plans, digest included. ``pytest --update-golden`` rewrites them all;
review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from capibara.compiler.driver import compile_sources, one_line
from capibara.plan import flat_view, summary
from capibara.targets import CATALOG, get_target

import msgspec

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden_plans"
CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.toml"))
#: One or two of each family: TPU v4 (one host and a slice), TPU v6e, GPU (one and eight),
#: and the three CPU kinds. Catalog entries, never the detected host, so goldens do not
#: depend on the machine running them.
TARGETS = ("tpu_v4-8", "tpu_v4-32", "tpu_v6e-8", "gpu-h100", "gpu-a100x8", "cpu", "cpu-amx", "cpu-arm")

#: Full views: the seed's production file with the mesh left to the compiler, the
#: development file on this machine's kind of CPU, and the TPU v6 enterprise file.
VIEWS = {
    "tpu_v4-auto-mesh--tpu_v4-32": (["configs/production/tpu_v4.toml"], "tpu_v4-32",
                                    {"tpu_mesh_shape": "auto"}),
    "development--cpu-amx": (["configs/development/development.toml"], "cpu-amx", {}),
    "tpu_v6_vq_v33--tpu_v6e-8": (["configs/specialized/tpu_v6_vq_v33.toml"], "tpu_v6e-8", {}),
}


def target(name: str):
    return CATALOG[name] if name in CATALOG else get_target(name)


def compile_text(paths: list[str], target_name: str) -> str:
    result = compile_sources(paths, target=target(target_name), env=None)
    lines = [f"# capibara compile --no-env {' '.join(paths)} --target {target_name}",
             f"status: {'ok' if result.plan else 'error'}"]
    lines += [one_line(d) for d in result.diagnostics]
    if result.plan is not None:
        lines += [line for line in summary(result.plan).splitlines()
                  if not line.startswith("digest")]
    return "\n".join(lines) + "\n"


def check_golden(path: Path, actual: str, request) -> None:
    if request.config.getoption("--update-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"no {path.name}: run pytest --update-golden and review it"
    assert actual == path.read_text()


CASES = [(c, t) for c in CONFIGS for t in TARGETS]


@pytest.mark.parametrize("config, target_name", CASES,
                         ids=[f"{Path(c).stem}--{t}" for c, t in CASES])
def test_matrix(config: str, target_name: str, monkeypatch, request) -> None:
    monkeypatch.chdir(ROOT)
    actual = compile_text([config], target_name)
    check_golden(GOLDEN / "matrix" / f"{Path(config).stem}--{target_name}.txt", actual, request)


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_full_view(name: str, monkeypatch, request) -> None:
    monkeypatch.chdir(ROOT)
    paths, target_name, keywords = VIEWS[name]
    result = compile_sources(paths, target=target(target_name), env=None, keywords=keywords)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    lines = [f"{path} = {msgspec.json.encode(value).decode()}"
             for path, value in flat_view(result.plan)]
    check_golden(GOLDEN / "views" / f"{name}.txt", "\n".join(lines) + "\n", request)


def test_the_seed_mesh_fails_on_v4_32_with_the_suggested_fix(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    text = compile_text(["configs/production/tpu_v4.toml"], "tpu_v4-32")
    assert "status: error" in text and "error[H017]" in text


def test_every_config_compiles_for_some_target(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    for config in CONFIGS:
        assert any(compile_sources([config], target=target(t), env=None).plan for t in TARGETS), config
