"""Reading a plan as a person: ``capibara explain PLAN [PATH]`` and the summary."""

from __future__ import annotations

import msgspec

from typing import Any

from capibara.plan.diff import SECTIONS, show
from capibara.plan.types import Plan
from capibara.plan.views import flat_view

__all__ = ["resolve_path", "explain_plan", "summary"]


def _plan_paths(plan: Plan) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for section in SECTIONS:
        view.update(flat_view(getattr(plan, section), section))
    for spec in plan.kernels:
        view.update(flat_view(spec, f"kernels.{spec.name}"))
    return view


def resolve_path(plan: Plan, path: str) -> str:
    """The canonical path for what a user typed: a config path (``model.hidden_size``),
    a field's flat name (``hidden_size``), a plan path (``mesh.shape``) or the path
    of a decision that left no value (``execution.sharded_step``, a dropped kernel).
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
    if any(d.path == path for d in plan.decisions):  # decided, but not a value: a dropped kernel
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
    ("execution.sharded_step", "tpu_v4_optimizations.sharding_strategy"),
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
        lines.append(f"{key} = {show(plan.config[key])}")
        lines.append(f"  from: {plan.provenance.get(key, 'unknown')}")
    else:
        view = _plan_paths(plan)
        leaves = {p: v for p, v in view.items() if p == key or p.startswith(key + ".")}
        for leaf, value in leaves.items():
            lines.append(f"{leaf} = {show(value)}")
        if not leaves:
            lines.append(f"{key}: no value in the plan")
    related = {key, *(b for a, b in _RELATED if a == key or key.startswith(a + ".")),
               *(a for a, b in _RELATED if b == key)}
    touching = [d for d in plan.decisions
                if any(d.path == k or d.path.startswith(k + ".") or k.startswith(d.path + ".")
                       for k in related)]
    if touching:
        lines.append("  decisions:")
        for d in touching:
            where = f" [{d.path}]" if d.path != key else ""
            lines.append(f"    {d.pass_}{where}: {show(d.before)} → {show(d.after)} ({d.reason})")
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
