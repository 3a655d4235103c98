"""Provenance is a structured value in the plan, and the loss weights live in the plan.

Before, a plan stored provenance as text that ``config_of_plan`` parsed back
with ``.split(" ", 1)[0]``, and the model read its loss weights from that
rebuilt config instead of from the plan.
"""

from __future__ import annotations

import msgspec

from capibara.compiler.driver import compile_config
from capibara.compiler.model_spec import ModelSpec
from capibara.config.model_config import ModularModelConfig
from capibara.plan import LossWeights, Origin, config_of_plan, decode_plan, encode_plan, seal
from capibara.testing.plans import small_plan


def test_origin_records_kind_place_and_detail(tmp_path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[model]\nhidden_size = 128\n")
    from capibara.compiler.driver import compile_sources

    plan = compile_sources([path], target="cpu", env=None).plan
    origin = plan.provenance["model.hidden_size"]
    assert (origin.kind, origin.file, origin.line, origin.column) == ("file", str(path), 2, 15)
    assert origin.detail == "[model] hidden_size" and origin.explicit
    assert plan.provenance["model.num_layers"] == Origin(kind="default")
    assert decode_plan(encode_plan(plan)).provenance == plan.provenance


def test_a_default_origin_is_written_as_its_kind_alone() -> None:
    assert msgspec.json.encode(Origin(kind="default")) == b'{"kind":"default"}'


def test_detail_with_spaces_no_longer_decides_explicitness() -> None:
    plan = small_plan()
    tricky = dict(plan.provenance)
    # A detail that starts like a kind: text parsing would have read `default`.
    tricky["model.vocab_size"] = Origin(kind="keyword", detail="default derived")
    config = config_of_plan(msgspec.structs.replace(plan, provenance=tricky))
    assert "vocab_size" in config.explicit_fields


def test_config_of_plan_keeps_explicit_fields_and_rederives_the_rest() -> None:
    config = config_of_plan(small_plan())
    assert config.hidden_size == 64 and "hidden_size" in config.explicit_fields
    assert "num_heads" in config.explicit_fields
    assert "vq_embedding_dim" not in config.explicit_fields  # derived, so derived again


def test_the_plan_records_the_loss_weights_the_config_asks_for() -> None:
    config = ModularModelConfig(hidden_size=64, num_layers=2, num_heads=4, vocab_size=128,
                                max_seq_length=64, use_vq=True, vq_codes=64,
                                vq_commitment_weight=0.5, vq_diversity_regularization=False,
                                use_sparse=True, sparsity_method="mor", mor_num_experts=4,
                                mor_load_balancing=True, device="cpu")
    plan = compile_config(config, "cpu").plan
    assert plan.loss == LossWeights(vq_commitment=0.5, vq_diversity=0.0, load_balancing=0.01)
    dense = compile_config(ModularModelConfig(hidden_size=64, num_layers=2, num_heads=4,
                                              use_sparse=False, device="cpu"), "cpu").plan
    assert dense.loss.load_balancing == 0.0  # no experts, no balancing term


def test_model_spec_takes_the_loss_weights_from_the_plan_not_the_config() -> None:
    plan = small_plan()
    changed = seal(msgspec.structs.replace(
        plan, loss=LossWeights(vq_commitment=0.125, vq_diversity=0.5, load_balancing=0.03)))
    spec = ModelSpec.from_plan(decode_plan(encode_plan(changed)))
    assert (spec.vq_commitment_weight, spec.vq_diversity_weight, spec.load_balancing_weight) \
        == (0.125, 0.5, 0.03)
    # The config the plan was compiled from says otherwise; the plan wins.
    assert config_of_plan(changed).vq_commitment_weight == 0.25


def test_from_config_and_from_plan_agree_on_loss_weights() -> None:
    config = config_of_plan(small_plan())
    assert ModelSpec.from_config(config).vq_commitment_weight \
        == ModelSpec.from_plan(small_plan()).vq_commitment_weight
    assert ModelSpec.from_config(config).load_balancing_weight \
        == ModelSpec.from_plan(small_plan()).load_balancing_weight


def test_origin_kinds_are_the_configs_provenance_kinds() -> None:
    from typing import get_args

    from capibara.config.values import EXPLICIT_KINDS, ProvenanceKind
    from capibara.plan import ORIGIN_KINDS

    assert set(get_args(ProvenanceKind)) == set(ORIGIN_KINDS)
    assert EXPLICIT_KINDS == {kind for kind in ORIGIN_KINDS if Origin(kind=kind).explicit}
