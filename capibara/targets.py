"""The target catalog and host detection, as data and without importing JAX.

A :class:`Target` says what the lowering needs to know about a machine: its
platform, how many devices JAX will see, their memory, the dtypes the matrix
units compute natively, the matmul tile, and which kernel implementations
exist there. ``detect_host()`` reads the host from the operating system
(``/proc/cpuinfo`` flags, ``/dev`` device files, ``platform.machine()``); the
runtime confirms with ``jax.devices()`` when a plan is loaded.

Names: ``cpu``, ``cpu-amx``, ``cpu-arm``, ``gpu``, ``gpu-a100``, ``gpu-h100``,
``gpu-h200``, ``tpu_v4-N`` and ``tpu_v6e-N`` (slices; see :func:`get_target`).
A CPU or GPU name with an ``xN`` suffix is N such devices on one host
(``gpu-h100x8``; ``cpux8`` is what ``--xla_force_host_platform_device_count=8``
shows JAX). The seed's ``device`` values map onto these: ``tpu_v4`` →
``tpu_v4-8``, ``tpu_v6`` → ``tpu_v6e-8``, ``gpu`` → ``gpu``, ``cpu`` → the
detected CPU kind.
"""

from __future__ import annotations

import os
import platform as _platform
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from capibara.diagnostics import Diagnostic
from capibara.kernels.specs import ranking

__all__ = [
    "Target",
    "CATALOG",
    "FALLBACK_CHAIN",
    "UnknownTarget",
    "get_target",
    "target_names",
    "detect_host",
    "device_to_target",
]

GIB = 1024**3

# Kernel implementations per platform: family -> implementations, best first,
# each family's RANKING (capibara/kernels/<family>/spec.py, which says why).
# capibara.compiler.passes takes the first one whose selector accepts the kernel's
# shape and dtypes. cpu_bf16 only applies to bf16 compute, which the precision
# pass keeps only where bf16 matmuls are fast (AMX / AVX512-BF16).
_CPU_KERNELS = ranking("cpu")
_GPU_KERNELS = ranking("gpu")
_TPU_KERNELS = ranking("tpu")


@dataclass(frozen=True, slots=True)
class Target:
    """What the compiler knows about one kind of machine.

    ``device_count`` is the number of devices *JAX* sees (one per TPU chip,
    even on v4 where a chip holds two TensorCores); ``cores_per_device`` keeps
    the TensorCore count so slice names stay explainable.
    ``memory_per_device_gib`` is ``None`` for CPUs, whose memory is the host's
    and is read at detection time.
    """

    name: str
    platform: str  # "cpu" | "gpu" | "tpu", as jax.devices()[0].platform
    device_kind: str
    device_count: int
    memory_per_device_gib: float | None
    native_dtypes: tuple[str, ...]
    matmul_tile: tuple[int, int]
    kernels: dict[str, tuple[str, ...]] = field(hash=False, compare=False)
    cores_per_device: int = 1
    cpu_features: frozenset[str] = frozenset()
    seed_device: str = "cpu"  # the config `device` value this target satisfies
    doc: str = ""

    @property
    def has_fast_bf16(self) -> bool:
        """Whether bf16 matmuls with f32 accumulation beat f32 here."""
        if self.platform in ("tpu", "gpu"):
            return True
        return bool({"amx_bf16", "avx512_bf16", "bf16"} & self.cpu_features)

    @property
    def total_memory_gib(self) -> float | None:
        if self.memory_per_device_gib is None:
            return None
        return self.memory_per_device_gib * self.device_count


def _base_targets() -> dict[str, Target]:
    targets = [
        # x86 host. Matmul tile 16x64 is AMX's bf16 tile (16 rows x 64 bytes); the
        # bf16 dtype only counts as native when cpuinfo shows amx_bf16/avx512_bf16
        # (Intel® 64 and IA-32 Architectures Optimization Reference Manual, ch. 20 "AMX").
        Target("cpu", "cpu", "cpu", 1, None, ("float32",), (16, 64), _CPU_KERNELS,
               seed_device="cpu", doc="x86-64 host CPU"),
        # Sapphire Rapids and later Xeons: AMX tiles for bf16 and int8 (amx_bf16, amx_int8)
        # and AVX512-BF16/VNNI (Intel® 64 and IA-32 Architectures Optimization Reference
        # Manual, ch. 20 "Intel® AMX"). This is the machine DESIGN.md's measurements used.
        Target("cpu-amx", "cpu", "cpu", 1, None, ("float32", "bfloat16", "int8"), (16, 64),
               _CPU_KERNELS, cpu_features=frozenset({
                   "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16",
                   "amx_int8", "fma"}),
               seed_device="cpu", doc="x86-64 host CPU with AMX (bf16 and int8 matrix units)"),
        # Arm Neoverse V2 (Google Axion): SVE2 with 4x128-bit vectors, BF16 and int8
        # matrix multiply (BFMMLA, I8MM) (Arm Neoverse V2 Technical Reference Manual,
        # §A "Features").
        Target("cpu-arm", "cpu", "cpu", 1, None, ("float32", "bfloat16", "int8"), (8, 8),
               _CPU_KERNELS, cpu_features=frozenset({"asimd", "sve", "sve2", "bf16", "i8mm"}),
               seed_device="cpu", doc="Arm Neoverse host CPU (Axion): SVE, bf16, int8"),
        # Unspecified NVIDIA GPU: the conservative A100-40GB figures.
        Target("gpu", "gpu", "NVIDIA GPU", 1, 40.0, ("float32", "bfloat16", "float16"), (16, 16),
               _GPU_KERNELS, seed_device="gpu", doc="one NVIDIA GPU (assumes 40 GiB)"),
        # A100: 40 or 80 GB HBM2e; we use 80 (NVIDIA A100 Tensor Core GPU datasheet).
        Target("gpu-a100", "gpu", "NVIDIA A100-SXM4-80GB", 1, 80.0,
               ("float32", "bfloat16", "float16", "int8"), (16, 16), _GPU_KERNELS,
               seed_device="gpu", doc="NVIDIA A100 80 GB"),
        # H100 SXM: 80 GB HBM3 (NVIDIA H100 Tensor Core GPU datasheet).
        Target("gpu-h100", "gpu", "NVIDIA H100 80GB HBM3", 1, 80.0,
               ("float32", "bfloat16", "float16", "float8_e4m3fn", "int8"), (16, 16), _GPU_KERNELS,
               seed_device="gpu", doc="NVIDIA H100 80 GB"),
        # H200: 141 GB HBM3e (NVIDIA H200 Tensor Core GPU product page).
        Target("gpu-h200", "gpu", "NVIDIA H200", 1, 141.0,
               ("float32", "bfloat16", "float16", "float8_e4m3fn", "int8"), (16, 16), _GPU_KERNELS,
               seed_device="gpu", doc="NVIDIA H200 141 GB"),
    ]
    return {t.name: t for t in targets}


# TPU v4: 32 GiB HBM2 per chip, 2 TensorCores per chip presented to JAX as one
# device (megacore), 128x128 MXUs; slice names count TensorCores, so v4-32 is
# 16 chips = 16 JAX devices (cloud.google.com/tpu/docs/v4, "System architecture").
_TPU_V4 = dict(platform="tpu", device_kind="TPU v4", memory_per_device_gib=32.0,
               native_dtypes=("float32", "bfloat16", "int8"), matmul_tile=(128, 128),
               kernels=_TPU_KERNELS, cores_per_device=2, seed_device="tpu_v4")
# TPU v6e (Trillium): 32 GiB HBM per chip, one TensorCore per chip, 256x256 MXU;
# v6e-8 is 8 chips (cloud.google.com/tpu/docs/v6e, "System architecture").
_TPU_V6E = dict(platform="tpu", device_kind="TPU v6 lite", memory_per_device_gib=32.0,
                native_dtypes=("float32", "bfloat16", "int8"), matmul_tile=(256, 256),
                kernels=_TPU_KERNELS, cores_per_device=1, seed_device="tpu_v6")
# Slice sizes Google sells (same pages, "Supported configurations").
_TPU_V4_SLICES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_TPU_V6E_SLICES = (1, 4, 8, 16, 32, 64, 128, 256)

CATALOG: dict[str, Target] = _base_targets()
for _cores in _TPU_V4_SLICES:
    CATALOG[f"tpu_v4-{_cores}"] = Target(
        name=f"tpu_v4-{_cores}", device_count=_cores // 2,
        doc=f"TPU v4 slice: {_cores} TensorCores = {_cores // 2} chips", **_TPU_V4)
for _chips in _TPU_V6E_SLICES:
    CATALOG[f"tpu_v6e-{_chips}"] = Target(
        name=f"tpu_v6e-{_chips}", device_count=_chips,
        doc=f"TPU v6e (Trillium) slice: {_chips} chips", **_TPU_V6E)

# The seed's `device` values and the catalog entry each one means by default.
_SEED_DEVICE_DEFAULT = {"tpu_v4": "tpu_v4-8", "tpu_v6": "tpu_v6e-8", "gpu": "gpu", "cpu": "cpu"}

# The hardware fallback chain, fastest first: tpu_v6 → tpu_v4 → gpu → cpu (cpu only if
# `fallback_cpu`).
FALLBACK_CHAIN: tuple[str, ...] = ("tpu_v6", "tpu_v4", "gpu", "cpu")


UNKNOWN_TARGET = "H001"


class UnknownTarget(KeyError):
    """A target name that is not in the catalog; ``suggestions`` lists near names."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.suggestions = suggestions

    def __str__(self) -> str:
        hint = f"; did you mean {', '.join(f'`{s}`' for s in self.suggestions)}?" if self.suggestions else ""
        return f"unknown target `{self.name}`{hint}"

    def diagnostic(self) -> Diagnostic:
        """The ``H001`` error every verb reports for this name."""
        near = ", ".join(f"`{s}`" for s in self.suggestions)
        return Diagnostic.error(UNKNOWN_TARGET, f"unknown target `{self.name}`",
                                help=f"did you mean {near}?" if near else
                                "`capibara targets` lists the known targets")


def target_names() -> list[str]:
    return list(CATALOG)


_MULTI = re.compile(r"^(?P<base>.+?)x(?P<count>[1-9][0-9]*)$")


def get_target(name: str) -> Target:
    """Look a target up by catalog name or seed device name.

    ``"auto"`` detects the host; ``"tpu_v4"`` means ``tpu_v4-8``; ``"cpu"``
    returns the detected CPU kind (x86 with its flags, or Arm). A CPU or GPU
    name ending in ``xN`` is N of those devices (``gpu-h100x8``, ``cpux8``);
    TPU slices say their size in the name instead.
    """
    key = name.strip().lower()
    multi = _MULTI.match(key)
    if multi and not key.startswith("tpu"):
        try:
            # `cpu` here is this machine's CPU kind, not the host (which may itself be
            # `cpuxN` by CAPIBARA_HOST_TARGET: asking it would come back here forever).
            base = _detected_cpu() if multi["base"] == "cpu" else get_target(multi["base"])
        except UnknownTarget:
            base = None
        if base is not None and base.platform != "tpu":
            count = int(multi["count"])
            return replace(base, name=f"{base.name}x{count}", device_count=count,
                           doc=f"{count} x {base.doc}")
    if key == "auto":
        return detect_host()
    if key == "cpu":
        host = detect_host()
        return host if host.platform == "cpu" else _detected_cpu()
    key = _SEED_DEVICE_DEFAULT.get(key, key)
    if key in CATALOG:
        return CATALOG[key]
    import difflib

    raise UnknownTarget(name, difflib.get_close_matches(key, CATALOG, n=3, cutoff=0.6))


def device_to_target(device: str) -> str:
    """The catalog name the config's ``device`` value maps to (``auto`` → detected host)."""
    return get_target(device).name


# --------------------------------------------------------------------------- detection


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _dev_entries(start: str) -> int:
    """How many names in ``/dev`` begin with the regular expression ``start`` (read
    without pathlib, whose import would cost a cold compile ~2 ms, benchmarks/cold_start.py)."""
    matches = re.compile(start).match
    try:
        return sum(1 for name in os.listdir("/dev") if matches(name))
    except OSError:
        return 0


def _cpu_flags() -> frozenset[str]:
    cpuinfo = _read("/proc/cpuinfo")
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
            break
    return frozenset(flags)


def _host_memory_gib() -> float | None:
    match = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.M)
    return round(int(match.group(1)) * 1024 / GIB, 1) if match else None


def _detected_cpu() -> Target:
    flags = _cpu_flags()
    machine = _platform.machine().lower()
    base = CATALOG["cpu-arm" if machine in ("aarch64", "arm64") else "cpu"]
    dtypes = base.native_dtypes
    if {"amx_bf16", "avx512_bf16", "bf16"} & flags and "bfloat16" not in dtypes:
        dtypes = dtypes + ("bfloat16",)
    # int8 dot products with int32 accumulation: VNNI / AMX-INT8 on x86, I8MM on Arm.
    if {"amx_int8", "avx512_vnni", "avx_vnni", "i8mm"} & flags and "int8" not in dtypes:
        dtypes = dtypes + ("int8",)
    return replace(base, cpu_features=flags | base.cpu_features if base.name == "cpu-arm" else flags,
                   native_dtypes=dtypes, memory_per_device_gib=_host_memory_gib())


def _tpu_chips() -> int:
    # TPU VMs expose one /dev/accel* (v4, v5p, v6e) or /dev/vfio/* per chip.
    return _dev_entries("accel")


def _nvidia_gpus() -> int:
    return _dev_entries("nvidia[0-9]")


@lru_cache(maxsize=1)
def detect_host() -> Target:
    """The target this process runs on, found without importing JAX.

    ``CAPIBARA_HOST_TARGET`` names a catalog entry to use instead (for CI
    machines and tests that pretend to be another host).
    """
    forced = os.environ.get("CAPIBARA_HOST_TARGET")
    if forced:
        return get_target(forced) if forced.lower() not in ("auto", "cpu") else _detected_cpu()
    chips = _tpu_chips()
    if chips:
        kind = _read("/sys/class/accel/accel0/device/device").strip()
        # PCI device ids: 0x005e is TPU v4, 0x006f TPU v6e (as listed by lspci on TPU VMs).
        base = _TPU_V6E if kind == "0x006f" else _TPU_V4
        name = f"{'tpu_v6e' if base is _TPU_V6E else 'tpu_v4'}-{chips * base['cores_per_device']}"
        return Target(name=name, device_count=chips, doc="detected TPU host", **base)
    gpus = _nvidia_gpus()
    if gpus:
        return replace(CATALOG["gpu"], device_count=gpus, doc="detected NVIDIA GPU host")
    return _detected_cpu()
