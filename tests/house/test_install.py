"""A non-editable install works: the wheel carries grammar/ and configs/.

Builds the wheel from this checkout (hatchling is a test extra, so no
download), installs it into a scratch directory and runs the CLI from
another working directory, so nothing can come from the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(work / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = (work / "dist").glob("capibara-*.whl")
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(wheel)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONSAFEPATH": "1"}
    return wheel, {"target": str(target), **env}


def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capibara", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)


def test_wheel_carries_grammar_and_configs(installed) -> None:
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "capibara/_data/grammar/toml.lark" in names
    assert "capibara/_data/configs/production/tpu_v4.toml" in names


def test_installed_package_checks_a_bundled_config_elsewhere(installed, tmp_path) -> None:
    _, env = installed
    target = Path(env["target"])
    where = subprocess.run([sys.executable, "-c", "import capibara; print(capibara.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(target)
    bundled = target / "capibara" / "_data" / "configs" / "production" / "tpu_v4.toml"
    proc = _run(env, tmp_path, "check", "--no-env", str(bundled))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installed_package_finds_presets_by_name(installed, tmp_path) -> None:
    _, env = installed
    for name in ("production/tpu_v4.toml", "capibara/config/configs_toml/production/tpu_v4.toml"):
        proc = _run(env, tmp_path, "check", "--no-env", name)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.startswith("ok:"), proc.stdout
