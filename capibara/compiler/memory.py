"""The plan's memory estimate: bytes per device at the peak of a training step.

The batch resolution pass (:mod:`capibara.compiler.passes.resolve_batch`)
sizes the batch against it and the device's memory cap; the plan records it.

Imports no JAX.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from capibara.compiler.mixers import layer_counts, ssm_dt_rank, ssm_inner
from capibara.compiler.model_shape import local_parameters, mixer_facts_of, split_dim
from capibara.compiler.policy import MemoryPolicy, shards_optimizer_state
from capibara.plan import MemoryEstimate, Mesh, ModelShape, Precision

__all__ = ["estimate_memory", "OPTIMIZER_SLOTS"]


_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1, "auto": 4}


#: Optimizer state per parameter, in float32 slots: Adam's two moments, RMSprop's one.
OPTIMIZER_SLOTS = {"adamw": 2, "rmsprop": 1, "sgd": 0}


def estimate_memory(config: Any, model: ModelShape, *, mesh: Mesh, model_axis: int,
                    per_device_batch: int, precision: Precision, policy: MemoryPolicy,
                    workspace_per_sample: int, attention_materializes_scores: bool,
                    limit: int | None) -> MemoryEstimate:
    """Bytes per device at the peak of a training step (see :class:`~capibara.plan.MemoryEstimate`).

    Activations follow the network of :mod:`capibara.model.facade`, counted per
    sample and layer: the float32 residual stream and norms (5·S·d), q/k/v
    and the attention output in the compute dtype plus the rotary float32
    copies of q and k, the MLP's two float32 activations (4d wide each; with
    Mixture of Rookies, ``top_k`` experts' worth), and the S×S scores and
    probabilities per head when the attention kernel materializes them. With
    rematerialization only each block's input is kept, plus one block's
    activations while it is recomputed. The output projection keeps float32
    logits and log-probabilities for the whole sequence, or one chunk.
    """
    m = model_axis
    s, d = model.max_seq_length, model.hidden_size
    heads_local = split_dim(model.num_heads, m)
    width_local = heads_local * model.head_dim
    compute = _BYTES[precision.compute]
    param_bytes = _BYTES[precision.params]
    params_local = local_parameters(model, m)
    weights = params_local * param_bytes
    gradients = params_local * param_bytes
    slots = OPTIMIZER_SLOTS[config.optimizer]
    shards = mesh.size("data") if shards_optimizer_state(config) else 1
    optimizer_state = math.ceil(params_local * 4 * slots / shards)

    if model.num_experts:
        mlp_width = (model.experts_per_token or 1) * split_dim(model.expert_ffn_dim or 0, m)
        router = s * model.num_experts * 4
    else:
        mlp_width, router = split_dim(model.ffn_dim, m), 0
    scores = 2 * heads_local * s * s * 4 if attention_materializes_scores else heads_local * s * 4
    shared = 5 * s * d * 4 + 2 * s * mlp_width * 4 + router
    block = shared + s * width_local * (4 * compute + 2 * 4) + scores
    facts = mixer_facts_of(model)
    blocks = {"attention": block, **_mixer_block_bytes(s, d, shared, facts)}
    counts = layer_counts(facts["mixers"], model.num_layers) if facts \
        else {"attention": model.num_layers}
    largest = max(b for kind, b in blocks.items() if counts.get(kind))
    if policy.remat:
        saved = s * d * _BYTES[policy.saved_activation_dtype]
        kept = 0 if policy.offload_activations else model.num_layers * saved
        per_sample = kept + largest
    else:
        per_sample = largest if policy.offload_activations else \
            sum(counts.get(kind, 0) * b for kind, b in blocks.items())
    tokens = min(policy.loss_chunk, s) if policy.loss_chunk else s
    per_sample += 2 * tokens * split_dim(model.vocab_size, m) * 4
    activations = per_sample * per_device_batch
    workspace = workspace_per_sample * per_device_batch
    copies = 1 if policy.donate else 2
    total = (weights + optimizer_state) * copies + gradients + activations + workspace
    return MemoryEstimate(weights=weights, gradients=gradients, optimizer_state=optimizer_state,
                          activations=activations, workspace=workspace, update_copies=copies,
                          total=total, limit=limit)


def _mixer_block_bytes(s: int, d: int, shared: int, facts: Mapping[str, Any]) -> dict[str, int]:
    """Activation bytes per sample of one ``ssm`` or ``hyena`` block (float32 throughout).

    ``ssm``: the projections and conv output (2E + E + E + R + 2N wide) plus
    the recurrence's inputs and its states, ``3·S·E·N``: the SSM states are
    the largest tensor of the block. ``hyena``: three streams before and after
    their short conv, the long conv's input, output and filter, and the FFT's
    padded complex spectra (about ``4·S·d`` floats).
    """
    found = {}
    if "ssm_state_size" in facts:
        e, r, n = ssm_inner(d), ssm_dt_rank(d), facts["ssm_state_size"]
        found["ssm"] = shared + s * (5 * e + r + 2 * n) * 4 + 3 * s * e * n * 4
    if "hyena_filter_length" in facts:
        found["hyena"] = shared + s * (6 * d + 2 * d + 4 * d) * 4 + d * facts["hyena_filter_length"] * 4
    return found
