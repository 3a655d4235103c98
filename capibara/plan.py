"""The frozen plan: what a compiled configuration is, on disk and in memory.

A :class:`Plan` is the last stage's value (DESIGN.md §4): frozen msgspec
Structs that say everything the runtime needs (target, mesh, precision, batch,
one :class:`KernelSpec` per kernel with its static parameters, shapes and
dtypes) plus everything a person needs to trust it (the resolved config, where
each value came from, the optimizer's decisions).

Encoding is canonical, so the same inputs always give byte-identical files:

- struct fields and dict keys are written in sorted order;
- floats use the shortest text that reads back as the same float, and
  non-finite floats are refused (JSON has no spelling for them);
- the digest is the sha256 of the compact canonical JSON with ``digest``
  set to ``""``, whatever container the file uses, so a JSON plan and its
  msgpack twin carry the same digest.

    >>> blob = encode_plan(plan)                  # JSON, indented, digest filled in
    >>> write_plan_file(plan, "tpu_v4.plan.json")  # atomic: temp file + os.replace
    >>> load_plan_file("tpu_v4.plan.json")         # verifies format, digest, compiler

Loading never half-uses a file: a truncated, edited or foreign file is
refused with a :class:`~capibara.diagnostics.ConfigError` carrying one
``R1xx`` diagnostic. No pickle anywhere; this module imports no JAX.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec

from capibara.diagnostics import ConfigError, Diagnostic

__all__ = [
    "FORMAT",
    "Plan",
    "CompilerInfo",
    "TargetInfo",
    "ModelShape",
    "MemoryEstimate",
    "Precision",
    "Mesh",
    "Batch",
    "Execution",
    "KernelSpec",
    "Decision",
    "canonical_bytes",
    "compute_digest",
    "seal",
    "encode_plan",
    "decode_plan",
    "write_plan_file",
    "load_plan_file",
    "plan_format_for",
    "flat_view",
    "is_compatible",
    "Change",
    "diff_plans",
    "diff_configs",
    "format_changes",
    "explain_plan",
    "resolve_path",
    "summary",
    "config_of_plan",
]

#: The format tag every plan carries; a later, incompatible layout gets ``/2``.
FORMAT = "capibara.plan/1"
_FORMAT_FAMILY = "capibara.plan/"


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Shared policy for every plan struct.

    ``frozen``: a plan is a value; passes build new ones instead of mutating.
    ``forbid_unknown_fields``: a field this compiler does not know means the
    file came from somewhere else, and guessing would half-use it.
    Subclasses also pass ``kw_only=True`` (msgspec does not inherit it): construction
    sites name every field, so adding one is safe.
    """


class CompilerInfo(_Frozen, kw_only=True):
    """Which compiler wrote the plan; :func:`is_compatible` decides who may load it."""

    name: str = "capibara"
    version: str


class TargetInfo(_Frozen, kw_only=True):
    """The target the plan was lowered for (a copy of the catalog entry's facts).

    ``cpu_features`` keeps only the host flags the compiler acted on (bf16
    and AMX units, vector widths), so two hosts that differ in unrelated flags
    produce the same plan.
    """

    name: str
    platform: str
    device_kind: str
    device_count: int
    memory_per_device_gib: float | None
    native_dtypes: tuple[str, ...]
    matmul_tile: tuple[int, int]
    cpu_features: tuple[str, ...] = ()


class ModelShape(_Frozen, kw_only=True):
    """Model dimensions and the sizes derived from them.

    ``parameter_count`` follows PARAMS.md §e.2: ``12·L·d² + V·d`` (attention
    4d² and a 4×-wide MLP 8d² per layer, tied embeddings) plus the RMSNorm
    scales, the VQ codebook ``K·d_vq`` and the Mixture-of-Rookies routers
    ``L·d·E`` (see :func:`capibara.compiler.lower.model_shape`). With Mixture of
    Rookies, ``num_experts`` experts of ``expert_ffn_dim`` each split the MLP
    width and ``experts_per_token`` of them run per token. ``mixers`` is the
    per-block pattern of sequence mixers (``model.mixers``) with the sizes its
    ``ssm`` and ``hyena`` blocks use; all four are absent for attention only.
    """

    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    ffn_dim: int
    vocab_size: int
    max_seq_length: int
    parameter_count: int
    vq_codes: int | None = None
    vq_embedding_dim: int | None = None
    num_experts: int | None = None
    experts_per_token: int | None = None
    expert_ffn_dim: int | None = None
    # Sequence mixers other than attention: left out of the encoding (UNSET) for an
    # all-attention model, so plans from before mixers existed keep their digests.
    mixers: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET
    ssm_state_size: int | msgspec.UnsetType = msgspec.UNSET
    ssm_conv_width: int | msgspec.UnsetType = msgspec.UNSET
    hyena_filter_length: int | msgspec.UnsetType = msgspec.UNSET


class MemoryEstimate(_Frozen, kw_only=True):
    """Bytes per device at the peak of one training step.

    ``weights`` + ``gradients`` + ``optimizer_state`` follow the mesh (model
    parallelism splits all three; optimizer sharding splits the state over
    the data axis too); without buffer donation the update step holds the old
    and new copies of weights and state at once (``update_copies`` = 2).
    ``activations`` is what the backward pass keeps for the per-device batch;
    ``workspace`` the largest kernel temporary. ``limit`` is the effective cap
    (smallest of the physical memory and the config's limits), ``None`` when
    nothing is known.
    """

    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    workspace: int
    update_copies: int
    total: int
    limit: int | None


class Precision(_Frozen, kw_only=True):
    """The precision policy: master weights, matmul inputs, matmul accumulation."""

    params: str
    compute: str
    accumulation: str
    vq_codebook: str | None = None
    loss_scaling: bool = False


class Mesh(_Frozen, kw_only=True):
    """The device mesh: ``shape[i]`` devices along axis ``axes[i]`` (``data``, ``model``)."""

    shape: tuple[int, ...]
    axes: tuple[str, ...]

    @property
    def devices(self) -> int:
        return math.prod(self.shape)

    def size(self, axis: str) -> int:
        """Devices along ``axis``; 1 for an axis the mesh does not have."""
        return self.shape[self.axes.index(axis)] if axis in self.axes else 1


class Execution(_Frozen, kw_only=True):
    """How the runtime runs the step (see :class:`capibara.compiler.lower.MemoryPolicy`).

    ``remat``: recompute each block in the backward pass, keeping its input;
    ``donate``: the update step reuses the old weight and optimizer buffers;
    ``loss_chunk``: tokens per chunk of the output projection and loss
    (``None``: whole); ``saved_activation_dtype``: the dtype kept block inputs
    are stored in; ``offload_activations``: kept inputs live in host memory;
    ``jit`` and ``cache_compiled``: the config's ``enable_jit`` and
    ``cache_compiled_functions``.
    """

    remat: bool
    donate: bool
    loss_chunk: int | None
    saved_activation_dtype: str
    offload_activations: bool
    jit: bool
    cache_compiled: bool


class Batch(_Frozen, kw_only=True):
    """The resolved batch: ``global_size`` samples per step, split over the data axis."""

    global_size: int
    per_device: int
    max_size: int
    adaptive: bool


class KernelSpec(_Frozen, kw_only=True):
    """One kernel the model runs, specialized for the plan.

    ``family`` is a folder under ``capibara/kernels/``; ``implementation`` a
    name in that family's ``VARIANTS``; ``params`` its static keyword
    arguments (tile sizes, chunk lengths, flags); ``shapes`` and ``dtypes``
    describe each array argument *per device* (the shard one device sees).
    ``attrs`` are facts about the call the runtime needs that are not the
    kernel's keyword arguments (``causal``, the weight format, ``top_k``).
    ``uses`` names the places in the model that call it (several after
    deduplication) and ``calls_per_step`` how often a forward step calls it.
    """

    name: str
    family: str
    implementation: str
    params: dict[str, Any] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    attrs: dict[str, Any] = {}
    uses: tuple[str, ...] = ()
    calls_per_step: int = 1


class Decision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Why a value in the plan is what it is: pass ``pass_`` changed ``path``.

    Written in the file as ``{"pass": ..., "path": ..., "before": ...,
    "after": ..., "reason": ...}``; ``path`` uses the one printed form shared
    with diagnostics and ``--set`` (``model.hidden_size``) or a plan path
    (``kernels.attention.implementation``).
    """

    pass_: str = msgspec.field(name="pass")
    path: str
    before: Any
    after: Any
    reason: str


class Plan(_Frozen, kw_only=True):
    """A compiled configuration. See the module docstring for its encoding."""

    format: str = FORMAT
    compiler: CompilerInfo
    target: TargetInfo
    model: ModelShape
    memory: MemoryEstimate
    precision: Precision
    mesh: Mesh
    batch: Batch
    execution: Execution
    kernels: tuple[KernelSpec, ...]
    training: dict[str, Any]
    runtime: dict[str, Any]
    services: dict[str, dict[str, Any]]
    config: dict[str, Any]
    provenance: dict[str, str]
    decisions: tuple[Decision, ...]
    warnings: tuple[str, ...] = ()
    digest: str = ""

    def kernel(self, name: str) -> KernelSpec:
        """The kernel spec called ``name``; ``KeyError`` if the plan has none."""
        for spec in self.kernels:
            if spec.name == name:
                return spec
        raise KeyError(name)


# --------------------------------------------------------------------------- encoding

_JSON = msgspec.json.Encoder(order="sorted")
_MSGPACK = msgspec.msgpack.Encoder(order="sorted")
_DIGEST_PREFIX = "sha256:"


def config_of_plan(plan: Plan) -> Any:
    """The ``ModularModelConfig`` a plan was compiled from: its resolved values,
    with the fields its provenance marks as set explicitly passed as keywords
    (so derived values are derived again and explicitness-based rules agree)."""
    from capibara.config.model_config import ModularModelConfig
    from capibara.config.fields import FIELDS

    implicit = ("default", "derived")
    # A field missing from the plan held its default (``Field.omitted_at_default``).
    explicit = {f.name: plan.config[f.path] for f in FIELDS if f.path in plan.config
                and plan.provenance.get(f.path, "default").split(" ", 1)[0] not in implicit}
    return ModularModelConfig(**explicit)


def _non_finite(plan: Plan) -> Iterator[str]:
    """Paths of non-finite floats. Every float in a plan is a config value (the
    ``config`` section, and copies of it in decisions) or a catalog fact, so
    only those are walked: the whole tree would cost more than the compile."""
    for path, value in plan.config.items():
        for leaf in (value if isinstance(value, list) else (value,)):
            if isinstance(leaf, float) and not math.isfinite(leaf):
                yield f"config.{path}"
    for decision in plan.decisions:
        for value in (decision.before, decision.after):
            if isinstance(value, float) and not math.isfinite(value):
                yield f"decisions.{decision.path}"


def canonical_bytes(plan: Plan) -> bytes:
    """The compact canonical JSON of ``plan`` with its digest blanked.

    Raises ``ValueError`` naming the path of a non-finite float: JSON cannot
    spell one, and writing ``null`` would change the value on reload.
    """
    bad = next(_non_finite(plan), None)
    if bad is not None:
        raise ValueError(f"plan value `{bad}` is not a finite number")
    return _JSON.encode(msgspec.structs.replace(plan, digest=""))


def compute_digest(plan: Plan) -> str:
    """``sha256:<hex>`` of :func:`canonical_bytes`."""
    return _DIGEST_PREFIX + hashlib.sha256(canonical_bytes(plan)).hexdigest()


def seal(plan: Plan) -> Plan:
    """``plan`` with its digest filled in."""
    return msgspec.structs.replace(plan, digest=compute_digest(plan))


def plan_format_for(path: str | os.PathLike[str], requested: str | None = None) -> str:
    """``"json"`` or ``"msgpack"``: the requested one, else by extension (JSON by default)."""
    if requested:
        return requested
    return "msgpack" if str(path).endswith((".msgpack", ".mpk")) else "json"


def encode_plan(plan: Plan, fmt: str = "json") -> bytes:
    """The file bytes of ``plan`` (sealed first): indented JSON or msgpack."""
    sealed = plan if plan.digest == compute_digest(plan) else seal(plan)
    if fmt == "msgpack":
        return _MSGPACK.encode(sealed)
    if fmt != "json":
        raise ValueError(f"unknown plan format `{fmt}`; expected `json` or `msgpack`")
    return msgspec.json.format(_JSON.encode(sealed), indent=2) + b"\n"


def write_plan_file(plan: Plan, path: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write ``plan`` atomically: a temp file in the same folder, then ``os.replace``.

    A reader never sees a half-written plan, and a crash leaves the previous
    file (if any) intact. Returns the path written.
    """
    target = Path(path)
    data = encode_plan(plan, plan_format_for(target, fmt))
    folder = target.parent if str(target.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; give the plan the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------- decoding


def is_compatible(written_by: str, reader: str) -> bool:
    """Whether a compiler at version ``reader`` may load a plan from ``written_by``.

    Same major version; while the major is 0, the minor must match too
    (semantic versioning's rule for unstable releases). Patch levels mix.
    """
    try:
        a = [int(part) for part in written_by.split(".")[:2]]
        b = [int(part) for part in reader.split(".")[:2]]
    except ValueError:
        return False
    if len(a) < 2 or len(b) < 2:
        return False
    return a[0] == b[0] and (a[0] != 0 or a[1] == b[1])


def _refuse(code: str, message: str, *, notes: Iterable[str] = (), help: str | None = None) -> ConfigError:
    return ConfigError([Diagnostic.error(code, message, notes=notes, help=help)])


def decode_plan(data: bytes, name: str = "<plan>", fmt: str | None = None) -> Plan:
    """Verify and decode plan bytes; raise :class:`ConfigError` (``R1xx``) on any doubt.

    Checks, in order: the bytes decode (``R102`` truncated or corrupt), they
    are a capibara plan (``R103``), in this format (``R104``), from a
    compatible compiler (``R104``), unmodified since they were sealed
    (``R105``), and match the plan schema exactly (``R103``).
    """
    from capibara import __version__

    fmt = fmt or ("json" if data.lstrip()[:1] in (b"{", b"[") else "msgpack")
    decoder = msgspec.json if fmt == "json" else msgspec.msgpack
    recompile = f"recompile it: `capibara compile CONFIG.toml -o {name}`"
    try:
        raw = decoder.decode(data)
    # msgspec reports invalid UTF-8 inside a JSON string as UnicodeDecodeError (found by fuzzing)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        truncated = "truncated" in str(error).lower() or not data.strip()
        what = "truncated" if truncated else "corrupt"
        raise _refuse(
            "R102", f"plan `{name}` is {what}",
            notes=[f"decoding as {fmt} failed: {str(error).rstrip('.')}"],
            help=f"the file was not written completely or was damaged; {recompile}") from None
    written_by = "pass a plan written by `capibara compile CONFIG.toml -o PLAN`"
    if not isinstance(raw, dict) or "format" not in raw:
        raise _refuse("R103", f"`{name}` is not a capibara plan",
                      notes=[f"a plan is a {fmt} object whose `format` is `{FORMAT}`"],
                      help=written_by)
    found = raw.get("format")
    if found != FORMAT:
        if isinstance(found, str) and found.startswith(_FORMAT_FAMILY):
            raise _refuse("R104", f"plan `{name}` has format `{found}`, this capibara reads `{FORMAT}`",
                          help=f"use the capibara release that wrote it, or {recompile}")
        raise _refuse("R103", f"`{name}` is not a capibara plan",
                      notes=[f"its `format` is {msgspec.json.encode(found).decode()}, "
                             f"expected `{FORMAT}`"],
                      help=written_by)
    compiler = raw.get("compiler")
    version = compiler.get("version") if isinstance(compiler, dict) else None
    if not isinstance(version, str) or not is_compatible(version, __version__):
        raise _refuse("R104", f"plan `{name}` was written by capibara {version}, "
                              f"which this capibara {__version__} cannot load",
                      notes=["plans load across patch releases (and minor releases from 1.0 on)"],
                      help=f"use capibara {version} to run it, or {recompile}")
    claimed = raw.get("digest")
    raw["digest"] = ""
    try:
        actual = _DIGEST_PREFIX + hashlib.sha256(_JSON.encode(raw)).hexdigest()
    except (TypeError, ValueError, OverflowError) as error:
        raise _refuse("R102", f"plan `{name}` is corrupt", notes=[str(error)],
                      help=recompile) from None
    if claimed != actual:
        raise _refuse("R105", f"plan `{name}` was modified after it was written",
                      notes=[f"its digest says `{claimed}`", f"its contents hash to `{actual}`"],
                      help=f"never edit a plan; change the config and {recompile}")
    raw["digest"] = claimed
    try:
        plan = msgspec.convert(raw, Plan)
    except msgspec.ValidationError as error:
        raise _refuse("R103", f"`{name}` does not match the `{FORMAT}` layout",
                      notes=[str(error)], help=written_by) from None
    # A loaded plan must be writable again in either container; a free-form value may
    # hold what one cannot (an integer beyond 64 bits, a msgpack NaN). Found by fuzzing.
    try:
        _MSGPACK.encode(plan)
        canonical_bytes(plan)
    except (OverflowError, ValueError) as error:
        raise _refuse("R103", f"`{name}` holds a value no plan can hold",
                      notes=[str(error)], help=written_by) from None
    return plan


def load_plan_file(path: str | os.PathLike[str], fmt: str | None = None) -> Plan:
    """Read and verify a plan file (JAX-free). See :func:`decode_plan` for the checks."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise _refuse("R101", f"plan file `{name}` not found",
                      help="compile one with `capibara compile CONFIG.toml -o PLAN`") from None
    except OSError as error:
        raise _refuse("R101", f"plan file `{name}` cannot be read",
                      notes=[error.strerror or str(error)]) from None
    if fmt is None and name.endswith((".msgpack", ".mpk")):
        fmt = "msgpack"
    elif fmt is None and name.endswith(".json"):
        fmt = "json"
    return decode_plan(data, name, fmt)


# --------------------------------------------------------------------------- views


def _to_builtins(value: Any) -> Any:
    # Through JSON so a view holds exactly what a plan file holds (lists, not tuples).
    return msgspec.json.decode(_JSON.encode(value))


def flat_view(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(path, leaf)`` pairs of a plan (or any struct/dict), in canonical order.

    Kernel specs are keyed by their name (``kernels.attention.implementation``)
    and decisions by position, so a path names the same thing in two plans.
    """
    return list(_flatten(_to_builtins(value), prefix))


def _flatten(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        if not value:
            yield prefix, {}
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)) and prefix == "kernels":
        for spec in value:
            yield from _flatten({k: v for k, v in spec.items() if k != "name"},
                                f"kernels.{spec['name']}")
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


# --------------------------------------------------------------------------- diff and explain


class Change(msgspec.Struct, frozen=True):
    """One difference between two plans (or configs): ``path`` went from ``before``
    to ``after``; ``note`` says where each side's value came from, when known."""

    path: str
    before: Any
    after: Any
    note: str = ""


#: Plan sections compared leaf by leaf; ``config`` (with provenance) and
#: ``kernels`` (by name) are compared on their own; the rest is bookkeeping.
_DIFF_SECTIONS = ("target", "model", "memory", "precision", "mesh", "batch", "execution",
                  "training", "runtime", "services")

_MISSING = "<absent>"


def _show(value: Any) -> str:
    if value is _MISSING:
        return _MISSING
    return msgspec.json.encode(value).decode()


def diff_configs(a: Any, b: Any) -> list[Change]:
    """Fields whose values differ between two ``ModularModelConfig`` values, by path,
    each with where the value came from on either side."""
    from capibara.config.fields import FIELDS

    changes = []
    for f in FIELDS:
        before, after = getattr(a, f.name), getattr(b, f.name)
        if before != after:
            changes.append(Change(f.path, before, after,
                                  f"{a.provenance(f.name)} → {b.provenance(f.name)}"))
    return changes


def diff_plans(a: Plan, b: Plan) -> list[Change]:
    """Everything that differs between two plans: config fields (with provenance),
    kernel specs (by name: added, removed, changed), then the other sections."""
    changes: list[Change] = []
    for path in sorted(set(a.config) | set(b.config)):
        before, after = a.config.get(path, _MISSING), b.config.get(path, _MISSING)
        if before != after:
            note = f"{a.provenance.get(path, '?')} → {b.provenance.get(path, '?')}"
            changes.append(Change(f"config.{path}", before, after, note))
    kernels_a = {k.name: k for k in a.kernels}
    kernels_b = {k.name: k for k in b.kernels}
    for name in sorted(set(kernels_a) | set(kernels_b)):
        ka, kb = kernels_a.get(name), kernels_b.get(name)
        if ka is None or kb is None:
            changes.append(Change(f"kernels.{name}",
                                  _MISSING if ka is None else f"{ka.family}/{ka.implementation}",
                                  _MISSING if kb is None else f"{kb.family}/{kb.implementation}"))
            continue
        left, right = dict(flat_view(ka)), dict(flat_view(kb))
        for leaf in sorted(set(left) | set(right)):
            if left.get(leaf, _MISSING) != right.get(leaf, _MISSING):
                changes.append(Change(f"kernels.{name}.{leaf}", left.get(leaf, _MISSING),
                                      right.get(leaf, _MISSING)))
    for section in _DIFF_SECTIONS:
        left = dict(flat_view(getattr(a, section), section))
        right = dict(flat_view(getattr(b, section), section))
        for leaf in sorted(set(left) | set(right)):
            if left.get(leaf, _MISSING) != right.get(leaf, _MISSING):
                changes.append(Change(leaf, left.get(leaf, _MISSING), right.get(leaf, _MISSING)))
    return changes


def format_changes(changes: Iterable[Change]) -> str:
    """``capibara diff``'s text: one line per change, provenance indented below."""
    lines = []
    for change in changes:
        lines.append(f"{change.path}: {_show(change.before)} → {_show(change.after)}")
        if change.note:
            lines.append(f"    {change.note}")
    return "\n".join(lines) + ("\n" if lines else "")


def _plan_paths(plan: Plan) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for section in ("target", "model", "memory", "precision", "mesh", "batch", "execution",
                    "training", "runtime", "services"):
        view.update(flat_view(getattr(plan, section), section))
    for spec in plan.kernels:
        view.update(flat_view(spec, f"kernels.{spec.name}"))
    return view


def resolve_path(plan: Plan, path: str) -> str:
    """The canonical path for what a user typed: a config path (``model.hidden_size``),
    a field's flat name (``hidden_size``) or a plan path (``mesh.shape``).
    Raises ``KeyError`` with near paths as its ``args[1]`` when nothing matches."""
    from capibara.config.fields import FIELD_BY_NAME

    if path in plan.config:
        return path
    if path in FIELD_BY_NAME:
        return FIELD_BY_NAME[path].path
    if path.startswith("config.") and path[7:] in plan.config:
        return path[7:]
    view = _plan_paths(plan)
    if path in view or any(p.startswith(path + ".") for p in view):
        return path
    import difflib

    raise KeyError(path, difflib.get_close_matches(path, [*plan.config, *view], n=3, cutoff=0.6))


#: Plan sections that resolve a config field, so explaining either shows the
#: decisions about both (``mesh`` ← ``tpu_v4_optimizations.mesh_shape``).
_RELATED = (
    ("mesh", "tpu_v4_optimizations.mesh_shape"),
    ("batch", "deployment.batch_size"),
    ("target", "hardware.device"),
    ("precision.vq_codebook", "vector_quantization.precision"),
    ("execution", "deployment.memory_optimization_level"),
)


def explain_plan(plan: Plan, path: str | None = None) -> str:
    """What ``capibara explain PLAN [PATH]`` prints.

    Without a path: the plan's summary. With one: the value, where it came
    from (for config fields) and every decision that touched it, e.g.::

        deployment.batch_size = "auto"
          from: default
          resolve-batch: "auto" → 16 (16 per device × 1 replica; capped by max_batch_size 32)
    """
    if path is None:
        return summary(plan)
    key = resolve_path(plan, path)
    lines: list[str] = []
    if key in plan.config:
        lines.append(f"{key} = {_show(plan.config[key])}")
        lines.append(f"  from: {plan.provenance.get(key, 'unknown')}")
    else:
        view = _plan_paths(plan)
        leaves = {p: v for p, v in view.items() if p == key or p.startswith(key + ".")}
        for leaf, value in leaves.items():
            lines.append(f"{leaf} = {_show(value)}")
    related = {key, *(b for a, b in _RELATED if a == key or key.startswith(a + ".")),
               *(a for a, b in _RELATED if b == key)}
    touching = [d for d in plan.decisions
                if any(d.path == k or d.path.startswith(k + ".") or k.startswith(d.path + ".")
                       for k in related)]
    if touching:
        lines.append("  decisions:")
        for d in touching:
            where = f" [{d.path}]" if d.path != key else ""
            lines.append(f"    {d.pass_}{where}: {_show(d.before)} → {_show(d.after)} ({d.reason})")
    else:
        lines.append("  no pass changed it")
    return "\n".join(lines) + "\n"


def _bytes(n: int | None) -> str:
    return "no limit" if n is None else f"{n / 1024 ** 3:.2f} GiB"


def summary(plan: Plan) -> str:
    """A one-screen account of a plan: target, mesh, precision, batch, memory, kernels."""
    t, p, mem = plan.target, plan.precision, plan.memory
    lines = [
        f"target     {t.name} ({t.device_kind}, {t.device_count} device"
        f"{'s' if t.device_count != 1 else ''})",
        f"mesh       {list(plan.mesh.shape)} ({', '.join(plan.mesh.axes)})",
        f"batch      {plan.batch.global_size} global, {plan.batch.per_device} per device"
        f" (max {plan.batch.max_size}{', adaptive' if plan.batch.adaptive else ''})",
        f"precision  params {p.params}, compute {p.compute}, accumulation {p.accumulation}"
        + (f", vq codebook {p.vq_codebook}" if p.vq_codebook else "")
        + (", loss scaling" if p.loss_scaling else ""),
        f"memory     {_bytes(mem.total)} of {_bytes(mem.limit)} per device (weights "
        f"{_bytes(mem.weights)}, optimizer {_bytes(mem.optimizer_state)}, activations "
        f"{_bytes(mem.activations)})",
        f"model      {plan.model.parameter_count / 1e6:.1f} M parameters, "
        f"{plan.model.num_layers} layers × {plan.model.hidden_size} wide"
        + (f", mixers {' '.join(plan.model.mixers)}"
           if plan.model.mixers is not msgspec.UNSET else ""),
        "kernels",
    ]
    for spec in plan.kernels:
        params = ", ".join(f"{k} {v}" for k, v in spec.params.items() if k.startswith("block"))
        lines.append(f"  {spec.name:<18} {spec.family}/{spec.implementation}"
                     + (f" ({params})" if params else "")
                     + (f" ×{len(spec.uses)} sites" if len(spec.uses) > 1 else ""))
    if plan.warnings:
        lines.append(f"warnings   {len(plan.warnings)}")
    lines.append(f"digest     {plan.digest}")
    return "\n".join(lines) + "\n"
