"""The command line's contract: verbs, exit statuses, output formats."""

from __future__ import annotations

import io
import subprocess
import sys


import capibara.cli.app as cli


from capibara.compiler import check as pipeline
from capibara.codes import CODES


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = cli.main(list(argv), out=out)
    return status, out.getvalue()


def test_explain_prints_the_table_entry() -> None:
    status, text = run("explain", "p001")
    assert status == 0
    assert text.startswith("P001: file not found\n\n")
    assert CODES["P001"].explanation in text


def test_explain_unknown_code_is_a_usage_error(capsys) -> None:
    status, _ = run("explain", "P00l")
    assert status == cli.EXIT_USAGE
    assert "`P00l` is not a diagnostic code, a config field or a plan file" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys) -> None:
    assert run("frobnicate")[0] == cli.EXIT_USAGE
    assert run("check")[0] == cli.EXIT_USAGE
    assert "error:" in capsys.readouterr().err


def test_targets_marks_the_detected_host() -> None:
    status, text = run("targets")
    assert status == 0
    assert "tpu_v4-32" in text and "gpu-h100" in text
    marked = [line for line in text.splitlines() if line.startswith("*  ")]
    assert len(marked) == 1
    assert "* detected host:" in text


def test_internal_error_has_a_header_and_exit_70(monkeypatch, capsys) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "check", broken)
    status, _ = run("check", "x.toml")
    assert status == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("internal error: RuntimeError: boom\n")
    assert "Traceback" not in err


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "capibara", "explain", "P001"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("P001: file not found")


def test_explain_a_field_by_flat_name_or_path() -> None:
    status, by_name = run("explain", "vq_codes")
    assert status == 0
    assert by_name.startswith("vq_codes (V2):")
    assert "[vector_quantization] codes" in by_name and "CAPIBARA_VQ_CODES" in by_name
    assert run("explain", "vector_quantization.codes")[1] == by_name


def test_schema_prints_json_schema_of_every_section() -> None:
    import json

    status, text = run("schema")
    assert status == 0
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    codes = schema["properties"]["vector_quantization"]["properties"]["codes"]
    assert codes["enum"] == [64, 128]


def test_migrate_prints_v3_and_write_rewrites_atomically(tmp_path, capsys) -> None:
    from pathlib import Path

    from capibara import toml
    from capibara.config.legacy import find_legacy_paths

    legacy = Path(__file__).resolve().parents[2] / "configs" / "legacy" / "v2_tpu_600m.toml"
    status, text = run("migrate", str(legacy))
    assert status == 0
    assert find_legacy_paths(toml.loads(legacy.read_text())), "the fixture must be legacy"
    assert not find_legacy_paths(toml.loads(text))
    assert "[L001]" in capsys.readouterr().err
    copy = tmp_path / "old.toml"
    copy.write_text(legacy.read_text())
    assert run("migrate", "--write", str(copy))[0] == 0
    assert copy.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["old.toml"]  # no temp file left behind
    assert run("migrate", "--write", str(copy))[0] == 0
    assert "nothing to migrate" in capsys.readouterr().err


def test_check_runtime_updates() -> None:
    config = "production/tpu_v4.toml"  # the bundled preset, from any directory
    ok, _ = run("check", "--no-env", "--runtime", "temperature=0.5", config)
    assert ok == 0
    status, text = run("check", "--no-env", "--runtime", "hidden_size=1024", config)
    assert status == 1
    assert "error[S501]: `hidden_size` cannot change at run time" in text


def _verbs_of(parser) -> dict:
    (action,) = [a for a in parser._actions if a.dest == "verb"]
    return action.choices


def test_a_run_parses_with_its_own_verb_alone_and_help_lists_every_verb() -> None:
    every = _verbs_of(cli.build_parser())
    assert list(every) == [name for names, _ in cli._VERBS for name in names]
    for names, _ in cli._VERBS:
        for name in names:
            alone = _verbs_of(cli.build_parser(name))
            assert list(alone) == list(names)
            # the verb's own parser is the one the full parser holds: same help, same options
            assert alone[name].format_help() == every[name].format_help()
    assert list(_verbs_of(cli.build_parser("nonsense"))) == list(every)
    assert list(_verbs_of(cli.build_parser("--help"))) == list(every)


def test_check_of_an_integer_past_pythons_digit_limit_is_a_diagnostic(tmp_path, capsys) -> None:
    config = tmp_path / "huge.toml"
    config.write_text("[model]\nhidden_size = " + "9" * 5000 + "\n")
    assert cli.main(["check", "--no-env", str(config)]) == 1
    assert "error[P106]" in capsys.readouterr().out
