"""The model's dimensions, parameter count and loss weights, from a config or a plan.

:func:`local_parameters` is the one parameter count: the shape's total, the
per-device share the memory estimate uses, and the model's check of its own
weights all come from it.

Imports no JAX.
"""

from __future__ import annotations

from typing import Any, Mapping

import msgspec

from capibara.compiler.mixers import layer_counts, mixer_parameter_count
from capibara.plan import LossWeights, ModelShape

__all__ = ["split_dim", "model_shape", "local_parameters", "mixer_facts_of", "hyena_filter_taps",
           "loss_weights", "LOAD_BALANCING_WEIGHT", "DIVERSITY_WEIGHT"]


def split_dim(size: int, ways: int) -> int:
    """A dimension's share per device: split only when it divides evenly (as the runtime does)."""
    return size // ways if ways > 1 and size % ways == 0 else size


def model_shape(config: Any) -> ModelShape:
    """The model's dimensions and parameter count (see :class:`~capibara.plan.ModelShape`).

    The count is the standard ``12·L·d² + V·d`` (attention 4d², a 4×-wide
    MLP 8d² per layer, tied embeddings) plus the RMSNorm scales
    (``2·L·d + d``), the VQ codebook (``K·d_vq``) and, with Mixture of
    Rookies, each layer's router (``d·E``). Rookies are small experts: the
    ``E`` experts split the MLP's width between them (``4d // E`` each), so
    routing adds no MLP parameters and a token runs ``top_k / E`` of the
    MLP (the 0.75 expert sparsity of 2-of-8 routing). This keeps the
    seed's parameter counts (≈109.5 M for the 768 × 12 tier).
    """
    d, layers, heads = config.hidden_size, config.num_layers, config.num_heads
    head_dim = d // heads
    ffn = 4 * d
    mor = config.use_sparse and config.sparsity_method == "mor"
    experts = config.mor_num_experts if mor else None
    expert_ffn = ffn // experts if experts else None
    vq_dim = (config.vq_embedding_dim or d) if config.use_vq else None
    shape = ModelShape(**_mixer_facts(config),
        hidden_size=d, num_layers=layers, num_heads=heads, head_dim=head_dim, ffn_dim=ffn,
        vocab_size=config.vocab_size, max_seq_length=config.max_seq_length,
        parameter_count=0,
        vq_codes=config.vq_codes if config.use_vq else None, vq_embedding_dim=vq_dim,
        num_experts=experts, experts_per_token=config.mor_top_k if mor else None,
        expert_ffn_dim=expert_ffn)
    return msgspec.structs.replace(shape, parameter_count=local_parameters(shape, 1))


def local_parameters(model: ModelShape, m: int) -> int:
    """Parameters one device holds: the vocabulary, heads and MLP width split over a
    model axis of ``m`` devices; with ``m = 1``, the model's parameter count."""
    d, layers = model.hidden_size, model.num_layers
    heads_local = split_dim(model.num_heads, m)
    attention = 4 * d * heads_local * model.head_dim
    if model.num_experts:
        mlp = d * model.num_experts + 2 * model.num_experts * d * split_dim(model.expert_ffn_dim or 0, m)
    else:
        mlp = 2 * d * split_dim(model.ffn_dim, m)
    codebook = (model.vq_codes or 0) * (model.vq_embedding_dim or 0)
    facts = mixer_facts_of(model)
    counts = layer_counts(facts["mixers"], layers) if facts else {"attention": layers}
    return (split_dim(model.vocab_size, m) * d + layers * (mlp + d)
            + counts["attention"] * (attention + d) + _mixer_parameters(d, counts, facts)
            + d + codebook)


def hyena_filter_taps(config: Any) -> int:
    """Taps of a hyena block's filter: ``hyena_filter_length``, or the context length."""
    length = config.hyena_filter_length
    return config.max_seq_length if length is None else min(length, config.max_seq_length)


def _mixer_facts(config: Any) -> dict[str, Any]:
    """The plan's record of a pattern with ``ssm`` or ``hyena`` blocks (empty for attention only)."""
    pattern = tuple(config.mixers)
    if set(pattern) == {"attention"} or config.num_layers % len(pattern):
        return {}
    facts: dict[str, Any] = {"mixers": pattern}
    if "ssm" in pattern or "hyena" in pattern:
        facts["ssm_conv_width"] = config.ssm_conv_width
    if "ssm" in pattern:
        facts["ssm_state_size"] = config.ssm_state_size
    if "hyena" in pattern:
        facts["hyena_filter_length"] = hyena_filter_taps(config)
    return facts


def _mixer_parameters(d: int, counts: Mapping[str, int], facts: Mapping[str, Any]) -> int:
    """Parameters of the ``ssm`` and ``hyena`` mixers (their feed-forwards are counted per layer)."""
    return sum(counts[kind] * mixer_parameter_count(
        kind, d, state_size=facts.get("ssm_state_size", 1), conv_width=facts["ssm_conv_width"])
        for kind in ("ssm", "hyena") if counts.get(kind))


def mixer_facts_of(model: ModelShape) -> dict[str, Any]:
    """The mixer fields a plan's :class:`ModelShape` records (empty for attention only)."""
    names = ("mixers", "ssm_state_size", "ssm_conv_width", "hyena_filter_length")
    return {n: getattr(model, n) for n in names if getattr(model, n) is not msgspec.UNSET}


#: Weight of the Mixture-of-Rookies load-balancing loss when
#: ``mor_load_balancing`` is on: the Switch Transformer's α = 0.01, small enough
#: not to fight the language-model loss, large enough to keep experts in use.
LOAD_BALANCING_WEIGHT = 0.01


#: Weight of the codebook-usage (diversity) term when
#: ``vq_diversity_regularization`` is on.
DIVERSITY_WEIGHT = 0.1


def loss_weights(config: Any, model: ModelShape) -> LossWeights:
    """The auxiliary loss terms' weights for ``config``'s model: the VQ
    commitment weight as configured, the diversity and load-balancing terms at
    their fixed weights when switched on (and when the model has experts)."""
    return LossWeights(
        vq_commitment=float(config.vq_commitment_weight),
        vq_diversity=DIVERSITY_WEIGHT if config.vq_diversity_regularization else 0.0,
        load_balancing=(LOAD_BALANCING_WEIGHT if model.num_experts and config.mor_load_balancing
                        else 0.0))
