"""The plan's memory estimate: bytes per device at the peak of a training step.

The batch resolution pass (:mod:`capibara.compiler.passes.resolve_batch`)
sizes the batch against it and the device's memory cap; the plan records it.
``benchmarks/memory.py`` sets it beside XLA's own account of the compiled
step (``memory_analysis()``) for the bundled configs.

The peak comes while the backward pass runs through a block. Live then are
the step's arguments (weights and optimizer state), every gradient, what
the backward pass kept of the forward pass (each block's input with
rematerialization, every block's residuals without), the working set of the
block being differentiated (the tensors its backward reads and their
cotangents), and the copies of block parameters the step makes. The loss
head has a working set of its own (the log-softmax of the logits and its
cotangent) at another moment; the larger of the two counts. Working sets
are counted per token, tensor by tensor, from what
:mod:`capibara.model.network` and :mod:`capibara.model.mixers` compute.

Imports no JAX.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from capibara.compiler.mixers import layer_counts, ssm_dt_rank, ssm_inner
from capibara.compiler.model_shape import local_parameters, mixer_facts_of, split_dim
from capibara.compiler.policy import MemoryPolicy, shards_optimizer_state
from capibara.plan import MemoryEstimate, Mesh, ModelShape, Precision

__all__ = ["estimate_memory", "OPTIMIZER_SLOTS"]


_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1, "auto": 4}
_F32 = 4


#: Optimizer state per parameter, in parameter-sized slots: Adam's two moments, RMSprop's one.
OPTIMIZER_SLOTS = {"adamw": 2, "rmsprop": 1, "sgd": 0}


def estimate_memory(config: Any, model: ModelShape, *, mesh: Mesh, model_axis: int,
                    per_device_batch: int, precision: Precision, policy: MemoryPolicy,
                    kernels: Iterable[Any], platform: str, limit: int | None) -> MemoryEstimate:
    """Bytes per device at the peak of a training step (see :class:`~capibara.plan.MemoryEstimate`).

    ``kernels`` are the selected kernel uses (their implementations decide
    what attention, Mixture of Rookies and VQ keep); ``platform`` the
    target's (a CPU computes low-precision tensors in float32, see
    :func:`_stored_bytes`).
    """
    m = model_axis
    kernels = list(kernels)
    param_bytes = _BYTES[precision.params]
    params_local = local_parameters(model, m)
    weights = params_local * param_bytes
    # The backward pass computes every gradient in float32 (a low-precision
    # weight is cast up where it is used), whatever the weights are stored in.
    gradients = params_local * _F32
    # optax keeps the moments in the parameters' dtype (Adam's mu_dtype unset).
    slots = OPTIMIZER_SLOTS[config.optimizer]
    shards = mesh.size("data") if shards_optimizer_state(config) else 1
    optimizer_state = math.ceil(params_local * param_bytes * slots / shards)

    s, d, b = model.max_seq_length, model.hidden_size, per_device_batch
    tokens = b * s
    stored = _stored_bytes(precision.compute, platform)
    facts = mixer_facts_of(model)
    counts = layer_counts(facts["mixers"], model.num_layers) if facts \
        else {"attention": model.num_layers}
    mlp = _mlp_bytes(model, m, tokens, kernels)
    blocks = {"attention": _attention_bytes(model, m, kernels, stored) + mlp}
    if counts.get("ssm"):
        blocks["ssm"] = _ssm_bytes(d, facts["ssm_state_size"], facts["ssm_conv_width"]) + mlp
    if counts.get("hyena"):
        blocks["hyena"] = _hyena_bytes(d, s, facts["hyena_filter_length"],
                                       facts["ssm_conv_width"]) + mlp
    scanned, unrolled = _block_runs(model, facts, counts)
    largest = max(blocks[kind] for kind in scanned + unrolled)
    if platform == "cpu":
        # Inside a scan the backward pass holds one block's working set at a
        # time. Unrolled blocks (the hybrid network, a scan of one block) are
        # scheduled freely: XLA's CPU backend, which schedules without a
        # memory limit, runs their recomputations as soon as their inputs
        # exist (benchmarks/memory.py), so their working sets add up. TPU and
        # GPU compilers schedule (and rematerialize) against the device's memory.
        largest = max(sum(blocks[kind] for kind in unrolled),
                      max((blocks[kind] for kind in scanned), default=0))
    # Offloading keeps only block inputs, as remat does, in host memory: a CPU's
    # host memory is its device memory, so there they still count.
    if policy.offload_activations and platform != "cpu":
        kept = 0
    elif policy.remat or policy.offload_activations:
        kept = model.num_layers * d * _BYTES[policy.saved_activation_dtype]
    else:  # every block keeps what its backward reads
        kept = len(scanned) * (blocks["attention"] - mlp
                               + _mlp_bytes(model, m, tokens, kernels, residuals=True))
        if platform != "cpu":  # (on a CPU, counted above with the working sets)
            kept += sum(blocks[kind] for kind in unrolled)
    head_tokens = min(policy.loss_chunk, b * (s - 1)) if policy.loss_chunk else b * (s - 1)
    # The head's matmul also makes the tied embedding's gradient (float32) before
    # it is summed with the lookup's.
    head = head_tokens * _head_bytes(model, m) + split_dim(model.vocab_size, m) * d * _F32
    activations = kept * tokens + max(largest * tokens, head,
                                      _kernel_scratch(model, kernels, b))
    workspace = _weight_copies(model, m, param_bytes, facts, counts)
    copies = 1 if policy.donate else 2
    step = activations + workspace
    # Without donation the new weights and state get buffers of their own; XLA
    # places the backward pass's temporaries in them until the update writes them.
    total = weights + optimizer_state + gradients + (
        step if policy.donate else max(step, weights + optimizer_state))
    return MemoryEstimate(weights=weights, gradients=gradients, optimizer_state=optimizer_state,
                          activations=activations, workspace=workspace, update_copies=copies,
                          total=total, limit=limit)


def _block_runs(model: ModelShape, facts: Mapping[str, Any],
                counts: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """The kind of every block the backward pass differentiates inside a scan, and of every
    other block. The attention network scans its stacked blocks (in two scans around
    the VQ bottleneck, whose halves hold ``ceil(L / 2)`` and ``floor(L / 2)`` blocks);
    XLA unrolls a scan of one block. The hybrid network unrolls every block."""
    if facts:
        return [], [kind for kind, n in counts.items() for _ in range(n)]
    layers = model.num_layers
    halves = ((layers + 1) // 2, layers // 2) if model.vq_codes else (layers,)
    scanned = [n for n in halves if n > 1]
    unrolled = [n for n in halves if n == 1]
    return ["attention"] * sum(scanned), ["attention"] * sum(unrolled)


def _stored_bytes(compute: str, platform: str) -> int:
    """Bytes per element of a tensor the network keeps in the compute dtype.

    XLA's CPU backend has no bfloat16 or float16 arithmetic: it computes
    those ops in float32 and keeps the float32 values for the backward pass
    (``benchmarks/memory.py``: a bfloat16 plan's step holds what the float32
    plan's does), so on a CPU they count 4 bytes.
    """
    return _F32 if platform == "cpu" else _BYTES[compute]


def _family(kernels: list[Any], family: str, site: str | None = None) -> Any:
    """The kernel use of ``family`` (at ``site``, when given), or ``None``."""
    for use in kernels:
        if use.family == family and (site is None or site == use.site or site in use.uses):
            return use
    return None


def _attention_bytes(model: ModelShape, m: int, kernels: list[Any], stored: int) -> int:
    """Per token, what an attention sublayer holds while its backward runs.

    Float32: the block input, its normalized and scaled copies, the
    projection back to the residual stream and the residual sum (four
    ``d``-wide); q, k, v and the attention output and their cotangents
    (seven ``heads × head_dim``-wide, in the compute dtype); the reference
    kernel adds the scores and probabilities of every head.
    """
    d = model.hidden_size
    width = split_dim(model.num_heads, m) * model.head_dim
    per_token = 4 * d * _F32 + 7 * width * stored
    attention = _family(kernels, "attention")
    if attention is not None and attention.implementation == "reference":
        per_token += 2 * split_dim(model.num_heads, m) * model.max_seq_length * _F32
    return per_token


def _mlp_bytes(model: ModelShape, m: int, tokens: int, kernels: list[Any], *,
               residuals: bool = False) -> int:
    """Per token, what a block's feed-forward holds while its backward runs (float32).

    Dense: its input and output and their cotangents (four ``d``-wide) and
    four ``ffn``-wide tensors (the pre-activation, the GELU's tanh, the
    activation and its cotangent); an int8 ``w_in`` adds its int32
    accumulator, top-k sparsity the magnitudes and the mask it selects by.
    Mixture of Rookies: the tokens gathered into each expert's capacity
    slots and their cotangents (two ``d``-wide per slot), each slot's hidden
    activations (four expert-width per slot), and the padded token table and
    the gathered results (two ``d``-wide per token); the reference kernel
    runs every expert on every token, so it has ``E`` slots per token.
    ``residuals``: only what the forward pass keeps for the backward (the
    accumulator and the magnitudes are not kept; the mask is, a byte each).
    """
    d = model.hidden_size
    per_token = 4 * d * _F32
    if model.num_experts:
        experts, top_k = model.num_experts, model.experts_per_token or 1
        width = split_dim(model.expert_ffn_dim or 0, m)
        moe = _family(kernels, "moe")
        if moe is None or moe.implementation == "reference":
            slots_per_token = experts
        else:
            capacity = _capacity(tokens, top_k, experts, moe.params.get("capacity_factor"))
            slots_per_token = experts * capacity / tokens
        per_token += (2 * d + slots_per_token * (2 * d + 4 * width)) * _F32
    else:
        ffn = split_dim(model.ffn_dim, m)
        per_token += 4 * ffn * _F32
        w_in = _family(kernels, "linalg", "blocks.w_in")
        attrs = w_in.attrs if w_in is not None else {}
        if attrs.get("weights", "float") != "float" and attrs.get("bits", 8) == 8 and not residuals:
            per_token += ffn * _F32  # the int32 accumulator of the int8 matmul
        if "sparsity" in attrs and attrs["sparsity"].get("method") == "topk":
            per_token += ffn if residuals else 2 * ffn * _F32
    return int(per_token)


def _capacity(tokens: int, top_k: int, experts: int, factor: float | None) -> int:
    """Slots per expert (as :func:`capibara.kernels.moe.capacity_of` computes them)."""
    if factor is None:
        return tokens
    return max(1, min(tokens, math.ceil(factor * tokens * top_k / experts)))


def _ssm_bytes(d: int, state: int, conv_width: int) -> int:
    """Per token, what an ``ssm`` mixer holds while its backward runs (float32).

    The discretised recurrence's ``[E, N]``-wide tensors are the largest:
    the decays, the drive, the states, the scan's reversed recurrence and
    the cotangents of the three (seven in all). Beside them the inner stream
    and its gate, the step sizes and the silu and softplus intermediates
    (fifteen ``E``-wide), the short conv's shifted copies (two per tap
    beyond the first) and the block input, norm and output (four ``d``).
    """
    e, r = ssm_inner(d), ssm_dt_rank(d)
    return _F32 * (7 * e * state + 15 * e + 2 * (conv_width - 1) * e + r + 2 * state + 4 * d)


def _hyena_bytes(d: int, s: int, taps: int, conv_width: int) -> int:
    """Per token, what a ``hyena`` mixer holds while its backward runs (float32).

    The input projection to three streams and its cotangent and the short
    conv's shifted copies (``3d``-wide each), the long convolution's padded
    input and output (``2d`` per filter span over the sequence), and the
    block input, its norm, the streams' product, the gated output and their
    cotangents (six ``d``-wide).
    """
    return _F32 * ((2 + 2 * (conv_width - 1)) * 3 * d + 2 * d * max(taps, s) // s + 6 * d)


def _head_bytes(model: ModelShape, m: int) -> int:
    """Per token, the loss head's working set: the exponentials of the float32 logits
    (the log-softmax's) and their cotangent."""
    return 2 * split_dim(model.vocab_size, m) * _F32


def _kernel_scratch(model: ModelShape, kernels: list[Any], batch: int) -> int:
    """The largest kernel temporary of the step: a reference VQ lookup's distances."""
    vq = _family(kernels, "vq")
    if vq is not None and vq.implementation == "reference":
        return batch * model.max_seq_length * int(vq.shapes["codebook"][0]) * _F32
    return 0


def _weight_copies(model: ModelShape, m: int, param_bytes: int, facts: Mapping[str, Any],
                   counts: Mapping[str, int]) -> int:
    """Block parameters the step copies, and one block's gradients before they are summed in.

    With VQ, the attention network runs its blocks as two scans, each over
    a slice of the stacked parameters: the slices are copies, kept for the
    backward pass. Each block's backward computes its weight gradients in
    float32 before they join the stacked gradients.
    """
    d, layers = model.hidden_size, model.num_layers
    embedding = split_dim(model.vocab_size, m) * d + d + (model.vq_codes or 0) * (model.vq_embedding_dim or 0)
    block_params = local_parameters(model, m) - embedding
    copies = 0
    if model.vq_codes and not facts and 0 < (layers + 1) // 2 < layers:
        copies += block_params * param_bytes
    return copies + block_params // layers * _F32
