"""What a config asks for before the target has a say: precision, memory policy, memory cap.

Lowering records these; the passes then adjust them to the target
(:mod:`capibara.compiler.passes.precision`, :mod:`~capibara.compiler.passes.memory_policy`).
The model reads the same functions, so the plan and the running step agree.

Imports no JAX.
"""

from __future__ import annotations

from typing import Any

import msgspec

from capibara.plan import Precision
from capibara.targets import GIB, Target

__all__ = ["MemoryPolicy", "LOSS_CHUNK", "requested_precision", "memory_policy",
           "memory_limit_bytes", "shards_optimizer_state"]


class MemoryPolicy(msgspec.Struct, frozen=True):
    """How the step trades memory for time (``memory_optimization_level``, flags, ``compile_mode``).

    - ``remat``: recompute each block's insides in the backward pass, keeping
      only its input (``gradient_checkpointing``).
    - ``donate``: the update step reuses the buffers of the old weights and
      optimizer state (level ≥ 1, or ``compile_mode = "aggressive"``).
    - ``loss_chunk``: tokens per chunk of the output projection and loss, so
      the full ``[B, S, vocab]`` logits never exist at once (level ≥ 2);
      ``None`` computes them whole.
    - ``saved_activation_dtype``: the dtype block inputs are kept in for the
      backward pass (level 3 keeps them in the compute dtype).
    - ``offload_activations``: saved block inputs live in host memory
      (``activation_offloading``).
    - ``shard_optimizer_state``: optimizer state split over the data axis
      (:func:`shards_optimizer_state`).
    """

    remat: bool
    donate: bool
    loss_chunk: int | None
    saved_activation_dtype: str
    offload_activations: bool
    shard_optimizer_state: bool = False


def requested_precision(config: Any) -> Precision:
    """The precision the config asks for, before the target has a say.

    ``mixed_precision``: float32 master weights, low-precision compute
    (bfloat16 with ``use_bfloat16``, else float16 with loss scaling), float32
    accumulation. Without it, weights and compute share one dtype.
    """
    low = "bfloat16" if config.use_bfloat16 else "float16"
    if config.mixed_precision:
        params, compute = "float32", low
    else:
        params = compute = "bfloat16" if config.use_bfloat16 else "float32"
    return Precision(params=params, compute=compute, accumulation="float32",
                     vq_codebook=config.vq_precision if config.use_vq else None,
                     loss_scaling=compute == "float16")


#: Tokens per chunk of the output projection and loss at memory level ≥ 2: large
#: enough that each chunk's matmul stays efficient (1024 × vocab), small enough that
#: the logits of a 2048-token, 32k-vocabulary sample drop from 256 MiB to 128 MiB per chunk.
LOSS_CHUNK = 1024


def memory_policy(config: Any) -> MemoryPolicy:
    """The memory policy the config asks for (``memory_optimization_level``).

    Explicit flags always win; the level controls only what no flag covers:

    ====== =====================================================================
    level  effect (cumulative)
    ====== =====================================================================
    0      none
    1      donate weight and optimizer-state buffers to the update step
    2      output projection and loss in chunks of :data:`LOSS_CHUNK` tokens
    3      block inputs kept for the backward pass in the compute dtype
    ====== =====================================================================
    """
    level = config.memory_optimization_level
    low = requested_precision(config).compute
    return MemoryPolicy(
        remat=bool(config.gradient_checkpointing),
        donate=level >= 1,
        loss_chunk=LOSS_CHUNK if level >= 2 else None,
        saved_activation_dtype=low if level >= 3 else "float32",
        offload_activations=bool(config.activation_offloading),
        shard_optimizer_state=shards_optimizer_state(config))


def memory_limit_bytes(config: Any, target: Target) -> int | None:
    """The per-device memory cap: the smallest of the physical memory and the config's limits.

    TPU: ``min(HBM, tpu_memory_limit_gb, memory_limit_gb)``; GPU:
    ``min(gpu_memory_fraction × HBM, memory_limit_gb)``; CPU: the host memory
    split over the host's devices, capped by ``memory_limit_gb``.
    ``None`` when nothing is known (a catalog CPU without a limit).
    """
    caps: list[float] = []
    physical = target.memory_per_device_gib
    if target.platform == "tpu":
        caps.append(config.tpu_memory_limit_gb)
    if physical is not None:
        if target.platform == "gpu":
            caps.append(config.gpu_memory_fraction * physical)
        elif target.platform == "cpu":
            caps.append(physical / target.device_count)
        else:
            caps.append(physical)
    if config.memory_limit_gb is not None:
        caps.append(config.memory_limit_gb)
    return int(min(caps) * GIB) if caps else None


def shards_optimizer_state(config: Any) -> bool:
    """Whether optimizer state is split over the data axis (ZeRO-1): ``optimizer_sharding``
    unless ``sharding_strategy = "disabled"``. The estimate and the model both ask here."""
    return bool(config.optimizer_sharding and config.sharding_strategy != "disabled")
