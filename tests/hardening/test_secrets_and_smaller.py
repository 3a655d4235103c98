"""Secrets in the environment, and the smaller findings of the hardening review."""

from __future__ import annotations

from pathlib import Path

import pytest

from capibara import toml
from capibara.compiler import compile_config
from capibara.config import ModularModelConfig
from capibara.config.sources import read_env, resolve_config
from capibara.config.validate import get_validation_errors
from capibara.diagnostics import ConfigError, render

SECRET = "sk-live-4242-do-not-print"


@pytest.mark.parametrize("masking", ["true", "false"])
def test_unknown_variables_are_named_never_shown(monkeypatch, run, tmp_path: Path,
                                                 masking: str) -> None:
    from capibara.compiler import check as pipeline

    config = tmp_path / "c.toml"
    config.write_text(f"[enterprise]\nsensitive_data_masking = {masking}\n")
    monkeypatch.setattr(pipeline, "ENVIRON", {"CAPIBARA_API_KEY": SECRET,
                                              "CAPIBARA_VQ_CODE": SECRET})
    for fmt in ("human", "json"):
        status, out = run("check", config, "--message-format", fmt)
        assert "CAPIBARA_API_KEY" in out and "CAPIBARA_VQ_CODE" in out
        assert SECRET not in out and "sk-live" not in out


def test_an_unknown_variable_with_undecodable_value_is_only_a_warning() -> None:
    found = read_env({"CAPIBARA_TOKEN": "\udcff" + SECRET}).diagnostics
    assert [d.code for d in found] == ["S104"]
    assert SECRET not in render(found[0]) and "not shown" in render(found[0])


def test_runtime_errors_are_labelled_runtime_not_set(run) -> None:
    status, out = run("check", "development/development.toml", "--runtime", "nosuch=1",
                      "--runtime", "x", "--runtime", "model.hidden_size=[")
    assert status == 1
    assert "--set" not in out
    assert "--> --runtime nosuch=1:1:1" in out and "`--runtime` needs `PATH=VALUE`" in out


def test_day_zero_says_days_start_at_one() -> None:
    with pytest.raises(ConfigError) as info:
        toml.loads("day = 1997-09-00")
    [error] = info.value.diagnostics
    assert error.code == "P107" and error.message == "1997-09-00 is not a date: days start at 01"
    assert error.span.text == "00" and "has 30 days" not in str(info.value)


@pytest.mark.parametrize("line, words", [
    ("learning_rate = 1e308", "`learning_rate` 1e+308 is far above the usual range"),
    ("epsilon = 5e-324", "`epsilon` 5e-324 is far below the usual range"),
    ("learning_rate = 1e-12", "`learning_rate` 1e-12 is far below the usual range"),
])
def test_extreme_optimizer_numbers_warn_at_the_value(tmp_path: Path, line: str,
                                                     words: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[training]\n{line}\n")
    [warning] = get_validation_errors(resolve_config([path], env=None).config)
    assert warning.code == "S206" and not warning.is_error and warning.message == words
    assert warning.span.text == line.split(" = ")[1] and "usually" in warning.help


def test_extreme_numbers_warn_whichever_way_the_config_is_built() -> None:
    config = ModularModelConfig(learning_rate=1e308)
    assert [d.code for d in get_validation_errors(config)] == ["S206"]
    assert [d.code for d in compile_config(config, "cpu").diagnostics] == ["S206"]


def test_usual_and_default_optimizer_numbers_do_not_warn(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[training]\nlearning_rate = 3e-4\nepsilon = 1e-6\n")
    assert get_validation_errors(resolve_config([path], env=None).config) == []
    assert get_validation_errors(ModularModelConfig()) == []
