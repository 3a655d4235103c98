"""Cross-field rules (PARAMS.md §b) and the seed's ``ConfigValidator``.

Single values are checked when a config is built; this module checks how
fields combine.  Every rule of §b is one small function in :data:`RULES`,
registered with its C-number, its diagnostic code, its severity and the fields
it reads.  A rule yields :class:`Finding` values (a message about named
fields); this module turns each into a diagnostic whose primary span is the
first field that came from text (a file, ``--set`` or an environment
variable), with labels on the others, so one function owns the step from
field names to places.

Two kinds of rules:

- *config* rules (``V`` codes) need only the config.  A few of them are about
  the device (``scope="device"``): they use the config's ``device`` when it is
  explicit and, in the hardware check, the device actually resolved on a
  target.
- *hardware* rules (``H`` codes, the ones §b marks [HW]) compare the config
  with a :class:`capibara.targets.Target`: device count, memory, what is
  present.  Only :func:`check_hardware_compatibility` runs them.

The pure API pair (Fiddle's ``get_*_errors`` / ``check_*``)::

    diagnostics = get_validation_errors(config)   # everything, errors and warnings
    check_config(config)                          # raises ConfigError once if any error

and the seed's front door::

    result = ConfigValidator().validate_full_config(config)
    result.is_valid, result.errors, result.warnings
    check = ConfigValidator().check_hardware_compatibility(config, "tpu_v4-32")
    check.compatible, check.recommendations, check.detected_device

C57 (runtime updates) and C58 (alias conflicts) are enforced where the data
is: ``ModularModelConfig.update_runtime_settings`` and the TOML/env decoder
(:data:`ENFORCED_ELSEWHERE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import msgspec

from capibara.diagnostics import ConfigError, Diagnostic, Label, Severity, Span
from capibara.fieldtypes import format_value

__all__ = [
    "Finding",
    "Rule",
    "RULES",
    "ENFORCED_ELSEWHERE",
    "RuleContext",
    "FieldDiagnostic",
    "get_validation_errors",
    "check_config",
    "ValidationResult",
    "HardwareCheck",
    "ConfigValidator",
    "check_hardware_compatibility",
    "resolve_device",
    "suggest_mesh",
]

ERROR, WARNING = Severity.ERROR, Severity.WARNING

#: The documented architecture tiers (PARAMS.md M3–M5, "allowed" column); advisory (A45).
DOCUMENTED_HIDDEN = (512, 768, 1024, 2048)
DOCUMENTED_LAYERS = (6, 12, 24, 36)
DOCUMENTED_HEADS = (8, 12, 16, 32)
#: Head dimensions that fill the matrix units (multiples of 128 fill a TPU MXU pass).
EFFICIENT_HEAD_DIMS = (64, 128)

TPU_DEVICES = ("tpu_v4", "tpu_v6")

#: Rules of §b enforced outside this module: C-number → (where, code).
ENFORCED_ELSEWHERE: dict[int, tuple[str, str]] = {
    57: ("ModularModelConfig.update_runtime_settings", "S501"),
    58: ("the TOML and environment decoder (alias spellings)", "S301"),
}


# --------------------------------------------------------------------------- findings and rules


class Finding(msgspec.Struct, frozen=True):
    """What a rule found: a message about ``fields`` (the most specific first).

    ``labels`` gives the text beside each field's span; ``severity`` overrides
    the rule's own for rules with an error part and a warning part (C29, C33,
    C40, C43, …).
    """

    message: str
    fields: tuple[str, ...]
    labels: Mapping[str, str] = msgspec.field(default_factory=dict)
    help: str | None = None
    notes: tuple[str, ...] = ()
    severity: Severity | None = None


class RuleContext:
    """What a rule may look at.

    ``device`` is the device the rules may assume: the config's explicit
    ``device``, or the one resolved on ``target`` in the hardware check;
    ``None`` when unknown (``"auto"`` without a target).  ``mode`` is
    ``"train"``, ``"inference"`` or ``None`` (not known: C27 stays silent).
    """

    __slots__ = ("config", "device", "target", "mode", "explicit_fields")

    def __init__(self, config: Any, device: str | None = None, target: Any = None,
                 mode: str | None = None) -> None:
        self.config = config
        self.device = device
        self.target = target
        self.mode = mode
        #: ``config.explicit_fields``, computed once for all the rules
        self.explicit_fields: frozenset[str] = config.explicit_fields

    def __repr__(self) -> str:
        return (f"RuleContext(config={self.config!r}, device={self.device!r}, "
                f"target={self.target!r}, mode={self.mode!r})")

    def __getattr__(self, name: str) -> Any:
        # ctx.hidden_size reads the config: the rules below stay close to §b's wording.
        return getattr(self.config, name)

    def explicit(self, name: str) -> bool:
        return name in self.explicit_fields


Check = Callable[[RuleContext], Iterable[Finding]]


class Rule(msgspec.Struct, frozen=True):
    """One rule of §b: ``number`` is its C-number, ``fields`` what it reads."""

    number: int
    code: str
    severity: Severity
    fields: tuple[str, ...]
    check: Check
    scope: str = "config"  # "config" | "device" | "hardware"
    doc: str = ""

    @property
    def severities(self) -> frozenset[Severity]:
        """Severities its findings may have: its own, plus warning for mixed rules."""
        return frozenset({self.severity, WARNING})


RULES: dict[int, Rule] = {}


def rule(number: int, code: str, severity: Severity, fields: Sequence[str], *,
         scope: str = "config") -> Callable[[Check], Check]:
    """Register a rule function under its C-number (each number once)."""

    def register(check: Check) -> Check:
        if number in RULES:
            raise AssertionError(f"C{number} is registered twice")
        RULES[number] = Rule(number, code, severity, tuple(fields), check, scope,
                             (check.__doc__ or "").strip().split("\n")[0])
        return check

    return register


# --------------------------------------------------------------------------- helpers for messages


def _path(name: str) -> str:
    """The field's canonical dotted path, as a file or ``--set`` spells it."""
    from capibara.schema import FIELD_BY_NAME

    return FIELD_BY_NAME[name].path


def _default(name: str) -> Any:
    from capibara.schema import FIELD_BY_NAME

    return FIELD_BY_NAME[name].default


def _set(name: str, value: Any) -> str:
    """```model.num_heads = 16```: what to write to set a field."""
    return f"`{_path(name)} = {format_value(value)}`"


def _names(names: Sequence[str]) -> str:
    return _join([f"`{n}`" for n in names])


def _join(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _are(names: Sequence[str]) -> str:
    return "is" if len(names) == 1 else "are"


def _fields_in(section: str, *, excluding: Sequence[str] = ()) -> tuple[str, ...]:
    from capibara.schema import FIELDS

    return tuple(f.name for f in FIELDS if f.section == section and f.name not in excluding)


# --------------------------------------------------------------------------- model (C1–C5)


@rule(1, "V001", ERROR, ("num_heads", "hidden_size"))
def head_dim_is_integer(ctx: RuleContext) -> Iterator[Finding]:
    """`hidden_size` must be divisible by `num_heads`."""
    hidden, heads = ctx.hidden_size, ctx.num_heads
    if heads is None or hidden % heads == 0:
        return
    suggestion = hidden // 64 if hidden % 64 == 0 else _nearest_divisor(hidden, heads)
    yield Finding(
        f"`hidden_size` {hidden} is not divisible by `num_heads` {heads}",
        ("num_heads", "hidden_size"),
        {"num_heads": f"{heads} heads", "hidden_size": f"{hidden} does not split into {heads} heads"},
        help=f"set {_set('num_heads', suggestion)} (head dimension {hidden // suggestion})"
             + (", or remove it to derive `hidden_size // 64`" if hidden % 64 == 0 else ""))


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _nearest_divisor(n: int, near: int) -> int:
    return min(_divisors(n), key=lambda d: (abs(d - near), d))


@rule(2, "V002", WARNING, ("num_heads", "hidden_size"))
def head_dim_is_efficient(ctx: RuleContext) -> Iterator[Finding]:
    """The head dimension should be 64 or 128."""
    hidden, heads = ctx.hidden_size, ctx.num_heads
    if heads is None or hidden % heads:
        return
    head_dim = hidden // heads
    if head_dim in EFFICIENT_HEAD_DIMS:
        return
    better = [hidden // d for d in EFFICIENT_HEAD_DIMS if hidden % d == 0]
    yield Finding(
        f"head dimension {head_dim} (`hidden_size` {hidden} / `num_heads` {heads}) is legal but "
        "inefficient",
        ("num_heads", "hidden_size"), {"num_heads": f"head dimension {head_dim}"},
        help=(f"set {_set('num_heads', better[0])} (head dimension {hidden // better[0]})"
              if better else "use a hidden size that is a multiple of 64"),
        notes=("64 and 128 are the standard head sizes; multiples of 128 fill the TPU matrix unit",))


@rule(3, "V003", WARNING, ("hidden_size", "num_layers", "num_heads"))
def architecture_is_documented(ctx: RuleContext) -> Iterator[Finding]:
    """Architecture values outside the documented tiers (advisory)."""
    checks = (("hidden_size", DOCUMENTED_HIDDEN), ("num_layers", DOCUMENTED_LAYERS),
              ("num_heads", DOCUMENTED_HEADS))
    for name, documented in checks:
        value = getattr(ctx.config, name)
        # A derived num_heads is outside the tiers only when hidden_size is: one warning is enough.
        if value is None or value in documented or (name == "num_heads" and not ctx.explicit(name)):
            continue
        nearest = min(documented, key=lambda d: (abs(d - value), d))
        yield Finding(
            f"`{name}` {value} is outside the documented values "
            f"{', '.join(map(str, documented))}", (name,), {name: "not a documented value"},
            help=f"the nearest documented value is {nearest}; keep {value} if it is intended",
            notes=("the documented values are advisory: small test models and large migrated "
                   "shapes are fine, but they are not the tuned configurations",))


@rule(4, "V004", ERROR, ("vision_encoder_type", "audio_encoder_type", "multimodal_enabled"))
def encoder_needs_multimodal(ctx: RuleContext) -> Iterator[Finding]:
    """An encoder type requires `multimodal_enabled`."""
    if ctx.multimodal_enabled:
        return
    for name in ("vision_encoder_type", "audio_encoder_type"):
        value = getattr(ctx.config, name)
        if value is not None:
            yield Finding(
                f"`{name}` {format_value(value)} needs `multimodal_enabled`",
                (name, "multimodal_enabled"),
                {name: "an encoder", "multimodal_enabled": "multimodal processing is off"},
                help=f"set {_set('multimodal_enabled', True)}, or remove `{_path(name)}`")


@rule(5, "V005", ERROR, ("multimodal_enabled", "vision_encoder_type", "audio_encoder_type"))
def multimodal_needs_encoder(ctx: RuleContext) -> Iterator[Finding]:
    """`multimodal_enabled` requires at least one encoder."""
    if ctx.multimodal_enabled and ctx.vision_encoder_type is None and ctx.audio_encoder_type is None:
        from capibara.schema import FIELD_BY_NAME

        vision = FIELD_BY_NAME["vision_encoder_type"].type.inner.listing()
        audio = FIELD_BY_NAME["audio_encoder_type"].type.inner.listing()
        yield Finding(
            "`multimodal_enabled` needs a vision or an audio encoder",
            ("multimodal_enabled",), {"multimodal_enabled": "no encoder is set"},
            help=f"set `{_path('vision_encoder_type')}` ({vision}) or "
                 f"`{_path('audio_encoder_type')}` ({audio}), or turn multimodal off")


# --------------------------------------------------------------------------- JAX (C6–C9)


@rule(6, "V006", ERROR, ("jax_backend", "use_jax_native"))
def jax_backend_matches_native(ctx: RuleContext) -> Iterator[Finding]:
    """`use_jax_native` and `jax_backend` must agree (A2)."""
    native, backend = ctx.use_jax_native, ctx.jax_backend
    if (native is False and backend == "capibara_jax") or (native is True and backend == "standard"):
        wanted = "standard" if native is False else "capibara_jax"
        yield Finding(
            f"`use_jax_native` {format_value(native)} contradicts `jax_backend` "
            f"{format_value(backend)}",
            ("jax_backend", "use_jax_native"),
            {"jax_backend": f"the {'native' if backend == 'capibara_jax' else 'standard'} backend",
             "use_jax_native": f"{'not ' if native is False else ''}native"},
            help=f"set {_set('jax_backend', wanted)} or remove one of the two: "
                 "either one alone decides the other")


@rule(7, "V007", WARNING, ("fallback_to_standard", "jax_backend"))
def native_backend_without_fallback(ctx: RuleContext) -> Iterator[Finding]:
    """`capibara_jax` without a fallback fails hard where `capibara.jax` is missing."""
    if ctx.jax_backend == "capibara_jax" and not ctx.fallback_to_standard:
        yield Finding(
            "`jax_backend` \"capibara_jax\" with `fallback_to_standard` false fails wherever "
            "`capibara.jax` cannot be imported",
            ("fallback_to_standard", "jax_backend"), {"fallback_to_standard": "no fallback"},
            help=f"set {_set('fallback_to_standard', True)}, or {_set('jax_backend', 'auto')}")


@rule(8, "V008", WARNING, ("compile_mode", "cache_compiled_functions", "enable_jit"))
def compile_settings_without_jit(ctx: RuleContext) -> Iterator[Finding]:
    """`compile_mode` and the compile cache mean nothing without JIT."""
    if ctx.enable_jit:
        return
    ignored = [n for n in ("compile_mode", "cache_compiled_functions") if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{_names(ignored)} {_are(ignored)} ignored: `enable_jit` is false",
            (*ignored, "enable_jit"), {**{n: "ignored" for n in ignored}, "enable_jit": "no JIT"},
            help=f"remove {_names([_path(n) for n in ignored])}, or set {_set('enable_jit', True)}")


@rule(9, "V009", WARNING, ("compile_mode", "jax_debug_mode", "trace_execution",
                           "profile_performance"))
def debugging_defeats_aggressive(ctx: RuleContext) -> Iterator[Finding]:
    """Debug instrumentation distorts an aggressive compilation."""
    if ctx.compile_mode != "aggressive":
        return
    on = [n for n in ("jax_debug_mode", "trace_execution", "profile_performance")
          if getattr(ctx.config, n)]
    if on:
        yield Finding(
            f"{_names(on)} {_are(on)} on with `compile_mode` \"aggressive\": debug "
            "instrumentation distorts or defeats the optimizations",
            ("compile_mode", *on), {"compile_mode": "aggressive", **{n: "on" for n in on}},
            help=f"use {_set('compile_mode', 'default')} while debugging or profiling")


# --------------------------------------------------------------------------- vector quantization (C10–C16)


@rule(10, "V010", ERROR, ("vq_embedding_dim", "hidden_size", "use_vq"))
def vq_dim_matches_hidden(ctx: RuleContext) -> Iterator[Finding]:
    """With VQ, `vq_embedding_dim` must equal `hidden_size` (no projection exists)."""
    dim, hidden = ctx.vq_embedding_dim, ctx.hidden_size
    if ctx.use_vq and dim is not None and dim != hidden:
        yield Finding(
            f"`vq_embedding_dim` {dim} differs from `hidden_size` {hidden}",
            ("vq_embedding_dim", "hidden_size"),
            {"vq_embedding_dim": f"codebook vectors of size {dim}",
             "hidden_size": f"hidden states of size {hidden}"},
            help=f"remove `{_path('vq_embedding_dim')}` to derive it from `hidden_size`, "
                 f"or set it to {hidden}",
            notes=("codebook vectors replace hidden states, so both must have the same size; "
                   "no projection between them exists",))


@rule(11, "V011", ERROR, ("vq_enterprise_mode", "use_vq"))
def enterprise_needs_vq(ctx: RuleContext) -> Iterator[Finding]:
    """`vq_enterprise_mode` requires `use_vq`."""
    if ctx.vq_enterprise_mode and not ctx.use_vq:
        yield Finding(
            "`vq_enterprise_mode` needs vector quantization, but `use_vq` is false",
            ("vq_enterprise_mode", "use_vq"),
            {"vq_enterprise_mode": "needs VQ", "use_vq": "VQ is off"},
            help=f"set {_set('use_vq', True)}, or turn enterprise mode off")


@rule(12, "V012", ERROR, ("vq_codes", "vq_enterprise_mode"))
def enterprise_needs_128_codes(ctx: RuleContext) -> Iterator[Finding]:
    """Enterprise mode means 128 codes."""
    if ctx.vq_enterprise_mode and ctx.vq_codes != 128:
        yield Finding(
            f"`vq_enterprise_mode` needs 128 codes, but `vq_codes` is {ctx.vq_codes}",
            ("vq_codes", "vq_enterprise_mode"),
            {"vq_codes": "enterprise mode needs 128", "vq_enterprise_mode": "enterprise mode"},
            help=f"set {_set('vq_codes', 128)} (or remove it: enterprise mode derives 128); "
                 "for 64 codes, turn enterprise mode off")


@rule(13, "V013", WARNING, ("vq_cost_management", "vq_fallback_strategy", "vq_enterprise_mode"))
def enterprise_settings_without_enterprise(ctx: RuleContext) -> Iterator[Finding]:
    """Enterprise sub-settings have no effect without enterprise mode."""
    if ctx.vq_enterprise_mode or not ctx.use_vq:  # without VQ, C14 already says it
        return
    ignored = [n for n in ("vq_cost_management", "vq_fallback_strategy") if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{_names(ignored)} {_are(ignored)} ignored: `vq_enterprise_mode` is false",
            (*ignored, "vq_enterprise_mode"), {n: "no effect" for n in ignored},
            help=f"remove {_names([_path(n) for n in ignored])}, or set "
                 f"{_set('vq_enterprise_mode', True)}")


@rule(14, "V014", WARNING, _fields_in("vector_quantization", excluding=("vq_enterprise_mode",)))
def vq_settings_without_vq(ctx: RuleContext) -> Iterator[Finding]:
    """VQ sub-settings are ignored while `use_vq` is false."""
    if ctx.use_vq:
        return
    subs = _fields_in("vector_quantization", excluding=("use_vq", "vq_enterprise_mode"))
    ignored = [n for n in subs if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{_names(ignored)} {_are(ignored)} ignored: `use_vq` is false",
            (*ignored, "use_vq"), {**{n: "ignored" for n in ignored}, "use_vq": "VQ is off"},
            help=f"remove {'them' if len(ignored) > 1 else 'it'}, or set {_set('use_vq', True)}")


@rule(15, "V015", WARNING, ("vq_use_tpu_optimizations", "vq_use_simd", "device"))
def vq_hardware_flags_match_device(ctx: RuleContext) -> Iterator[Finding]:
    """VQ's TPU and SIMD paths are ignored on the other kind of device."""
    if not ctx.explicit("device"):
        return  # an "auto" device gates these flags silently (A24)
    device = ctx.config.device
    if device in ("gpu", "cpu") and ctx.vq_use_tpu_optimizations and \
            ctx.explicit("vq_use_tpu_optimizations"):
        yield Finding(
            f"`vq_use_tpu_optimizations` is ignored on `device` {format_value(device)}",
            ("vq_use_tpu_optimizations", "device"),
            {"vq_use_tpu_optimizations": "TPU only", "device": "not a TPU"},
            help=f"remove `{_path('vq_use_tpu_optimizations')}`")
    if device in TPU_DEVICES and ctx.vq_use_simd and ctx.explicit("vq_use_simd"):
        yield Finding(
            f"`vq_use_simd` is ignored on `device` {format_value(device)}",
            ("vq_use_simd", "device"), {"vq_use_simd": "CPU only", "device": "a TPU"},
            help=f"remove `{_path('vq_use_simd')}`")


@rule(16, "V016", WARNING, ("vq_precision", "device"), scope="device")
def vq_float16_on_tpu(ctx: RuleContext) -> Iterator[Finding]:
    """float16 codebooks on a TPU are slow."""
    if ctx.use_vq and ctx.vq_precision == "float16" and ctx.device in TPU_DEVICES:
        yield Finding(
            f"`vq_precision` \"float16\" is slow on {ctx.device}: TPUs compute in bfloat16",
            ("vq_precision", "device"), {"vq_precision": "slow on TPU"},
            help=f"use {_set('vq_precision', 'bfloat16')}")


# --------------------------------------------------------------------------- TPU, parallelism, precision (C17–C27)


def _mesh(ctx: RuleContext) -> list[int] | None:
    mesh = ctx.tpu_mesh_shape
    return list(mesh) if isinstance(mesh, list) else None


#: Meshes larger than any machine (the biggest TPU pods have a few thousand chips) get no
#: suggestion: enumerating their factorizations would take longer than it helps.
_MAX_SUGGESTED_DEVICES = 1 << 16


def _factorizations(n: int, rank: int) -> Iterator[tuple[int, ...]]:
    """Every ordered ``rank``-tuple of positive integers whose product is ``n``."""
    if rank == 1:
        yield (n,)
        return
    for first in _divisors(n):
        for rest in _factorizations(n // first, rank - 1):
            yield (first, *rest)


def suggest_mesh(devices: int, like: Sequence[int], *, heads: int | None = None,
                 hidden: int | None = None) -> list[int]:
    """A mesh of ``len(like)`` axes (at most two) whose product is ``devices``, closest to ``like``.

    The last axis is the model axis (T2's ``[data, model]``); shapes whose
    model axis divides ``heads`` and ``hidden`` are preferred (C20), then the
    one nearest to ``like`` in log scale.  For 16 devices like ``[4, 8]`` with
    12 heads this is ``[4, 4]``: ``[2, 8]`` is as near but 8 does not divide 12.
    """
    if len(like) > 2:  # capibara meshes are [data] or [data, model]: fold the extra axes
        like = [math.prod(like[:-1]), like[-1]]
    rank = max(len(like), 1)
    shapes = [list(s) for s in _factorizations(devices, rank)]

    def fits(shape: list[int]) -> bool:
        model = shape[-1] if rank > 1 else 1
        return all(v is None or v % model == 0 for v in (heads, hidden))

    def distance(shape: list[int]) -> float:
        return sum(abs(math.log2(a) - math.log2(max(b, 1))) for a, b in zip(shape, like))

    return min(shapes, key=lambda s: (not fits(s), distance(s), s))


@rule(17, "H017", ERROR, ("tpu_mesh_shape", "device"), scope="hardware")
def mesh_matches_device_count(ctx: RuleContext) -> Iterator[Finding]:
    """An explicit TPU mesh must cover exactly the devices present."""
    mesh = _mesh(ctx)
    if mesh is None or ctx.device not in TPU_DEVICES:
        return
    devices = ctx.target.device_count
    if math.prod(mesh) == devices:
        return
    better = suggest_mesh(devices, mesh, heads=ctx.num_heads, hidden=ctx.hidden_size)
    yield Finding(
        f"`tpu_mesh_shape` {format_value(mesh)} needs {math.prod(mesh)} devices, but "
        f"`{ctx.target.name}` has {devices}",
        ("tpu_mesh_shape",), {"tpu_mesh_shape": f"{math.prod(mesh)} devices"},
        help=f"set {_set('tpu_mesh_shape', better)}, or \"auto\" to derive it",
        notes=_slice_note(ctx.target))


def _slice_note(target: Any) -> tuple[str, ...]:
    if getattr(target, "cores_per_device", 1) > 1:
        return (f"`{target.name}` counts TensorCores; JAX sees its {target.device_count} chips "
                f"({target.cores_per_device} cores each) as {target.device_count} devices",)
    return ()


@rule(18, "V018", ERROR, ("sharding_strategy", "tpu_mesh_shape"))
def manual_sharding_needs_mesh(ctx: RuleContext) -> Iterator[Finding]:
    """Manual sharding needs an explicit mesh."""
    if ctx.sharding_strategy == "manual" and _mesh(ctx) is None:
        yield Finding(
            "`sharding_strategy` \"manual\" needs an explicit `tpu_mesh_shape`, not \"auto\"",
            ("sharding_strategy", "tpu_mesh_shape"),
            {"sharding_strategy": "manual", "tpu_mesh_shape": "no mesh given"},
            help=f"set `{_path('tpu_mesh_shape')}` (e.g. `[4, 4]` for 16 devices), or "
                 f"{_set('sharding_strategy', 'auto')}")


@rule(19, "V019", ERROR, ("model_parallel", "optimizer_sharding", "sharding_strategy"))
def disabled_sharding_excludes_sharded_features(ctx: RuleContext) -> Iterator[Finding]:
    """`sharding_strategy = "disabled"` rules out model parallelism and optimizer sharding."""
    if ctx.sharding_strategy != "disabled":
        return
    on = [n for n in ("model_parallel", "optimizer_sharding") if getattr(ctx.config, n)]
    if on:
        yield Finding(
            f"{_names(on)} {'needs' if len(on) == 1 else 'need'} sharding, but "
            "`sharding_strategy` is \"disabled\"",
            (*on, "sharding_strategy"),
            {**{n: "needs sharding" for n in on}, "sharding_strategy": "sharding is off"},
            help="set " + " and ".join(_set(n, False) for n in on) + ", or use "
                 f"{_set('sharding_strategy', 'auto')}")


@rule(20, "V020", ERROR, ("tpu_mesh_shape", "num_heads", "hidden_size", "vocab_size",
                          "model_parallel"))
def model_axis_divides_model(ctx: RuleContext) -> Iterator[Finding]:
    """With model parallelism the model axis must divide heads and hidden size."""
    mesh = _mesh(ctx)
    if not ctx.model_parallel or mesh is None or len(mesh) < 2 or mesh[-1] == 1:
        return
    axis = mesh[-1]
    bad = [n for n in ("num_heads", "hidden_size")
           if getattr(ctx.config, n) is not None and getattr(ctx.config, n) % axis]
    if bad:
        devices = math.prod(mesh)
        better = suggest_mesh(devices, mesh, heads=ctx.num_heads, hidden=ctx.hidden_size) \
            if devices <= _MAX_SUGGESTED_DEVICES else None
        yield Finding(
            f"the model axis of `tpu_mesh_shape` {format_value(mesh)} ({axis}) does not divide "
            + " and ".join(f"`{n}` {getattr(ctx.config, n)}" for n in bad),
            ("tpu_mesh_shape", *bad, "model_parallel"),
            {"tpu_mesh_shape": f"model axis {axis}",
             **{n: f"not divisible by {axis}" for n in bad}},
            help=(f"set {_set('tpu_mesh_shape', better)} (same device count), or turn "
                  "`model_parallel` off" if better else
                  f"use a model axis that divides {_names(bad)}, or turn `model_parallel` off"),
            notes=("tensor parallelism splits attention heads and hidden features across the "
                   "model axis, so each device needs a whole share",))
    elif ctx.vocab_size % axis:
        yield Finding(
            f"the model axis of `tpu_mesh_shape` {format_value(mesh)} ({axis}) does not divide "
            f"`vocab_size` {ctx.vocab_size}: the embedding is padded",
            ("tpu_mesh_shape", "vocab_size"),
            {"tpu_mesh_shape": f"model axis {axis}", "vocab_size": f"not divisible by {axis}"},
            help=f"use a vocabulary size that is a multiple of {axis}", severity=WARNING)


def _data_parallel_degree(ctx: RuleContext) -> int | None:
    if not ctx.data_parallel:
        return 1
    mesh = _mesh(ctx)
    if mesh is not None:
        return mesh[0]
    if ctx.model_parallel:
        return None  # "auto" with a model axis: the lowering picks the split
    return ctx.target.device_count


@rule(21, "H021", ERROR, ("batch_size", "tpu_mesh_shape", "data_parallel"), scope="hardware")
def batch_splits_across_replicas(ctx: RuleContext) -> Iterator[Finding]:
    """An int batch must give every data-parallel replica a whole, non-empty share."""
    batch = ctx.batch_size
    degree = _data_parallel_degree(ctx)
    if not isinstance(batch, int) or degree is None or degree <= 1:
        return
    if batch % degree == 0 and batch >= degree:
        return
    fixed = max(degree, (batch // degree) * degree)
    via = "the data axis of `tpu_mesh_shape`" if _mesh(ctx) else f"the devices of `{ctx.target.name}`"
    yield Finding(
        f"`batch_size` {batch} does not split across {degree} data-parallel replicas "
        f"({via})",
        ("batch_size", "tpu_mesh_shape"), {"batch_size": f"not a multiple of {degree}"},
        help=f"set {_set('batch_size', fixed)} (a multiple of {degree}), or \"auto\"")


@rule(22, "V022", WARNING, ("optimizer_sharding", "async_collective", "distributed_training"),
      scope="device")
def multi_device_features_on_one_device(ctx: RuleContext) -> Iterator[Finding]:
    """Sharding and collectives do nothing on one device."""
    if ctx.target is None or ctx.target.device_count != 1:
        return
    on = [n for n in ("optimizer_sharding", "async_collective", "distributed_training")
          if getattr(ctx.config, n) and ctx.explicit(n)]
    if on:
        yield Finding(
            f"{_names(on)} {'does' if len(on) == 1 else 'do'} nothing on one device "
            f"(`{ctx.target.name}`)", tuple(on), {n: "one device" for n in on},
            help=f"remove {_names([_path(n) for n in on])} for single-device runs")


@rule(23, "V023", WARNING, ("kernel_categories", "use_custom_kernels"))
def kernel_categories_need_custom_kernels(ctx: RuleContext) -> Iterator[Finding]:
    """Kernel categories only matter with custom kernels, and an empty list selects none."""
    categories = ctx.kernel_categories
    if not ctx.use_custom_kernels and ctx.explicit("kernel_categories") and \
            sorted(categories) != sorted(_default("kernel_categories")):
        yield Finding(
            "`kernel_categories` is ignored: `use_custom_kernels` is false",
            ("kernel_categories", "use_custom_kernels"),
            {"kernel_categories": "ignored", "use_custom_kernels": "custom kernels off"},
            help=f"remove `{_path('kernel_categories')}`, or set {_set('use_custom_kernels', True)}")
    elif ctx.use_custom_kernels and categories == []:
        yield Finding(
            "`use_custom_kernels` is on but `kernel_categories` is empty: no custom kernel runs",
            ("kernel_categories", "use_custom_kernels"), {"kernel_categories": "no categories"},
            help=f"list the categories to use, or set {_set('use_custom_kernels', False)}")


@rule(24, "V024", WARNING, ("use_tpu_v4_optimizations", "device", "hardware_fallback"))
def tpu_v4_flag_matches_device(ctx: RuleContext) -> Iterator[Finding]:
    """TPU v4 optimizations set explicitly for an explicit non-v4 device."""
    if not (ctx.use_tpu_v4_optimizations and ctx.explicit("use_tpu_v4_optimizations")
            and ctx.explicit("device")):
        return
    device = ctx.config.device
    if device in ("gpu", "cpu"):
        yield Finding(
            f"`use_tpu_v4_optimizations` is ignored on `device` {format_value(device)}",
            ("use_tpu_v4_optimizations", "device"),
            {"use_tpu_v4_optimizations": "TPU v4 only", "device": "not a TPU"},
            help=f"remove `{_path('use_tpu_v4_optimizations')}`")
    elif device == "tpu_v6" and not ctx.hardware_fallback:
        yield Finding(
            "`use_tpu_v4_optimizations` never applies: `device` is \"tpu_v6\" and "
            "`hardware_fallback` is false, so the TPU v4 fallback cannot happen",
            ("use_tpu_v4_optimizations", "device", "hardware_fallback"),
            {"use_tpu_v4_optimizations": "used only on fallback to TPU v4"},
            help=f"remove `{_path('use_tpu_v4_optimizations')}`, or set "
                 f"{_set('hardware_fallback', True)}")


@rule(25, "H025", WARNING, ("tpu_memory_limit_gb", "memory_limit_gb", "device"), scope="hardware")
def memory_limits_within_physical(ctx: RuleContext) -> Iterator[Finding]:
    """Memory limits above the physical memory have no effect."""
    physical = ctx.target.memory_per_device_gib
    if physical is None:
        return
    limits = []
    if ctx.device in TPU_DEVICES and ctx.explicit("tpu_memory_limit_gb"):
        limits.append("tpu_memory_limit_gb")
    if ctx.memory_limit_gb is not None and ctx.explicit("memory_limit_gb"):
        limits.append("memory_limit_gb")
    for name in limits:
        value = getattr(ctx.config, name)
        if value > physical:
            yield Finding(
                f"`{name}` {format_value(value)} GiB exceeds the {physical:g} GiB per device of "
                f"`{ctx.target.name}`: the limit has no effect",
                (name,), {name: f"more than {physical:g} GiB"},
                help=f"set {_set(name, float(physical))} or less, or remove it")


@rule(26, "V026", WARNING, ("mixed_precision", "use_bfloat16", "device"), scope="device")
def precision_combinations(ctx: RuleContext) -> Iterator[Finding]:
    """Pure bf16 training, or fp16 compute on a TPU (A28)."""
    if not ctx.mixed_precision and ctx.use_bfloat16:
        yield Finding(
            "`mixed_precision` is false with `use_bfloat16` on: weights and compute are pure "
            "bfloat16, which risks unstable training",
            ("mixed_precision", "use_bfloat16"),
            {"mixed_precision": "no fp32 master weights", "use_bfloat16": "bfloat16"},
            help=f"set {_set('mixed_precision', True)} to keep fp32 master weights")
    if ctx.mixed_precision and not ctx.use_bfloat16 and ctx.device in TPU_DEVICES:
        yield Finding(
            f"`mixed_precision` without `use_bfloat16` computes in float16 on {ctx.device}, "
            "which TPUs run slowly",
            ("use_bfloat16", "mixed_precision", "device"), {"use_bfloat16": "float16 instead"},
            help=f"set {_set('use_bfloat16', True)}")


#: Fields that matter only when training (C27): the memory-for-training switches and [training].
def _training_fields() -> tuple[str, ...]:
    return ("gradient_checkpointing", "activation_offloading", "optimizer_sharding",
            *_fields_in("training"))


@rule(27, "V027", WARNING, _training_fields())
def training_settings_in_inference(ctx: RuleContext) -> Iterator[Finding]:
    """Training settings are ignored in inference mode."""
    if ctx.mode != "inference":
        return
    ignored = [n for n in _training_fields() if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{_names(ignored)} {_are(ignored)} ignored in inference mode",
            tuple(ignored), {n: "training only" for n in ignored},
            help=f"remove {'them' if len(ignored) > 1 else 'it'} from inference configs, or "
                 "compile in training mode")


# --------------------------------------------------------------------------- sparsity and quantization (C28–C32)


@rule(28, "V028", ERROR, ("min_sparsity", "max_sparsity", "sparsity_ratio", "adaptive_sparsity"))
def sparsity_range_is_ordered(ctx: RuleContext) -> Iterator[Finding]:
    """`min_sparsity <= max_sparsity`, and with adaptive sparsity the ratio lies between."""
    low, high, ratio = ctx.min_sparsity, ctx.max_sparsity, ctx.sparsity_ratio
    if low > high:
        yield Finding(
            f"`min_sparsity` {format_value(low)} is above `max_sparsity` {format_value(high)}",
            ("min_sparsity", "max_sparsity"),
            {"min_sparsity": "the lower bound", "max_sparsity": "the upper bound"},
            help="swap them, or make `min_sparsity` at most `max_sparsity`")
    elif ctx.use_sparse and ctx.adaptive_sparsity and not low <= ratio <= high:
        yield Finding(
            f"`sparsity_ratio` {format_value(ratio)} is outside the adaptive range "
            f"[{format_value(low)}, {format_value(high)}]",
            ("sparsity_ratio", "min_sparsity", "max_sparsity"),
            {"sparsity_ratio": "the target", "min_sparsity": "lower bound",
             "max_sparsity": "upper bound"},
            help=f"pick a ratio between {format_value(low)} and {format_value(high)}, or move the "
                 "bound",
            notes=("adaptive sparsity ramps from `min_sparsity` to the target and clamps "
                   "adjustments to [`min_sparsity`, `max_sparsity`]",))


@rule(29, "V029", ERROR, ("mor_top_k", "mor_num_experts", "use_sparse", "sparsity_method"))
def mor_routing_is_possible(ctx: RuleContext) -> Iterator[Finding]:
    """Mixture of Rookies cannot route to more experts than exist."""
    if not ctx.use_sparse or ctx.sparsity_method != "mor":
        return
    top_k, experts = ctx.mor_top_k, ctx.mor_num_experts
    if top_k > experts:
        yield Finding(
            f"`mor_top_k` {top_k} routes to more experts than `mor_num_experts` {experts}",
            ("mor_top_k", "mor_num_experts"),
            {"mor_top_k": f"{top_k} per token", "mor_num_experts": f"only {experts}"},
            help=f"set {_set('mor_top_k', min(2, experts))} or raise `mor_num_experts`")
    elif top_k == experts:
        yield Finding(
            f"`mor_top_k` {top_k} equals `mor_num_experts`: every token uses every expert, so "
            "routing gives no sparsity",
            ("mor_top_k", "mor_num_experts"), {"mor_top_k": "all experts"},
            help="route to fewer experts than exist (the default is 2 of 8)", severity=WARNING)


@rule(30, "V030", WARNING, ("mor_num_experts", "mor_top_k", "mor_load_balancing",
                            "sparsity_method", "use_sparse"))
def mor_settings_without_mor(ctx: RuleContext) -> Iterator[Finding]:
    """`mor_*` settings are ignored unless sparsity uses Mixture of Rookies."""
    if ctx.use_sparse and ctx.sparsity_method == "mor":
        return
    ignored = [n for n in ("mor_num_experts", "mor_top_k", "mor_load_balancing")
               if ctx.explicit(n)]
    if not ignored:
        return
    if ctx.use_sparse:
        why, other = f"`sparsity_method` is {format_value(ctx.sparsity_method)}", "sparsity_method"
    else:
        why, other = "`use_sparse` is false", "use_sparse"
    yield Finding(
        f"{_names(ignored)} {_are(ignored)} ignored: {why}", (*ignored, other),
        {**{n: "ignored" for n in ignored}, other: "not Mixture of Rookies"},
        help=f"remove {'them' if len(ignored) > 1 else 'it'}, or use "
             f"{_set('sparsity_method', 'mor')}")


@rule(31, "V031", ERROR, ("use_affine_quantization", "use_bitnet"))
def one_weight_quantizer(ctx: RuleContext) -> Iterator[Finding]:
    """BitNet and affine quantization are mutually exclusive weight quantizers."""
    if ctx.use_bitnet and ctx.use_affine_quantization:
        yield Finding(
            "`use_bitnet` and `use_affine_quantization` are both on: they are alternative weight "
            "quantizers", ("use_affine_quantization", "use_bitnet"),
            {"use_affine_quantization": "affine", "use_bitnet": "BitNet"},
            help=f"set {_set('use_affine_quantization', False)} (or leave it unset: "
                 "`use_bitnet = true` turns it off)")


@rule(32, "V032", WARNING, ("bitnet_precision", "affine_bits", "affine_symmetric", "use_bitnet",
                            "use_affine_quantization"))
def quantizer_settings_without_quantizer(ctx: RuleContext) -> Iterator[Finding]:
    """Quantizer sub-settings are ignored while their switch is off."""
    groups = (("use_bitnet", ("bitnet_precision",)),
              ("use_affine_quantization", ("affine_bits", "affine_symmetric")))
    for switch, subs in groups:
        ignored = [n for n in subs if ctx.explicit(n)]
        if ignored and not getattr(ctx.config, switch):
            yield Finding(
                f"{_names(ignored)} {_are(ignored)} ignored: `{switch}` is false",
                (*ignored, switch), {**{n: "ignored" for n in ignored}, switch: "off"},
                help=f"remove {'them' if len(ignored) > 1 else 'it'}, or set "
                     f"{_set(switch, True)}")


# --------------------------------------------------------------------------- hardware and deployment (C33–C42)


@rule(33, "V033", ERROR, ("auto_device_selection", "device"))
def device_selection_agrees(ctx: RuleContext) -> Iterator[Finding]:
    """`auto_device_selection` says the same as `device == "auto"` (A25)."""
    if not ctx.explicit("auto_device_selection"):
        return
    if ctx.config.device == "auto" and not ctx.auto_device_selection:
        yield Finding(
            "`auto_device_selection` is false but `device` is \"auto\"",
            ("auto_device_selection", "device"),
            {"auto_device_selection": "no automatic selection", "device": "select automatically"},
            help=f"name a device, e.g. {_set('device', 'tpu_v4')}, or remove "
                 f"`{_path('auto_device_selection')}`")
    elif ctx.config.device != "auto" and ctx.explicit("device") and ctx.auto_device_selection:
        yield Finding(
            f"`auto_device_selection` is true but `device` is {format_value(ctx.config.device)}: "
            "the named device wins", ("auto_device_selection", "device"),
            {"auto_device_selection": "ignored", "device": "this device is used"},
            help=f"remove `{_path('auto_device_selection')}`, or {_set('device', 'auto')}",
            severity=WARNING)


@rule(34, "V034", WARNING, ("fallback_cpu", "hardware_fallback"))
def cpu_fallback_needs_fallback(ctx: RuleContext) -> Iterator[Finding]:
    """`fallback_cpu` only acts within `hardware_fallback`."""
    if ctx.fallback_cpu and ctx.explicit("fallback_cpu") and not ctx.hardware_fallback:
        yield Finding(
            "`fallback_cpu` has no effect: `hardware_fallback` is false",
            ("fallback_cpu", "hardware_fallback"),
            {"fallback_cpu": "no effect", "hardware_fallback": "no fallback at all"},
            help=f"set {_set('hardware_fallback', True)}, or remove `{_path('fallback_cpu')}`")


def _fallback_chain(requested: str, config: Any) -> list[str]:
    from capibara.targets import FALLBACK_CHAIN

    chain = list(FALLBACK_CHAIN[FALLBACK_CHAIN.index(requested) + 1:])
    return chain if config.fallback_cpu else [d for d in chain if d != "cpu"]


def resolve_device(config: Any, target: Any) -> str | None:
    """The device ``config`` runs on when ``target`` is the machine, or ``None``.

    ``"auto"`` takes the target's device (tpu_v6 > tpu_v4 > gpu > cpu is the
    target's own kind).  A named device that is absent falls back along
    tpu_v6 → tpu_v4 → gpu → cpu when ``hardware_fallback`` allows (cpu only
    with ``fallback_cpu``); the host CPU is always present.
    """
    requested, present = config.device, target.seed_device
    if requested == "auto":
        return present
    if requested in (present, "cpu"):
        return requested
    if not config.hardware_fallback:
        return None
    for device in _fallback_chain(requested, config):
        if device in (present, "cpu"):
            return device
    return None


@rule(35, "H035", ERROR, ("device", "hardware_fallback", "fallback_cpu"), scope="hardware")
def device_is_present(ctx: RuleContext) -> Iterator[Finding]:
    """A named device must be present, or reachable by fallback."""
    requested = ctx.config.device
    if requested == "auto" or requested in (ctx.target.seed_device, "cpu"):
        return
    resolved = ctx.device
    where = f"`{ctx.target.name}` has no {requested} device"
    if resolved is None:
        chain = " → ".join([requested, *_fallback_chain(requested, ctx.config)])
        yield Finding(
            f"`device` {format_value(requested)} is not present: {where}",
            ("device", "hardware_fallback"),
            {"device": "not present", "hardware_fallback": "no fallback"},
            help=f"set {_set('device', 'auto')}, or {_set('hardware_fallback', True)}"
                 if not ctx.hardware_fallback else f"set {_set('device', 'auto')}",
            notes=(f"the fallback chain {chain} reaches nothing present",)
            if ctx.hardware_fallback else ())
    else:
        yield Finding(
            f"`device` {format_value(requested)} is not present: {where}, so it falls back to "
            f"{format_value(resolved)}", ("device",), {"device": f"runs on {resolved}"},
            help=f"set {_set('device', resolved)} (or \"auto\") to say what runs",
            severity=WARNING)


@rule(36, "H036", ERROR, ("num_gpus", "device", "data_parallel", "model_parallel"),
      scope="hardware")
def gpus_are_present_and_used(ctx: RuleContext) -> Iterator[Finding]:
    """`num_gpus` must not exceed the GPUs present, and extra GPUs need parallelism."""
    if ctx.device != "gpu":
        return
    present = ctx.target.device_count
    if ctx.num_gpus > present:
        yield Finding(
            f"`num_gpus` {ctx.num_gpus} is more than the {present} GPU"
            f"{'s' if present != 1 else ''} of `{ctx.target.name}`",
            ("num_gpus",), {"num_gpus": f"{present} present"},
            help=f"set {_set('num_gpus', present)}")
    elif ctx.num_gpus > 1 and not ctx.data_parallel and not ctx.model_parallel:
        yield Finding(
            f"`num_gpus` {ctx.num_gpus} with neither data nor model parallelism: all but one "
            "GPU sit idle", ("num_gpus", "data_parallel", "model_parallel"),
            {"num_gpus": "idle GPUs"},
            help=f"set {_set('data_parallel', True)}, or {_set('num_gpus', 1)}", severity=WARNING)


@rule(37, "V037", WARNING, ("num_gpus", "gpu_memory_fraction", "gpu_memory_growth", "device"))
def gpu_settings_without_gpu(ctx: RuleContext) -> Iterator[Finding]:
    """GPU settings are ignored on an explicit non-GPU device."""
    device = ctx.config.device
    if not ctx.explicit("device") or device in ("gpu", "auto"):
        return
    ignored = [n for n in ("num_gpus", "gpu_memory_fraction", "gpu_memory_growth")
               if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{_names(ignored)} {_are(ignored)} ignored on `device` {format_value(device)}",
            (*ignored, "device"), {**{n: "GPU only" for n in ignored}, "device": "not a GPU"},
            help=f"remove {'them' if len(ignored) > 1 else 'it'}")


@rule(38, "V038", WARNING, ("memory_limit_gb", "tpu_memory_limit_gb", "gpu_memory_fraction"))
def several_memory_caps(ctx: RuleContext) -> Iterator[Finding]:
    """Several memory caps at once: the smallest applies (A10)."""
    if ctx.memory_limit_gb is None or not ctx.explicit("memory_limit_gb"):
        return
    device = ctx.config.device if ctx.explicit("device") else "auto"
    others = []
    if ctx.explicit("tpu_memory_limit_gb") and device in ("auto", *TPU_DEVICES):
        others.append("tpu_memory_limit_gb")
    if ctx.explicit("gpu_memory_fraction") and device in ("auto", "gpu"):
        others.append("gpu_memory_fraction")
    if others:
        yield Finding(
            f"`memory_limit_gb` and {_names(others)} both cap device memory: the smallest "
            "limit applies", ("memory_limit_gb", *others),
            {"memory_limit_gb": "a general cap", **{n: "another cap" for n in others}},
            help="keep the one cap you mean",
            notes=("on TPU the limit is min(`tpu_memory_limit_gb`, `memory_limit_gb`); on GPU "
                   "min(`memory_limit_gb`, `gpu_memory_fraction` × physical memory)",))


def _is_arm(target: Any) -> bool:
    return "arm" in target.name or bool({"sve", "asimd"} & set(target.cpu_features))


@rule(39, "V039", WARNING, ("use_arm_optimizations", "arm_sve_enabled", "arm_neon_fallback",
                            "device"), scope="device")
def arm_settings_need_arm(ctx: RuleContext) -> Iterator[Finding]:
    """ARM optimizations need an ARM CPU, and at least one vector path."""
    if not ctx.use_arm_optimizations:
        return
    if ctx.explicit("use_arm_optimizations"):
        if ctx.device is not None and ctx.device != "cpu":
            yield Finding(
                f"`use_arm_optimizations` is ignored on {ctx.device}: it applies to ARM CPUs", ("use_arm_optimizations", "device"),
                {"use_arm_optimizations": "ARM CPU only", "device": "not a CPU"},
                help=f"remove `{_path('use_arm_optimizations')}` for this device")
        elif ctx.target is not None and ctx.device == "cpu" and not _is_arm(ctx.target):
            yield Finding(
                f"`use_arm_optimizations` is ignored: `{ctx.target.name}` is not an ARM CPU",
                ("use_arm_optimizations",), {"use_arm_optimizations": "ARM CPU only"},
                help="use this config on an ARM host (e.g. Google Axion), or remove "
                     f"`{_path('use_arm_optimizations')}`")
    if not ctx.arm_sve_enabled and not ctx.arm_neon_fallback:
        yield Finding(
            "`arm_sve_enabled` and `arm_neon_fallback` are both false: only the scalar path is "
            "left", ("arm_sve_enabled", "arm_neon_fallback", "use_arm_optimizations"),
            {"arm_sve_enabled": "no SVE", "arm_neon_fallback": "no NEON"},
            help=f"set {_set('arm_neon_fallback', True)} at least")


@rule(40, "V040", ERROR, ("local_rank", "world_size", "distributed_training"))
def ranks_fit_world(ctx: RuleContext) -> Iterator[Finding]:
    """`0 <= local_rank < world_size`, and `world_size > 1` means distributed training."""
    if ctx.local_rank >= ctx.world_size:
        yield Finding(
            f"`local_rank` {ctx.local_rank} is not below `world_size` {ctx.world_size}",
            ("local_rank", "world_size"),
            {"local_rank": f"rank {ctx.local_rank}", "world_size": f"ranks 0–{ctx.world_size - 1}"},
            help=f"use a rank from 0 to {ctx.world_size - 1}, or raise `world_size`")
    if not ctx.distributed_training and ctx.world_size > 1:
        yield Finding(
            f"`world_size` {ctx.world_size} needs `distributed_training`",
            ("world_size", "distributed_training"),
            {"world_size": f"{ctx.world_size} processes", "distributed_training": "off"},
            help=f"set {_set('distributed_training', True)}, or {_set('world_size', 1)}")
    elif ctx.distributed_training and ctx.world_size == 1:
        yield Finding(
            "`distributed_training` with `world_size` 1 runs a single process",
            ("distributed_training", "world_size"), {"distributed_training": "one process"},
            help=f"set `{_path('world_size')}` to the number of processes", severity=WARNING)


@rule(41, "V041", ERROR, ("batch_size", "max_batch_size"))
def batch_within_maximum(ctx: RuleContext) -> Iterator[Finding]:
    """An int `batch_size` must not exceed `max_batch_size`."""
    batch = ctx.batch_size
    if isinstance(batch, int) and batch > ctx.max_batch_size:
        yield Finding(
            f"`batch_size` {batch} is above `max_batch_size` {ctx.max_batch_size}",
            ("batch_size", "max_batch_size"),
            {"batch_size": "too large", "max_batch_size": "the maximum"},
            help=f"set {_set('batch_size', ctx.max_batch_size)} or raise `max_batch_size`")


@rule(42, "V042", WARNING, ("batch_size", "adaptive_batching"))
def adaptive_batch_is_a_start(ctx: RuleContext) -> Iterator[Finding]:
    """With adaptive batching an int batch size is only the starting size (A26)."""
    batch = ctx.batch_size
    if ctx.adaptive_batching and isinstance(batch, int):
        yield Finding(
            f"`batch_size` {batch} is only the starting size: `adaptive_batching` adjusts it "
            f"within [1, {ctx.max_batch_size}]", ("batch_size", "adaptive_batching"),
            {"batch_size": "starting size"},
            help=f"set {_set('adaptive_batching', False)} to keep it fixed")


# --------------------------------------------------------------------------- enterprise (C43–C49)


@rule(43, "V043", ERROR, ("elixir_bridge_port", "mcp_port", "mcp_enabled", "meta_loop_enabled"))
def service_ports(ctx: RuleContext) -> Iterator[Finding]:
    """Two servers cannot share a port; ports below 1024 are privileged."""
    if ctx.mcp_enabled and ctx.meta_loop_enabled and ctx.mcp_port == ctx.elixir_bridge_port:
        yield Finding(
            f"`mcp_port` and `elixir_bridge_port` are both {ctx.mcp_port}: two servers cannot "
            "bind one port", ("elixir_bridge_port", "mcp_port"),
            {"elixir_bridge_port": "the Meta Loop bridge", "mcp_port": "the MCP server"},
            help=f"use different ports (the defaults are {_default('mcp_port')} and "
                 f"{_default('elixir_bridge_port')})")
    for switch, port in (("mcp_enabled", "mcp_port"), ("meta_loop_enabled", "elixir_bridge_port")):
        value = getattr(ctx.config, port)
        if getattr(ctx.config, switch) and value < 1024:
            yield Finding(
                f"`{port}` {value} is a privileged port: binding it needs root",
                (port,), {port: "below 1024"},
                help=f"use a port of 1024 or more (default {_default(port)})", severity=WARNING)


@rule(44, "V044", WARNING, ("mcp_port", "mcp_auth_required", "mcp_rate_limiting", "mcp_enabled"))
def mcp_settings_without_mcp(ctx: RuleContext) -> Iterator[Finding]:
    """MCP sub-settings are ignored while MCP is off."""
    if ctx.mcp_enabled:
        return
    ignored = [n for n in ("mcp_port", "mcp_auth_required", "mcp_rate_limiting")
               if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{_names(ignored)} {_are(ignored)} ignored: `mcp_enabled` is false",
            (*ignored, "mcp_enabled"), {**{n: "ignored" for n in ignored}, "mcp_enabled": "off"},
            help=f"set {_set('mcp_enabled', True)}, or remove {'them' if len(ignored) > 1 else 'it'}")


@rule(45, "V045", WARNING, ("ethics_guard_enabled", "rag_hub_enabled", "meta_loop_enabled"))
def meta_loop_parts_without_meta_loop(ctx: RuleContext) -> Iterator[Finding]:
    """The ethics guard and RAG Hub run inside Meta Loop (A40)."""
    if ctx.meta_loop_enabled:
        return
    on = [n for n in ("ethics_guard_enabled", "rag_hub_enabled")
          if getattr(ctx.config, n) and ctx.explicit(n)]
    if on:
        yield Finding(
            f"{_names(on)} {'is' if len(on) == 1 else 'are'} not running: "
            f"{'it is' if len(on) == 1 else 'they are'} part of Meta Loop, and "
            "`meta_loop_enabled` is false", (*on, "meta_loop_enabled"),
            {**{n: "not running" for n in on}, "meta_loop_enabled": "off"},
            help=f"set {_set('meta_loop_enabled', True)}",
            notes=("`content_safety_check` and `output_filtering` still apply without Meta Loop",))


@rule(46, "V046", WARNING, ("mcp_auth_required", "mcp_enabled"))
def mcp_without_auth(ctx: RuleContext) -> Iterator[Finding]:
    """An MCP server without authentication."""
    if ctx.mcp_enabled and not ctx.mcp_auth_required:
        yield Finding(
            f"the MCP server on port {ctx.mcp_port} accepts unauthenticated requests",
            ("mcp_auth_required", "mcp_enabled"), {"mcp_auth_required": "no authentication"},
            help=f"set {_set('mcp_auth_required', True)}")


_SECURITY_SWITCHES = ("mcp_auth_required", "api_key_required", "request_encryption",
                      "audit_logging", "sensitive_data_masking", "output_filtering",
                      "content_safety_check")


@rule(47, "V047", ERROR, (*_SECURITY_SWITCHES, "security_level"))
def high_security_is_not_weakened(ctx: RuleContext) -> Iterator[Finding]:
    """`security_level = "high"` with a security switch turned off."""
    if ctx.security_level != "high":
        return
    off = [n for n in _SECURITY_SWITCHES if getattr(ctx.config, n) is False]
    if off:
        yield Finding(
            f"`security_level` \"high\" needs {_names(off)} on",
            (*off, "security_level"),
            {**{n: "turned off" for n in off}, "security_level": "the high preset"},
            help=f"remove {'these settings' if len(off) > 1 else _names([_path(off[0])])} "
                 f"(the preset turns {'them' if len(off) > 1 else 'it'} on), or use "
                 f"{_set('security_level', 'standard')}")


@rule(48, "V048", WARNING, ("sensitive_data_masking", "log_level", "debug_mode", "jax_debug_mode"))
def debug_logging_without_masking(ctx: RuleContext) -> Iterator[Finding]:
    """Debug output without masking can leak sensitive data."""
    if ctx.sensitive_data_masking:
        return
    verbose = [n for n in ("log_level", "debug_mode", "jax_debug_mode")
               if (ctx.log_level == "DEBUG" if n == "log_level" else getattr(ctx.config, n))]
    if verbose:
        said = [f"`{n}` \"DEBUG\"" if n == "log_level" else f"`{n}`" for n in verbose]
        yield Finding(
            f"{_join(said)} with `sensitive_data_masking` off may write sensitive data to the "
            "logs", ("sensitive_data_masking", *verbose),
            {"sensitive_data_masking": "masking off", **{n: "verbose" for n in verbose}},
            help=f"set {_set('sensitive_data_masking', True)}")


@rule(49, "V049", WARNING, ("metrics_endpoint", "health_check_interval", "performance_profiling",
                            "monitoring_enabled"))
def monitoring_settings_without_monitoring(ctx: RuleContext) -> Iterator[Finding]:
    """Monitoring sub-settings are ignored while monitoring is off."""
    if ctx.monitoring_enabled:
        return
    ignored = [n for n in ("metrics_endpoint", "health_check_interval", "performance_profiling")
               if ctx.explicit(n)]
    if ignored:
        yield Finding(
            f"{_names(ignored)} {_are(ignored)} ignored: `monitoring_enabled` is false",
            (*ignored, "monitoring_enabled"),
            {**{n: "ignored" for n in ignored}, "monitoring_enabled": "off"},
            help=f"set {_set('monitoring_enabled', True)}")


# --------------------------------------------------------------------------- training (C50–C54)


@rule(50, "V050", ERROR, ("warmup_steps", "decay_steps"))
def warmup_ends_before_decay(ctx: RuleContext) -> Iterator[Finding]:
    """Warmup must end before the schedule does."""
    if ctx.warmup_steps >= ctx.decay_steps:
        yield Finding(
            f"`warmup_steps` {ctx.warmup_steps} is not below `decay_steps` {ctx.decay_steps}",
            ("warmup_steps", "decay_steps"),
            {"warmup_steps": "warmup", "decay_steps": "the whole schedule"},
            help="`decay_steps` is the total schedule length including warmup: raise it or "
                 "shorten the warmup")


@rule(51, "V051", WARNING, ("save_checkpoint_steps", "decay_steps"))
def checkpoint_within_schedule(ctx: RuleContext) -> Iterator[Finding]:
    """A checkpoint interval longer than the schedule saves nothing within it."""
    if ctx.save_checkpoint_steps > ctx.decay_steps:
        yield Finding(
            f"`save_checkpoint_steps` {ctx.save_checkpoint_steps} is longer than the "
            f"{ctx.decay_steps}-step schedule: no checkpoint is saved within it",
            ("save_checkpoint_steps", "decay_steps"), {"save_checkpoint_steps": "too long"},
            help=f"set `{_path('save_checkpoint_steps')}` to at most {ctx.decay_steps}")


@rule(52, "V052", WARNING, ("use_consensus_distilling", "consensus_num_teachers"))
def consensus_distilling_needs_teachers(ctx: RuleContext) -> Iterator[Finding]:
    """Consensus distilling has no teacher source, and an even panel can tie."""
    if not ctx.use_consensus_distilling:
        return
    yield Finding(
        "`use_consensus_distilling` has no teacher models to distil from: no field names them",
        ("use_consensus_distilling",), {"use_consensus_distilling": "no teachers"},
        help=f"set {_set('use_consensus_distilling', False)} until teacher sources exist",
        notes=("training with it fails; it also costs about 5× the compute",))
    if ctx.consensus_num_teachers % 2 == 0:
        yield Finding(
            f"`consensus_num_teachers` {ctx.consensus_num_teachers} is even: a majority "
            "consensus can tie", ("consensus_num_teachers",),
            {"consensus_num_teachers": "even"},
            help=f"use an odd number, e.g. {ctx.consensus_num_teachers + 1}")


@rule(53, "V053", WARNING, ("beta1", "beta2", "epsilon", "optimizer"))
def optimizer_ignores_settings(ctx: RuleContext) -> Iterator[Finding]:
    """SGD ignores β1, β2 and ε; RMSprop ignores β1."""
    unused = {"sgd": ("beta1", "beta2", "epsilon"), "rmsprop": ("beta1",)}.get(ctx.optimizer, ())
    ignored = [n for n in unused if getattr(ctx.config, n) != _default(n)]
    if ignored:
        yield Finding(
            f"{_names(ignored)} {_are(ignored)} ignored by `optimizer` {format_value(ctx.optimizer)}",
            (*ignored, "optimizer"), {**{n: "ignored" for n in ignored}, "optimizer": "does not use it"},
            help=f"remove {'them' if len(ignored) > 1 else 'it'}, or use "
                 f"{_set('optimizer', 'adamw')}")


@rule(54, "V054", WARNING, ("beta1", "beta2", "optimizer"))
def adam_convergence(ctx: RuleContext) -> Iterator[Finding]:
    """AdamW needs β1² < √β2 to converge."""
    if ctx.optimizer == "adamw" and ctx.beta1 ** 2 >= math.sqrt(ctx.beta2):
        yield Finding(
            f"`beta1` {format_value(ctx.beta1)} and `beta2` {format_value(ctx.beta2)} break Adam's "
            f"convergence condition β1² < √β2 ({ctx.beta1 ** 2:.4g} ≥ {math.sqrt(ctx.beta2):.4g})",
            ("beta1", "beta2"), {"beta1": "too large for this β2", "beta2": "too small"},
            help="use the defaults (0.9, 0.999) or lower `beta1`")


# --------------------------------------------------------------------------- testing and generation (C55–C56)


@rule(55, "V055", WARNING, ("mock_expensive_ops",))
def mocks_are_not_real(ctx: RuleContext) -> Iterator[Finding]:
    """Mocked operations produce outputs that are not real."""
    if ctx.mock_expensive_ops:
        yield Finding(
            "`mock_expensive_ops` is on: expensive operations return mock outputs, not real ones",
            ("mock_expensive_ops",), {"mock_expensive_ops": "mocked"},
            help="never ship this to production; set "
                 f"{_set('mock_expensive_ops', False)} outside tests")


@rule(56, "V056", WARNING, ("temperature",))
def temperature_is_sane(ctx: RuleContext) -> Iterator[Finding]:
    """Sampling temperature above 2 is close to random."""
    if ctx.temperature > 2.0:
        yield Finding(
            f"`temperature` {format_value(ctx.temperature)} gives near-random sampling",
            ("temperature",), {"temperature": "above 2.0"},
            help="use a temperature between 0 (greedy) and 2; 1.0 samples the model as trained")


# --------------------------------------------------------------------------- findings → diagnostics


@dataclass(frozen=True, slots=True)
class FieldDiagnostic(Diagnostic):
    """A diagnostic about named fields.  ``str()`` is the seed's form,
    ``"<field>[, <field>]: <message>"``, so ``print(f"   - {error}")`` reads well;
    :func:`capibara.diagnostics.render` shows it with its source lines."""

    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{', '.join(self.fields)}: {self.message}"


def _origin_note(config: Any, name: str) -> str | None:
    """Where a field without a span got its value, for the notes."""
    provenance = config.provenance(name)
    value = format_value(getattr(config, name))
    kind, detail = provenance.kind, provenance.detail
    if kind == "default":
        return f"`{name}` is {value} by default"
    if kind == "derived":
        return f"`{name}` = {value} is derived" + (f" ({detail})" if detail else "")
    if kind == "keyword":
        return None  # the caller wrote it in Python: nothing to point at, nothing to add
    return f"`{name}` = {value} comes from {detail or kind}"


def _to_diagnostic(rule: Rule, finding: Finding, config: Any) -> FieldDiagnostic:
    spans: dict[str, Span] = {}
    notes: list[str] = []
    for name in finding.fields:
        span = config.provenance(name).span if _is_field(name) else None
        if span is not None:
            spans[name] = span
        elif _is_field(name):
            note = _origin_note(config, name)
            if note:
                notes.append(note)
    primary = next((n for n in finding.fields if n in spans), None)
    labels = tuple(Label(spans[n], finding.labels.get(n, "")) for n in finding.fields
                   if n in spans and n != primary)
    span = spans.get(primary) if primary else None
    all_labels = ((Label(span, finding.labels.get(primary, "")),) if span else ()) + labels
    return FieldDiagnostic(
        rule.code, finding.severity or rule.severity, finding.message, span, all_labels,
        tuple(notes) + finding.notes, finding.help, finding.fields)


def _is_field(name: str) -> bool:
    from capibara.schema import FIELD_BY_NAME

    return name in FIELD_BY_NAME


def _run(rules: Iterable[Rule], ctx: RuleContext) -> list[FieldDiagnostic]:
    return [_to_diagnostic(r, finding, ctx.config) for r in rules for finding in r.check(ctx)]


def _config_rules() -> list[Rule]:
    return [r for _, r in sorted(RULES.items()) if r.scope != "hardware"]


def _explicit_device(config: Any) -> str | None:
    return None if config.device == "auto" else config.device


def get_validation_errors(config: Any, *, mode: str | None = None) -> list[FieldDiagnostic]:
    """Every cross-field problem of ``config`` that needs no hardware: errors and
    warnings, in rule order.  ``mode`` (``"train"``/``"inference"``) enables C27."""
    ctx = RuleContext(config, _explicit_device(config), None, mode)
    return _run(_config_rules(), ctx)


def check_config(config: Any, *, mode: str | None = None) -> None:
    """Raise one :class:`ConfigError` carrying every diagnostic if any is an error."""
    diagnostics = get_validation_errors(config, mode=mode)
    if any(d.is_error for d in diagnostics):
        raise ConfigError(diagnostics)


# --------------------------------------------------------------------------- the seed's front door


class ValidationResult(msgspec.Struct, frozen=True):
    """``is_valid`` is true when there is no error; ``errors`` and ``warnings``
    are :class:`FieldDiagnostic` values (``str()`` gives ``"field: message"``)."""

    errors: list[FieldDiagnostic]
    warnings: list[FieldDiagnostic]

    @property
    def is_valid(self) -> bool:
        return not self.errors

    @property
    def diagnostics(self) -> list[FieldDiagnostic]:
        return self.errors + self.warnings


class HardwareCheck(msgspec.Struct, frozen=True):
    """The config against a machine.

    ``compatible`` is false when a hardware rule found an error;
    ``recommendations`` are concrete fixes in words (``"set `tpu_mesh_shape =
    [4, 4]`: 16 devices detected"``); ``detected_device`` is the device the
    config runs on there (``None`` if none can), ``target`` the machine.
    """

    target: Any
    detected_device: str | None
    errors: list[FieldDiagnostic]
    warnings: list[FieldDiagnostic]
    recommendations: list[str]

    @property
    def compatible(self) -> bool:
        return not self.errors

    @property
    def diagnostics(self) -> list[FieldDiagnostic]:
        return self.errors + self.warnings


#: Hardware rules whose fix depends on how many devices there are.
_COUNTING_CODES = frozenset({"H017", "H021", "H036"})


def _recommendation(d: FieldDiagnostic, target: Any) -> str | None:
    """A fix in words for the Python API: the help with flat field names (the
    names Python callers use) and, for hardware rules, what was detected."""
    if not d.help:
        return None
    from capibara.schema import FIELDS

    text = d.help
    for f in FIELDS:
        text = text.replace(f"`{f.path} ", f"`{f.name} ").replace(f"`{f.path}`", f"`{f.name}`")
    if d.code in _COUNTING_CODES:
        count = target.device_count
        text += f": {count} device{'s' if count != 1 else ''} detected on `{target.name}`"
    return text


def _target(target: Any) -> Any:
    from capibara.targets import Target, UnknownTarget, detect_host, get_target

    if target is None:
        return detect_host()
    if isinstance(target, Target):
        return target
    try:
        return get_target(str(target))
    except UnknownTarget as unknown:
        raise ConfigError([Diagnostic.error(
            "H001", f"unknown target `{unknown.name}`",
            help=(f"did you mean {', '.join(f'`{s}`' for s in unknown.suggestions)}?"
                  if unknown.suggestions else "`capibara targets` lists the known targets"))])


def check_hardware_compatibility(config: Any, target: Any = None, *,
                                 mode: str | None = None) -> HardwareCheck:
    """Check ``config`` against ``target`` (a catalog name such as ``"tpu_v4-32"``, a
    :class:`~capibara.targets.Target`, or ``None`` for the host, detected without
    importing JAX).  Runs the [HW] rules, and the device rules with the device
    resolved there (minus what :func:`get_validation_errors` already reports)."""
    machine = _target(target)
    device = resolve_device(config, machine)
    ctx = RuleContext(config, device, machine, mode)
    hardware = _run((r for _, r in sorted(RULES.items()) if r.scope == "hardware"), ctx)
    device_rules = [r for _, r in sorted(RULES.items()) if r.scope == "device"]
    already = set(_run(device_rules, RuleContext(config, _explicit_device(config), None, mode)))
    found = hardware + [d for d in _run(device_rules, ctx) if d not in already]
    found.sort(key=lambda d: d.code)
    errors = [d for d in found if d.is_error]
    warnings = [d for d in found if not d.is_error]
    recommendations = [text for d in found if (text := _recommendation(d, machine))]
    return HardwareCheck(machine, device, errors, warnings, recommendations)


class ConfigValidator:
    """The seed's validator (``capibara.config.ConfigValidator``); stateless."""

    def validate_full_config(self, config: Any) -> ValidationResult:
        """Every rule of PARAMS.md §b not marked [HW]; never raises for an invalid config."""
        diagnostics = get_validation_errors(config)
        return ValidationResult([d for d in diagnostics if d.is_error],
                                [d for d in diagnostics if not d.is_error])

    def check_hardware_compatibility(self, config: Any, target: Any = None) -> HardwareCheck:
        """The [HW] rules against ``target`` (default: this host)."""
        return check_hardware_compatibility(config, target)
