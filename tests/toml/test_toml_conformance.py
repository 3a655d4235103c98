"""capibara.toml against the toml-test suite (TOML 1.0 cases).

Every valid case must decode to exactly the expected value (types included:
an integer is not a float, a local date-time is not an offset one, NaN is
NaN), and every invalid case must raise ConfigError.  The suite lives beside
the repository in ``shared/toml-test`` (``CAPIBARA_TOML_TEST_DIR`` overrides).
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, time
from pathlib import Path

import pytest

from capibara import toml
from capibara.diagnostics import ConfigError
from capibara.testing.strategies import same_toml_value


def _suite_dir() -> Path:
    configured = os.environ.get("CAPIBARA_TOML_TEST_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "shared" / "toml-test"


SUITE = _suite_dir()
VALID = sorted((SUITE / "valid").glob("**/*.toml"))
INVALID = sorted((SUITE / "invalid").glob("**/*.toml"))
pytestmark = pytest.mark.skipif(
    not VALID and not os.environ.get("CAPIBARA_REQUIRE_SHARED"),
    reason=f"toml-test suite not found at {SUITE}: a full checkout has it in ../shared "
           "(or set CAPIBARA_TOML_TEST_DIR)")


def test_the_suite_is_there() -> None:
    """With CAPIBARA_REQUIRE_SHARED set (CI), a missing suite fails instead of skipping."""
    assert VALID and INVALID, f"toml-test suite not found at {SUITE}"


def _ids(paths: list[Path], kind: str) -> list[str]:
    return [str(p.relative_to(SUITE / kind).with_suffix("")) for p in paths]


def decode_tagged(node):
    """toml-test's tagged JSON (``{"type": "integer", "value": "1"}``) to Python values."""
    if isinstance(node, list):
        return [decode_tagged(item) for item in node]
    if set(node) == {"type", "value"} and isinstance(node["type"], str) \
            and isinstance(node["value"], str):
        kind, text = node["type"], node["value"]
        if kind == "string":
            return text
        if kind == "integer":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return {"true": True, "false": False}[text]
        if kind in ("datetime", "datetime-local"):
            # fromisoformat wants an upper-case T and Z, at most 6 fraction digits.
            value = datetime.fromisoformat(_six_digit_fraction(text.upper()))
            assert (value.tzinfo is None) == (kind == "datetime-local"), text
            return value
        if kind == "date-local":
            return date.fromisoformat(text)
        if kind == "time-local":
            return time.fromisoformat(_six_digit_fraction(text))
        raise AssertionError(f"unknown toml-test type {kind!r}")
    return {key: decode_tagged(value) for key, value in node.items()}


def _six_digit_fraction(text: str) -> str:
    if "." not in text:
        return text
    head, _, rest = text.partition(".")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    return f"{head}.{rest[:min(digits, 6)].ljust(6, '0')}{rest[digits:]}"


@pytest.mark.parametrize("path", VALID, ids=_ids(VALID, "valid"))
def test_valid(path: Path) -> None:
    expected = decode_tagged(json.loads(path.with_suffix(".json").read_text(encoding="utf-8")))
    assert same_toml_value(toml.load(path), expected)


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID, "invalid"))
def test_invalid(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        toml.load(path)
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.code.startswith("P")
    assert diagnostic.span is not None, "a syntax or structure error points into the file"
    # house style (DESIGN.md section 2), and no lark internals shown
    assert re.match(r"[a-z0-9`]", diagnostic.message) and not diagnostic.message.endswith(".")
    assert not re.search(r"__ANON|\$END|\b(?:[A-Z]+_)+[A-Z]+\b", str(caught.value))
