"""Golden diagnostics: what a user sees for each bad input, exactly.

Each ``tests/golden/NAME.toml`` (or ``NAME.plan.json``) is run as
``capibara check tests/golden/NAME.toml`` from the repository root; the printed
text (standard output, then standard error) plus the exit status must equal
``NAME.out``. Leading comment lines of a ``.toml`` (or the lines of a sidecar
``NAME.args`` file, for plans) may carry directives:

    # capibara-verb: run
    # capibara-args: --target tpu_v4-32
    # capibara-env: CAPIBARA_VQ_CODES=96

The run sees only the directive's environment variables, never the caller's.
``pytest --update-golden`` rewrites the ``.out`` files; review them in the diff.
"""

from __future__ import annotations

import io
import os
import shlex
from pathlib import Path

import pytest

import capibara.cli.app as cli

from capibara.compiler import check as pipeline
from capibara.codes import CODES

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
CASES = sorted([*GOLDEN.glob("*.toml"), *GOLDEN.glob("*.plan.json")])


def stem(path: Path) -> str:
    return path.name.removesuffix(".plan.json").removesuffix(".toml")


def expected_path(path: Path) -> Path:
    return path.with_name(stem(path) + ".out")


def directives(path: Path) -> tuple[str, list[str], dict[str, str]]:
    verb = "check"
    args: list[str] = []
    env: dict[str, str] = {}
    sidecar = path.with_name(stem(path) + ".args")
    source = sidecar if sidecar.exists() else path
    for line in source.read_bytes().decode("utf-8", "replace").splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if body.startswith("capibara-verb:"):
            verb = body.split(":", 1)[1].strip()
        elif body.startswith("capibara-args:"):
            args += shlex.split(body.split(":", 1)[1])
        elif body.startswith("capibara-env:"):
            name, _, value = body.split(":", 1)[1].strip().partition("=")
            env[name] = value
    return verb, args, env


def run_case(path: Path, monkeypatch, capsys) -> str:
    verb, args, env = directives(path)
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(pipeline, "ENVIRON", env)
    capsys.readouterr()
    out = io.StringIO()
    status = cli.main([verb, *args, os.path.relpath(path, ROOT)], out=out)
    return f"{out.getvalue()}{capsys.readouterr().err}exit status: {status}\n"


#: Verbs that load a plan onto a device: their cases import JAX (not in `make test-fast`).
DEVICE_VERBS = frozenset({"run", "train", "serve"})


def case(path: Path):
    marks = [pytest.mark.jax] if directives(path)[0] in DEVICE_VERBS else []
    return pytest.param(path, id=stem(path), marks=marks)


@pytest.mark.parametrize("path", [case(p) for p in CASES])
def test_golden(path: Path, monkeypatch, capsys, request) -> None:
    actual = run_case(path, monkeypatch, capsys)
    expected = expected_path(path)
    if request.config.getoption("--update-golden"):
        expected.write_text(actual)
    assert expected.exists(), f"no {expected.name}: run pytest --update-golden and review it"
    assert actual == expected.read_text()


@pytest.mark.parametrize("path", CASES, ids=[stem(p) for p in CASES])
def test_golden_case_emits_its_code(path: Path) -> None:
    code = stem(path).split("-", 1)[0]
    assert code in CODES, f"{path.name} is named after unknown code {code}"
    text = expected_path(path).read_text()
    assert f"[{code}]" in text, f"{path.name} does not emit {code}"


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_explanation_and_golden_case(code: str) -> None:
    entry = CODES[code]
    assert entry.title and entry.explanation.strip(), f"{code} lacks an explanation"
    assert entry.title[0].islower() or entry.title[0].isdigit() or entry.title[:1] == "`", entry.title
    assert [p for p in CASES if stem(p).startswith(f"{code}-")], \
        f"{code} has no golden case tests/golden/{code}-*.toml (or .plan.json)"
