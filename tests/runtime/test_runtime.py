"""Loading plans: verification, device checks, bound kernels, cache, processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from capibara.compiler.driver import compile_sources
from capibara.diagnostics import ConfigError
from capibara.plan import write_plan_file

ROOT = Path(__file__).resolve().parents[2]
DEV = str(ROOT / "configs" / "development" / "development.toml")
# development.toml's fast_startup would make `capibara run` skip the warm-up these tests time
SMALL = ("model.hidden_size=64", "model.num_layers=2", "model.num_heads=2",
         "model.max_seq_length=64", "deployment.batch_size=4", "testing.fast_startup=false")


def compile_small(target: str = "cpu", *extra: str):
    result = compile_sources([DEV], target=target, env=None, overrides=SMALL + extra)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    return result.plan


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plans") / "small.plan.json"
    write_plan_file(compile_small(), path)
    return path


def test_kernels_follow_the_plan_and_match_their_reference(plan_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from capibara.kernels.attention import attention
    from capibara.runtime.loader import load_plan

    compiled = load_plan(plan_file)
    spec = compiled.kernels.attention.spec
    assert compiled.kernels.attention.implementation == spec.implementation
    q, k, v = compiled.kernels.attention.example_inputs()
    assert q.shape == tuple(spec.shapes["q"])
    out = np.asarray(compiled.kernels.attention(q, k, v), np.float32)
    ref = np.asarray(attention(q, k, v, causal=True), np.float32)
    # bf16 inputs (the plan's compute dtype on this CPU) and f32 accumulation: the
    # two summation orders differ by a few bf16 ulps of outputs of size ~0.1.
    np.testing.assert_allclose(out, ref, atol=2e-2, rtol=2e-2)
    assert {b.spec.name for b in compiled.kernels} == {s.name for s in compiled.plan.kernels}


def test_warmup_compiles_every_kernel_ahead_of_time(plan_file, tmp_path, monkeypatch) -> None:
    import io

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from capibara.runtime.loader import load_plan

    compiled = load_plan(plan_file)
    progress = io.StringIO()
    timings = compiled.warmup(progress=progress)
    assert set(timings) == {s.name for s in compiled.plan.kernels}
    assert all(k.compiled is not None for k in compiled.kernels)
    assert progress.getvalue().count(" compiled in ") == len(timings)
    kernel = next(iter(compiled.kernels))
    out = kernel.compiled(*kernel.example_inputs())
    assert np.all(np.isfinite(np.asarray(jax_tree_leaves(out)[0], np.float32)))


def jax_tree_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_an_edited_plan_object_is_refused() -> None:
    from capibara.runtime.loader import load_plan

    plan = compile_small()
    edited = msgspec.structs.replace(plan, batch=msgspec.structs.replace(plan.batch, global_size=999))
    with pytest.raises(ConfigError) as refused:
        load_plan(edited, cache=False)
    assert refused.value.diagnostics[0].code == "R105"


def test_a_plan_for_another_platform_is_refused_without_fallback() -> None:
    from capibara.runtime.loader import load_plan

    plan = compile_small("tpu_v4-8", "hardware.hardware_fallback=false")
    with pytest.raises(ConfigError) as refused:
        load_plan(plan, cache=False)
    diagnostic = refused.value.diagnostics[0]
    assert diagnostic.code == "R301"
    assert "tpu_v4-8" in diagnostic.message and "cpu" in diagnostic.message


def test_with_fallback_the_plan_is_relowered_for_this_host() -> None:
    from capibara.runtime.loader import load_plan

    plan = compile_small("tpu_v4-8")
    compiled = load_plan(plan, cache=False)
    assert compiled.plan.target.platform == "cpu"
    assert any("re-lowered" in note for note in compiled.notes)
    assert compiled.kernels.attention.implementation != "pallas_tpu"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capibara", "run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_second_process_hits_the_persistent_cache(plan_file, tmp_path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    first = _run(str(plan_file), env=env)
    assert first.returncode == 0, first.stderr
    from capibara.runtime import hugepages

    machine = hugepages.classify({}, hugepages._thp_mode(), hugepages._glibc_version())
    if machine.state == "off" and "GLIBC_TUNABLES" not in os.environ:  # run turned them on
        assert "memory     glibc malloc asks for transparent huge pages" in first.stdout
    entries = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert entries, "the first process wrote no cache entries"
    second = _run(str(plan_file), env=env)
    assert second.returncode == 0, second.stderr
    # every kernel came from the cache: the second process wrote nothing new
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == entries
    assert second.stderr.count("loaded from cache") == len(compile_small().kernels), second.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_all_reduce_over_the_global_mesh(plan_file, tmp_path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    address = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "capibara", "run", str(plan_file), "--no-warmup",
         "--coordinator", address, "--num-processes", "2", "--process-id", str(i)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
        assert "over 2 devices: sum 3, expected 3: ok" in out, out


def test_bitnet_weights_are_ternary_in_the_loaded_kernel() -> None:
    from capibara.runtime.loader import load_plan

    plan = compile_small("cpu", "quantization.use_bitnet=true")
    kernel = load_plan(plan, cache=False).kernels["blocks.wq"]
    assert kernel.spec.attrs["weights"] == "bitnet"
    rng = np.random.default_rng(0)
    xf = rng.standard_normal(tuple(kernel.spec.shapes["x"])).astype(np.float32)
    wf = (rng.standard_normal(tuple(kernel.spec.shapes["w"])) * 0.1).astype(np.float32)
    x, w = kernel.prepare({"x": xf, "w": wf})
    t = np.asarray(w.t, np.float64)
    assert set(np.unique(t).tolist()) <= {-1.0, 0.0, 1.0}  # b1.58: three levels
    scale = np.abs(wf.astype(np.float64)).mean()  # absmean
    np.testing.assert_array_equal(t, np.clip(np.round(wf / scale), -1, 1))
    expected = xf.astype(np.float64) @ (t * scale)
    out = np.asarray(kernel(x, w), np.float64)
    # The kernel rounds each activation row to int8: each term is off by at most
    # half a step (max|row| / 254) times |t| * scale, summed over the contraction.
    rows = xf.reshape(-1, xf.shape[-1])
    bound = np.abs(rows).max(1, keepdims=True) / 254 * (np.abs(t).sum(0) * scale) + 1e-5
    assert np.all(np.abs(out.reshape(bound.shape) - expected.reshape(bound.shape)) <= bound)


def test_a_weight_format_this_capibara_cannot_compute_is_refused() -> None:
    from capibara.plan import seal
    from capibara.runtime.loader import load_plan

    plan = compile_small()
    kernels = tuple(msgspec.structs.replace(k, attrs={**k.attrs, "weights": "affine", "bits": 3})
                    if k.family == "linalg" else k for k in plan.kernels)
    with pytest.raises(ConfigError) as refused:
        load_plan(seal(msgspec.structs.replace(plan, kernels=kernels)), cache=False)
    # The whole-plan check refuses it before binding, naming the field ...
    assert refused.value.diagnostics[0].code == "R110"
    assert "attrs.bits` is 3" in refused.value.diagnostics[0].message
    # ... and the binding itself would still refuse it rather than run float weights.
    from capibara.compiler.model_spec import WeightFormat

    with pytest.raises(ConfigError) as refused:
        WeightFormat.from_attrs({"weights": "affine", "bits": 3})
    assert refused.value.diagnostics[0].code == "R104"
    assert "3-bit affine weights" in refused.value.diagnostics[0].message


def test_cache_compiled_functions_false_keeps_nothing_on_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from capibara.runtime.loader import load_plan

    compiled = load_plan(compile_small("cpu", "performance.cache_compiled_functions=false"))
    assert compiled.cache is None and compiled.executables is None
    assert not (tmp_path / "capibara").exists()


def test_run_generate_prints_the_models_notes(tmp_path) -> None:
    import io

    import capibara.cli.app as cli

    plan = tmp_path / "offload.plan.json"
    write_plan_file(compile_small("cpu", "deployment.memory_optimization_level=3",
                                  "tpu_v4_optimizations.activation_offloading=true"), plan)
    out = io.StringIO()
    assert cli.main(["run", str(plan), "--generate", "2"], out=out) == 0
    assert "note       execution.offload_activations" in out.getvalue()
