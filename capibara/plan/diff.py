"""What changed between two plans (or two configs): ``capibara diff``."""

from __future__ import annotations

from typing import Any, Iterable

import msgspec

from capibara.plan.types import Plan
from capibara.plan.views import flat_view

__all__ = ["Change", "SECTIONS", "diff_plans", "diff_configs", "format_changes", "show"]


class Change(msgspec.Struct, frozen=True):
    """One difference between two plans (or configs): ``path`` went from ``before``
    to ``after``; ``note`` says where each side's value came from, when known."""

    path: str
    before: Any
    after: Any
    note: str = ""


#: Plan sections compared leaf by leaf; ``config`` (with provenance) and
#: ``kernels`` (by name) are compared on their own; the rest is bookkeeping.
SECTIONS = ("target", "model", "memory", "precision", "mesh", "batch", "execution", "loss",
            "training", "runtime", "services")

_MISSING = "<absent>"


def show(value: Any) -> str:
    """A value as plan JSON; ``<absent>`` for a side that lacks it."""
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
    for section in SECTIONS:
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
        lines.append(f"{change.path}: {show(change.before)} → {show(change.after)}")
        if change.note:
            lines.append(f"    {change.note}")
    return "\n".join(lines) + ("\n" if lines else "")


