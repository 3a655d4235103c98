"""Properties of the whole compile on any input, valid or not.

Whatever a file holds (a bundled config with a few characters changed, any
valid TOML, arbitrary bytes), compiling it either gives a plan or raises
:class:`ConfigError`; nothing else escapes. Every diagnostic on the way has
spans inside its source that sit on a whole key, value or header, and a key
it points at is the key its message names (:mod:`capibara.testing.spans`).
The parser-versus-tomllib properties live in ``test_toml_differential.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, strategies as st

from capibara import toml
from capibara.compiler.driver import compile as compile_config, compile_sources
from capibara.diagnostics import ConfigError, render_all, to_json
from capibara.config.legacy import migrate_toml
from capibara.config.model_config import ModularModelConfig
from capibara.testing.config_strategies import configs
from capibara.testing.spans import span_problems
from capibara.testing.strategies import mutations_of, toml_documents

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = sorted((ROOT / "configs").rglob("*.toml"))
TARGET_NAMES = [None, "cpu", "cpu-arm", "gpu-h100", "tpu_v4-32", "tpu_v6e-8"]
TARGETS = st.sampled_from(TARGET_NAMES)

#: Config texts as users write them: the bundled files and generated configs.
CONFIG_TEXTS = st.one_of(
    st.sampled_from([p.read_text(encoding="utf-8") for p in BUNDLED]),
    configs().map(lambda kwargs: ModularModelConfig(**kwargs).to_toml()),
)

#: Inputs of every kind: near-valid configs, arbitrary valid TOML, raw bytes.
FILES = st.one_of(
    mutations_of(CONFIG_TEXTS).map(lambda t: t.encode("utf-8", "surrogatepass")),
    toml_documents().map(str.encode),
    st.binary(max_size=200),
)


def _compile_bytes(data: bytes, target):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_bytes(data)
        result = compile_sources([path], target=target, env=None)
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
            documents = {str(path): toml.parse(text, source=str(path))}
        except (UnicodeDecodeError, ConfigError):
            documents = {}
        return result, documents


@given(FILES, TARGETS)
@example(b"[model]\nhidden_size = 768\nnum_heads = 7\n", "cpu")
@example(b"model_size = \"7b\"\nuse_quantum = true\n", "tpu_v4-32")
@example(b"\xff\xfe[model]", None)
def test_compile_gives_a_plan_or_diagnostics_on_whole_tokens(data: bytes, target) -> None:
    result, documents = _compile_bytes(data, target)
    assert (result.plan is None) == result.has_errors
    assert span_problems(result.diagnostics, documents) == []
    # what the CLI prints must be printable
    render_all(result.diagnostics).encode("utf-8")
    for d in result.diagnostics:
        to_json(d).encode("utf-8")


@given(mutations_of(CONFIG_TEXTS), TARGETS)
def test_compile_api_raises_only_config_error(text: str, target) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            plan = compile_config(path, target=target, env=None)
        except ConfigError as error:
            assert error.errors, "a ConfigError must carry at least one error"
            return
    assert plan.digest.startswith("sha256:")


@given(mutations_of(CONFIG_TEXTS))
def test_migrate_is_idempotent_on_any_file(text: str) -> None:
    """``migrate(migrate(x)) == migrate(x)`` beyond the v2 files of test_legacy_toml."""
    try:
        once, _ = migrate_toml(text, "c.toml")
    except ConfigError:
        return
    assert migrate_toml(once, "c.toml") == (once, ())


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(ROOT)))
def test_bundled_configs_point_at_whole_tokens_on_every_target(path: Path) -> None:
    for target in TARGET_NAMES:
        result, documents = _compile_bytes(path.read_bytes(), target)
        assert (result.plan is None) == result.has_errors
        assert span_problems(result.diagnostics, documents) == []


def test_the_span_oracle_catches_half_tokens_and_unnamed_keys() -> None:
    from capibara.diagnostics import Diagnostic

    doc = toml.parse('[model]\nhidden_size = 768\n', source="c.toml")
    value = doc.value_span(("model", "hidden_size"))
    key = doc.key_span(("model", "hidden_size"))
    good = Diagnostic.error("S202", "`hidden_size` is too large", value)
    half = Diagnostic.error("S202", "`hidden_size` is too large",
                            doc.source.span(value.start, value.end - 1))
    unnamed = Diagnostic.error("S102", "unknown key `num_layers`", key)
    assert span_problems([good], {"c.toml": doc}) == []
    assert "not a whole key" in span_problems([half], {"c.toml": doc})[0]
    assert "never names" in span_problems([unnamed], {"c.toml": doc})[0]
