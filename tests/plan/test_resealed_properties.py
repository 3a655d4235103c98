"""Any value in any place of a resealed plan: refused with a diagnostic or loaded, never a crash."""

from __future__ import annotations

import hashlib

import msgspec
from hypothesis import given, strategies as st

from capibara.diagnostics import ConfigError
from capibara.plan import config_of_plan, decode_plan, encode_plan, summary
from capibara.plan.views import flat_view
from capibara.testing.plans import small_plan

_JSON = msgspec.json.Encoder(order="sorted")
RAW = msgspec.json.decode(encode_plan(small_plan()))
#: Every leaf path of the plan as a list of keys and indices, kernels by position.
PATHS: list[tuple] = []


def _walk(value, path: tuple) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _walk(item, (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _walk(item, (*path, index))
    else:
        PATHS.append(path)


_walk(RAW, ())
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
    st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([0, -1, 4_000_000_000, "float1024", "..os", "base", [0, 1], {}]))


def resealed(raw: dict) -> bytes:
    raw = {**raw, "digest": ""}
    raw["digest"] = "sha256:" + hashlib.sha256(_JSON.encode(raw)).hexdigest()
    return _JSON.encode(raw)


def replaced(value, path: tuple, new):
    if not path:
        return new
    head, *rest = path
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], tuple(rest), new)}
    copy = list(value)
    copy[head] = replaced(copy[head], tuple(rest), new)
    return copy


@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3))
def test_any_resealed_change_is_refused_or_loads(changes) -> None:
    raw = RAW
    for path, value in changes:
        if path[:1] in (("digest",), ("format",), ("compiler",)):
            continue
        raw = replaced(raw, path, value)
    try:
        plan = decode_plan(resealed(raw), "fuzzed.plan")
    except ConfigError as error:
        assert error.diagnostics and all(d.code.startswith("R1") for d in error.diagnostics)
        return
    # A loaded plan is one every reader takes: the views, and the config it rebuilds.
    flat_view(plan)
    summary(plan)
    try:
        config_of_plan(plan)
    except ConfigError:
        pass  # explicit values that cannot stand together are diagnosed like a config's
