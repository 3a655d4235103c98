"""Golden diagnostics: what a user sees for each bad input, exactly.

Each ``tests/golden/NAME.toml`` is run as ``capibara check tests/golden/NAME.toml``
from the repository root; the printed text plus the exit status must equal
``NAME.out``. Leading comment lines may carry directives:

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

from capibara import cli, pipeline
from capibara.codes import CODES

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
CASES = sorted(GOLDEN.glob("*.toml"))


def directives(path: Path) -> tuple[list[str], dict[str, str]]:
    args: list[str] = []
    env: dict[str, str] = {}
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if body.startswith("capibara-args:"):
            args += shlex.split(body.split(":", 1)[1])
        elif body.startswith("capibara-env:"):
            name, _, value = body.split(":", 1)[1].strip().partition("=")
            env[name] = value
    return args, env


def run_case(path: Path, monkeypatch) -> str:
    args, env = directives(path)
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(pipeline, "ENVIRON", env)
    out = io.StringIO()
    status = cli.main(["check", *args, os.path.relpath(path, ROOT)], out=out)
    return f"{out.getvalue()}exit status: {status}\n"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path, monkeypatch, request) -> None:
    actual = run_case(path, monkeypatch)
    expected_path = path.with_suffix(".out")
    if request.config.getoption("--update-golden"):
        expected_path.write_text(actual)
    assert expected_path.exists(), f"no {expected_path.name}: run pytest --update-golden and review it"
    assert actual == expected_path.read_text()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_emits_its_code(path: Path) -> None:
    code = path.stem.split("-", 1)[0]
    assert code in CODES, f"{path.name} is named after unknown code {code}"
    text = path.with_suffix(".out").read_text()
    assert f"[{code}]" in text, f"{path.name} does not emit {code}"


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_explanation_and_golden_case(code: str) -> None:
    entry = CODES[code]
    assert entry.title and entry.explanation.strip(), f"{code} lacks an explanation"
    assert entry.title[0].islower() or entry.title[0].isdigit() or entry.title[:1] == "`", entry.title
    assert list(GOLDEN.glob(f"{code}-*.toml")), f"{code} has no golden case tests/golden/{code}-*.toml"
