"""The field table: every configuration field, once.

:data:`FIELDS` is the single source of facts about the 127 fields of
``ModularModelConfig``: the flat (keyword) name, the canonical TOML
``[section] key``, the accepted alias spellings, the environment variables,
the value type with its range or enum, the default (or how it is derived),
whether it may change at run time, and a one-line doc.  Decoding,
environment parsing, ``--set``, the msgspec struct, the JSON Schema export and
``capibara explain FIELD`` all read this table; nothing restates it.

    >>> FIELD_BY_NAME["vq_codes"].path
    'vector_quantization.codes'
    >>> field_at("tpu_v6_features", "vq_codes").name
    'vq_codes'
"""

from __future__ import annotations

from typing import Any, Iterator

import msgspec

from capibara.config.fieldtypes import (AutoOr, Bool, Choice, FieldType, Float, Int, IntChoice, IntList,
                                 Optional, Pattern, Subset, Text)

__all__ = [
    "Field",
    "FIELDS",
    "MIXERS",
    "FIELD_BY_NAME",
    "SECTIONS",
    "ALIAS_SECTIONS",
    "ENV_VARS",
    "RUNTIME_MUTABLE",
    "field_at",
    "keys_of",
    "all_paths",
    "explain_field",
    "EFFECT_PLACES",
    "RECORDED_ONLY",
    "recorded_only_switched_on",
]


class Field(msgspec.Struct, frozen=True):
    """One configuration field.

    ``default`` is the value used when nothing sets the field; ``derived``
    (when not ``None``) says in words how the value is computed from other
    fields when it is not set explicitly.  ``aliases`` are other ``(section,
    key)`` spellings accepted in TOML (the seed's files spell some fields two
    ways); ``env`` are the environment variables that set it, the seed's name
    first.
    """

    id: str
    name: str
    section: str
    key: str
    type: FieldType
    default: Any
    doc: str
    aliases: tuple[tuple[str, str], ...] = ()
    env: tuple[str, ...] = ()
    runtime: bool = False
    derived: str | None = None
    #: Where the field acts, ``(place, how)``: a key of :data:`EFFECT_PLACES` and one line.
    effect: tuple[str, str] = ("", "")

    @property
    def recorded_only(self) -> bool:
        """Whether the field is accepted and kept but nothing acts on it."""
        return self.effect[0] == RECORDED_ONLY

    @property
    def path(self) -> str:
        """The canonical dotted path, ``section.key`` (as ``--set`` spells it)."""
        return f"{self.section}.{self.key}"

    @property
    def spellings(self) -> tuple[tuple[str, str], ...]:
        """Every accepted ``(section, key)``: the canonical one first."""
        return ((self.section, self.key),) + self.aliases


def _f(id: str, name: str, where: str, type: FieldType, default: Any, doc: str, *,
       aliases: tuple[str, ...] = (), env: tuple[str, ...] = (), runtime: bool = False,
       derived: str | None = None) -> Field:
    section, key = where.split(".")
    alias_pairs = tuple(tuple(a.split(".")) for a in aliases)
    return Field(id, name, section, key, type, default, doc, alias_pairs, env, runtime,  # type: ignore[arg-type]
                 derived)


_POSITIVE = Int(minimum=1)
#: The sequence mixers a block may have (``mixers``).
MIXERS = ("attention", "ssm", "hyena")
_COUNT = Int(minimum=0)
_PORT = Int(minimum=1, maximum=65535)
_FRACTION_095 = Float(0.0, 0.95)
_SECURITY_PRESET = 'true when `security_level = "high"` (preset)'

#: The sections of the canonical TOML layout, in the order ``to_toml`` writes them.
SECTIONS: dict[str, str] = {
    "model": "model shape and features (Modelo Base)",
    "jax_config": "JAX backend and debugging (JAX Nativo y Backend)",
    "performance": "compilation and precision (Compilación y Optimización)",
    "vector_quantization": "vector quantization codebooks",
    "tpu_v4_optimizations": "TPU v4 optimizations, parallelism and memory",
    "sparsity": "sparsity and Mixture of Rookies",
    "quantization": "BitNet and affine weight quantization",
    "hardware": "device selection and memory",
    "arm_optimizations": "ARM Axion optimizations",
    "deployment": "distributed training and batching",
    "enterprise": "MCP, Meta Loop, monitoring, logging and security",
    "training": "optimizer, schedule and checkpoints",
    "testing": "development and testing switches",
    "generation": "sampling",
}

#: Sections accepted as other spellings only (never written), with what they stand for.
ALIAS_SECTIONS: dict[str, str] = {
    "tpu_v6_features": "TPU v6 enterprise VQ (another spelling of [vector_quantization] keys)",
}

FIELDS: tuple[Field, ...] = (
    # ---------------------------------------------------------------- 1.1 Modelo Base
    _f("M1", "model_name", "model.model_name",
       Text(pattern=r"[\s\S]+", shape="a non-empty string", example="capibara_custom"),
       "capibara_custom", "model name"),
    _f("M2", "version", "model.version",
       Text(pattern=r"v?\d+\.\d+\.\d+([-+].+)?", shape="a version like v3.0.0", example="v3.0.0"),
       "v3.0.0", "model/config release (3.x; the v2 in CapibaraGPT-v2 is branding)"),
    _f("M3", "hidden_size", "model.hidden_size", _POSITIVE, 768,
       "embedding dimension (documented tiers 512, 768, 1024, 2048)"),
    _f("M4", "num_layers", "model.num_layers", _POSITIVE, 12,
       "transformer layers (documented tiers 6, 12, 24, 36)"),
    _f("M5", "num_heads", "model.num_heads", Optional(_POSITIVE, none_word=None), None,
       "attention heads (documented tiers 8, 12, 16, 32)",
       derived="`hidden_size // 64` (head dimension 64)"),
    _f("M6", "vocab_size", "model.vocab_size", _POSITIVE, 32000, "vocabulary size"),
    _f("M7", "max_seq_length", "model.max_seq_length", _POSITIVE, 2048, "maximum sequence length"),
    _f("M8", "multimodal_enabled", "model.multimodal_enabled", Bool(), False,
       "multimodal processing"),
    _f("M9", "vision_encoder_type", "model.vision_encoder_type",
       Optional(Choice(("clip", "vit"))), None, "vision encoder type"),
    _f("M10", "audio_encoder_type", "model.audio_encoder_type",
       Optional(Choice(("wav2vec2", "whisper"))), None, "audio encoder type"),
    _f("M11", "use_chain_of_thought", "model.use_chain_of_thought", Bool(), True,
       "Chain-of-Thought reasoning"),
    _f("M12", "use_dual_process", "model.use_dual_process", Bool(), True,
       "dual (fast/slow) thinking system"),
    _f("M13", "personality_enabled", "model.personality_enabled", Bool(), True,
       "personality system"),
    _f("M14", "mixers", "model.mixers", Pattern(MIXERS), ["attention"],
       "each block's sequence mixer, as a pattern repeated over the layers: `attention` "
       "(causal self-attention), `ssm` (a Mamba-style selective state-space block: the scan, "
       "conv and linalg kernels) or `hyena` (a long implicit convolution: the fft and conv "
       "kernels); e.g. `[\"ssm\", \"ssm\", \"attention\"]`; its length must divide `num_layers`",
       env=("CAPIBARA_MIXERS",)),
    _f("M15", "ssm_state_size", "model.ssm_state_size", Int(minimum=1, maximum=256), 16,
       "state dimensions per channel of an `ssm` block's recurrence (Mamba's N)"),
    _f("M16", "ssm_conv_width", "model.ssm_conv_width", Int(minimum=2, maximum=64), 4,
       "taps of the short causal convolution in `ssm` and `hyena` blocks"),
    _f("M17", "hyena_filter_length", "model.hyena_filter_length",
       Optional(_POSITIVE), None,
       "taps of a `hyena` block's long implicit filter, at most `max_seq_length` "
       "(`\"none\"`: as long as the context)"),
    # ---------------------------------------------------------------- 1.2 JAX Nativo y Backend
    _f("J1", "use_jax_native", "jax_config.use_jax_native", Bool(), True,
       "use the project's native JAX wrapper `capibara.jax`",
       env=("CAPIBARA_USE_JAX_NATIVE",),
       derived='false when only `jax_backend = "standard"` is set'),
    _f("J2", "jax_backend", "jax_config.backend", Choice(("capibara_jax", "standard", "auto")),
       "capibara_jax", "JAX backend to use", env=("CAPIBARA_JAX_BACKEND",),
       derived='"standard" when only `use_jax_native = false` is set'),
    _f("J3", "fallback_to_standard", "jax_config.fallback_to_standard", Bool(), True,
       "fall back to standard JAX if `capibara.jax` is unavailable"),
    _f("J4", "compile_mode", "performance.compile_mode",
       Choice(("default", "aggressive", "conservative")), "default",
       "compilation/optimization mode", env=("CAPIBARA_COMPILE_MODE",)),
    _f("J5", "enable_jit", "performance.enable_jit", Bool(), True, "JIT compilation"),
    _f("J6", "cache_compiled_functions", "performance.cache_compiled_functions", Bool(), True,
       "cache compiled functions", aliases=("performance.cache_optimized",)),
    _f("J7", "jax_debug_mode", "jax_config.debug_mode", Bool(), False,
       "JAX debug mode (not the general `debug_mode`)",
       env=("CAPIBARA_JAX_DEBUG", "CAPIBARA_JAX_DEBUG_MODE"), runtime=True),
    _f("J8", "trace_execution", "jax_config.trace_execution", Bool(), False,
       "execution tracing", runtime=True),
    _f("J9", "profile_performance", "jax_config.profile_performance", Bool(), False,
       "JAX/XLA profiler traces (not `performance_profiling`)", runtime=True),
    # ---------------------------------------------------------------- 1.3 Vector Quantization
    _f("V1", "use_vq", "vector_quantization.enabled", Bool(), True,
       "enable vector quantization (legacy name `use_quantum`)",
       env=("CAPIBARA_USE_VQ",), runtime=True),
    _f("V2", "vq_codes", "vector_quantization.codes",
       IntChoice((64, 128), hint="the TPU v6 enterprise mode uses 128; 64 is the cost-effective "
                                 "default"), 64,
       "number of quantization codes (codebook size)",
       aliases=("tpu_v6_features.vq_codes",), env=("CAPIBARA_VQ_CODES",),
       derived="128 when `vq_enterprise_mode` is true"),
    _f("V3", "vq_embedding_dim", "vector_quantization.embedding_dim",
       Optional(_POSITIVE, none_word=None), None, "VQ codebook vector dimension",
       derived="`hidden_size`"),
    _f("V4", "vq_adaptive_threshold", "vector_quantization.adaptive_threshold", Float(0.0, 1.0), 0.5,
       "adaptive threshold", env=("CAPIBARA_VQ_ADAPTIVE_THRESHOLD",), runtime=True),
    _f("V5", "vq_diversity_regularization", "vector_quantization.diversity_regularization", Bool(),
       True, "codebook diversity regularization"),
    _f("V6", "vq_commitment_weight", "vector_quantization.commitment_weight", Float(minimum=0.0),
       0.25, "commitment-loss weight (the VQ-VAE β)"),
    _f("V7", "vq_use_tpu_optimizations", "vector_quantization.use_tpu_optimizations", Bool(), True,
       "TPU optimizations for VQ (no effect off TPU)"),
    _f("V8", "vq_use_simd", "vector_quantization.use_simd", Bool(), True,
       "SIMD vectorization (CPU/ARM)"),
    _f("V9", "vq_cache_codebooks", "vector_quantization.cache_codebooks", Bool(), True,
       "cache codebooks in memory"),
    _f("V10", "vq_enterprise_mode", "vector_quantization.enterprise_mode", Bool(), False,
       "128 codes plus adaptive ML (TPU v6 enterprise)",
       aliases=("tpu_v6_features.enabled", "tpu_v6_features.adaptive_ml")),
    _f("V11", "vq_cost_management", "vector_quantization.cost_management", Bool(), True,
       "automatic cost management (only with enterprise mode)",
       aliases=("tpu_v6_features.cost_management",), runtime=True),
    _f("V12", "vq_fallback_strategy", "vector_quantization.fallback_strategy",
       Choice(("tpu_v4", "gpu", "cpu", "none")), "tpu_v4",
       "where the enterprise (TPU v6) path falls back to"),
    _f("V13", "vq_precision", "vector_quantization.precision",
       Choice(("auto", "float32", "bfloat16", "float16", "int8")), "auto",
       "numeric precision of VQ codebooks and lookup"),
    # ---------------------------------------------------------------- 1.4 Optimizaciones TPU v4-32
    _f("T1", "use_tpu_v4_optimizations", "tpu_v4_optimizations.enabled", Bool(), True,
       "TPU v4-32 optimizations (only on a TPU v4 device)"),
    _f("T2", "tpu_mesh_shape", "tpu_v4_optimizations.mesh_shape", AutoOr(IntList()), "auto",
       "device mesh, [data] or [data, model]",
       env=("CAPIBARA_TPU_MESH", "CAPIBARA_TPU_MESH_SHAPE")),
    _f("T3", "tpu_memory_limit_gb", "tpu_v4_optimizations.memory_limit_gb",
       Float(0.0, exclusive_minimum=True), 32.0, "HBM limit in GiB per TPU chip"),
    _f("T4", "use_bfloat16", "tpu_v4_optimizations.use_bfloat16", Bool(), True,
       "native bfloat16 precision"),
    _f("T5", "mixed_precision", "performance.mixed_precision", Bool(), True,
       "automatic mixed precision", env=("CAPIBARA_MIXED_PRECISION",)),
    _f("T6", "async_collective", "tpu_v4_optimizations.async_collective", Bool(), True,
       "asynchronous collective operations"),
    _f("T7", "sharding_strategy", "tpu_v4_optimizations.sharding_strategy",
       Choice(("auto", "manual", "disabled")), "auto", "sharding strategy"),
    _f("T8", "data_parallel", "tpu_v4_optimizations.data_parallel", Bool(), True, "data parallelism"),
    _f("T9", "model_parallel", "tpu_v4_optimizations.model_parallel", Bool(), False,
       "model (tensor) parallelism"),
    _f("T10", "gradient_checkpointing", "tpu_v4_optimizations.gradient_checkpointing", Bool(), True,
       "activation rematerialization (not checkpoint saving)"),
    _f("T11", "activation_offloading", "tpu_v4_optimizations.activation_offloading", Bool(), False,
       "offload activations to host memory"),
    _f("T12", "optimizer_sharding", "tpu_v4_optimizations.optimizer_sharding", Bool(), True,
       "shard optimizer states"),
    _f("T13", "use_custom_kernels", "tpu_v4_optimizations.use_custom_kernels", Bool(), True,
       "optimized custom kernels"),
    _f("T14", "kernel_categories", "tpu_v4_optimizations.kernel_categories",
       Subset(("linalg", "attention", "scan", "collective", "conv", "fft")),
       ["linalg", "attention", "scan", "collective", "conv", "fft"],
       "active kernel categories (a closed set)"),
    # ---------------------------------------------------------------- 1.5 Sparsity y Quantización
    _f("S1", "use_sparse", "sparsity.enabled", Bool(), True, "enable sparsity",
       env=("CAPIBARA_USE_SPARSITY", "CAPIBARA_USE_SPARSE")),
    _f("S2", "sparsity_ratio", "sparsity.ratio", _FRACTION_095, 0.65,
       "target fraction of zeros", env=("CAPIBARA_SPARSITY_RATIO",)),
    _f("S3", "sparsity_method", "sparsity.method",
       Choice(("mor", "topk", "magnitude"), aliases={"mixture_of_rookies": "mor"}), "mor",
       "sparsity method (Mixture of Rookies is `mor`)"),
    _f("S4", "mor_num_experts", "sparsity.mor_num_experts", _POSITIVE, 8, "number of MoR experts"),
    _f("S5", "mor_top_k", "sparsity.mor_top_k", _POSITIVE, 2, "experts active per token"),
    _f("S6", "mor_load_balancing", "sparsity.mor_load_balancing", Bool(), True,
       "automatic load balancing"),
    _f("S7", "use_bitnet", "quantization.use_bitnet", Bool(), False, "BitNet 1.58b quantization"),
    _f("S8", "bitnet_precision", "quantization.bitnet_precision",
       Choice(("int8", "int4", "1.58bit"), aliases={"1.58b": "1.58bit"}), "1.58bit",
       "BitNet weight precision"),
    _f("S9", "use_affine_quantization", "quantization.use_affine_quantization", Bool(), True,
       "affine quantization", derived="false when `use_bitnet = true` is set"),
    _f("S10", "affine_bits", "quantization.affine_bits", IntChoice((4, 8, 16)), 8,
       "quantization bit width"),
    _f("S11", "affine_symmetric", "quantization.affine_symmetric", Bool(), True,
       "symmetric quantization"),
    _f("S12", "adaptive_sparsity", "sparsity.adaptive_sparsity", Bool(), True, "adaptive sparsity"),
    _f("S13", "sparsity_schedule", "sparsity.schedule",
       Choice(("linear", "cosine", "exponential")), "cosine", "sparsity schedule"),
    _f("S14", "min_sparsity", "sparsity.min_sparsity", _FRACTION_095, 0.3, "minimum sparsity"),
    _f("S15", "max_sparsity", "sparsity.max_sparsity", _FRACTION_095, 0.8, "maximum sparsity"),
    # ---------------------------------------------------------------- 1.6 Hardware y Deployment
    _f("H1", "device", "hardware.device", Choice(("auto", "tpu_v4", "tpu_v6", "gpu", "cpu")), "auto",
       "target device", env=("CAPIBARA_DEVICE",)),
    _f("H2", "auto_device_selection", "hardware.auto_device_selection", Bool(), True,
       "automatic device selection", derived='`device == "auto"`'),
    _f("H3", "hardware_fallback", "hardware.hardware_fallback", Bool(), True,
       "automatic hardware fallback"),
    _f("H4", "fallback_cpu", "hardware.fallback_cpu", Bool(), True,
       "allow CPU as the last fallback step"),
    _f("H5", "memory_limit_gb", "hardware.memory_limit_gb",
       Optional(Float(0.0, exclusive_minimum=True)), None,
       "general memory cap in GiB for the selected device"),
    _f("H6", "num_gpus", "hardware.num_gpus", _POSITIVE, 1, "number of GPUs to use"),
    _f("H7", "gpu_memory_fraction", "hardware.gpu_memory_fraction",
       Float(0.0, 1.0, exclusive_minimum=True), 0.8, "fraction of GPU memory to use",
       env=("CAPIBARA_GPU_MEMORY_FRACTION",)),
    _f("H8", "gpu_memory_growth", "hardware.gpu_memory_growth", Bool(), True,
       "grow GPU memory on demand instead of preallocating"),
    _f("H9", "use_arm_optimizations", "arm_optimizations.enabled", Bool(), False,
       "ARM Axion optimizations",
       env=("CAPIBARA_ARM_OPTIMIZATIONS", "CAPIBARA_USE_ARM_OPTIMIZATIONS")),
    _f("H10", "arm_sve_enabled", "arm_optimizations.sve_vectorization", Bool(), True,
       "SVE vectorization"),
    _f("H11", "arm_neon_fallback", "arm_optimizations.neon_fallback", Bool(), True,
       "NEON fallback when SVE is unavailable"),
    _f("H12", "arm_uma_memory", "arm_optimizations.uma_memory_optimized", Bool(), True,
       "optimized unified-memory (UMA) use"),
    _f("H13", "distributed_training", "deployment.distributed_training", Bool(), False,
       "distributed training"),
    _f("H14", "world_size", "deployment.world_size", _POSITIVE, 1, "number of distributed processes"),
    _f("H15", "local_rank", "deployment.local_rank", _COUNT, 0, "local rank of this process"),
    _f("H16", "batch_size", "deployment.batch_size", AutoOr(_POSITIVE), "auto",
       "global batch size", runtime=True),
    _f("H17", "max_batch_size", "deployment.max_batch_size", _POSITIVE, 32, "maximum batch size",
       runtime=True),
    _f("H18", "adaptive_batching", "deployment.adaptive_batching", Bool(), True, "adaptive batching",
       runtime=True),
    _f("H19", "memory_optimization_level", "deployment.memory_optimization_level",
       Int(minimum=0, maximum=3), 2, "memory optimization level"),
    # ---------------------------------------------------------------- 1.7 Enterprise y Avanzados
    _f("X1", "mcp_enabled", "enterprise.mcp_enabled", Bool(), False,
       "enable MCP (Model Control Protocol) server", env=("CAPIBARA_MCP_ENABLED",)),
    _f("X2", "mcp_port", "enterprise.mcp_port", _PORT, 8080, "MCP server port"),
    _f("X3", "mcp_auth_required", "enterprise.mcp_auth_required", Bool(), True,
       "MCP authentication required", derived=_SECURITY_PRESET),
    _f("X4", "mcp_rate_limiting", "enterprise.mcp_rate_limiting", Bool(), True, "MCP rate limiting"),
    _f("X5", "meta_loop_enabled", "enterprise.meta_loop_enabled", Bool(), False,
       "enable Meta Loop (Elixir/OTP)", env=("CAPIBARA_META_LOOP_ENABLED",)),
    _f("X6", "ethics_guard_enabled", "enterprise.ethics_guard_enabled", Bool(), True,
       "ethics guard (part of Meta Loop)"),
    _f("X7", "rag_hub_enabled", "enterprise.rag_hub_enabled", Bool(), True,
       "RAG Hub (part of Meta Loop)"),
    _f("X8", "elixir_bridge_port", "enterprise.elixir_bridge_port", _PORT, 9090,
       "Python–Elixir bridge port"),
    _f("X9", "monitoring_enabled", "enterprise.monitoring_enabled", Bool(), False,
       "real-time monitoring", env=("CAPIBARA_MONITORING_ENABLED",), runtime=True),
    _f("X10", "metrics_endpoint", "enterprise.metrics_endpoint",
       Text(pattern=r"/.*", shape="a URL path starting with `/`", example="/metrics"), "/metrics",
       "metrics endpoint path"),
    _f("X11", "health_check_interval", "enterprise.health_check_interval", _POSITIVE, 30,
       "health-check interval in seconds", runtime=True),
    _f("X12", "performance_profiling", "enterprise.performance_profiling", Bool(), False,
       "runtime performance metrics under monitoring", runtime=True),
    _f("X13", "structured_logging", "enterprise.structured_logging", Bool(), True,
       "structured logging", runtime=True),
    _f("X14", "log_level", "enterprise.log_level",
       Choice(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True), "INFO",
       "logging level", env=("CAPIBARA_LOG_LEVEL",), runtime=True),
    _f("X15", "audit_logging", "enterprise.audit_logging", Bool(), True, "audit logs",
       runtime=True, derived=_SECURITY_PRESET),
    _f("X16", "sensitive_data_masking", "enterprise.sensitive_data_masking", Bool(), True,
       "mask sensitive data", runtime=True, derived=_SECURITY_PRESET),
    _f("X17", "api_key_required", "enterprise.api_key_required", Bool(), False,
       "API key required (the key itself is never stored in the config)",
       derived=_SECURITY_PRESET),
    _f("X18", "request_encryption", "enterprise.request_encryption", Bool(), False,
       "request encryption", derived=_SECURITY_PRESET),
    _f("X19", "output_filtering", "enterprise.output_filtering", Bool(), True, "output filtering",
       runtime=True, derived=_SECURITY_PRESET),
    _f("X20", "content_safety_check", "enterprise.content_safety_check", Bool(), True,
       "content safety check", runtime=True, derived=_SECURITY_PRESET),
    _f("X21", "security_level", "enterprise.security_level", Choice(("standard", "high")),
       "standard", 'security preset; "high" turns every security switch on'),
    # ---------------------------------------------------------------- 1.8 Entrenamiento
    _f("R1", "learning_rate", "training.learning_rate", Float(0.0, exclusive_minimum=True), 1e-4,
       "learning rate"),
    _f("R2", "weight_decay", "training.weight_decay", Float(minimum=0.0), 0.01, "weight decay"),
    _f("R3", "gradient_clip_norm", "training.gradient_clip_norm",
       Optional(Float(0.0, exclusive_minimum=True)), 1.0,
       'gradient clipping by global norm (`"none"` disables it)'),
    _f("R4", "use_consensus_distilling", "training.use_consensus_distilling", Bool(), False,
       "consensus distilling"),
    _f("R5", "consensus_num_teachers", "training.consensus_num_teachers", _POSITIVE, 5,
       "number of consensus teachers"),
    _f("R6", "consensus_num_critics", "training.consensus_num_critics", _COUNT, 3,
       "number of consensus critics"),
    _f("R7", "consensus_temperature", "training.consensus_temperature",
       Float(0.0, exclusive_minimum=True), 3.0,
       "distillation temperature (not the sampling `temperature`)"),
    _f("R8", "optimizer", "training.optimizer", Choice(("adamw", "sgd", "rmsprop")), "adamw",
       "optimizer"),
    _f("R9", "beta1", "training.beta1", Float(0.0, 1.0, exclusive_maximum=True), 0.9, "Adam β1"),
    _f("R10", "beta2", "training.beta2", Float(0.0, 1.0, exclusive_maximum=True), 0.999,
       "Adam β2 (the decay ρ for rmsprop)"),
    _f("R11", "epsilon", "training.epsilon", Float(0.0, exclusive_minimum=True), 1e-8,
       "optimizer epsilon"),
    _f("R12", "lr_scheduler", "training.lr_scheduler", Choice(("linear", "cosine", "polynomial")),
       "cosine", "learning-rate schedule"),
    _f("R13", "warmup_steps", "training.warmup_steps", _COUNT, 1000, "warmup steps"),
    _f("R14", "decay_steps", "training.decay_steps", _POSITIVE, 10000,
       "total schedule length, warmup included"),
    _f("R15", "save_checkpoint_steps", "training.save_checkpoint_steps", _POSITIVE, 1000,
       "steps between saved checkpoints"),
    _f("R16", "keep_checkpoint_max", "training.keep_checkpoint_max", _POSITIVE, 5,
       "checkpoints to keep"),
    _f("R17", "checkpoint_compression", "training.checkpoint_compression", Bool(), True,
       "compress checkpoints"),
    _f("R18", "async_checkpointing", "training.async_checkpointing", Bool(), True,
       "asynchronous checkpointing"),
    # ---------------------------------------------------------------- 1.9 Testing / development
    _f("N2", "debug_mode", "testing.debug_mode", Bool(), False,
       "general debug mode (not `jax_debug_mode`)", env=("CAPIBARA_DEBUG_MODE",),
       runtime=True),
    _f("N3", "fast_startup", "testing.fast_startup", Bool(), False,
       "skip warm-up compilation and eager loading", env=("CAPIBARA_FAST_STARTUP",)),
    _f("N4", "enable_comprehensive_tests", "testing.enable_comprehensive_tests", Bool(), False,
       "select the comprehensive test suite"),
    _f("N5", "mock_expensive_ops", "testing.mock_expensive_ops", Bool(), False,
       "replace expensive operations with mocks (outputs are not real)"),
    # ---------------------------------------------------------------- 1.10 Generation
    _f("N1", "temperature", "generation.temperature", Float(minimum=0.0), 1.0,
       "sampling temperature (0 = greedy; not `consensus_temperature`)", runtime=True),
)

#: Where a field can act: the places of :attr:`Field.effect`.
EFFECT_PLACES: dict[str, str] = {
    "plan": "changes the compiled plan (the section named)",
    "model": "read by the model a plan builds (capibara/model/)",
    "run": "applied by `capibara run` (and `train`/`serve`) around JAX "
           "(capibara/runtime/environment.py)",
    "train": "read from the plan's `training` section by `capibara train` (capibara/train/)",
    "serve": "read from the plan's `services` section by `capibara serve` (capibara/serve/)",
    "compile": "steers the compiler's checks and fallbacks; a plan differs only when they fire",
    "recorded": "recorded only: accepted, validated and kept in the plan's config; nothing acts on it",
}

#: The place of a field nothing acts on.
RECORDED_ONLY = "recorded"

_NO_MECHANISM = "the model has no mechanism for it"

#: The effect column of the table: field name → (place, how). Kept beside the
#: table rather than in each row so the rows stay one fact each; a test checks
#: that every field has an entry and that flipping it acts where it says.
_EFFECTS: dict[str, tuple[str, str]] = {
    "model_name": (RECORDED_ONLY, "a label"),
    "version": (RECORDED_ONLY, "a label"),
    "hidden_size": ("plan", "model.hidden_size"),
    "num_layers": ("plan", "model.num_layers"),
    "num_heads": ("plan", "model.num_heads"),
    "vocab_size": ("plan", "model.vocab_size"),
    "mixers": ("plan", "model.mixers and the scan/conv/fft kernels"),
    "ssm_state_size": ("plan", "model (the SSM blocks' state) with an ssm mixer"),
    "ssm_conv_width": ("plan", "model (the SSM blocks' conv) with an ssm mixer"),
    "hyena_filter_length": ("plan", "model (the hyena long filter) with a hyena mixer"),
    "max_seq_length": ("plan", "model.max_seq_length"),
    "multimodal_enabled": (RECORDED_ONLY, _NO_MECHANISM + " (the model reads tokens only)"),
    "vision_encoder_type": (RECORDED_ONLY, _NO_MECHANISM + " (no vision encoder)"),
    "audio_encoder_type": (RECORDED_ONLY, _NO_MECHANISM + " (no audio encoder)"),
    "use_chain_of_thought": (RECORDED_ONLY, _NO_MECHANISM),
    "use_dual_process": (RECORDED_ONLY, _NO_MECHANISM),
    "personality_enabled": (RECORDED_ONLY, _NO_MECHANISM),
    "use_jax_native": (RECORDED_ONLY, "there is no `capibara.jax` wrapper: kernels are plain JAX"),
    "jax_backend": (RECORDED_ONLY, "there is no `capibara.jax` wrapper: kernels are plain JAX"),
    "fallback_to_standard": (RECORDED_ONLY, "there is no `capibara.jax` wrapper to fall back from"),
    "compile_mode": ("plan", "kernels (implementations and tiles) and execution.donate"),
    "enable_jit": ("plan", "execution.jit: op-by-op execution when false"),
    "cache_compiled_functions": ("plan", "execution.cache_compiled (the model notes that jax.jit "
                                         "keeps compiled programs anyway)"),
    "jax_debug_mode": ("run", "turns on jax_debug_nans and jax_debug_infs"),
    "trace_execution": ("run", "writes a jax.profiler trace into the run directory"),
    "profile_performance": ("run", "writes a jax.profiler trace into the run directory"),
    "use_vq": ("plan", "model.vq_codes and the vq kernel; a live bypass in the model"),
    "vq_codes": ("plan", "model.vq_codes"),
    "vq_embedding_dim": ("compile", "checked to equal hidden_size: the bottleneck quantizes the "
                                    "hidden state itself"),
    "vq_adaptive_threshold": ("model", "the VQ bottleneck's bypass threshold (runtime setting)"),
    "vq_diversity_regularization": ("plan", "kernels.bottleneck.vq attrs; the diversity loss term"),
    "vq_commitment_weight": ("plan", "kernels.bottleneck.vq attrs; the commitment loss weight"),
    "vq_use_tpu_optimizations": ("plan", "kernels: the vq implementation on TPU"),
    "vq_use_simd": ("plan", "kernels: the vq implementation on CPU"),
    "vq_cache_codebooks": (RECORDED_ONLY, "codebooks are parameters and always stay in memory"),
    "vq_enterprise_mode": ("plan", "model.vq_codes (128 codes); its adaptive ML is recorded only"),
    "vq_cost_management": (RECORDED_ONLY, "no cost manager exists"),
    "vq_fallback_strategy": ("compile", "\"none\" refuses the enterprise VQ path off TPU v6; the "
                                        "other values behave alike"),
    "vq_precision": ("plan", "precision.vq_codebook"),
    "use_tpu_v4_optimizations": ("plan", "kernels: the TPU v4 implementations"),
    "tpu_mesh_shape": ("plan", "mesh"),
    "tpu_memory_limit_gb": ("plan", "memory.limit on TPU"),
    "use_bfloat16": ("plan", "precision"),
    "mixed_precision": ("plan", "precision"),
    "async_collective": (RECORDED_ONLY, "XLA schedules the collectives itself; no switch is "
                                        "passed to it"),
    "sharding_strategy": ("plan", "kernels: \"manual\" trains through the explicit shard_map "
                                  "step with the plan's collective kernels, \"auto\" through "
                                  "the faster of it and XLA's partitioning on the target (the "
                                  "decision execution.sharded_step); \"disabled\" refuses the "
                                  "sharded settings"),
    "data_parallel": ("plan", "mesh (the data axis)"),
    "model_parallel": ("plan", "mesh (the model axis) and the sharded kernels"),
    "gradient_checkpointing": ("plan", "execution.remat"),
    "activation_offloading": ("plan", "execution.offload_activations"),
    "optimizer_sharding": ("plan", "memory.optimizer_state; the model shards optimizer state "
                                   "over the data axis"),
    "use_custom_kernels": ("plan", "kernels: the custom implementations on TPU"),
    "kernel_categories": ("plan", "kernels: the families given custom implementations on TPU"),
    "use_sparse": ("plan", "model (Mixture of Rookies) and the sparse feed-forward"),
    "sparsity_ratio": ("plan", "kernels.blocks.w_in/w_out attrs.sparsity with method "
                               "\"magnitude\" or \"topk\""),
    "sparsity_method": ("plan", "model (Rookies) or kernels attrs.sparsity (magnitude, topk)"),
    "mor_num_experts": ("plan", "model.num_experts"),
    "mor_top_k": ("plan", "model.experts_per_token"),
    "mor_load_balancing": ("plan", "kernels.blocks.moe attrs; the balance loss term"),
    "use_bitnet": ("plan", "kernels attrs.weights"),
    "bitnet_precision": ("plan", "kernels attrs.weights"),
    "use_affine_quantization": ("plan", "kernels attrs.weights"),
    "affine_bits": ("plan", "kernels attrs.weights"),
    "affine_symmetric": ("plan", "kernels attrs.weights"),
    "adaptive_sparsity": ("plan", "kernels attrs.sparsity: gradual magnitude pruning in training"),
    "sparsity_schedule": ("plan", "kernels attrs.sparsity: the gradual pruning schedule"),
    "min_sparsity": ("plan", "kernels attrs.sparsity: where gradual pruning starts"),
    "max_sparsity": ("plan", "kernels attrs.sparsity: where gradual pruning ends"),
    "device": ("compile", "the device sought on this host when no --target is given: absent, it "
                          "falls back (hardware_fallback) or is an error; a --target wins"),
    "auto_device_selection": ("compile", "derived from `device`; checked against it"),
    "hardware_fallback": ("compile", "whether a missing device falls back (target) or is an error"),
    "fallback_cpu": ("compile", "whether the fallback may end on the CPU"),
    "memory_limit_gb": ("plan", "memory.limit"),
    "num_gpus": ("plan", "mesh on GPU"),
    "gpu_memory_fraction": ("plan", "memory.limit on GPU; XLA_PYTHON_CLIENT_MEM_FRACTION in run"),
    "gpu_memory_growth": ("run", "XLA_PYTHON_CLIENT_PREALLOCATE=false (grow on demand)"),
    "use_arm_optimizations": (RECORDED_ONLY, "checked against the target (an ARM CPU); on "
                                             "cpu-arm XLA already emits NEON/SVE code and no "
                                             "capibara kernel variant or tile table differs"),
    "arm_sve_enabled": (RECORDED_ONLY, "XLA's CPU code generator picks SVE or NEON from the host"),
    "arm_neon_fallback": (RECORDED_ONLY, "XLA's CPU code generator picks SVE or NEON from the host"),
    "arm_uma_memory": (RECORDED_ONLY, "host memory is already unified on CPU"),
    "distributed_training": ("run", "defaults of --num-processes/--process-id"),
    "world_size": ("run", "default of --num-processes"),
    "local_rank": ("run", "default of --process-id"),
    "batch_size": ("plan", "batch"),
    "max_batch_size": ("plan", "batch"),
    "adaptive_batching": ("serve", "batch.adaptive: request batching"),
    "memory_optimization_level": ("plan", "execution (donation, loss chunks, saved dtype)"),
    "mcp_enabled": ("serve", "services.mcp"),
    "mcp_port": ("serve", "services.mcp"),
    "mcp_auth_required": ("serve", "services.mcp"),
    "mcp_rate_limiting": ("serve", "services.mcp"),
    "meta_loop_enabled": ("serve", "services.meta_loop"),
    "ethics_guard_enabled": ("serve", "services.meta_loop"),
    "rag_hub_enabled": ("serve", "services.meta_loop"),
    "elixir_bridge_port": ("serve", "services.meta_loop"),
    "monitoring_enabled": ("serve", "services.monitoring"),
    "metrics_endpoint": ("serve", "services.monitoring"),
    "health_check_interval": ("serve", "services.monitoring"),
    "performance_profiling": ("run", "writes a jax.profiler trace into the run directory "
                                     "(and services.monitoring)"),
    "structured_logging": ("run", "the package's log records as JSON lines"),
    "log_level": ("run", "the level of the `capibara` logger"),
    "audit_logging": ("serve", "services.security"),
    "sensitive_data_masking": ("serve", "services.security"),
    "api_key_required": ("serve", "services.security"),
    "request_encryption": ("serve", "services.security"),
    "output_filtering": ("serve", "services.security"),
    "content_safety_check": ("serve", "services.security"),
    "security_level": ("serve", "services.security (\"high\" turns every switch on)"),
    "learning_rate": ("train", "the optimizer's schedule (capibara/model/training.py)"),
    "weight_decay": ("train", "the optimizer (capibara/model/training.py)"),
    "gradient_clip_norm": ("train", "the optimizer (capibara/model/training.py)"),
    "use_consensus_distilling": (RECORDED_ONLY, _NO_MECHANISM + " (no teachers or critics)"),
    "consensus_num_teachers": (RECORDED_ONLY, _NO_MECHANISM + " (no teachers or critics)"),
    "consensus_num_critics": (RECORDED_ONLY, _NO_MECHANISM + " (no teachers or critics)"),
    "consensus_temperature": (RECORDED_ONLY, _NO_MECHANISM + " (no teachers or critics)"),
    "optimizer": ("train", "the optimizer (capibara/model/training.py)"),
    "beta1": ("train", "the optimizer (capibara/model/training.py)"),
    "beta2": ("train", "the optimizer (capibara/model/training.py)"),
    "epsilon": ("train", "the optimizer (capibara/model/training.py)"),
    "lr_scheduler": ("train", "the optimizer's schedule (capibara/model/training.py)"),
    "warmup_steps": ("train", "the optimizer's schedule (capibara/model/training.py)"),
    "decay_steps": ("train", "the optimizer's schedule (capibara/model/training.py)"),
    "save_checkpoint_steps": ("train", "Model.checkpoint_to (capibara/model/checkpoint.py)"),
    "keep_checkpoint_max": ("train", "Model.checkpoint_to (capibara/model/checkpoint.py)"),
    "checkpoint_compression": ("train", "Model.checkpoint_to (capibara/model/checkpoint.py)"),
    "async_checkpointing": ("train", "Model.checkpoint_to (capibara/model/checkpoint.py)"),
    "debug_mode": ("run", "the `capibara` logger at DEBUG"),
    "fast_startup": ("run", "skips the kernels' ahead-of-time warm-up (as --no-warmup)"),
    "enable_comprehensive_tests": (RECORDED_ONLY, "the test suite is chosen by pytest, not the "
                                                  "config"),
    "mock_expensive_ops": (RECORDED_ONLY, "nothing is ever mocked"),
    "temperature": ("model", "generation's sampling temperature (runtime setting)"),
}

FIELDS = tuple(msgspec.structs.replace(f, effect=_EFFECTS[f.name]) if f.name in _EFFECTS else f
               for f in FIELDS)

FIELD_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

#: ``(section, key)`` → field, for canonical and alias spellings alike.
_BY_SPELLING: dict[tuple[str, str], Field] = {
    spelling: f for f in FIELDS for spelling in f.spellings}

#: ``CAPIBARA_*`` variable → field.
ENV_VARS: dict[str, Field] = {var: f for f in FIELDS for var in f.env}

#: Names of the fields ``update_runtime_settings`` may change (none that shapes or places
#: the model).
RUNTIME_MUTABLE: frozenset[str] = frozenset(f.name for f in FIELDS if f.runtime)

#: The switches `security_level = "high"` turns on (and may not be turned off under it).
SECURITY_SWITCHES = ("mcp_auth_required", "api_key_required", "request_encryption",
                     "audit_logging", "sensitive_data_masking", "output_filtering",
                     "content_safety_check")


def field_at(section: str, key: str) -> Field | None:
    """The field a TOML ``[section] key`` spells (canonical or alias), or ``None``."""
    return _BY_SPELLING.get((section, key))


def keys_of(section: str) -> list[str]:
    """Every key accepted in ``section`` (canonical or alias), in table order."""
    return [key for (sec, key) in _BY_SPELLING if sec == section]


def all_paths() -> Iterator[str]:
    """Every accepted dotted path ``section.key`` (for "did you mean" on ``--set``)."""
    return (f"{sec}.{key}" for (sec, key) in _BY_SPELLING)


def explain_field(name: str) -> str:
    """What ``capibara explain FIELD`` prints for a field (flat name or ``section.key``)."""
    f = FIELD_BY_NAME.get(name)
    if f is None and "." in name:
        section, _, key = name.partition(".")
        f = field_at(section, key)
    if f is None:
        raise KeyError(name)
    from capibara.config.fieldtypes import format_value

    lines = [f"{f.name} ({f.id}): {f.doc}", "",
             f"  toml      [{f.section}] {f.key}"]
    for section, key in f.aliases:
        lines.append(f"  alias     [{section}] {key}")
    if f.env:
        lines.append(f"  env       {', '.join(f.env)}")
    lines.append(f"  type      {f.type.describe()}")
    if f.default is not None:
        lines.append(f"  default   {format_value(f.type.to_toml(f.default))}")
    elif not f.derived:
        lines.append("  default   none")
    if f.derived:
        lines.append(f"  derived   {f.derived}")
    lines.append(f"  runtime   {'may change at run time (update_runtime_settings)' if f.runtime else 'fixed once built'}")
    place, how = f.effect
    if place:
        if place == RECORDED_ONLY:
            lines.append(f"  effect    recorded only ({how}): accepted, validated and kept in the "
                         "plan's config; nothing acts on it")
        else:
            lines.append(f"  effect    {place}: {how}")
            lines.append(f"            ({EFFECT_PLACES[place]})")
    return "\n".join(lines) + "\n"


#: Sub-switches that mean something only under another switch.
_PARENT_SWITCH = {"arm_sve_enabled": "use_arm_optimizations",
                  "arm_neon_fallback": "use_arm_optimizations",
                  "arm_uma_memory": "use_arm_optimizations",
                  "vq_cost_management": "vq_enterprise_mode",
                  "fallback_to_standard": "use_jax_native",
                  "vision_encoder_type": "multimodal_enabled",
                  "audio_encoder_type": "multimodal_enabled"}


def recorded_only_switched_on(config: Any) -> list[str]:
    """The recorded-only fields ``config`` switches on: a boolean that is true, or
    another value set explicitly. ``capibara compile`` names them in one line."""
    explicit = config.explicit_fields
    on = []
    for f in FIELDS:
        if not f.recorded_only or isinstance(f.type, Text):  # a label switches nothing on
            continue
        parent = _PARENT_SWITCH.get(f.name)
        if parent is not None and not getattr(config, parent):
            continue
        value = getattr(config, f.name)
        if (value is True) or (not isinstance(value, bool) and value is not None
                               and f.name in explicit):
            on.append(f.name)
    return on
