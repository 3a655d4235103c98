"""The target catalog: facts, names, and host detection without JAX."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from capibara import targets
from capibara.targets import CATALOG, FALLBACK_CHAIN, UnknownTarget, detect_host, get_target

ROOT = Path(__file__).resolve().parents[1]


def test_tpu_v4_slices_count_chips_not_cores() -> None:
    v4_32 = CATALOG["tpu_v4-32"]
    assert (v4_32.device_count, v4_32.cores_per_device, v4_32.memory_per_device_gib) == (16, 2, 32.0)
    assert CATALOG["tpu_v6e-8"].device_count == 8
    assert CATALOG["tpu_v6e-8"].matmul_tile == (256, 256)
    assert CATALOG["tpu_v4-8"].matmul_tile == (128, 128)


@pytest.mark.parametrize("seed, name", [("tpu_v4", "tpu_v4-8"), ("tpu_v6", "tpu_v6e-8"),
                                        ("gpu", "gpu"), ("GPU-H100", "gpu-h100")])
def test_seed_device_names_map_onto_the_catalog(seed: str, name: str) -> None:
    assert get_target(seed).name == name


def test_cpu_and_auto_detect_the_host() -> None:
    assert get_target("cpu").platform == "cpu"
    assert get_target("auto") == detect_host()


@pytest.mark.parametrize("name, base, count", [("gpu-h100x8", "gpu-h100", 8), ("cpu-amxx4", "cpu-amx", 4),
                                               ("gpux2", "gpu", 2)])
def test_multi_device_names(name: str, base: str, count: int) -> None:
    target = get_target(name)
    assert target.device_count == count and target.name == name
    assert target.memory_per_device_gib == CATALOG[base].memory_per_device_gib


def test_tpu_names_do_not_take_a_device_suffix() -> None:
    with pytest.raises(UnknownTarget) as caught:
        get_target("tpu_v4-32x2")
    assert "tpu_v4-32" in caught.value.suggestions


def test_unknown_target_suggests_near_names() -> None:
    with pytest.raises(UnknownTarget) as caught:
        get_target("tpu_v4-31")
    assert str(caught.value).startswith("unknown target `tpu_v4-31`; did you mean")


def test_fast_bf16_follows_the_matrix_units() -> None:
    assert CATALOG["cpu-amx"].has_fast_bf16 and CATALOG["cpu-arm"].has_fast_bf16
    assert not CATALOG["cpu"].has_fast_bf16
    assert CATALOG["gpu-h100"].has_fast_bf16 and CATALOG["tpu_v4-8"].has_fast_bf16


def test_detected_cpu_dtypes_follow_cpuinfo_flags() -> None:
    flags = targets._cpu_flags()
    host = targets._detected_cpu()
    assert ("bfloat16" in host.native_dtypes) == bool({"amx_bf16", "avx512_bf16", "bf16"} & flags)
    assert ("int8" in host.native_dtypes) == bool(
        {"amx_int8", "avx512_vnni", "avx_vnni", "i8mm"} & flags)


def test_host_target_can_be_forced(monkeypatch) -> None:
    monkeypatch.setenv("CAPIBARA_HOST_TARGET", "tpu_v4-32")
    detect_host.cache_clear()
    try:
        assert detect_host().name == "tpu_v4-32"
    finally:
        detect_host.cache_clear()


def test_fallback_chain_order() -> None:
    assert FALLBACK_CHAIN == ("tpu_v6", "tpu_v4", "gpu", "cpu")


def test_detection_imports_no_jax() -> None:
    script = ("import sys; from capibara.targets import detect_host, get_target; detect_host(); "
              "get_target('gpu-h100x8'); print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
