"""A plan checked as a whole: every value in its domain, every reference resolved.

The digest only says a plan is unchanged since someone sealed it, and anyone
can seal (:func:`capibara.plan.codec.seal`). So a plan that decodes is also
checked here before the runtime trusts it, and refused with diagnostics that
name the field:

- ``R110``: a value outside its domain or missing (a negative or 4e9-long axis,
  dtype ``float1024``, ``block_q`` 0 or a string, vocabulary 0, a config field absent);
- ``R111``: a kernel this capibara does not have (family ``..os``, an unknown variant);
- ``R112``: parts of the plan that disagree (mesh axes and shape, a mesh larger than
  the target, ``top_k`` above the expert count, arrays whose shared axes differ).

Kernel families are checked against :mod:`capibara.kernels.contracts`, without JAX.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterator, Mapping

import msgspec

from capibara.diagnostics import ConfigError, Diagnostic
from capibara.plan.types import DTYPES, MAX_ELEMENTS, MESH_AXES, Plan

__all__ = ["validate_plan", "plan_problems", "MAX_DIM", "OUT_OF_DOMAIN", "UNKNOWN_KERNEL",
           "INCONSISTENT"]

OUT_OF_DOMAIN = "R110"
UNKNOWN_KERNEL = "R111"
INCONSISTENT = "R112"

#: The longest axis a plan may give an array (XLA indexes with 32-bit signed ints).
MAX_DIM = 2**31 - 1
#: The most devices a plan's target or mesh may name.
MAX_DEVICES = 1 << 20
#: Diagnostics shown for one plan; the rest are counted.
SHOWN = 12

_PLATFORMS = ("cpu", "gpu", "tpu")
_FAMILY_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: A call site, as the compiler names them (``blocks.attention``, ``grads.all_reduce``).
_SITE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,200}")
#: A catalog name or device kind: printable, one line.
_LABEL = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,200}")

Problem = tuple[str, str, str]  # (code, plan path, what is wrong)


def validate_plan(plan: Plan, name: str = "<plan>") -> Plan:
    """``plan`` if every value is in its domain and every reference resolves;
    else raise :class:`ConfigError` with one diagnostic per problem (``R110``-``R112``)."""
    problems = list(plan_problems(plan))
    if not problems:
        return plan
    diagnostics = [Diagnostic.error(code, f"plan `{name}`: `{path}` {what}",
                                    help="recompile the config with `capibara compile`; "
                                         "a plan is never edited by hand")
                   for code, path, what in problems[:SHOWN]]
    if len(problems) > SHOWN:
        diagnostics[-1] = Diagnostic.error(
            diagnostics[-1].code, diagnostics[-1].message,
            notes=[f"and {len(problems) - SHOWN} more problems in this plan"],
            help=diagnostics[-1].help)
    raise ConfigError(diagnostics)


def plan_problems(plan: Plan) -> Iterator[Problem]:
    """Every problem of ``plan``, section by section, in a stable order."""
    yield from _target(plan)
    yield from _model(plan)
    yield from _counts("memory", {k: getattr(plan.memory, k) for k in plan.memory.__struct_fields__},
                       optional=("limit",), low=0, high=MAX_ELEMENTS)
    yield from _precision(plan)
    yield from _mesh(plan)
    yield from _batch(plan)
    yield from _execution(plan)
    for field in plan.loss.__struct_fields__:
        value = getattr(plan.loss, field)
        if not (_is_number(value) and math.isfinite(value) and 0 <= value <= 1e6):
            yield OUT_OF_DOMAIN, f"loss.{field}", f"is {_shown(value)}; expected a finite weight ≥ 0"
    yield from _kernels(plan)
    yield from _config(plan)


# --------------------------------------------------------------------------- scalar domains


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    try:
        text = msgspec.json.encode(value).decode()
    except (TypeError, ValueError, OverflowError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count_problem(path: str, value: Any, low: int = 1, high: int = MAX_DIM) -> Problem | None:
    if _is_int(value) and low <= value <= high:
        return None
    return OUT_OF_DOMAIN, path, f"is {_shown(value)}; expected an integer from {low} to {high}"


def _counts(section: str, values: Mapping[str, Any], *, optional: tuple[str, ...] = (),
            low: int = 1, high: int = MAX_DIM) -> Iterator[Problem]:
    for key, value in values.items():
        if value is None and key in optional:
            continue
        if (problem := _count_problem(f"{section}.{key}", value, low, high)) is not None:
            yield problem


def _dtype_problem(path: str, value: Any, *, optional: bool = False,
                   extra: tuple[str, ...] = ()) -> Problem | None:
    if (value is None and optional) or value in DTYPES or value in extra:
        return None
    return OUT_OF_DOMAIN, path, f"is {_shown(value)}; expected one of {', '.join(DTYPES + extra)}"


def _domain_problem(path: str, value: Any, domain: Any, mesh_axes: tuple[str, ...]) -> Problem | None:
    """The problem of ``value`` against a contract domain (see :mod:`capibara.kernels.contracts`)."""
    if isinstance(domain, tuple):
        ok = any(value == choice and type(value) is type(choice) for choice in domain)
        return None if ok else (OUT_OF_DOMAIN, path, f"is {_shown(value)}; expected one of "
                                + ", ".join(_shown(c) for c in domain))
    if domain in ("size", "size?"):
        return None if value is None and domain == "size?" else _count_problem(path, value)
    if domain in ("dtype", "dtype?"):
        return _dtype_problem(path, value, optional=domain == "dtype?")
    if domain == "bool":
        return None if isinstance(value, bool) else (OUT_OF_DOMAIN, path,
                                                     f"is {_shown(value)}; expected true or false")
    if domain in ("weight", "factor"):
        ok = _is_number(value) and math.isfinite(value) and 0 <= value <= 1e6 \
            and (domain == "weight" or value > 0)
        return None if ok else (OUT_OF_DOMAIN, path, f"is {_shown(value)}; expected a finite "
                                f"number {'≥' if domain == 'weight' else '>'} 0")
    if domain == "sparsity":
        return _sparsity_problem(path, value)
    if domain == "axes":
        ok = isinstance(value, list) and value and all(isinstance(a, str) for a in value) \
            and len(set(value)) == len(value) and set(value) <= set(mesh_axes)
        return None if ok else (INCONSISTENT, path, f"is {_shown(value)}; expected distinct axes "
                                f"of the plan's mesh ({', '.join(mesh_axes)})")
    raise AssertionError(f"unknown contract domain {domain!r}")


def _fraction(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value) and 0 <= value <= 0.95


def _sparsity_problem(path: str, value: Any) -> Problem | None:
    """The feed-forward sparsity record (capibara.compiler.kernel_uses.sparsity_record)."""
    expected = ('expected {"method": "magnitude" or "topk", "ratio": 0 to 0.95[, "schedule": '
                '{"kind", "start", "end", "steps"}]}')
    if not isinstance(value, dict) or set(value) - {"method", "ratio", "schedule"} \
            or value.get("method") not in ("magnitude", "topk") or not _fraction(value.get("ratio")):
        return OUT_OF_DOMAIN, path, f"is {_shown(value)}; {expected}"
    schedule = value.get("schedule")
    if schedule is None:
        return None
    ok = (isinstance(schedule, dict) and set(schedule) == {"kind", "start", "end", "steps"}
          and value["method"] == "magnitude"
          and schedule["kind"] in ("linear", "cosine", "exponential")
          and _fraction(schedule["start"]) and _fraction(schedule["end"])
          and type(schedule["steps"]) is int and 1 <= schedule["steps"] <= 1 << 40)
    return None if ok else (OUT_OF_DOMAIN, f"{path}.schedule", f"is {_shown(schedule)}; {expected}")


# --------------------------------------------------------------------------- sections


def _target(plan: Plan) -> Iterator[Problem]:
    t = plan.target
    for key in ("name", "device_kind"):
        if not _LABEL.fullmatch(getattr(t, key)):
            yield OUT_OF_DOMAIN, f"target.{key}", (f"is {_shown(getattr(t, key))}; expected a name "
                                                   "of printable characters")
    if t.platform not in _PLATFORMS:
        yield OUT_OF_DOMAIN, "target.platform", f"is {_shown(t.platform)}; expected cpu, gpu or tpu"
    if (p := _count_problem("target.device_count", t.device_count, high=MAX_DEVICES)) is not None:
        yield p
    memory = t.memory_per_device_gib
    if memory is not None and not (math.isfinite(memory) and 0 < memory <= 1 << 20):
        yield OUT_OF_DOMAIN, "target.memory_per_device_gib", f"is {_shown(memory)}; expected a positive size"
    for i, dtype in enumerate(t.native_dtypes):
        if (p := _dtype_problem(f"target.native_dtypes[{i}]", dtype)) is not None:
            yield p
    if len(t.matmul_tile) != 2:
        yield OUT_OF_DOMAIN, "target.matmul_tile", f"is {_shown(list(t.matmul_tile))}; expected two sizes"
    for i, edge in enumerate(t.matmul_tile):
        if (p := _count_problem(f"target.matmul_tile[{i}]", edge, high=1 << 16)) is not None:
            yield p


def _model(plan: Plan) -> Iterator[Problem]:
    m = plan.model
    # The mixer sizes are absent (UNSET) for an attention-only model.
    sizes = {k: getattr(m, k) for k in m.__struct_fields__
             if k not in ("parameter_count", "mixers") and getattr(m, k) is not msgspec.UNSET}
    yield from _counts("model", sizes, optional=("vq_codes", "vq_embedding_dim", "num_experts",
                                                 "experts_per_token", "expert_ffn_dim",
                                                 "hyena_filter_length"))
    if m.mixers is not msgspec.UNSET:
        from capibara.config.fields import MIXERS

        unknown = [kind for kind in m.mixers if kind not in MIXERS]
        if not m.mixers or unknown:
            yield OUT_OF_DOMAIN, "model.mixers", (f"is {_shown(m.mixers)}; expected a non-empty "
                                                  f"list of {', '.join(MIXERS)}")
        elif _is_int(m.num_layers) and m.num_layers % len(m.mixers):
            yield INCONSISTENT, "model.mixers", (f"has {len(m.mixers)} entries, which do not "
                                                 f"divide num_layers {m.num_layers}")
    if (p := _count_problem("model.parameter_count", m.parameter_count, 0, MAX_ELEMENTS)) is not None:
        yield p
    if not all(_is_int(v) and v >= 1 for v in (m.hidden_size, m.num_heads, m.head_dim)):
        return
    if m.hidden_size % m.num_heads or m.head_dim != m.hidden_size // m.num_heads:
        yield INCONSISTENT, "model.head_dim", (f"is {m.head_dim}, but hidden_size {m.hidden_size} "
                                               f"over num_heads {m.num_heads} does not give it")
    if m.num_experts is not None:
        for key in ("experts_per_token", "expert_ffn_dim"):
            if getattr(m, key) is None:
                yield INCONSISTENT, f"model.{key}", "is missing, but the model has experts"
        top_k = m.experts_per_token
        if _is_int(top_k) and _is_int(m.num_experts) and top_k > m.num_experts:
            yield INCONSISTENT, "model.experts_per_token", (f"is {top_k}, more than the "
                                                            f"{m.num_experts} experts")


def _precision(plan: Plan) -> Iterator[Problem]:
    p = plan.precision
    for key in ("params", "compute", "accumulation"):
        if (problem := _dtype_problem(f"precision.{key}", getattr(p, key))) is not None:
            yield problem
    if (problem := _dtype_problem("precision.vq_codebook", p.vq_codebook, optional=True,
                                  extra=("auto",))) is not None:
        yield problem


def _mesh(plan: Plan) -> Iterator[Problem]:
    mesh = plan.mesh
    for i, size in enumerate(mesh.shape):
        if (p := _count_problem(f"mesh.shape[{i}]", size, high=MAX_DEVICES)) is not None:
            yield p
    for i, axis in enumerate(mesh.axes):
        if axis not in MESH_AXES:
            yield OUT_OF_DOMAIN, f"mesh.axes[{i}]", f"is {_shown(axis)}; expected {' or '.join(MESH_AXES)}"
    if len(set(mesh.axes)) != len(mesh.axes):
        yield INCONSISTENT, "mesh.axes", f"names an axis twice: {_shown(list(mesh.axes))}"
    if not mesh.shape or len(mesh.shape) != len(mesh.axes):
        yield INCONSISTENT, "mesh.shape", (f"is {_shown(list(mesh.shape))}, but `mesh.axes` is "
                                           f"{_shown(list(mesh.axes))}: one size per axis")
    elif all(_is_int(s) and s >= 1 for s in mesh.shape) and _is_int(plan.target.device_count) \
            and mesh.devices > plan.target.device_count:
        yield INCONSISTENT, "mesh.shape", (f"{_shown(list(mesh.shape))} needs {mesh.devices} "
                                           f"devices; the target `{plan.target.name}` has "
                                           f"{plan.target.device_count}")


def _batch(plan: Plan) -> Iterator[Problem]:
    b = plan.batch
    yield from _counts("batch", {"global_size": b.global_size, "per_device": b.per_device,
                                 "max_size": b.max_size})
    data = plan.mesh.size("data") if len(plan.mesh.shape) == len(plan.mesh.axes) else None
    if _is_int(b.global_size) and _is_int(b.per_device) and _is_int(data) and data >= 1 \
            and b.per_device >= 1 and b.global_size != b.per_device * data:
        yield INCONSISTENT, "batch.per_device", (f"is {b.per_device}, but {b.global_size} samples "
                                                 f"over {data} data-parallel devices give "
                                                 f"{b.global_size / data:g}")


def _execution(plan: Plan) -> Iterator[Problem]:
    e = plan.execution
    if e.loss_chunk is not None and (p := _count_problem("execution.loss_chunk", e.loss_chunk)):
        yield p
    if (p := _dtype_problem("execution.saved_activation_dtype", e.saved_activation_dtype)) is not None:
        yield p


# --------------------------------------------------------------------------- kernels


def _kernels(plan: Plan) -> Iterator[Problem]:
    from capibara.kernels.contracts import contract, families

    seen: set[str] = set()
    axes = tuple(a for a in plan.mesh.axes if isinstance(a, str))
    for index, spec in enumerate(plan.kernels):
        where = f"kernels[{index}]"
        if not _SITE_NAME.fullmatch(spec.name):
            yield OUT_OF_DOMAIN, f"{where}.name", (f"is {_shown(spec.name)}; expected a call site "
                                                   "name (letters, digits, `_`, `.`, `-`)")
            continue
        elif spec.name in seen:
            yield INCONSISTENT, f"{where}.name", f"repeats the kernel name {_shown(spec.name)}"
        else:
            where = f"kernels.{spec.name}"
        seen.add(spec.name)
        found = contract(spec.family) if _FAMILY_NAME.fullmatch(spec.family) else None
        if found is None:
            yield UNKNOWN_KERNEL, f"{where}.family", (f"is {_shown(spec.family)}, which is no kernel "
                                                      f"family of this capibara; the families are "
                                                      + ", ".join(families()))
            continue
        params = found.variants.get(spec.implementation)
        if params is None:
            yield UNKNOWN_KERNEL, f"{where}.implementation", (
                f"is {_shown(spec.implementation)}, which is no `{spec.family}` implementation; "
                f"they are {', '.join(found.variants)}")
            continue
        for key, value in spec.params.items():
            if key not in params:
                yield OUT_OF_DOMAIN, f"{where}.params.{key}", (
                    f"is no parameter of `{spec.family}/{spec.implementation}`"
                    + (f"; it takes {', '.join(params)}" if params else "; it takes none"))
            elif (p := _domain_problem(f"{where}.params.{key}", value, params[key], axes)) is not None:
                yield p
        for key, value in spec.attrs.items():
            if key not in found.attrs:
                yield OUT_OF_DOMAIN, f"{where}.attrs.{key}", f"is no attribute of a `{spec.family}` call"
            elif (p := _domain_problem(f"{where}.attrs.{key}", value, found.attrs[key], axes)) is not None:
                yield p
        yield from _arrays(where, spec, found)
        for i, site in enumerate(spec.uses):
            if not _SITE_NAME.fullmatch(site):
                yield OUT_OF_DOMAIN, f"{where}.uses[{i}]", f"is {_shown(site)}; expected a call site name"
        if (p := _count_problem(f"{where}.calls_per_step", spec.calls_per_step, high=1 << 31)):
            yield p


def _arrays(where: str, spec: Any, found: Any) -> Iterator[Problem]:
    """Shapes and dtypes of one spec's arrays against the family's symbolic shapes."""
    expected = found.arguments
    for name in expected:
        if name not in spec.shapes and name not in found.optional:
            yield OUT_OF_DOMAIN, f"{where}.shapes.{name}", f"is missing; a `{spec.family}` call takes " \
                                                           + ", ".join(expected)
    for name in spec.shapes:
        if name not in expected:
            yield OUT_OF_DOMAIN, f"{where}.shapes.{name}", f"is no argument of a `{spec.family}` call"
    for name in spec.dtypes:
        if name not in spec.shapes:
            yield OUT_OF_DOMAIN, f"{where}.dtypes.{name}", "names no array of this kernel"
        elif (p := _dtype_problem(f"{where}.dtypes.{name}", spec.dtypes[name])) is not None:
            yield p
    bound: dict[str, tuple[int, str]] = {}
    for name, shape in spec.shapes.items():
        if name not in expected:
            continue
        bad = [p for i, d in enumerate(shape) if (p := _count_problem(f"{where}.shapes.{name}[{i}]", d))]
        if bad:
            yield from bad
            continue
        if math.prod(shape) > MAX_ELEMENTS:
            yield OUT_OF_DOMAIN, f"{where}.shapes.{name}", f"holds {math.prod(shape)} elements, " \
                                                           f"more than {MAX_ELEMENTS}"
            continue
        symbols = expected[name]
        leading = symbols[:1] == ("...",)
        named = symbols[1:] if leading else symbols
        if len(shape) != len(named) and not (leading and len(shape) >= len(named)):
            yield OUT_OF_DOMAIN, f"{where}.shapes.{name}", (
                f"is {_shown(list(shape))}; a `{spec.family}` call takes it with "
                f"{'at least ' if leading else ''}{len(named)} axes")
            continue
        for symbol, size in zip(named, shape[len(shape) - len(named):]):
            if symbol in bound and bound[symbol][0] != size:
                other_size, other = bound[symbol]
                yield INCONSISTENT, f"{where}.shapes.{name}", (
                    f"is {_shown(list(shape))}, whose axis {symbol} ({size}) disagrees with "
                    f"`{other}` ({other_size})")
            bound.setdefault(symbol, (size, name))
    for attr, symbol in found.bounds.items():
        value = spec.attrs.get(attr)
        if _is_int(value) and symbol in bound and value > bound[symbol][0]:
            yield INCONSISTENT, f"{where}.attrs.{attr}", (
                f"is {value}, more than axis {symbol} of `{bound[symbol][1]}` ({bound[symbol][0]})")


# --------------------------------------------------------------------------- the recorded config


def _config(plan: Plan) -> Iterator[Problem]:
    """Every field present in ``config`` and valid for its type; nothing else there;
    provenance, runtime and training name only fields."""
    from capibara.config.fields import FIELDS, RUNTIME_MUTABLE
    from capibara.config.fieldtypes import ValueProblem

    by_path = {f.path: f for f in FIELDS}
    for f in FIELDS:
        if f.path not in plan.config:
            yield OUT_OF_DOMAIN, f"config.{f.path}", "is missing; a plan records every field"
            continue
        value = plan.config[f.path]
        try:
            f.type.check(value, f.name)
        except ValueProblem as problem:
            yield OUT_OF_DOMAIN, f"config.{f.path}", f"is {_shown(value)}: {problem.message}"
    for path in plan.config:
        if path not in by_path:
            yield OUT_OF_DOMAIN, f"config.{path}", "is no field of this capibara"
    for path, origin in plan.provenance.items():
        if path not in by_path:
            yield INCONSISTENT, f"provenance.{path}", "names no field of the config"
        elif origin.file is not None and not (_is_int(origin.line) and _is_int(origin.column)
                                              and origin.line >= 1 and origin.column >= 1):
            yield OUT_OF_DOMAIN, f"provenance.{path}", "has a place without a valid line and column"
    by_name = {f.name: f for f in FIELDS}
    for key, value in plan.runtime.items():
        field = by_name.get(key)
        if key == "batch_size":
            if (p := _count_problem("runtime.batch_size", value)) is not None:
                yield p
        elif field is None or key not in RUNTIME_MUTABLE:
            yield OUT_OF_DOMAIN, f"runtime.{key}", "is no runtime-mutable field"
        else:
            try:
                field.type.check(value, key)
            except ValueProblem as problem:
                yield OUT_OF_DOMAIN, f"runtime.{key}", f"is {_shown(value)}: {problem.message}"
    training = {f.key: f for f in FIELDS if f.section == "training"}
    for key, value in plan.training.items():
        field = training.get(key)
        if field is None:
            yield OUT_OF_DOMAIN, f"training.{key}", "is no training field"
            continue
        try:
            field.type.check(value, field.name)
        except ValueProblem as problem:
            yield OUT_OF_DOMAIN, f"training.{key}", f"is {_shown(value)}: {problem.message}"
