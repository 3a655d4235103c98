"""The plan file: canonical encoding, digest, atomic writes, and refusing bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, strategies as st

from capibara.compiler.driver import compile_config, compile_sources
from capibara.diagnostics import ConfigError
from capibara.config.model_config import ModularModelConfig
from capibara.plan import (FORMAT, Plan, compute_digest, decode_plan, diff_configs, diff_plans,
                           encode_plan, explain_plan, flat_view, is_compatible, load_plan_file,
                           seal, write_plan_file)
from capibara.targets import CATALOG

ROOT = Path(__file__).resolve().parents[2]


def plan_of(target: str = "tpu_v4-32", **fields) -> Plan:
    result = compile_config(ModularModelConfig(**fields), CATALOG[target])
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    return result.plan


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_of(hidden_size=512, num_layers=4, max_seq_length=512)


# --------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_encode_decode_identity(plan: Plan, fmt: str) -> None:
    assert decode_plan(encode_plan(plan, fmt)) == plan


@given(hidden=st.sampled_from([128, 256, 512]), layers=st.integers(1, 8),
       vq=st.booleans(), sparse=st.booleans(), mode=st.sampled_from(["default", "aggressive",
                                                                      "conservative"]),
       target=st.sampled_from(["cpu", "cpu-amx", "gpu-h100", "tpu_v4-8", "tpu_v6e-8"]),
       fmt=st.sampled_from(["json", "msgpack"]))
def test_encode_decode_identity_across_configs(hidden, layers, vq, sparse, mode, target, fmt) -> None:
    p = plan_of(target, hidden_size=hidden, num_layers=layers, use_vq=vq, use_sparse=sparse,
                compile_mode=mode, max_seq_length=256)
    blob = encode_plan(p, fmt)
    assert decode_plan(blob) == p
    assert encode_plan(decode_plan(blob), fmt) == blob


def test_json_is_sorted_indented_and_tagged(plan: Plan) -> None:
    text = encode_plan(plan).decode()
    data = json.loads(text)
    assert data["format"] == FORMAT == "capibara.plan/2"
    assert list(data) == sorted(data)
    assert text.startswith("{\n  \"batch\"") and text.endswith("}\n")


def test_digest_is_sha256_of_canonical_json_and_shared_by_both_formats(plan: Plan) -> None:
    assert plan.digest.startswith("sha256:") and len(plan.digest) == 7 + 64
    assert plan.digest == compute_digest(plan)
    from_msgpack = decode_plan(encode_plan(plan, "msgpack"))
    assert from_msgpack.digest == plan.digest


def test_same_inputs_give_byte_identical_plans() -> None:
    a = encode_plan(plan_of(hidden_size=256, num_layers=2))
    b = encode_plan(plan_of(hidden_size=256, num_layers=2))
    assert a == b


def test_plans_are_identical_across_processes(tmp_path: Path) -> None:
    """No timestamps, no hash-seed-dependent order: two processes write the same bytes."""
    script = ("import sys; from capibara import cli; "
              "sys.exit(cli.main(['compile', '--no-env', 'configs/development/development.toml', "
              "'configs/specialized/arm_axion_inference.toml', '--target', 'tpu_v4-8', "
              "'-o', sys.argv[1]]))")
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"p{seed}.plan.json"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", script, str(out)], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_non_finite_floats_are_refused(plan: Plan) -> None:
    broken = msgspec.structs.replace(
        plan, config={**plan.config, "training.learning_rate": float("inf")})
    with pytest.raises(ValueError, match="config.training.learning_rate"):
        encode_plan(broken)


# --------------------------------------------------------------------------- files


def test_write_is_atomic_and_leaves_no_temp_files(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "m.plan.json"
    path.write_text("previous")
    write_plan_file(plan, path)
    assert load_plan_file(path) == plan
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.plan.json"]
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # a normal file mode, not mkstemp's


def test_failed_write_keeps_the_previous_file(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "m.plan.json"
    path.write_text("previous")
    with pytest.raises(ValueError):
        write_plan_file(plan, path, fmt="yaml")
    assert path.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.plan.json"]


def test_msgpack_by_extension(plan: Plan, tmp_path: Path) -> None:
    path = write_plan_file(plan, tmp_path / "m.plan.msgpack")
    assert path.read_bytes()[:1] != b"{"
    assert load_plan_file(path) == plan


def _refused(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_plan_file(path)
    (diagnostic,) = caught.value.diagnostics
    return diagnostic.code


def test_missing_plan(tmp_path: Path) -> None:
    assert _refused(tmp_path / "nope.plan.json") == "R101"


@pytest.mark.parametrize("cut", [1, 100, 0.5, -2])
def test_truncated_plans_are_refused(plan: Plan, tmp_path: Path, cut) -> None:
    data = encode_plan(plan)
    keep = int(len(data) * cut) if isinstance(cut, float) else cut
    path = tmp_path / "t.plan.json"
    path.write_bytes(data[:keep])
    assert _refused(path) == "R102"


def test_truncated_msgpack_is_refused(plan: Plan, tmp_path: Path) -> None:
    path = tmp_path / "t.plan.msgpack"
    path.write_bytes(encode_plan(plan, "msgpack")[:-10])
    assert _refused(path) == "R102"


@pytest.mark.parametrize("edit", [
    lambda d: d["batch"].update(global_size=d["batch"]["global_size"] * 2),
    lambda d: d["kernels"][0]["params"].update(block_q=7),
    lambda d: d["config"].update({"model.hidden_size": 4096}),
    lambda d: d.update(digest="sha256:" + "0" * 64),
])
def test_edited_plans_are_refused(plan: Plan, tmp_path: Path, edit) -> None:
    data = json.loads(encode_plan(plan))
    edit(data)
    path = tmp_path / "e.plan.json"
    path.write_text(json.dumps(data))
    assert _refused(path) == "R105"


def _resealed(data: dict) -> bytes:
    """``data`` with a digest that matches it, as a careful forger would write it."""
    import hashlib

    data["digest"] = ""
    encoded = msgspec.json.Encoder(order="sorted").encode(data)
    data["digest"] = "sha256:" + hashlib.sha256(encoded).hexdigest()
    return msgspec.json.encode(data)


@pytest.mark.parametrize("content, code", [
    (b'{"name": "package", "version": "1.0"}', "R103"),
    (b'[1, 2, 3]', "R103"),
    (b'{"format": "someone.else/1"}', "R103"),
    (b'{"format": "capibara.plan/3", "digest": ""}', "R104"),
])
def test_foreign_files_are_refused(tmp_path: Path, content: bytes, code: str) -> None:
    path = tmp_path / "f.plan.json"
    path.write_bytes(content)
    assert _refused(path) == code


def test_incompatible_compiler_is_refused(plan: Plan, tmp_path: Path) -> None:
    data = json.loads(encode_plan(plan))
    data["compiler"]["version"] = "9.0.0"
    path = tmp_path / "v.plan.json"
    path.write_bytes(_resealed(data))
    assert _refused(path) == "R104"


def test_unknown_field_with_a_valid_digest_is_refused(plan: Plan, tmp_path: Path) -> None:
    data = json.loads(encode_plan(plan))
    data["extra"] = 1
    path = tmp_path / "x.plan.json"
    path.write_bytes(_resealed(data))
    assert _refused(path) == "R103"


@pytest.mark.parametrize("written, reader, ok", [
    ("0.1.0", "0.1.7", True), ("0.1.3", "0.1.0", True), ("0.2.0", "0.1.0", False),
    ("1.2.0", "1.5.1", True), ("2.0.0", "1.9.0", False), ("garbage", "0.1.0", False),
])
def test_compatibility_rule(written: str, reader: str, ok: bool) -> None:
    assert is_compatible(written, reader) is ok


def test_compiling_and_loading_use_no_pickle_and_no_jax(tmp_path: Path) -> None:
    """Plans are msgspec data end to end: writing and verifying one imports
    neither pickle nor JAX (nor numpy)."""
    script = f"""
import sys
from capibara.compiler.driver import compile
from capibara.config.model_config import ModularModelConfig
from capibara.plan import load_plan_file, write_plan_file
plan = compile(ModularModelConfig(hidden_size=256, num_layers=2), target="tpu_v4-8")
write_plan_file(plan, {str(tmp_path / "p.plan.json")!r})
write_plan_file(plan, {str(tmp_path / "p.plan.msgpack")!r})
assert load_plan_file({str(tmp_path / "p.plan.msgpack")!r}) == load_plan_file({str(tmp_path / "p.plan.json")!r})
print(sorted(m for m in ("pickle", "_pickle", "jax", "jaxlib", "numpy") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "[]", proc.stdout


# --------------------------------------------------------------------------- contents


def test_plan_sections(plan: Plan) -> None:
    assert plan.compiler.name == "capibara"
    assert plan.config["model.hidden_size"] == 512
    assert plan.provenance["model.hidden_size"].kind == "keyword"
    assert plan.provenance["model.hidden_size"].explicit
    derived = plan.provenance["model.num_heads"]
    assert (derived.kind, derived.detail, derived.file) == ("derived", "hidden_size // 64", None)
    assert str(derived) == "derived (hidden_size // 64)" and not derived.explicit
    assert plan.training["learning_rate"] == 1e-4
    assert plan.runtime["batch_size"] == plan.batch.global_size
    assert set(plan.runtime) == {"batch_size", "max_batch_size", "adaptive_batching", "temperature",
                                 "use_vq", "vq_adaptive_threshold", "vq_cost_management",
                                 "log_level", "structured_logging", "audit_logging",
                                 "sensitive_data_masking", "monitoring_enabled",
                                 "performance_profiling", "health_check_interval",
                                 "output_filtering", "content_safety_check", "trace_execution",
                                 "profile_performance", "jax_debug_mode", "debug_mode"}
    assert set(plan.services) == {"security"}  # MCP, Meta Loop and monitoring are off


def test_enabled_services_get_sections() -> None:
    p = plan_of(hidden_size=256, num_layers=2, mcp_enabled=True, monitoring_enabled=True)
    assert set(p.services) == {"mcp", "monitoring", "security"}
    assert p.services["mcp"]["mcp_port"] == 8080


def test_no_secret_from_the_environment_reaches_the_plan(tmp_path: Path) -> None:
    env = {"CAPIBARA_API_KEY": "sk-live-0123456789", "CAPIBARA_MCP_TOKEN": "tok-abcdef"}
    result = compile_sources([str(ROOT / "configs/development/development.toml")],
                             target=CATALOG["cpu"], env=env)
    assert result.plan is not None
    blob = encode_plan(result.plan) + encode_plan(result.plan, "msgpack")
    assert b"sk-live" not in blob and b"tok-abcdef" not in blob


# --------------------------------------------------------------------------- diff and explain


def test_diff_configs_names_fields_with_provenance() -> None:
    a = ModularModelConfig(hidden_size=512)
    b = ModularModelConfig(hidden_size=1024, use_vq=False)
    changes = {c.path: c for c in diff_configs(a, b)}
    assert set(changes) == {"model.hidden_size", "model.num_heads",
                            "vector_quantization.embedding_dim", "vector_quantization.enabled"}
    assert changes["model.num_heads"].note == "derived (hidden_size // 64) → derived (hidden_size // 64)"


def test_diff_plans_reports_config_and_kernel_changes() -> None:
    a = plan_of("cpu-amx", hidden_size=256, num_layers=2, max_seq_length=1024)
    b = plan_of("cpu-amx", hidden_size=256, num_layers=2, max_seq_length=1024, use_vq=False,
                compile_mode="aggressive")
    paths = {c.path for c in diff_plans(a, b)}
    assert "config.vector_quantization.enabled" in paths
    assert "kernels.bottleneck.vq" in paths  # removed
    assert "kernels.blocks.attention.params.block_q" in paths  # 1024 tile in aggressive mode
    assert diff_plans(a, a) == []


def test_explain_a_resolved_value_shows_its_source_and_decisions(plan: Plan) -> None:
    text = explain_plan(plan, "batch_size")
    assert text.startswith('deployment.batch_size = "auto"\n  from: default\n')
    assert "resolve-batch: \"auto\" → " in text
    mesh = explain_plan(plan, "mesh")
    assert "resolve-mesh [tpu_v4_optimizations.mesh_shape]" in mesh


def test_explain_the_sharded_step_and_the_collectives_it_dropped(plan: Plan) -> None:
    # a 16-device plan: XLA's partitioning on TPU, so no gradient all-reduce kernel
    step = explain_plan(plan, "execution.sharded_step")
    assert step.startswith("execution.sharded_step: no value in the plan\n  decisions:\n")
    assert 'sharded-step: "auto" → "automatic" (tpu, ' in step
    assert explain_plan(plan, "sharding_strategy").count("sharded-step") == 1
    assert "execution.sharded_step" in explain_plan(plan, "execution")
    dropped = explain_plan(plan, "kernels.grads.all_reduce")
    assert "\"grads.all_reduce\" → null (XLA's automatic partitioning" in dropped


def test_explain_unknown_path_suggests(plan: Plan) -> None:
    with pytest.raises(KeyError) as caught:
        explain_plan(plan, "model.hiden_size")
    assert "model.hidden_size" in caught.value.args[1]


def test_flat_view_keys_kernels_by_name(plan: Plan) -> None:
    view = dict(flat_view(plan))
    assert view["kernels.blocks.attention.family"] == "attention"
    assert view["mesh.shape"] == [16, 1]


def test_seal_is_idempotent(plan: Plan) -> None:
    assert seal(plan) == plan


def test_cli_compile_never_imports_jax(tmp_path: Path) -> None:
    script = f"""
import io, sys
import capibara.cli.app as cli
status = cli.main(["compile", "--no-env", "configs/production/tpu_v4.toml", "--target", "cpu",
                   "-o", {str(tmp_path / "p.plan.json")!r}], out=io.StringIO())
print(status, sorted(m for m in ("jax", "jaxlib", "numpy") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.split(maxsplit=1) == ["0", "[]\n"], proc.stdout + proc.stderr
