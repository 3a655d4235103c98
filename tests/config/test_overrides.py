"""``--set PATH=VALUE``: TOML value syntax, paths, spans into the argument."""

from __future__ import annotations

import datetime
import re

import pytest

from capibara import toml
from capibara.diagnostics import Diagnostic
from capibara.config.overrides import Override, parse_override, read_overrides


def parsed(argument: str) -> Override:
    result = parse_override(argument)
    assert isinstance(result, Override), result
    return result


@pytest.mark.parametrize("argument, value", [
    ("sparsity.ratio=0.5", 0.5),
    ("tpu_mesh_shape=[4,4]", [4, 4]),
    ("tpu_mesh_shape=[ 4 , 8 , ]", [4, 8]),
    ('model_name="x y"', "x y"),
    ("model_name='C:\\raw'", "C:\\raw"),
    ("sparsity.method=topk", "topk"),                  # a bare word is a string
    ("model.version=v3.1.0", "v3.1.0"),
    ("use_vq=true", True),
    ("use_vq=trueish", "trueish"),                     # a word, not `true` + garbage
    ("vq_codes=0x40", 64),
    ("learning_rate=1e-4", 1e-4),
    ("a = {b = 1, c.d = [true]}", {"b": 1, "c": {"d": [True]}}),
    ("v=1979-05-27", datetime.date(1979, 5, 27)),
    ('model_name="""two\nlines"""', "two\nlines"),
])
def test_values_mean_what_they_mean_in_a_file(argument, value) -> None:
    override = parsed(argument)
    assert override.value == value and type(override.value) is type(value)
    # the same text as a TOML value gives the same Python value (bare words aside)
    text = argument.split("=", 1)[1].strip()
    bare_word = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.+-]*", text) and text not in ("true", "false")
    if not bare_word:
        assert toml.loads(f"x = {text}")["x"] == value


def test_spans_point_into_the_argument() -> None:
    override = parsed("sparsity . ratio = 0.5")
    assert override.path == "sparsity.ratio"
    assert override.value_span.text == "0.5"
    assert override.value_span.source.name == "--set sparsity . ratio = 0.5"
    assert override.path_span.text == "sparsity . ratio"


@pytest.mark.parametrize("argument, code, marked", [
    ("noequals", "S601", "noequals"),
    ("=3", "S601", "="),
    ("x=", "S601", "="),
    ("a b=3", "S601", "a b"),
    ("sparsity.ratio=0.5.1", "S601", "0.5.1"),
    ("model.version=1.2.3", "S601", "1.2.3"),
    ("x=[1,", "S601", "[1,"),
    ("n=99999999999999999999", "P106", "99999999999999999999"),  # the TOML parser's own check
])
def test_malformed_arguments(argument, code, marked) -> None:
    result = parse_override(argument)
    assert isinstance(result, Diagnostic)
    assert result.code == code and result.span.text == marked
    assert result.span.source.name == f"--set {argument}"


@pytest.mark.parametrize("argument, code, marked, help_part", [
    ("hiden_size=3", "S103", "hiden_size", "did you mean `hidden_size`?"),
    ("codes=128", "S103", "codes", "did you mean `vq_codes`?"),
    ("modle.hidden_size=3", "S101", "modle", "did you mean `model.hidden_size`?"),
    ("model.hiden_size=3", "S102", "hiden_size", "did you mean `hidden_size`?"),
    ("vector_quantization.vq_codes=128", "S102", "vq_codes", "is written `codes`"),
    ("sparsity.ratio=2.0", "S202", "2.0", "the default is 0.65"),
    ("tpu_mesh_shape=[4, 0]", "S202", "0", None),
    ('kernel_categories=["fft", "fft"]', "S205", '"fft"', None),
    ("use_vq=yes", "S201", "yes", "`true` or `false`"),
])
def test_path_and_value_errors_point_at_the_smallest_span(argument, code, marked, help_part) -> None:
    (d,) = read_overrides([argument]).diagnostics
    assert d.code == code and d.span.text == marked
    if help_part:
        assert help_part in d.help
    if code == "S205":
        assert d.span.start == argument.rindex('"fft"')


def test_every_spelling_of_a_path_works_and_later_arguments_win() -> None:
    decoded = read_overrides(["vq_codes=64", "vector_quantization.codes=128",
                              "tpu_v6_features.vq_codes=64", "performance.cache_optimized=false",
                              "sparsity.method=MIXTURE_OF_ROOKIES"])
    assert decoded.diagnostics == ()
    values = {name: a.value for name, a in decoded.assignments.items()}
    assert values == {"vq_codes": 64, "cache_compiled_functions": False, "sparsity_method": "mor"}
    p = decoded.assignments["vq_codes"].provenance
    assert (p.kind, p.detail, p.span.text) == ("set", "--set tpu_v6_features.vq_codes=64", "64")


def test_all_errors_of_all_arguments_at_once() -> None:
    decoded = read_overrides(["hiden_size=1", "sparsity.ratio=2.0", "x", "vq_codes=128"])
    assert [d.code for d in decoded.diagnostics] == ["S103", "S202", "S601"]
    assert set(decoded.assignments) == {"vq_codes"}
