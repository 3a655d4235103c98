"""Legacy (v2.x) migration: the size table, the dict migrator, idempotence."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, strategies as st

from capibara.config import ConfigMigrator, ModularModelConfig
from capibara.diagnostics import ConfigError
from capibara.config.legacy import (LEGACY_DEVICES, LEGACY_KEYS, MODEL_SIZES, is_legacy_mapping,
                             parse_model_size)
from capibara.config.model_config import ConfigWarning, UnknownFieldError
from capibara.config.validate import get_validation_errors

SEED_LEGACY = {"model_size": "600m", "use_quantum": True, "device": "tpu_v4"}


def migrate(legacy: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        return ConfigMigrator().migrate_from_legacy(legacy)


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("text, label", [
    ("600m", "600m"), ("600M", "600m"), ("0.6b", "600m"), ("0.6B", "600m"), (" 125m ", "125m"),
    ("1300m", "1.3b"), ("1.3b", "1.3b"), ("7b", "7b"), ("7000m", "7b"), ("2.7B", "2.7b"),
])
def test_model_size_spellings_normalise(text: str, label: str) -> None:
    assert parse_model_size(text) == label


@pytest.mark.parametrize("text", ["601m", "600", "600k", "m", "1b", "0.6005b", "six hundred m",
                                  "-600m", "1e3m"])
def test_unknown_sizes_are_not_guessed(text: str) -> None:
    assert parse_model_size(text) is None


def test_size_table_shapes_have_integral_heads_and_honest_counts() -> None:
    for label, shape in MODEL_SIZES.items():
        assert shape.hidden_size % shape.num_heads == 0
        assert shape.hidden_size // shape.num_heads >= 64
    # PARAMS.md §e.2 totals (12·L·d² + V·d, V = 32000)
    assert round(MODEL_SIZES["125m"].parameters() / 1e6, 1) == 109.5
    assert round(MODEL_SIZES["600m"].parameters() / 1e6, 1) == 669.5
    assert round(MODEL_SIZES["7b"].parameters() / 1e9, 2) == 6.57


# --------------------------------------------------------------------------- the seed's call


def test_seed_legacy_dict_migrates_as_section_e_says() -> None:
    with pytest.warns(ConfigWarning, match="check them against the checkpoint"):
        config = ConfigMigrator().migrate_from_legacy(SEED_LEGACY)
    assert isinstance(config, ModularModelConfig)
    assert config.model_name == "capibara_600m"
    assert (config.hidden_size, config.num_layers, config.num_heads) == (2048, 12, 32)
    assert config.vq_embedding_dim == 2048
    assert config.use_vq is True
    assert config.device == "tpu_v4" and config.use_tpu_v4_optimizations is True
    assert config.version == "v3.0.0"
    assert config.provenance("use_vq").kind == "legacy"
    assert "use_quantum" in config.provenance("use_vq").detail


def test_migration_ignores_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CAPIBARA_USE_VQ", "false")
    monkeypatch.setenv("CAPIBARA_VQ_CODES", "128")
    config = migrate(SEED_LEGACY)
    assert config.use_vq is True and config.vq_codes == 64


@pytest.mark.parametrize("device, v3_device, tpu_v4", [
    ("tpu_v4", "tpu_v4", True), ("tpu", "tpu_v4", True), ("TPU", "tpu_v4", True),
    ("tpu_v6", "tpu_v6", True), ("gpu", "gpu", False), ("cuda", "gpu", False),
    ("cpu", "cpu", False), ("auto", "auto", True),
])
def test_legacy_devices(device: str, v3_device: str, tpu_v4: bool) -> None:
    config = migrate({"model_size": "125m", "device": device})
    assert config.device == v3_device
    assert config.use_tpu_v4_optimizations is tpu_v4


def test_generic_tpu_warns_that_it_means_v4() -> None:
    with pytest.warns(ConfigWarning, match='v2 "tpu" meant TPU v4'):
        ConfigMigrator().migrate_from_legacy({"device": "tpu"})


def test_explicit_v3_values_win_over_what_model_size_implies() -> None:
    config = migrate({"model_size": "600m", "num_layers": 24, "model_name": "mine",
                      "vocab_size": 50000})
    assert (config.hidden_size, config.num_layers, config.num_heads) == (2048, 24, 32)
    assert config.model_name == "mine" and config.vocab_size == 50000


def test_large_sizes_migrate_with_an_advisory_warning() -> None:
    migration = ConfigMigrator().migrate({"model_size": "7b"})
    assert (migration.config.hidden_size, migration.config.num_heads) == (4096, 32)
    assert "V003" in [d.code for d in migration.diagnostics]


@pytest.mark.parametrize("legacy, code, fragment", [
    ({"model_size": "601m"}, "L010", 'use one of "125m", "350m", "600m"'),
    ({"model_size": 600}, "L011", "`model_size` must be a string"),
    ({"use_quantum": "yes"}, "L011", "`use_quantum` must be a boolean"),
    ({"model_size": "125m", "device": "tpu_v5"}, "L011", 'unknown legacy `device` "tpu_v5"'),
    ({"use_quantum": True, "use_vq": False}, "L012", "`use_quantum` = true means `use_vq` = true"),
    ({"model_size": "600m", "vq_embedding_dim": 768}, "V010", "differs from `hidden_size` 2048"),
])
def test_bad_legacy_configs_raise_value_errors(legacy: dict, code: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        migrate(legacy)
    assert isinstance(caught.value, ConfigError)
    assert code in [d.code for d in caught.value.diagnostics]
    assert fragment in str(caught.value)


def test_unknown_keys_are_all_listed() -> None:
    with pytest.raises(UnknownFieldError) as caught:
        migrate({"model_sise": "600m", "use_quantum": True, "colour": "blue"})
    text = str(caught.value)
    assert "unknown legacy key `model_sise`" in text and "did you mean `model_size`?" in text
    assert "unknown legacy key `colour`" in text
    assert isinstance(caught.value, ValueError)


def test_mapping_is_legacy_only_by_its_legacy_keys_or_device_names() -> None:
    assert is_legacy_mapping(SEED_LEGACY)
    assert is_legacy_mapping({"device": "cuda"})
    assert not is_legacy_mapping({"device": "gpu", "hidden_size": 512})
    assert set(LEGACY_KEYS) == {"model_size", "use_quantum", "device"}
    assert set(LEGACY_DEVICES) >= {"tpu", "tpu_v4", "tpu_v6", "gpu", "cuda", "cpu", "auto"}


# --------------------------------------------------------------------------- idempotence

_V3_VALUES = st.fixed_dictionaries({}, optional={
    "model_name": st.sampled_from(["capibara_dev", "x"]),
    "hidden_size": st.sampled_from([512, 768, 1024, 2048]),
    "num_layers": st.integers(1, 48),
    "use_vq": st.booleans(),
    "vq_codes": st.sampled_from([64, 128]),
    "device": st.sampled_from(["auto", "tpu_v4", "tpu_v6", "gpu", "cpu"]),
    "use_tpu_v4_optimizations": st.booleans(),
    "sparsity_ratio": st.floats(0.3, 0.8),
    "batch_size": st.sampled_from(["auto", 8, 16, 32]),
    "temperature": st.floats(0.0, 2.0),
    "log_level": st.sampled_from(["INFO", "DEBUG"]),
})


@given(_V3_VALUES)
def test_migrating_a_v3_dict_changes_nothing(values: dict) -> None:
    try:
        expected = ModularModelConfig(**values)
    except ConfigError:
        return
    if any(d.is_error for d in get_validation_errors(expected)):
        with pytest.raises(ConfigError):
            migrate(values)
        return
    migrated = migrate(values)
    assert migrated == expected
    assert migrated.explicit_fields == expected.explicit_fields


_LEGACY_VALUES = st.fixed_dictionaries({}, optional={
    "model_size": st.sampled_from(sorted(MODEL_SIZES) + ["600M", "0.6b", "1300m"]),
    "use_quantum": st.booleans(),
    "device": st.sampled_from(sorted(LEGACY_DEVICES)),
    "vocab_size": st.sampled_from([32000, 50257]),
})


@given(_LEGACY_VALUES)
def test_migration_is_idempotent(legacy: dict) -> None:
    once = migrate(legacy)
    v3 = {name: getattr(once, name) for name in once.explicit_fields}
    assert not is_legacy_mapping(v3)
    twice = migrate(v3)
    assert twice == once and twice.explicit_fields == once.explicit_fields
