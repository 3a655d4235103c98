"""The clean-check shortcut (`capibara.compiler.check.is_clean`) agrees with the full check.

`capibara check` first reads the files' values alone (tomllib, no TOML parser
loaded) and stops there when nothing is wrong. That is only right if a run
without places finds something exactly when the full run does: checked here
on every golden case (each has something to say), every bundled config (with
and without its own target), and the inputs where tomllib and capibara's
parser differ on purpose.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from capibara.compiler.check import check_config, is_clean
from capibara.diagnostics import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = sorted((ROOT / "tests" / "golden").glob("*.toml"))
CONFIGS = sorted((ROOT / "configs").rglob("*.toml"))


def _full_is_clean(files: list[str], **options) -> bool:
    try:
        return not check_config(files, env=None, **options)[0]
    except ConfigError:
        return False


def _options(path: Path) -> dict | None:
    """The `--target`, `--mode` and environment a golden case's directives give;
    ``None`` for a case whose problem is not in its file (another verb, `--set`,
    `--runtime`, another file named), which the shortcut does not decide."""
    options: dict = {"env": None}
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if body.startswith("capibara-verb:"):
            return None
        if body.startswith("capibara-args:"):
            args = shlex.split(body.split(":", 1)[1])
            for flag, name in (("--target", "target"), ("--mode", "mode")):
                if flag in args:
                    options[name] = args.pop(args.index(flag) + 1)
                    args.remove(flag)
            if args:
                return None
        elif body.startswith("capibara-env:"):
            name, _, value = body.split(":", 1)[1].strip().partition("=")
            options["env"] = {**(options["env"] or {}), name: value}
    return options


#: The golden cases whose problem is in the file (with the target, mode and environment given).
IN_FILE = [(p, o) for p in GOLDEN if (o := _options(p)) is not None]


@pytest.mark.parametrize("path,options", IN_FILE, ids=[p.stem for p, _ in IN_FILE])
def test_golden_cases_are_not_clean(path, options) -> None:
    options = dict(options)
    env = options.pop("env")
    assert is_clean([str(path)], env=env, **options) is False
    if env is None:
        assert _full_is_clean([str(path)], **options) is False


@pytest.mark.parametrize("target", [None, "tpu_v4-32", "cpu", "gpu-h100"])
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_bundled_configs_agree(path, target) -> None:
    files = [str(path)]
    assert is_clean(files, env=None, target=target) == _full_is_clean(files, target=target)


@pytest.mark.parametrize("text", [
    "[model]\nhidden_size = 9223372036854775808\n",   # beyond 64 bits: tomllib takes it
    "[model]\nhidden_size = -9223372036854775809\n",
    "x = " + "[" * 200 + "]" * 200 + "\n",           # deeper than MAX_NESTING
    "[model]\nhidden_size = 1024\nhidden_size = 1024\n",  # invalid TOML
    "[model]\nhidden_size = 1024\n",                # clean
])
def test_where_tomllib_and_capibara_differ(tmp_path, text) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    files = [str(path)]
    assert is_clean(files, env=None) == _full_is_clean(files)


def test_a_layered_stack_and_the_environment(tmp_path) -> None:
    base, top = tmp_path / "base.toml", tmp_path / "top.toml"
    base.write_text("[model]\nhidden_size = 1024\nnum_heads = 16\n")
    top.write_text("[model]\nhidden_size = 2047\n")  # 16 heads do not divide it
    files = [str(base), str(top)]
    assert is_clean(files, env=None) is False and _full_is_clean(files) is False
    top.write_text("[model]\nhidden_size = 2048\n")
    assert is_clean(files, env=None) is True and _full_is_clean(files) is True
    assert is_clean(files, env={"CAPIBARA_VQ_CODES": "96"}) is False
    assert is_clean(files, env=None, overrides=["model.num_layers=6"]) is False  # left to check
