"""The plan verbs as a user runs them: compile, diff, explain PLAN, check PLAN."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import capibara.cli.app as cli

from capibara.compiler import check as pipeline
from capibara.plan import decode_plan, load_plan_file

ROOT = Path(__file__).resolve().parents[2]
DEV = str(ROOT / "configs/development/development.toml")
ARM = str(ROOT / "configs/specialized/arm_axion_inference.toml")


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.setattr(pipeline, "ENVIRON", {})


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def test_compile_writes_stem_plan_json_in_the_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    status, text = run("compile", DEV, "--target", "tpu_v4-8")
    assert status == 0
    plan = load_plan_file(tmp_path / "development.plan.json")
    assert plan.target.name == "tpu_v4-8"
    assert f"compiled {DEV} → development.plan.json\n" in text
    for line in ("target     tpu_v4-8", "mesh       [4, 1]", "precision  params float32",
                 "memory ", "kernels", "  blocks.attention   attention/pallas_tpu"):
        assert line in text
    assert "warning[V055]" in text and "warnings   1" in text


def test_compile_msgpack_by_format(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("compile", DEV, "--target", "cpu-amx", "--format", "msgpack")[0] == 0
    assert load_plan_file(tmp_path / "development.plan.msgpack").target.name == "cpu-amx"


def test_compile_to_stdout_keeps_stdout_for_the_plan() -> None:
    proc = subprocess.run([sys.executable, "-m", "capibara", "compile", "--no-env", DEV,
                           "--target", "cpu-amx", "-o", "-"], cwd=ROOT, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    plan = decode_plan(proc.stdout)
    assert plan.target.name == "cpu-amx"
    assert b"warning[V055]" in proc.stderr and b"compiled" in proc.stderr


def test_compile_errors_exit_1_and_write_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    status, text = run("compile", str(ROOT / "configs/production/tpu_v4.toml"), "--target",
                       "tpu_v4-32")
    assert status == 1 and "error[H017]" in text
    assert list(tmp_path.iterdir()) == []


def test_compile_json_messages(tmp_path) -> None:
    status, text = run("compile", DEV, "--target", "tpu_v4-8", "-o", str(tmp_path / "p.plan.json"),
                       "--message-format", "json")
    assert status == 0
    (line,) = text.splitlines()
    assert json.loads(line)["code"] == "V055"


def test_unknown_target(tmp_path) -> None:
    status, text = run("compile", DEV, "--target", "tpu_v4-31", "-o", str(tmp_path / "p.plan.json"))
    assert status == 1 and "error[H001]: unknown target `tpu_v4-31`" in text


def test_print_after_unknown_stage_is_a_usage_error(capsys) -> None:
    assert run("compile", DEV, "--print-after", "lowr")[0] == cli.EXIT_USAGE
    assert "unknown stage `lowr`" in capsys.readouterr().err


def test_diff_of_two_configs_and_of_a_plan_with_itself(tmp_path) -> None:
    plan = str(tmp_path / "d.plan.json")
    assert run("compile", DEV, "--target", "tpu_v4-8", "-o", plan)[0] == 0
    assert run("diff", plan, plan) == (0, "no differences\n")
    status, text = run("diff", DEV, ARM, "--target", "cpu-arm")
    assert status == 1
    assert "config.vector_quantization.precision: \"auto\" → \"int8\"\n" in text
    assert "    default → file " in text


def test_explain_plan_path_and_summary(tmp_path) -> None:
    plan = str(tmp_path / "d.plan.json")
    run("compile", DEV, "--target", "tpu_v4-8", "-o", plan)
    status, text = run("explain", plan, "model.hidden_size")
    assert status == 0
    assert text.startswith("model.hidden_size = 512\n  from: file ")
    assert run("explain", plan)[1].startswith("target     tpu_v4-8")
    assert run("explain", "P001")[1].startswith("P001: file not found")


def test_explain_unknown_path(tmp_path, capsys) -> None:
    plan = str(tmp_path / "d.plan.json")
    run("compile", DEV, "--target", "tpu_v4-8", "-o", plan)
    assert run("explain", plan, "model.hiden_size")[0] == cli.EXIT_USAGE
    assert "did you mean `model.hidden_size`" in capsys.readouterr().err


def test_check_verifies_plan_files(tmp_path) -> None:
    plan = tmp_path / "d.plan.json"
    run("compile", DEV, "--target", "tpu_v4-8", "-o", str(plan))
    assert run("check", str(plan)) == (0, f"ok: {plan}\n")
    edited = tmp_path / "e.plan.json"
    edited.write_text(plan.read_text().replace('"global_size": 32', '"global_size": 64'))
    status, text = run("check", str(edited))
    assert status == 1 and "error[R105]" in text
    shutil.copy(plan, tmp_path / "copy.plan.json")
    assert run("check", str(tmp_path / "copy.plan.json"))[0] == 0
