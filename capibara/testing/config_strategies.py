"""Hypothesis strategies that draw configurations from the field table.

``configs()`` draws keyword arguments for ``ModularModelConfig`` that pass
every single-field check (any subset of the 127 fields, each with a value
from its type's domain, in any accepted spelling).  Cross-field rules are not
respected: these configs exercise decoding, layering and round trips, not
validation.

    from hypothesis import given
    from capibara.testing.config_strategies import configs

    @given(configs())
    def test_round_trip(kwargs): ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field as dataclass_field
from typing import Any

from hypothesis import strategies as st

from capibara.config.fieldtypes import (AutoOr, Bool, Choice, FieldType, Float, Int, IntChoice, IntList,
                                 Optional, Pattern, Subset, Text)
from capibara.config.fields import FIELD_BY_NAME, FIELDS, Field
from capibara.config.writer import write_values

__all__ = ["ConfigSources", "config_files", "configs", "env_text", "field_values", "values_of"]

# Unbounded ranges are capped so values stay readable; the bounds themselves are drawn.
_INT_CAP = 10**6
_FLOAT_CAP = 1e6


def _any_case(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.lower(), word.upper(), word.capitalize()])


def values_of(kind: FieldType) -> st.SearchStrategy[Any]:
    """Values ``kind.check`` accepts (not necessarily canonical: enums in any case)."""
    if isinstance(kind, Bool):
        return st.booleans()
    if isinstance(kind, Int):
        lo = kind.minimum if kind.minimum is not None else -_INT_CAP
        hi = kind.maximum if kind.maximum is not None else max(lo, 0) + _INT_CAP
        return st.integers(lo, hi)
    if isinstance(kind, Float):
        lo = kind.minimum if kind.minimum is not None else -_FLOAT_CAP
        hi = kind.maximum if kind.maximum is not None else max(lo, 0.0) + _FLOAT_CAP
        floats = st.floats(lo, hi, exclude_min=kind.exclusive_minimum,
                           exclude_max=kind.exclusive_maximum, allow_nan=False, allow_infinity=False)
        # float fields take integers too
        return floats | st.integers(math.ceil(lo), math.floor(hi)).filter(kind.contains)
    if isinstance(kind, Text):
        if kind.pattern is None or kind.pattern == r"[\s\S]+":
            return st.text(min_size=1, max_size=20)
        return st.from_regex(kind.pattern, fullmatch=True).filter(lambda s: len(s) < 40)
    if isinstance(kind, Choice):
        return st.sampled_from(list(kind.values) + list(kind.aliases)).flatmap(_any_case)
    if isinstance(kind, IntChoice):
        return st.sampled_from(kind.values)
    if isinstance(kind, Optional):
        none = st.just(None) if kind.none_word is None else st.sampled_from([None, kind.none_word])
        return none | values_of(kind.inner)
    if isinstance(kind, AutoOr):
        return _any_case("auto") | values_of(kind.inner)
    if isinstance(kind, IntList):
        return st.lists(st.integers(kind.minimum, 64), min_size=1, max_size=4)
    if isinstance(kind, Subset):
        return st.lists(st.sampled_from(kind.values), unique=True)
    if isinstance(kind, Pattern):
        return st.lists(st.sampled_from(kind.values), min_size=1, max_size=4)
    raise TypeError(f"no strategy for {type(kind).__name__}")


_BUILT: dict[str, st.SearchStrategy[Any]] = {}


def field_values(field: Field) -> st.SearchStrategy[Any]:
    """Values for one field (built once per field)."""
    if field.name not in _BUILT:
        _BUILT[field.name] = values_of(field.type)
    return _BUILT[field.name]


@st.composite
def configs(draw: st.DrawFn, fields: tuple[Field, ...] = FIELDS) -> dict[str, Any]:
    """Keyword arguments for ``ModularModelConfig``: a random subset of ``fields``.

    A drawn ``hidden_size`` that is not a multiple of 64 comes with an explicit
    ``num_heads``, since ``hidden_size // 64`` could not be derived (S401).
    """
    kwargs = draw(st.fixed_dictionaries({}, optional={f.name: field_values(f) for f in fields}))
    if kwargs.get("hidden_size", 768) % 64 and kwargs.get("num_heads") is None:
        kwargs["num_heads"] = draw(values_of(FIELD_BY_NAME["num_heads"].type.inner))
    return kwargs


# --------------------------------------------------------------------------- layered sources


def env_text(field: Field, value: Any) -> str | None:
    """How ``CAPIBARA_*`` spells a checked ``value`` of ``field``; ``None`` where it cannot.

    An environment value is stripped and an empty one means unset, so text
    that is blank or has outer white space has no spelling;
    nor does a NUL, which no real environment can hold.
    """
    written = field.type.to_toml(value)
    if written is None:
        return None
    if isinstance(written, bool):
        return "true" if written else "false"
    if isinstance(written, list):
        return ",".join(str(v) for v in written)
    if isinstance(written, float):
        return repr(written)
    text = str(written)
    if not text.strip() or text != text.strip() or "\0" in text:
        return None
    return text


@dataclass(frozen=True)
class ConfigSources:
    """One configuration spread over layered sources, and what it must resolve to.

    ``files`` are TOML texts in layer order, ``env`` the ``CAPIBARA_*``
    variables, ``overrides`` the ``--set`` arguments; ``expected`` the keyword
    arguments of ``ModularModelConfig`` the layering must give. A field may
    also appear in layers below the one that sets it, with another valid
    value that precedence must hide.
    """

    files: tuple[str, ...]
    env: dict[str, str] = dataclass_field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    expected: dict[str, Any] = dataclass_field(default_factory=dict)


@st.composite
def config_files(draw: st.DrawFn, max_files: int = 3,
                 fields: tuple[Field, ...] = FIELDS) -> ConfigSources:
    """A :func:`configs` config split over 1..``max_files`` files, env vars and ``--set``.

    Precedence, lowest first: the files in order, the environment, ``--set``
    (as :mod:`capibara.config.sources` resolves them). Each field of the config
    gets one layer that sets its value; any lower layer may set it to another
    value, which must lose.

        @given(config_files())
        def test_layering(sources): ...  # write sources.files, resolve, compare
    """
    from capibara.config.writer import toml_value

    kwargs = draw(configs(fields))
    count = draw(st.integers(1, max_files))
    files: list[dict[str, Any]] = [{} for _ in range(count)]
    env: dict[str, str] = {}
    sets: list[str] = []
    set_shadows: list[str] = []
    for name in sorted(kwargs):
        field = FIELD_BY_NAME[name]
        value = field.type.check(kwargs[name], name)
        if field.type.to_toml(value) is None:
            continue  # `num_heads = None`: derive it, which is what leaving it out says
        # layers 0..count-1 are files, count is the environment, count+1 is --set
        homes = list(range(count))
        if field.env and env_text(field, value) is not None:
            homes.append(count)
        homes.append(count + 1)
        home = draw(st.sampled_from(homes))
        # one spelling per field: two spellings with different values are an error (S301)
        variable = draw(st.sampled_from(field.env)) if field.env else ""
        for below in range(home):
            if draw(st.integers(0, 3)):
                continue
            shadow = field.type.check(draw(field_values(field)), name)
            if field.type.to_toml(shadow) is None:
                continue
            if below < count:
                files[below][name] = shadow
            elif below == count and variable and env_text(field, shadow) is not None:
                env[variable] = env_text(field, shadow)  # type: ignore[assignment]
        if home < count:
            files[home][name] = value
        elif home == count:
            env[variable] = env_text(field, value)  # type: ignore[assignment]
        else:
            argument = f"{draw(st.sampled_from([field.path, field.name]))}=" \
                       f"{toml_value(field.type.to_toml(value))}"
            if draw(st.integers(0, 3)) == 0:  # an earlier --set of the same field loses
                shadow = field.type.check(draw(field_values(field)), name)
                if field.type.to_toml(shadow) is not None:
                    set_shadows.append(
                        f"{field.path}={toml_value(field.type.to_toml(shadow))}")
            sets.append(argument)
    # every shadowing --set comes before all the winning ones: later arguments win
    return ConfigSources(tuple(write_values(f) for f in files), env, tuple(set_shadows + sets),
                         kwargs)
