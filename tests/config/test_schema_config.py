"""``ModularModelConfig``: keyword construction, derivation, provenance, copies, plain data."""

from __future__ import annotations

import copy

import msgspec
import pytest

from capibara.diagnostics import ConfigError
from capibara.config.model_config import ModularModelConfig, UnknownFieldError
from capibara.config.fields import FIELDS


def test_defaults_are_the_tables_and_derivations_fill_the_rest() -> None:
    c = ModularModelConfig()
    for f in FIELDS:
        if f.default is not None and f.derived is None:
            assert getattr(c, f.name) == f.default, f.name
    assert c.num_heads == 12 and c.vq_embedding_dim == 768 and c.auto_device_selection is True
    assert c.explicit_fields == frozenset()
    assert c.provenance("hidden_size").kind == "default"
    assert c.provenance("num_heads").kind == "derived"


def test_seed_intro_example_builds() -> None:
    c = ModularModelConfig(model_name="capibara_enterprise", hidden_size=768, use_jax_native=True,
                           use_vq=True, vq_codes=64, use_tpu_v4_optimizations=True)
    assert c.explicit_fields == {"model_name", "hidden_size", "use_jax_native", "use_vq",
                                 "vq_codes", "use_tpu_v4_optimizations"}
    assert c.provenance("vq_codes").kind == "keyword"


@pytest.mark.parametrize("hidden, heads", [(512, 8), (768, 12), (1024, 16), (2048, 32)])
def test_num_heads_and_vq_dim_follow_hidden_size(hidden, heads) -> None:
    c = ModularModelConfig(hidden_size=hidden)
    assert (c.num_heads, c.vq_embedding_dim) == (heads, hidden)
    assert ModularModelConfig(hidden_size=hidden, num_heads=None).num_heads == heads


def test_explicit_values_beat_derivations() -> None:
    c = ModularModelConfig(hidden_size=1024, num_heads=8, vq_embedding_dim=512)
    assert (c.num_heads, c.vq_embedding_dim) == (8, 512)
    assert {"num_heads", "vq_embedding_dim"} <= c.explicit_fields


def test_num_heads_cannot_be_derived_from_a_hidden_size_not_a_multiple_of_64() -> None:
    with pytest.raises(ConfigError) as info:
        ModularModelConfig(hidden_size=100)
    assert [d.code for d in info.value.diagnostics] == ["S401"]
    assert ModularModelConfig(hidden_size=100, num_heads=4).num_heads == 4


def test_enterprise_security_bitnet_jax_and_device_derivations() -> None:
    c = ModularModelConfig(vq_enterprise_mode=True, security_level="high", use_bitnet=True,
                           device="cpu", use_jax_native=False)
    assert c.vq_codes == 128 and c.provenance("vq_codes").kind == "derived"
    assert c.api_key_required and c.request_encryption and c.mcp_auth_required
    assert c.use_affine_quantization is False
    assert c.auto_device_selection is False
    assert c.jax_backend == "standard"
    assert ModularModelConfig(jax_backend="standard").use_jax_native is False
    # explicit values are never overridden by a derivation
    c = ModularModelConfig(vq_enterprise_mode=True, vq_codes=64, security_level="high",
                           api_key_required=False, use_bitnet=True, use_affine_quantization=True)
    assert (c.vq_codes, c.api_key_required, c.use_affine_quantization) == (64, False, True)


def test_every_single_field_error_is_reported_at_once() -> None:
    with pytest.raises(UnknownFieldError) as info:
        ModularModelConfig(hiden_size=3, use_vq=1, vq_codes=96, sparsity_ratio=2.0)
    error = info.value
    assert isinstance(error, ConfigError) and isinstance(error, TypeError)
    assert isinstance(error, ValueError) and isinstance(error, KeyError)
    assert [d.code for d in error.diagnostics] == ["S103", "S201", "S203", "S202"]
    assert "did you mean `hidden_size`?" in str(error)
    assert str(error).startswith("error[S103]: unknown keyword argument `hiden_size`")


def test_value_errors_alone_are_a_plain_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        ModularModelConfig(vq_codes=96)
    assert not isinstance(info.value, TypeError)


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="keyword arguments only"):
        ModularModelConfig({"hidden_size": 768})


def test_equality_is_on_values_not_provenance() -> None:
    a = ModularModelConfig(hidden_size=768)
    b = ModularModelConfig()
    assert a == b and a.explicit_fields != b.explicit_fields
    assert a != ModularModelConfig(hidden_size=1024)


def test_frozen_copyable_and_plain_data() -> None:
    c = ModularModelConfig(hidden_size=1024, tpu_mesh_shape=[4, 4])
    with pytest.raises(AttributeError):
        c.hidden_size = 512  # type: ignore[misc]
    d = copy.deepcopy(c)
    assert d == c and d.provenance("hidden_size") == c.provenance("hidden_size")
    d.tpu_mesh_shape.append(2)
    assert c.tpu_mesh_shape == [4, 4]
    data = msgspec.json.encode(c)
    assert msgspec.json.decode(data, type=ModularModelConfig) == c
    assert msgspec.json.decode(data) == c.to_dict()
    assert b"_provenance" not in data


def test_default_lists_are_not_shared() -> None:
    a, b = ModularModelConfig(), ModularModelConfig()
    a.kernel_categories.clear()
    assert b.kernel_categories == ["linalg", "attention", "scan", "collective", "conv", "fft"]


def test_replace_rederives_and_keeps_provenance() -> None:
    c = ModularModelConfig(hidden_size=768, model_name="x")
    d = c.replace(hidden_size=2048)
    assert (d.num_heads, d.vq_embedding_dim, d.model_name) == (32, 2048, "x")
    assert d.explicit_fields == {"hidden_size", "model_name"}
    with pytest.raises(UnknownFieldError):
        c.replace(hiden_size=1)


def test_provenance_of_unknown_field_suggests() -> None:
    with pytest.raises(UnknownFieldError, match="did you mean `vq_codes`"):
        ModularModelConfig().provenance("vq_code")


def test_to_toml_writes_explicit_fields_in_canonical_layout() -> None:
    c = ModularModelConfig(sparsity_method="mixture_of_rookies", vq_codes=128, hidden_size=1024,
                           gradient_clip_norm=None, tpu_mesh_shape=[4, 4], model_name='a "b"\n')
    assert c.to_toml() == (
        '[model]\nmodel_name = "a \\"b\\"\\n"\nhidden_size = 1024\n\n'
        "[vector_quantization]\ncodes = 128\n\n"
        "[tpu_v4_optimizations]\nmesh_shape = [4, 4]\n\n"
        '[sparsity]\nmethod = "mor"\n\n'
        '[training]\ngradient_clip_norm = "none"\n')
    full = c.to_toml(full=True)
    assert full.count(" = ") == 131


# ------------------------------------------------------------------- runtime updates (§c, C57)


def test_the_seeds_runtime_update_works_verbatim() -> None:
    c = ModularModelConfig()
    c.update_runtime_settings({"batch_size": 16, "temperature": 0.8, "use_vq": True,
                               "vq_adaptive_threshold": 0.6})
    assert (c.batch_size, c.temperature, c.use_vq, c.vq_adaptive_threshold) == (16, 0.8, True, 0.6)
    p = c.provenance("temperature")
    assert (p.kind, p.detail) == ("runtime", "update_runtime_settings")
    assert "temperature" in c.explicit_fields


def test_immutable_and_unknown_keys_are_refused_all_at_once_and_nothing_changes() -> None:
    c = ModularModelConfig(hidden_size=1024)
    before = c.to_dict()
    with pytest.raises(KeyError) as info:
        c.update_runtime_settings({"temperature": 0.5, "num_layers": 24, "temperatur": 1.0,
                                   "log_level": "loud"})
    codes = [d.code for d in info.value.diagnostics]
    assert codes == ["S501", "S103", "S203"]
    assert "`num_layers` cannot change at run time" in str(info.value)
    assert c.to_dict() == before and c.provenance("temperature").kind == "default"


def test_an_update_that_fails_revalidation_changes_nothing() -> None:
    c = ModularModelConfig()
    with pytest.raises(ConfigError) as info:
        c.update_runtime_settings({"temperature": 0.5, "batch_size": 64})  # C41: > max_batch_size
    assert all(d.is_error for d in info.value.diagnostics)
    assert any("batch_size" in d.message for d in info.value.diagnostics)
    assert any("nothing was changed" in n for d in info.value.diagnostics for n in d.notes)
    assert (c.temperature, c.batch_size) == (1.0, "auto")
    c.update_runtime_settings({"batch_size": 64, "max_batch_size": 64})  # together, they fit
    assert c.batch_size == 64


def test_update_requires_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        ModularModelConfig().update_runtime_settings([("batch_size", 16)])  # type: ignore[arg-type]
