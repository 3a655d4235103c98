"""Loading plans: kernels jitted for the device the plan names.

    compiled = capibara.load_plan("tpu_v4.plan.json")
    compiled.warmup()                              # AOT-compile every kernel
    out = compiled.kernels.attention(q, k, v)      # the plan's variant and tiles

:func:`load_plan` verifies the plan (format, digest, compiler), checks it
against ``jax.devices()`` — a plan for another platform, or for more devices
than are present, is refused unless its config allows ``hardware_fallback``,
in which case the plan's config is re-lowered for this host and the
re-lowering is reported in :attr:`CompiledPlan.notes` — builds the mesh, and
binds each :class:`~capibara.plan.KernelSpec` to its family's variant with the
plan's static parameters.

JAX's persistent compilation cache lives in a per-user directory
(``$XDG_CACHE_HOME/capibara/jax`` or ``~/.cache/capibara/jax``), one
sub-directory per host CPU feature set and plan digest: a second process that
loads the same plan skips compilation (jax issue 38445: entries shared
between machines with different CPU features never hit). Beside it,
:mod:`capibara.runtime.executables` keeps each kernel as a ``jax.export``, so that
process skips tracing too (``benchmarks/warm_start.py`` measures the two). The
directory and every folder above it must be this user's alone; a refused
cache is named in :attr:`CompiledPlan.notes`.

This module imports JAX; the compile path never imports it.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

from capibara.diagnostics import ConfigError, Diagnostic
from capibara.runtime.executables import ExecutableCache, Loaded
from capibara.plan import (KernelSpec, Plan, compute_digest, config_of_plan, load_plan_file,
                           validate_plan)
# The plan loader's codes: a plan this capibara cannot run, and one edited after it was written.
from capibara.plan.codec import INCOMPATIBLE, MODIFIED as DIGEST_MISMATCH
from capibara.resources import cache_directory_problem, cache_root, private_directory

__all__ = ["BoundKernel", "CompiledPlan", "KernelSet", "cache_dir", "load_plan"]

PLATFORM_MISMATCH = "R301"
TOO_FEW_DEVICES = "R302"


# --------------------------------------------------------------------------- cache


def cache_dir(plan: Plan) -> Path:
    """The persistent compilation cache directory for ``plan`` on this host.

    Keyed by the plan digest and the host's CPU features, and refused when
    another user could write into it or any folder above it (a poisoned cache
    would run their code).
    """
    from capibara.targets import detect_host

    root = cache_root() / "capibara" / "jax"
    features = ",".join(sorted(detect_host().cpu_features))
    host = hashlib.sha256(features.encode()).hexdigest()[:12]
    return root / host / plan.digest.removeprefix("sha256:")[:16]


def _enable_cache(directory: Path | None) -> tuple[Path | None, str | None]:
    """Point JAX's persistent cache at ``directory`` (``None``: no cache); the
    directory used, and a note when it was refused."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if directory is None:
        return None, None
    if (problem := cache_directory_problem(directory)) is not None:
        return None, (f"compilation cache refused ({problem}): kernels are compiled in this "
                      "process and not kept")
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compilation_cache.reset_cache()
    compilation_cache.set_cache_dir(str(directory))
    return directory, None


# --------------------------------------------------------------------------- kernels


def _family_module(family: str):
    from importlib import import_module

    return import_module(f"capibara.kernels.{family}")


def _positional_names(fn: Callable) -> tuple[str, ...]:
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _accepted(fn: Callable, values: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``values`` that ``fn`` takes as keyword arguments."""
    parameters = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return dict(values)
    return {k: v for k, v in values.items() if k in parameters}


@dataclass
class BoundKernel:
    """One kernel spec bound to its variant: call it with the spec's arrays.

    ``arg_names`` is the order of the array arguments (the spec's ``shapes``
    keys in the kernel's own order). ``example_inputs`` makes random inputs of
    the plan's shapes and dtypes; ``work`` estimates the FLOPs (or bytes
    moved, for bandwidth-bound families) of one call for the benchmark.
    ``donates``: the call reuses its first argument's buffer for the result,
    so the caller must not use that argument afterwards. ``sharding``: how
    every input is laid out over the mesh, for a kernel that spans devices.
    ``not_kept``: why the last warm-up could not save the kernel for later
    processes (``None`` when it did, or loaded it, or had no cache).
    ``shard_fn``: for a collective, the per-shard function the model's
    explicit sharded step calls inside ``shard_map`` (``fn`` is the jitted
    function of global arrays ``capibara run`` times).
    """

    spec: KernelSpec
    fn: Callable[..., Any]
    arg_names: tuple[str, ...]
    prepare: Callable[[dict[str, Any]], tuple]
    implementation: str
    notes: list[str] = field(default_factory=list)
    compiled: Any = None
    fallback_allowed: bool = True
    from_cache: bool = False
    donates: bool = False
    sharding: Any = None
    not_kept: str | None = None
    shard_fn: Callable[..., Any] | None = None

    def __call__(self, *arrays: Any) -> Any:
        return self.fn(*arrays)

    def example_inputs(self, seed: int = 0) -> tuple:
        import jax
        import jax.numpy as jnp

        keys = jax.random.split(jax.random.key(seed), len(self.arg_names))
        arrays = {}
        for key, name in zip(keys, self.arg_names):
            shape = tuple(self.spec.shapes[name])
            dtype = jnp.dtype(self.spec.dtypes.get(name, "float32"))
            if self.spec.family == "scan" and name == "a":  # decays in (0, 1): a stable recurrence
                arrays[name] = jax.random.uniform(key, shape, dtype, 0.5, 0.99)
            else:
                arrays[name] = (jax.random.normal(key, shape, jnp.float32) * 0.1).astype(dtype)
        return self.prepare(arrays)

    def input_structs(self) -> tuple:
        """The shapes and dtypes (and shardings) :meth:`example_inputs` makes,
        traced without generating any numbers."""
        import jax
        import jax.numpy as jnp

        arrays = {name: jax.ShapeDtypeStruct(tuple(self.spec.shapes[name]),
                                             jnp.dtype(self.spec.dtypes.get(name, "float32")))
                  for name in self.arg_names}
        structs = jax.eval_shape(self.prepare, arrays)
        if self.sharding is None:
            return structs
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                                           sharding=self.sharding), structs)

    def warmup(self, seed: int = 0, cache: ExecutableCache | None = None) -> float:
        """AOT-compile for the plan's shapes, or load the export a previous
        process saved in ``cache``; returns the seconds it took. (``seed`` is
        unused: only the inputs' shapes and dtypes matter.)"""
        start = time.perf_counter()
        # Only shapes and dtypes are needed: running the input generator eagerly
        # compiled each random op (~0.8 s a plan), and even tracing it costs ~0.1 s.
        structs = self.input_structs()
        if cache is not None and (saved := cache.load(self, structs)) is not None:
            self.compiled, self.from_cache, self.not_kept = saved.compiled, True, None
            self.notes.extend(n for n in saved.notes if n not in self.notes)
            return time.perf_counter() - start
        self.from_cache = False
        stored = cache.store(self, structs) if cache is not None else None
        if isinstance(stored, Loaded):
            self.compiled, self.not_kept = stored.compiled, stored.not_kept
        else:  # no cache, or why this kernel is compiled in every process
            self.not_kept = stored
            self.compiled = self.fn.lower(*structs).compile()
        return time.perf_counter() - start

    def work(self) -> tuple[float, str]:
        """(amount, unit) of one call: FLOPs for compute-bound families, bytes otherwise
        (each family's estimate, :func:`capibara.kernels.specs.work`)."""
        from capibara.kernels.specs import work

        return work(self.spec.family, self.spec.shapes, self.spec.dtypes, self.spec.attrs)


def _variant(spec: KernelSpec, platform: str, allow_fallback: bool):
    variants = _family_module(spec.family).VARIANTS
    if spec.implementation not in variants:
        raise ConfigError([Diagnostic.error(
            INCOMPATIBLE, f"kernel `{spec.name}` names `{spec.family}/{spec.implementation}`, "
            "which this capibara does not have",
            help=f"the {spec.family} variants are " + ", ".join(f"`{v}`" for v in variants))])
    variant = variants[spec.implementation]
    if platform in variant.platforms:
        return variant, []
    reason = (f"`{spec.family}/{spec.implementation}` runs on {', '.join(variant.platforms)}, "
              f"not {platform}")
    if not allow_fallback:
        raise ConfigError([Diagnostic.error(
            PLATFORM_MISMATCH, f"kernel `{spec.name}` cannot run here: {reason}",
            help="recompile the config for this machine (`capibara compile --target auto`)")])
    return variants["reference"], [f"{spec.name}: {reason}; using `{spec.family}/reference`"]


def _with_fallback(fn: Callable, reference: Callable, notes: list[str], name: str) -> Callable:
    """Run ``fn``; if it refuses the input (``Unsupported``), run the reference and say so."""
    from capibara.kernels.base import Unsupported

    def call(*args):
        try:
            return fn(*args)
        except Unsupported as refused:
            notes.append(f"{name}: {refused}; using the reference")
            return reference(*args)

    return call


def bind(spec: KernelSpec, plan: Plan, mesh: Any, platform: str, *,
         allow_fallback: bool = True) -> BoundKernel:
    """The jitted kernel a spec describes, with the plan's static parameters."""
    import jax

    family = spec.family
    variant, notes = _variant(spec, platform, allow_fallback)
    static = {**variant.defaults, **(dict(spec.params) if variant.name == spec.implementation else {})}
    attrs = dict(spec.attrs)
    prepare: Callable[[dict[str, Any]], tuple]

    if family == "collective":
        return _bind_collective(spec, plan, mesh, variant, notes, allow_fallback)

    if family == "linalg":
        from capibara.kernels.linalg import quantize_weight
        from capibara.compiler.model_spec import WeightFormat

        # The format the compiler wrote (affine bits/symmetry, BitNet precision);
        # one this capibara cannot compute is refused (R104), never run as float.
        weights = WeightFormat.from_attrs(attrs, where=f"kernel `{spec.name}`")

        def prepare(a):
            w = a["w"] if weights.kind == "float" else quantize_weight(weights, a["w"])
            return a["x"], w
        names = ("x", "w")
        core = partial(variant.fn, **_accepted(variant.fn, static))
    elif family == "moe":
        from capibara.kernels.moe.router import Experts

        names = ("x", "router", "w_in", "w_out")

        def prepare(a):
            return a["x"], a["router"], Experts(a["w_in"], a["w_out"])
        core = partial(variant.fn, **_accepted(variant.fn, {**static, "top_k": attrs.get("top_k", 2)}))
    else:
        names = tuple(n for n in _positional_names(variant.fn) if n in spec.shapes)
        if family == "attention":
            static["causal"] = bool(attrs.get("causal", False))
        if family == "vq":
            static["commitment_weight"] = attrs.get("commitment_weight", 0.25)
            if plan.runtime.get("use_vq", True):
                static["adaptive_threshold"] = plan.runtime.get("vq_adaptive_threshold")
        core = partial(variant.fn, **_accepted(variant.fn, static))

        def prepare(a, names=names):
            return tuple(a[n] for n in names)

    reference = _family_module(family).VARIANTS["reference"]
    if variant is not reference and allow_fallback:
        # The precision policy is the call's meaning, not a tuning knob: the
        # reference fallback computes with it too.
        ref_static = {k: v for k, v in static.items() if k in (
            "causal", "commitment_weight", "adaptive_threshold", "top_k",
            "param_dtype", "compute_dtype", "accumulate_dtype")}
        ref_core = partial(reference.fn, **_accepted(reference.fn, ref_static))
        core = _with_fallback(core, ref_core, notes, spec.name)
    donate = (0,) if plan.execution.donate and family in ("scan",) else ()
    return BoundKernel(spec, jax.jit(core, donate_argnums=donate), names, prepare,
                       variant.name, notes, fallback_allowed=allow_fallback, donates=bool(donate))


def _bind_collective(spec: KernelSpec, plan: Plan, mesh: Any, variant: Any, notes: list[str],
                     allow_fallback: bool) -> BoundKernel:
    """A collective spec: the jitted function of global arrays over the plan's mesh
    (``fn``), and the per-shard function the model's sharded step calls (``shard_fn``)."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    module = _family_module("collective")
    axes = tuple(spec.attrs.get("axes", ("data",)))
    op = spec.attrs.get("op", "all_reduce")
    # A two-phase all-reduce is only chosen to run in place (optimize.py).
    in_place = plan.execution.donate and op == "all_reduce" and variant.name == "decomposed"
    per_call = module.collective(op, mesh, axes, implementation=variant.name, donate=in_place)
    shard_fn = partial(variant.fn, op=op, axis_name=axes[0] if len(axes) == 1 else axes)
    if op == "all_gather_matmul":
        # x [rows, k] split by rows over the axes, w [k, n] by columns: the spec's
        # per-device shapes, one block per device of the group.
        group = math.prod(mesh.shape[a] for a in axes)
        rows, columns = NamedSharding(mesh, PartitionSpec(axes)), \
            NamedSharding(mesh, PartitionSpec(None, axes))

        def prepare(a):
            import jax.numpy as jnp

            return (jax.device_put(jnp.tile(a["x"], (group, 1)), rows),
                    jax.device_put(jnp.tile(a["w"], (1, group)), columns))
        return BoundKernel(spec, per_call, ("x", "w"), prepare, variant.name, notes,
                           fallback_allowed=allow_fallback, shard_fn=shard_fn)
    # Inputs laid out as the kernel takes them (split over every mesh axis), so a
    # donated buffer is the one the caller passed, not a resharded copy of it.
    split = NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))
    return BoundKernel(spec, per_call, ("x",), lambda a: (jax.device_put(a["x"], split),),
                       variant.name, notes, fallback_allowed=allow_fallback, donates=in_place,
                       sharding=split, shard_fn=shard_fn)


class KernelSet:
    """The plan's kernels: ``kernels.attention(q, k, v)`` calls the first spec of
    that family; ``kernels["blocks.wq"]`` a spec by name."""

    def __init__(self, bound: Iterable[BoundKernel]) -> None:
        self._by_name = {b.spec.name: b for b in bound}
        self._by_family: dict[str, BoundKernel] = {}
        for b in self._by_name.values():
            self._by_family.setdefault(b.spec.family, b)

    def __getattr__(self, family: str) -> BoundKernel:
        try:
            return self._by_family[family]
        except KeyError:
            raise AttributeError(f"the plan has no `{family}` kernel; it has "
                                 f"{', '.join(sorted(self._by_family)) or 'none'}") from None

    def __getitem__(self, name: str) -> BoundKernel:
        return self._by_name[name]

    def __iter__(self):
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


# --------------------------------------------------------------------------- the loader


@dataclass
class CompiledPlan:
    """A verified plan with its mesh and bound kernels (see :func:`load_plan`)."""

    plan: Plan
    mesh: Any
    kernels: KernelSet
    platform: str
    cache: Path | None
    notes: list[str]
    executables: ExecutableCache | None = None

    def warmup(self, progress: TextIO | None = sys.stderr) -> dict[str, float]:
        """AOT-compile every kernel for the plan's shapes, or load the executables
        an earlier process saved for this plan; seconds per kernel."""
        timings: dict[str, float] = {}
        kernels = list(self.kernels)
        for i, kernel in enumerate(kernels, 1):
            if progress is not None:
                progress.write(f"[{i}/{len(kernels)}] {kernel.spec.name} "
                               f"({kernel.spec.family}/{kernel.implementation}) ...")
                progress.flush()
            timings[kernel.spec.name] = kernel.warmup(cache=self.executables)
            if progress is not None:
                how = "loaded from cache" if kernel.from_cache else "compiled"
                if kernel.not_kept:
                    how += f" (not kept: {kernel.not_kept})"
                progress.write(f" {how} in {timings[kernel.spec.name]:.2f} s\n")
        return timings


def _verified(path_or_plan: Plan | str | os.PathLike[str]) -> Plan:
    if isinstance(path_or_plan, Plan):
        if compute_digest(path_or_plan) != path_or_plan.digest:
            raise ConfigError([Diagnostic.error(
                DIGEST_MISMATCH, "the plan's digest does not match its contents",
                help="plans are frozen: compile a new one instead of editing it")])
        return validate_plan(path_or_plan)
    return load_plan_file(path_or_plan)


def _relower(plan: Plan, config: Any, reason: str) -> tuple[Plan, str]:
    from capibara.compiler.driver import compile_config
    from capibara.targets import detect_host

    host = detect_host()
    result = compile_config(config, host)
    if result.plan is None:
        raise ConfigError([Diagnostic.error(
            PLATFORM_MISMATCH, f"{reason}, and re-lowering its config for `{host.name}` failed",
            notes=tuple(str(d) for d in result.diagnostics if d.is_error))])
    return result.plan, f"{reason}: re-lowered for `{host.name}` (hardware_fallback is on)"


def load_plan(path_or_plan: Plan | str | os.PathLike[str], *,
              devices: Sequence[Any] | None = None, cache: bool = True) -> CompiledPlan:
    """Verify a plan, check it against the devices present, and bind its kernels.

    ``devices`` defaults to ``jax.devices()``. ``cache=False`` (or the config's
    ``cache_compiled_functions = false``) keeps no compiled kernels on disk.
    Raises :class:`ConfigError` for a damaged plan, or one for another machine
    unless its config allows ``hardware_fallback`` (then it is re-lowered for
    this host; see ``notes``).
    """
    import jax
    import numpy as np
    from jax.sharding import Mesh

    plan = _verified(path_or_plan)
    devices = list(devices) if devices is not None else jax.devices()
    platform = devices[0].platform
    notes: list[str] = []
    needed = int(np.prod(plan.mesh.shape))
    problem = None
    if plan.target.platform != platform:
        problem = (PLATFORM_MISMATCH, f"the plan targets `{plan.target.name}` "
                   f"({plan.target.platform}), but this process has {len(devices)} {platform} "
                   f"device{'s' if len(devices) != 1 else ''}")
    elif needed > len(devices):
        problem = (TOO_FEW_DEVICES, f"the plan's mesh {list(plan.mesh.shape)} needs {needed} "
                   f"devices, but {len(devices)} {platform} device"
                   f"{'s are' if len(devices) != 1 else ' is'} present")
    if problem is not None:
        code, reason = problem
        # The plan records every resolved field; building the config object (~20 ms
        # of imports and validation) is left to the re-lowering that needs it.
        if not plan.config.get("hardware.hardware_fallback", True):
            raise ConfigError([Diagnostic.error(
                code, reason,
                help="compile for this machine (`capibara compile --target auto`), or set "
                     "`hardware.hardware_fallback = true` to re-lower on load")])
        plan, note = _relower(plan, config_of_plan(plan), reason)
        notes.append(note)
        needed = int(np.prod(plan.mesh.shape))
    mesh = Mesh(np.array(devices[:needed]).reshape(tuple(plan.mesh.shape)), tuple(plan.mesh.axes))
    # performance.cache_compiled_functions = false: compile in every process, keep nothing.
    cache = cache and bool(plan.config.get("performance.cache_compiled_functions", True))
    cache_path, refused = _enable_cache(cache_dir(plan) if cache else None)
    if refused is not None:
        notes.append(refused)
    allow = bool(plan.config.get("jax_config.fallback_to_standard", True))
    bound = [bind(spec, plan, mesh, platform, allow_fallback=allow) for spec in plan.kernels]
    for b in bound:
        notes.extend(b.notes)
    if platform == "cpu":
        from capibara.runtime.hugepages import advice, current

        if (note := advice(current())) is not None:
            notes.append(note)
    return CompiledPlan(plan, mesh, KernelSet(bound), platform, cache_path, notes,
                        _executable_cache(cache_path, mesh))


def _executable_cache(jax_cache: Path | None, mesh: Any) -> ExecutableCache | None:
    """Saved executables beside JAX's cache: single-process runs only (an
    executable that spans processes is compiled by all of them together)."""
    import jax

    if jax_cache is None or jax.process_count() != 1:
        return None
    directory = private_directory(jax_cache / "exports")
    return None if directory is None else ExecutableCache(directory, tuple(mesh.devices.flat))
