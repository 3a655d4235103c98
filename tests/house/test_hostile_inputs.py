"""Hostile inputs finish or are refused with a diagnostic, fast and in little memory.

The measured cases are those of ``fuzz/hostile.py`` (each in a fresh process,
peak RSS from ``resource.getrusage``); ``python fuzz/hostile.py`` prints the
figures for all of them. The limits asserted here are loose (the machine is
shared) but far below what the unguarded code took: 100,000 unknown keys
took 51 s before unknown names were capped, and a 50 MB file would have been
read whole and parsed for minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from capibara import toml
from capibara.compiler.driver import compile as compile_config
from capibara.diagnostics import ConfigError
from capibara.plan import decode_plan, encode_plan
from capibara.config.sources import read_env, resolve_config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fuzz"))
import hostile  # noqa: E402

#: case -> (what it must end in, seconds allowed, MiB of peak RSS allowed above the baseline)
CASES = {
    "file-50mb": ("1 errors: P003", 5, 50),
    "string-10mb-file": ("1 errors: P003", 5, 50),
    "nesting-10k-arrays": ("1 errors: P113", 5, 100),
    "nesting-10k-tables": ("1 errors: P113", 5, 100),
    "nesting-10k-keys": ("1 errors: P113", 5, 100),
    "string-10mb-loads": ("parsed", 10, 200),
    "keys-100k": ("101 errors: S102", 20, 300),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_case_is_quick_and_small(name: str) -> None:
    outcome, seconds, memory = CASES[name]
    row = hostile.run_isolated(name, timeout=120)
    assert row["outcome"] == outcome
    assert row["seconds"] < seconds, row
    assert row["peak_rss_mib"] - row["baseline_rss_mib"] < memory, row


#: front case -> what it must end in (each in a fresh process under hostile.py's bounds)
FRONT_CASES = {
    "fifo-config": "exit 1: P003",
    "fifo-migrate": "exit 1: P003",
    "dev-zero-config": "exit 1: P003",
    "sparse-1gib-config": "exit 1: P003",
    "symlink-loop-config": "exit 1: P003 (a loop)",
    "output-special": "exit 1: P004; FIFO kept; /dev/null: P004",
    "output-is-input": "exit 1: P004; config kept",
}


@pytest.mark.parametrize("name", sorted(FRONT_CASES))
def test_special_file_case_meets_its_bounds(name: str) -> None:
    row = hostile.run_front_isolated(name)
    assert row["outcome"] == FRONT_CASES[name], row
    assert row["seconds"] < 5, row


def test_an_endless_file_is_refused_without_reading_it() -> None:
    with pytest.raises(ConfigError) as info:
        toml.parse_file("/dev/zero")
    assert [d.code for d in info.value.diagnostics] == ["P003"]
    assert "a character device, not a regular file" in info.value.diagnostics[0].message


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    with open(path, "wb") as handle:  # sparse: 1 GiB on paper, nothing on disk
        handle.truncate(1 << 30)
    with pytest.raises(ConfigError) as info:
        toml.parse_file(path)
    assert [d.code for d in info.value.diagnostics] == ["P003"]
    assert "larger than 1 MiB" in info.value.diagnostics[0].message


def test_a_file_just_under_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"# " + b"x" * (toml.MAX_FILE_BYTES - 4) + b"\n")
    assert toml.load(path) == {}


def test_unknown_names_past_the_cap_are_counted_in_one_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[model]\n" + "".join(f"k{i} = 1\n" for i in range(250)) + "[zz]\n")
    with pytest.raises(ConfigError) as info:
        resolve_config([path], env=None)
    found = info.value.diagnostics
    assert len(found) == 101
    assert found[-1].message == "`k100` and 150 more unknown keys or sections are not listed"
    assert found[-1].span.text == "k100"


# --------------------------------------------------------------------------- bytes that are not UTF-8


def test_set_and_env_values_that_are_not_utf8_are_refused() -> None:
    # Python hands undecodable argv/environ bytes over as lone surrogates
    with pytest.raises(ConfigError) as info:
        resolve_config([], env=None, overrides=['model_name="caf\udce9"'])
    (d,) = info.value.diagnostics
    assert (d.code, d.message) == ("P002", "`--set` argument is not valid UTF-8: byte 0xe9")
    assert d.span.text == "\ufffd"
    (d,) = read_env({"CAPIBARA_VQ_CODES": "6\udcff4"}).diagnostics
    assert (d.code, d.span.column) == ("P002", len("CAPIBARA_VQ_CODES=6") + 1)


def test_a_config_at_a_path_that_is_not_utf8_compiles_to_a_writable_plan(tmp_path: Path) -> None:
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.toml")
    with open(path, "wb") as handle:
        handle.write(b"[model]\nmodel_name = \"x\"\n")
    plan = compile_config(os.fsdecode(path), target="cpu", env=None)
    assert decode_plan(encode_plan(plan)) == plan
    assert "caf\ufffd.toml" in plan.provenance["model.model_name"].file


def test_cli_prints_undecodable_names_on_a_strict_utf8_stdout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPIBARA_")}
    env.update(PYTHONIOENCODING="utf-8", PYTHONPATH=str(ROOT), CAPIBARA_VQ_CODES="6\udcff4")
    args = [sys.executable, "-m", "capibara", "check", os.fsdecode(b"missing\xe9.toml"),
            "--set", os.fsdecode(b"model_name=caf\xe9")]
    done = subprocess.run([os.fsencode(a) for a in args], cwd=tmp_path, capture_output=True,
                          env={k: os.fsencode(v) for k, v in env.items()}, timeout=60)
    assert done.returncode == 1, done.stderr
    out = done.stdout.decode("utf-8")
    assert "error[P001]: file `missing\\udce9.toml` not found" in out
    assert out.count("error[P002]") == 2
