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
from typing import Any

from hypothesis import strategies as st

from capibara.fieldtypes import (AutoOr, Bool, Choice, FieldType, Float, Int, IntChoice, IntList,
                                 Optional, Subset, Text)
from capibara.schema import FIELD_BY_NAME, FIELDS, Field

__all__ = ["configs", "field_values", "values_of"]

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
        # float fields take integers too (§0.3.7)
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
