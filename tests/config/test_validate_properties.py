"""Properties of the rule table over arbitrary configurations, and spans from files."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, strategies as st

from capibara.config import ModularModelConfig
from capibara.diagnostics import ConfigError, Severity, render
from capibara.config.sources import resolve_config
from capibara.targets import CATALOG
from capibara.testing.config_strategies import configs
from capibara.config.validate import RULES, check_hardware_compatibility, get_validation_errors
from capibara.config.validate.typical import TYPICAL_RANGES, UNUSUAL_VALUE

_TARGETS = st.sampled_from(["cpu", "cpu-arm", "gpu", "gpu-h100", "tpu_v4-8", "tpu_v4-32",
                            "tpu_v6e-8"])
_BY_CODE = {rule.code: rule for rule in RULES.values()}


def _build(kwargs):
    try:
        return ModularModelConfig(**kwargs)
    except ConfigError:
        return None  # an underivable num_heads: the schema's error, not a rule's


@given(configs(), _TARGETS, st.sampled_from([None, "train", "inference"]))
def test_rules_never_fail_and_stay_within_their_declaration(kwargs, target, mode) -> None:
    config = _build(kwargs)
    if config is None:
        return
    found = get_validation_errors(config, mode=mode)
    check = check_hardware_compatibility(config, CATALOG[target], mode=mode)
    assert check.compatible == (not check.errors)
    for d in found + check.diagnostics:
        if d.code == UNUSUAL_VALUE:  # one field at a time, not a rule
            assert set(d.fields) <= set(TYPICAL_RANGES) and not d.is_error, d.fields
        else:
            rule = _BY_CODE[d.code]
            assert set(d.fields) <= set(rule.fields), (d.code, d.fields)
            assert d.severity in rule.severities
        assert d.message and d.help
        render(d)  # renders without error
    # the hardware check never repeats what validation already said
    assert not set(check.diagnostics) & set(found)


@given(configs())
def test_validation_is_deterministic(kwargs) -> None:
    config = _build(kwargs)
    if config is not None:
        assert get_validation_errors(config) == get_validation_errors(config)


def test_primary_span_is_the_most_specific_field_and_others_are_labelled(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[model]\nhidden_size = 1024\n\n[vector_quantization]\nembedding_dim = 768\n")
    [error] = get_validation_errors(resolve_config([path], env=None).config)
    assert error.code == "V010" and error.severity is Severity.ERROR
    assert (error.span.line, error.span.text) == (5, "768")
    assert [(label.span.line, label.message) for label in error.labels] == [
        (5, "codebook vectors of size 768"), (2, "hidden states of size 1024")]


def test_a_value_from_the_environment_is_pointed_at_in_its_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[vector_quantization]\nenterprise_mode = true\n")
    config = resolve_config([path], env={"CAPIBARA_VQ_CODES": "64"}).config
    [error] = get_validation_errors(config)
    assert error.code == "V012"
    assert error.span.file == "$CAPIBARA_VQ_CODES" and error.span.text == "64"
    assert [label.span.file for label in error.labels[1:]] == [str(path)]
