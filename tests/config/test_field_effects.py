"""Every field acts where the field table's effect column says, or is marked recorded only.

Each field is flipped to a valid non-default value (in a context where it can
act: its feature on, a target it applies to) and compiled beside the same
context without the flip. What must then differ depends on the field's place:

- ``plan``: a section the runtime and model build from (target, model,
  memory, precision, mesh, batch, execution, kernels);
- ``model``: what the model reads that is not in those sections (its spec and
  runtime settings);
- ``train``: the plan's ``training`` record, and for the optimizer fields the
  optimizer's updates or the schedule (capibara/model/training.py). The trainer
  (capibara/train/) and Model.checkpoint_to read the rest, tested there
  (tests/test_checkpoint.py for the checkpoint fields);
- ``serve``: the plan's ``services`` (or batch) record, which capibara/serve/ reads
  and tests;
- ``run``: the process settings of :mod:`capibara.runtime.environment`
  (tests/runtime/test_environment.py checks they take effect);
- ``compile``: the compile's diagnostics or its plan;
- ``recorded``: nothing of the above changes.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from capibara.compiler.driver import compile_config
from capibara.compiler.model_spec import ModelSpec
from capibara.config import ModularModelConfig
from capibara.config.fields import EFFECT_PLACES, FIELDS, RECORDED_ONLY
from capibara.runtime.environment import process_settings
from capibara.targets import get_target

#: A small model, so 127 × 2 compiles stay fast.
BASE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 256, "max_seq_length": 64}

#: field → (flipped value, context the field acts in, target[, what must change with it]).
FLIPS: dict[str, tuple] = {
    "model_name": ("other", {}, "cpu"),
    "version": ("v3.1.0", {}, "cpu"),
    "hidden_size": (128, {}, "cpu"),
    "num_layers": (4, {}, "cpu"),
    "num_heads": (2, {}, "cpu"),
    "vocab_size": (512, {}, "cpu"),
    "mixers": (["attention", "ssm"], {}, "cpu"),
    "ssm_state_size": (8, {"mixers": ["attention", "ssm"]}, "cpu"),
    "ssm_conv_width": (2, {"mixers": ["attention", "ssm"]}, "cpu"),
    "hyena_filter_length": (32, {"mixers": ["attention", "hyena"]}, "cpu"),
    "max_seq_length": (128, {}, "cpu"),
    "multimodal_enabled": (True, {}, "cpu", {"vision_encoder_type": "clip"}),
    "vision_encoder_type": ("clip", {"multimodal_enabled": True, "audio_encoder_type": "whisper"},
                            "cpu"),
    "audio_encoder_type": ("whisper", {"multimodal_enabled": True, "vision_encoder_type": "clip"},
                           "cpu"),
    "use_chain_of_thought": (False, {}, "cpu"),
    "use_dual_process": (False, {}, "cpu"),
    "personality_enabled": (False, {}, "cpu"),
    "use_jax_native": (False, {"jax_backend": "standard"}, "cpu"),
    "jax_backend": ("standard", {"use_jax_native": False}, "cpu"),
    "fallback_to_standard": (False, {}, "cpu"),
    "compile_mode": ("conservative", {}, "cpu"),
    "enable_jit": (False, {}, "cpu"),
    "cache_compiled_functions": (False, {}, "cpu"),
    "jax_debug_mode": (True, {}, "cpu"),
    "trace_execution": (True, {}, "cpu"),
    "profile_performance": (True, {}, "cpu"),
    "use_vq": (False, {}, "cpu"),
    "vq_codes": (128, {}, "cpu"),
    "vq_embedding_dim": (32, {}, "cpu"),
    "vq_adaptive_threshold": (0.7, {}, "cpu"),
    "vq_diversity_regularization": (False, {}, "cpu"),
    "vq_commitment_weight": (0.5, {}, "cpu"),
    "vq_use_tpu_optimizations": (False, {}, "tpu_v4-8"),
    "vq_use_simd": (False, {}, "cpu"),
    "vq_cache_codebooks": (False, {}, "cpu"),
    "vq_enterprise_mode": (True, {}, "cpu"),
    "vq_cost_management": (False, {"vq_enterprise_mode": True}, "tpu_v6e-8"),
    "vq_fallback_strategy": ("none", {"vq_enterprise_mode": True}, "cpu"),
    "vq_precision": ("float32", {}, "tpu_v4-8"),
    "use_tpu_v4_optimizations": (False, {}, "tpu_v4-8"),
    "tpu_mesh_shape": ([2, 2], {"model_parallel": True}, "tpu_v4-8"),
    "tpu_memory_limit_gb": (16.0, {}, "tpu_v4-8"),
    "use_bfloat16": (False, {}, "cpu"),
    "mixed_precision": (False, {}, "tpu_v4-8"),
    "async_collective": (False, {}, "tpu_v4-8"),
    "sharding_strategy": ("manual", {"tpu_mesh_shape": [4, 1]}, "tpu_v4-8"),
    "data_parallel": (False, {}, "tpu_v4-8"),
    "model_parallel": (True, {"tpu_mesh_shape": [2, 2]}, "tpu_v4-8"),
    "gradient_checkpointing": (False, {}, "cpu"),
    "activation_offloading": (True, {}, "cpu"),
    "optimizer_sharding": (False, {}, "tpu_v4-8"),
    "use_custom_kernels": (False, {}, "tpu_v4-8"),
    "kernel_categories": (["linalg"], {}, "tpu_v4-8"),
    "use_sparse": (False, {}, "cpu"),
    "sparsity_ratio": (0.5, {"sparsity_method": "magnitude"}, "cpu"),
    "sparsity_method": ("topk", {}, "cpu"),
    "mor_num_experts": (4, {}, "cpu"),
    "mor_top_k": (1, {}, "cpu"),
    "mor_load_balancing": (False, {}, "cpu"),
    "use_bitnet": (True, {}, "cpu"),
    "bitnet_precision": ("int8", {"use_bitnet": True}, "cpu"),
    "use_affine_quantization": (False, {}, "cpu"),
    "affine_bits": (4, {}, "cpu"),
    "affine_symmetric": (False, {}, "cpu"),
    "adaptive_sparsity": (False, {"sparsity_method": "magnitude"}, "cpu"),
    "sparsity_schedule": ("linear", {"sparsity_method": "magnitude"}, "cpu"),
    "min_sparsity": (0.1, {"sparsity_method": "magnitude"}, "cpu"),
    "max_sparsity": (0.9, {"sparsity_method": "magnitude"}, "cpu"),
    "device": ("tpu_v4", {"hardware_fallback": False}, None),
    "auto_device_selection": (False, {}, "cpu"),
    "hardware_fallback": (False, {"device": "tpu_v4"}, "cpu"),
    "fallback_cpu": (False, {"device": "tpu_v4"}, "cpu"),
    "memory_limit_gb": (1.0, {}, "cpu"),
    "num_gpus": (2, {}, "gpu-a100x8"),
    "gpu_memory_fraction": (0.5, {}, "gpu-h100"),
    "gpu_memory_growth": (False, {}, "gpu-h100"),
    "use_arm_optimizations": (True, {}, "cpu-arm"),
    "arm_sve_enabled": (False, {"use_arm_optimizations": True}, "cpu"),
    "arm_neon_fallback": (False, {"use_arm_optimizations": True}, "cpu"),
    "arm_uma_memory": (False, {"use_arm_optimizations": True}, "cpu-arm"),
    "distributed_training": (True, {}, "cpu"),
    "world_size": (2, {"distributed_training": True}, "cpu"),
    "local_rank": (1, {"distributed_training": True, "world_size": 2}, "cpu"),
    "batch_size": (4, {}, "cpu"),
    "max_batch_size": (2, {}, "cpu"),
    "adaptive_batching": (False, {}, "cpu"),
    "memory_optimization_level": (0, {}, "cpu"),
    "mcp_enabled": (True, {}, "cpu"),
    "mcp_port": (8081, {"mcp_enabled": True}, "cpu"),
    "mcp_auth_required": (False, {"mcp_enabled": True}, "cpu"),
    "mcp_rate_limiting": (False, {"mcp_enabled": True}, "cpu"),
    "meta_loop_enabled": (True, {}, "cpu"),
    "ethics_guard_enabled": (False, {"meta_loop_enabled": True}, "cpu"),
    "rag_hub_enabled": (False, {"meta_loop_enabled": True}, "cpu"),
    "elixir_bridge_port": (9091, {"meta_loop_enabled": True}, "cpu"),
    "monitoring_enabled": (True, {}, "cpu"),
    "metrics_endpoint": ("/stats", {"monitoring_enabled": True}, "cpu"),
    "health_check_interval": (10, {"monitoring_enabled": True}, "cpu"),
    "performance_profiling": (True, {"monitoring_enabled": True}, "cpu"),
    "structured_logging": (False, {}, "cpu"),
    "log_level": ("WARNING", {}, "cpu"),
    "audit_logging": (False, {}, "cpu"),
    "sensitive_data_masking": (False, {}, "cpu"),
    "api_key_required": (True, {}, "cpu"),
    "request_encryption": (True, {}, "cpu"),
    "output_filtering": (False, {}, "cpu"),
    "content_safety_check": (False, {}, "cpu"),
    "security_level": ("high", {}, "cpu"),
    "learning_rate": (3e-4, {}, "cpu"),
    "weight_decay": (0.1, {}, "cpu"),
    "gradient_clip_norm": (0.01, {}, "cpu"),
    "use_consensus_distilling": (True, {}, "cpu"),
    "consensus_num_teachers": (3, {"use_consensus_distilling": True}, "cpu"),
    "consensus_num_critics": (1, {"use_consensus_distilling": True}, "cpu"),
    "consensus_temperature": (2.0, {"use_consensus_distilling": True}, "cpu"),
    "optimizer": ("sgd", {}, "cpu"),
    "beta1": (0.5, {}, "cpu"),
    "beta2": (0.9, {}, "cpu"),
    "epsilon": (1e-3, {}, "cpu"),
    "lr_scheduler": ("linear", {}, "cpu"),
    "warmup_steps": (10, {}, "cpu"),
    "decay_steps": (5000, {}, "cpu"),
    "save_checkpoint_steps": (10, {}, "cpu"),
    "keep_checkpoint_max": (2, {}, "cpu"),
    "checkpoint_compression": (False, {}, "cpu"),
    "async_checkpointing": (False, {}, "cpu"),
    "debug_mode": (True, {}, "cpu"),
    "fast_startup": (True, {}, "cpu"),
    "enable_comprehensive_tests": (True, {}, "cpu"),
    "mock_expensive_ops": (True, {}, "cpu"),
    "temperature": (0.5, {}, "cpu"),
}

#: Plan sections the runtime and model are built from.
ACTING_SECTIONS = ("target", "model", "memory", "precision", "mesh", "batch", "execution",
                   "kernels")


def _compile(overrides: dict, target: str | None):
    config = ModularModelConfig(**{**BASE, **overrides})
    result = compile_config(config, get_target(target) if target else None)
    return config, result


def _sections(plan, names) -> dict:
    return {name: msgspec.to_builtins(getattr(plan, name)) for name in names}


def _model_facts(plan, config) -> tuple:
    return (ModelSpec.from_plan(plan), float(config.temperature),
            float(config.vq_adaptive_threshold))


def _optimizer_facts(config) -> list:
    import jax.numpy as jnp

    from capibara.model import training

    schedule = training.learning_rate_schedule(config)
    optimizer = training.make_optimizer(config)
    params = {"w": jnp.linspace(-1.0, 1.0, 4), "attn_norm": jnp.ones(4)}
    grads = {"w": jnp.asarray([3.0, -2.0, 0.5, 1e-3]), "attn_norm": jnp.full(4, 0.2)}
    state = optimizer.init(params)
    seen = []
    for step in range(3):  # gradients of changing size, so clipping shows through Adam
        scaled = {k: g * (step + 1) ** 2 for k, g in grads.items()}
        updates, state = optimizer.update(scaled, state, params)
        params = {k: params[k] + updates[k] for k in params}
        seen += [np.asarray(updates["w"]), np.asarray(updates["attn_norm"])]
    steps = [0, 5, 10, 100, 499, 1000, 5000, 9999]
    return seen + [np.asarray([float(schedule(s)) for s in steps])]


def _differ(a, b) -> bool:
    if isinstance(a, list):
        return any(not np.array_equal(x, y) for x, y in zip(a, b))
    return a != b


def test_every_field_has_an_effect_and_a_flip() -> None:
    missing = [f.name for f in FIELDS if f.effect[0] not in EFFECT_PLACES]
    assert not missing, f"no effect in the field table for {missing}"
    assert set(FLIPS) == {f.name for f in FIELDS}


def _optimizer_field(field) -> bool:
    return field.effect[0] == "train" and "capibara/model/training.py" in field.effect[1]


#: Fields the optimizer reads are checked by running it, which imports JAX.
FLIP_CASES = [pytest.param(f, marks=pytest.mark.jax) if _optimizer_field(f) else f for f in FIELDS]


@pytest.mark.parametrize("field", FLIP_CASES, ids=lambda f: f.name)
def test_flipping_a_field_acts_where_the_table_says(field) -> None:
    value, context, target, *also = FLIPS[field.name]
    assert value != field.default, "flip to a non-default value"
    config0, before = _compile(context, target)
    config1, after = _compile({**context, field.name: value, **(also[0] if also else {})}, target)
    assert before.plan is not None, [str(d) for d in before.diagnostics]
    place = field.effect[0]
    if place == "compile":
        codes = lambda r: sorted(d.code for d in r.diagnostics)
        changed = (after.plan is None or codes(before) != codes(after)
                   or _sections(before.plan, ACTING_SECTIONS) != _sections(after.plan, ACTING_SECTIONS))
        if field.name == "auto_device_selection":
            # checked against the target, so the flip shows as a diagnostic there
            changed = changed or any(field.name in str(d) for d in after.diagnostics)
        assert changed, f"{field.name}: neither the diagnostics nor the plan changed"
        return
    assert after.plan is not None, [str(d) for d in after.diagnostics]
    plan0, plan1 = before.plan, after.plan
    acting = _sections(plan0, ACTING_SECTIONS) != _sections(plan1, ACTING_SECTIONS)
    model = _model_facts(plan0, config0) != _model_facts(plan1, config1)
    run = process_settings(plan0) != process_settings(plan1)
    if place == "plan":
        assert acting, f"{field.name}: no plan section changed"
    elif place == "model":
        assert model, f"{field.name}: the model's spec and settings did not change"
    elif place == "run":
        assert run, f"{field.name}: the process settings did not change"
    elif place == "serve":
        assert (plan0.services != plan1.services
                or plan0.batch != plan1.batch), f"{field.name}: no services record changed"
    elif place == "train":
        assert plan0.training != plan1.training, f"{field.name}: the training record did not change"
        if _optimizer_field(field):
            assert _differ(_optimizer_facts(config0), _optimizer_facts(config1)), \
                f"{field.name}: the optimizer's updates and schedule did not change"
    else:
        assert place == RECORDED_ONLY
        assert not (acting or model or run), f"{field.name} is marked recorded only but acts"


def test_no_field_holds_a_credential() -> None:
    """The plan records every value as resolved, so no field may hold a secret."""
    import re

    secret = re.compile(r"(secret|password|passwd|token|api_key|credential)s?$")
    assert not [f.name for f in FIELDS if secret.search(f.name)]


def test_explain_field_shows_where_it_acts() -> None:
    from capibara.config.fields import explain_field

    assert "effect    recorded only (the model has no mechanism for it)" in \
        explain_field("use_chain_of_thought")
    text = explain_field("gpu_memory_growth")
    assert "effect    run: XLA_PYTHON_CLIENT_PREALLOCATE" in text
    assert "capibara/runtime/environment.py" in text
    assert "capibara/serve/" in explain_field("mcp_port")


def test_compile_ends_with_one_line_naming_recorded_only_fields(tmp_path) -> None:
    import io

    from capibara.cli import main

    config = tmp_path / "c.toml"
    config.write_text("[model]\nuse_chain_of_thought = false\nuse_dual_process = false\n"
                      "multimodal_enabled = true\nvision_encoder_type = \"clip\"\n")
    out = io.StringIO()
    assert main(["compile", str(config), "--no-env", "--target", "cpu",
                 "-o", str(tmp_path / "c.plan.json")], out) == 0
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("note: recorded only, no effect: ")
    named = lines[-1].split(": ", 2)[2]
    assert "multimodal_enabled, vision_encoder_type" in named
    assert "personality_enabled" in named and "use_chain_of_thought" not in named
    assert sum("recorded only" in line for line in lines) == 1
    from capibara.plan import load_plan_file

    assert load_plan_file(tmp_path / "c.plan.json").notes == (lines[-1][len("note: "):],)


def test_arm_switches_are_reported_inert_on_cpu_arm() -> None:
    from capibara.compiler.driver import compile_config

    on = ModularModelConfig(**BASE, use_arm_optimizations=True)
    plan = compile_config(on, get_target("cpu-arm")).plan
    (note,) = [n for n in plan.notes if n.startswith("recorded only")]
    for name in ("use_arm_optimizations", "arm_sve_enabled", "arm_neon_fallback", "arm_uma_memory"):
        assert name in note
    off = compile_config(ModularModelConfig(**BASE), get_target("cpu-arm")).plan
    assert "arm_" not in " ".join(off.notes)
    assert _sections(plan, ACTING_SECTIONS) == _sections(off, ACTING_SECTIONS)
