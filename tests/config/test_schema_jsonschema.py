"""The JSON Schema export: well-formed, complete, and it accepts what capibara accepts."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given

from capibara import toml
from capibara.config.jsonschema import json_schema
from capibara.config.legacy import rewrite_document
from capibara.config.model_config import ModularModelConfig
from capibara.config.fields import ALIAS_SECTIONS, FIELDS, SECTIONS
from capibara.testing.config_strategies import configs

from tests.config.jsonschema_subset import errors

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = sorted((ROOT / "configs").rglob("*.toml"))
SCHEMA = json_schema()


def problems(document: dict) -> list[str]:
    return list(errors(SCHEMA, document))


def test_schema_is_draft_2020_12_json_and_covers_every_spelling() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    json.dumps(SCHEMA)  # plain JSON data
    assert set(SCHEMA["properties"]) == set(SECTIONS) | set(ALIAS_SECTIONS)
    keys = sum(len(s["properties"]) for s in SCHEMA["properties"].values())
    assert keys == len(FIELDS) + sum(len(f.aliases) for f in FIELDS)
    assert all(s["additionalProperties"] is False for s in SCHEMA["properties"].values())
    codes = SCHEMA["properties"]["vector_quantization"]["properties"]["codes"]
    assert codes["enum"] == [64, 128] and codes["default"] == 64
    assert "CAPIBARA_VQ_CODES" in codes["description"]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_bundled_config_validates(path: Path) -> None:
    # v2 files are checked in the layout the legacy stage rewrites them to
    rewritten = rewrite_document(toml.parse_file(path)).value
    assert problems(rewritten) == []


@pytest.mark.parametrize("document, expected", [
    ({"modle": {}}, "unexpected property 'modle'"),
    ({"model": {"hiden_size": 1}}, "unexpected property 'hiden_size'"),
    ({"model": {"hidden_size": 0}}, "below minimum"),
    ({"model": {"hidden_size": 1.5}}, "not of type integer"),
    ({"vector_quantization": {"codes": 96}}, "not in enum"),
    ({"sparsity": {"method": "rookies"}}, "matches none of anyOf"),
    ({"sparsity": {"ratio": 0.96}}, "above maximum"),
    ({"hardware": {"gpu_memory_fraction": 0.0}}, "not above exclusiveMinimum"),
    ({"tpu_v4_optimizations": {"kernel_categories": ["fft", "fft"]}}, "items not unique"),
    ({"tpu_v4_optimizations": {"mesh_shape": []}}, "matches none of anyOf"),
    ({"enterprise": {"metrics_endpoint": "metrics"}}, "does not match"),
])
def test_schema_refuses_what_capibara_refuses(document, expected) -> None:
    assert any(expected in p for p in problems(document)), problems(document)


def test_case_insensitive_enums_and_aliases_are_accepted() -> None:
    assert problems({"sparsity": {"method": "Mixture_Of_Rookies"}, "enterprise": {"log_level": "debug"},
                     "tpu_v6_features": {"vq_codes": 128}}) == []


@given(configs())
def test_any_config_written_in_full_validates(kwargs) -> None:
    text = ModularModelConfig(**kwargs).to_toml(full=True)
    assert problems(tomllib.loads(text)) == []
