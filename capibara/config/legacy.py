"""Legacy (v2.x) configurations and their rewrite to v3 (PARAMS.md §e).

CapibaraGPT v2.x described a model with three coarse keys; v3 spells out what
they meant.  :data:`LEGACY_KEYS` is the one table of those rules, and it has
two readers:

- :meth:`ConfigMigrator.migrate_from_legacy` takes the seed's plain dict
  (``{"model_size": "600m", "use_quantum": True, "device": "tpu_v4"}``) and
  returns a ``ModularModelConfig``;
- :func:`rewrite_document` is the legacy-rewrite stage of the compiler: it
  turns a parsed v2 TOML file into the v3 layout, remembers where each moved
  value came from, and warns once per rule at the old key.
  :func:`migrate_toml` / :func:`write_migrated` (``capibara migrate``) edit the
  file itself, keeping comments and untouched lines.

A v2 TOML file is recognised by its keys, never by ``version`` (A3)::

    # CapibaraGPT v2.x
    model_size = "600m"      # → [model] hidden_size, num_layers, num_heads, model_name
    use_quantum = true       # → [vector_quantization] enabled
    device = "tpu"           # → [hardware] device = "tpu_v4", [tpu_v4_optimizations] enabled

The three legacy keys may sit at the top level or in ``[model]``; any v3 key
may appear beside them (an explicit v3 shape or name wins over the one implied
by ``model_size``).  The v2 device names ``"tpu"`` and ``"cuda"`` are also
rewritten where v3 keeps the device, ``[hardware] device``.  A v3 document
contains none of this and passes through untouched.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Mapping

import msgspec

from capibara.diagnostics import Diagnostic, Label
from capibara.config.fieldtypes import describe_kind, format_value

__all__ = [
    "ModelShape",
    "MODEL_SIZES",
    "LegacyKey",
    "LEGACY_KEYS",
    "LEGACY_DEVICES",
    "LEGACY_TABLES",
    "parse_model_size",
    "LegacyRewrite",
    "rewrite_document",
    "find_legacy_paths",
    "is_legacy_mapping",
    "translate_mapping",
    "Migration",
    "ConfigMigrator",
    "migrate_document",
    "migrate_toml",
    "write_migrated",
]

#: Codes this module emits (explained in capibara/codes.py).
RENAMED_MODEL_SIZE = "L001"
RENAMED_USE_QUANTUM = "L002"
RENAMED_DEVICE = "L003"
UNKNOWN_MODEL_SIZE = "L010"
BAD_LEGACY_VALUE = "L011"
LEGACY_CONFLICT = "L012"

#: Where a v2 file may hold the legacy keys: the top level and ``[model]``.
LEGACY_TABLES: tuple[tuple[str, ...], ...] = ((), ("model",))

#: Vocabulary size the parameter estimate assumes when none is given (v3 default).
_DEFAULT_VOCAB = 32000


# --------------------------------------------------------------------------- sizes (§e.2)


class ModelShape(msgspec.Struct, frozen=True):
    """The transformer shape a legacy ``model_size`` stands for."""

    hidden_size: int
    num_layers: int
    num_heads: int

    def parameters(self, vocab_size: int = _DEFAULT_VOCAB) -> int:
        """Approximate parameter count ``12·L·d² + V·d`` (attention 4d², 4×-wide MLP 8d² per
        layer, tied embeddings)."""
        d, layers = self.hidden_size, self.num_layers
        return 12 * layers * d * d + vocab_size * d


#: Legacy size label → shape.  Every shape has head dimension ≥ 64; the sizes up to
#: 1.8b use only the documented values (hidden 512–2048, layers 6–36, heads 8–32),
#: 2.7b and 7b are the GPT-3 shapes and fall outside them (a C3 warning, A45).
#: 600m is the documented shape closest to 600 M parameters (604 M non-embedding).
MODEL_SIZES: dict[str, ModelShape] = {
    "125m": ModelShape(768, 12, 12),
    "350m": ModelShape(1024, 24, 16),
    "600m": ModelShape(2048, 12, 32),
    "1.3b": ModelShape(2048, 24, 32),
    "1.8b": ModelShape(2048, 36, 32),
    "2.7b": ModelShape(2560, 32, 32),
    "7b": ModelShape(4096, 32, 32),
}

_SIZE_TEXT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([mb])\s*", re.IGNORECASE)


def parse_model_size(text: str) -> str | None:
    """The :data:`MODEL_SIZES` label ``text`` names, or ``None``.

    Case-insensitive ``<number><m|b>``; the number is normalised through
    millions, so ``"600M"``, ``"0.6b"`` and ``"600m"`` all give ``"600m"`` and
    ``"1300m"`` gives ``"1.3b"``.  There is no nearest-size guessing.
    """
    match = _SIZE_TEXT.fullmatch(text)
    if match is None:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    millions = number * 1000 if match.group(2).lower() == "b" else number
    if millions != millions.to_integral_value():
        return None
    if millions < 1000:
        label = f"{int(millions)}m"
    else:
        billions = (millions / 1000).normalize()
        label = f"{billions:f}b"
    return label if label in MODEL_SIZES else None


def _size_listing() -> str:
    return ", ".join(f'"{label}"' for label in MODEL_SIZES)


# --------------------------------------------------------------------------- the rule table


class Assignment(msgspec.Struct, frozen=True):
    """One v3 field a legacy key sets.  An ``implied`` value yields to an explicit
    v3 setting of the same field; a direct one that disagrees with it is an error."""

    field: str
    value: Any
    implied: bool = False


class Translation(msgspec.Struct, frozen=True):
    """What one legacy key means in v3, with facts worth telling the user."""

    assignments: tuple[Assignment, ...]
    notes: tuple[str, ...] = ()


class LegacyValueError(ValueError):
    """A legacy key holds a value no rule understands (internal: becomes a diagnostic)."""

    def __init__(self, code: str, message: str, label: str, help: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.label = label
        self.help = help


class LegacyKey(msgspec.Struct, frozen=True):
    """A v2 key: the code of the warning its rewrite gives, what it was, and how it
    translates.  ``also_v3`` marks a key that is also a v3 field name (``device``):
    in a dict it is legacy only when the dict is legacy (see :func:`is_legacy_mapping`)."""

    key: str
    code: str
    doc: str
    translate: Callable[[Any], Translation]
    also_v3: bool = False
    #: the rewrite's warning; ``{key}`` is the key as the file spells it
    message: str = "{key} is a v2 key"


def _translate_model_size(value: Any) -> Translation:
    if not isinstance(value, str):
        raise LegacyValueError(
            BAD_LEGACY_VALUE, f"`model_size` must be a string such as \"600m\", found "
            f"{describe_kind(value)}", "expected a size string",
            "write it in double quotes with its unit, e.g. `model_size = \"600m\"`")
    label = parse_model_size(value)
    if label is None:
        raise LegacyValueError(
            UNKNOWN_MODEL_SIZE, f"unknown legacy `model_size` {format_value(value)}",
            "not a v2 size", f"use one of {_size_listing()}, or drop `model_size` and set "
            "`hidden_size`, `num_layers` and `num_heads` under `[model]`")
    shape = MODEL_SIZES[label]
    count = shape.parameters()
    size = f"{count / 1e9:.2f} B" if count >= 1e9 else f"{count / 1e6:.1f} M"
    return Translation(
        (Assignment("hidden_size", shape.hidden_size, implied=True),
         Assignment("num_layers", shape.num_layers, implied=True),
         Assignment("num_heads", shape.num_heads, implied=True),
         Assignment("model_name", f"capibara_{label}", implied=True)),
        (f"{label} is {shape.hidden_size} hidden × {shape.num_layers} layers × {shape.num_heads} "
         f"heads (≈ {size} parameters with a {_DEFAULT_VOCAB}-token vocabulary); "
         "v2 configs carry no shapes, so check them against the checkpoint you load",))


def _translate_use_quantum(value: Any) -> Translation:
    if not isinstance(value, bool):
        raise LegacyValueError(
            BAD_LEGACY_VALUE, f"`use_quantum` must be a boolean, found {describe_kind(value)}",
            "expected `true` or `false`", "write `use_quantum = true` or `false`")
    # "quantum" was the v2 name of the vector-quantization component, not quantum computing.
    return Translation((Assignment("use_vq", value),))


#: v2 ``device`` value → (v3 device, implied ``use_tpu_v4_optimizations`` or None, note).
LEGACY_DEVICES: dict[str, tuple[str, bool | None, str | None]] = {
    "auto": ("auto", None, None),
    "tpu_v4": ("tpu_v4", True, None),
    "tpu_v6": ("tpu_v6", None, None),
    "gpu": ("gpu", False, None),
    "cpu": ("cpu", False, None),
    # v2.x targeted TPU v4, and the seed's legacy example is tpu_v4.
    "tpu": ("tpu_v4", True, 'v2 "tpu" meant TPU v4, the only TPU generation v2.x supported'),
    "cuda": ("gpu", False, None),
}

#: v2 device names that are not v3 device names (a v3 file never holds them).
V2_ONLY_DEVICES: frozenset[str] = frozenset(
    name for name, (device, _, _) in LEGACY_DEVICES.items() if name != device)


def _translate_device(value: Any) -> Translation:
    names = ", ".join(f'"{name}"' for name in LEGACY_DEVICES)
    if not isinstance(value, str):
        raise LegacyValueError(
            BAD_LEGACY_VALUE, f"`device` must be a string, found {describe_kind(value)}",
            "expected a device name", f"use one of {names}")
    entry = LEGACY_DEVICES.get(value.lower())
    if entry is None:
        raise LegacyValueError(
            BAD_LEGACY_VALUE, f"unknown legacy `device` {format_value(value)}",
            "not a v2 device", f"use one of {names}")
    device, tpu_v4, note = entry
    assignments = [Assignment("device", device)]
    if tpu_v4 is not None:
        assignments.append(Assignment("use_tpu_v4_optimizations", tpu_v4, implied=True))
    return Translation(tuple(assignments), (note,) if note else ())


#: The legacy keys (§e.1), in the order their rules run.
LEGACY_KEYS: dict[str, LegacyKey] = {
    rule.key: rule for rule in (
        LegacyKey("model_size", RENAMED_MODEL_SIZE,
                  "the model's size tier; v3 spells out the shape", _translate_model_size,
                  message="{key} is a v2 key: v3 spells out the model's shape"),
        LegacyKey("use_quantum", RENAMED_USE_QUANTUM,
                  "the v2 name of vector quantization (`use_vq`)", _translate_use_quantum,
                  message="{key} is the v2 name of `use_vq`"),
        LegacyKey("device", RENAMED_DEVICE,
                  "the device; v3 keeps it under `[hardware]` and names TPUs by generation",
                  _translate_device, also_v3=True,
                  message="{key} is where v2 kept the device: v3 keeps it under `[hardware]`"),
    )
}


def _canonical(field_name: str) -> tuple[str, str]:
    from capibara.config.fields import FIELD_BY_NAME

    entry = FIELD_BY_NAME[field_name]
    return entry.section, entry.key


def _same(a: Any, b: Any) -> bool:
    """Equality as the schema will see it: enum strings compare case-insensitively."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------- TOML rewrite


class LegacyRewrite(msgspec.Struct, frozen=True):
    """The result of :func:`rewrite_document`.

    ``value`` is the document's nested dict in the v3 layout (the document's
    own dict, untouched, when nothing was legacy); ``origin`` maps each path
    the rewrite wrote to the legacy path its value came from, so the schema
    stage can point at the original text; ``diagnostics`` holds one warning
    per applied rule (or an error when a legacy value is unusable).
    """

    value: dict[str, Any]
    origin: dict[tuple[str, ...], tuple[str, ...]] = msgspec.field(default_factory=dict)
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.origin) or bool(self.diagnostics)


def _get(tree: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


_MISSING = object()


def find_legacy_paths(value: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Paths of legacy entries in a parsed document (empty for a v3 document).

    This runs on every compile, so it only looks where legacy keys can be: a
    handful of dict lookups.
    """
    found: list[tuple[str, ...]] = []
    for table_path in LEGACY_TABLES:
        table = _get(value, table_path)
        if isinstance(table, dict):
            for key in LEGACY_KEYS:
                if key in table:
                    found.append(table_path + (key,))
    device_path = _canonical("device")
    device = _get(value, device_path)
    if isinstance(device, str) and device.lower() in V2_ONLY_DEVICES:
        found.append(device_path)
    return found


class _Tree:
    """A copy-on-write view of the document's nested dict: tables on written paths
    are copied once, everything else is shared with the original."""

    def __init__(self, original: dict[str, Any]) -> None:
        self.root = dict(original)
        self._copied: set[tuple[str, ...]] = {()}

    def _table(self, path: tuple[str, ...], create: bool) -> dict[str, Any] | None:
        table = self.root
        for depth, part in enumerate(path):
            prefix = path[: depth + 1]
            child = table.get(part, _MISSING)
            if child is _MISSING:
                if not create:
                    return None
                child = {}
                table[part] = child
                self._copied.add(prefix)
            elif not isinstance(child, dict):
                return None
            elif prefix not in self._copied:
                child = dict(child)
                table[part] = child
                self._copied.add(prefix)
            table = child
        return table

    def set(self, path: tuple[str, ...], value: Any) -> bool:
        table = self._table(path[:-1], create=True)
        if table is None:
            return False
        table[path[-1]] = value
        return True

    def delete(self, path: tuple[str, ...]) -> None:
        table = self._table(path[:-1], create=False)
        if table is not None:
            table.pop(path[-1], None)


def _help_for(assignments: Iterable[tuple[tuple[str, str], Any]]) -> str:
    """``write `a = 1` and `b = 2` under `[model]` and `c = true` under `[x]```."""
    by_section: dict[str, list[str]] = {}
    for (section, key), value in assignments:
        by_section.setdefault(section, []).append(f"`{key} = {format_value(value)}`")
    parts = [f"{_join(items)} under `[{section}]`" for section, items in by_section.items()]
    return "write " + _join(parts)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _spelled(path: tuple[str, ...]) -> str:
    """How a path reads in a message: ``[model] model_size`` or a top-level ``model_size``."""
    if len(path) == 1:
        return f"`{path[0]}`"
    return f"`[{'.'.join(path[:-1])}] {path[-1]}`"


def rewrite_document(doc: Any) -> LegacyRewrite:
    """Rewrite a parsed TOML document's legacy (v2) keys into the v3 layout.

    ``doc`` is a :class:`capibara.toml.Document` (its ``.value`` and
    ``key_span``/``value_span`` are used).  A v3 document returns its own value
    with no origin and no diagnostics.  Each applied rule warns at the legacy
    key with the v3 spelling under ``help``; an unusable legacy value, or one
    that contradicts the v3 key beside it, is an error at the value.
    """
    value: dict[str, Any] = doc.value
    legacy_paths = find_legacy_paths(value)
    if not legacy_paths:
        return LegacyRewrite(value)
    legacy_paths.sort(key=lambda path: _start(doc, path))
    tree = _Tree(value)
    origin: dict[tuple[str, ...], tuple[str, ...]] = {}
    diagnostics: list[Diagnostic] = []
    # path written by a rule -> (value, the legacy path that wrote it, implied?)
    written: dict[tuple[str, ...], tuple[Any, tuple[str, ...], bool]] = {}
    legacy_set = set(legacy_paths)

    for old_path in legacy_paths:
        rule = LEGACY_KEYS[old_path[-1]]
        raw = _get(value, old_path)
        if old_path not in written:  # an in-place value (`[hardware] device`) may hold a rewrite
            tree.delete(old_path)
        try:
            translation = rule.translate(raw)
        except LegacyValueError as problem:
            diagnostics.append(Diagnostic.error(
                problem.code, problem.message, doc.value_span(old_path), label=problem.label,
                help=problem.help))
            continue
        applied: list[tuple[tuple[str, str], Any]] = []
        conflicts: list[Diagnostic] = []
        for assignment in translation.assignments:
            new_path = _canonical(assignment.field)
            if new_path in written:
                earlier, earlier_path, earlier_implied = written[new_path]
                if _same(earlier, assignment.value):
                    continue
                if not assignment.implied:
                    conflicts.append(_conflict(doc, old_path, raw, earlier_path, earlier, new_path))
                elif earlier_implied and earlier_path[-1] == old_path[-1] and not any(
                        c.span == doc.value_span(old_path) for c in conflicts):
                    # the same v2 key twice (top level and `[model]`) with different values:
                    # neither is explicit, so neither may silently win
                    conflicts.append(_conflict(doc, old_path, raw, earlier_path,
                                               _get(value, earlier_path), old_path))
                continue
            existing = _get(value, new_path)
            if existing is not _MISSING and new_path not in legacy_set:
                if assignment.implied:
                    continue  # the v3 key the user wrote wins over what the legacy key implies
                if not _same(existing, assignment.value):
                    conflicts.append(_conflict(doc, old_path, raw, new_path, existing, new_path))
                    continue
            if tree.set(new_path, assignment.value):
                written[new_path] = (assignment.value, old_path, assignment.implied)
                origin[new_path] = old_path
                applied.append((new_path, assignment.value))
        # A contradiction is the one thing to say about this key: no rename advice beside it.
        diagnostics.extend(conflicts or
                           [_renamed(doc, rule, old_path, raw, applied, translation.notes)])

    # A table that only dotted legacy keys made (`model.use_quantum = true`) is gone with
    # them, exactly as it is gone from the migrated text; a `[model]` header stays.
    for table in {path[:-1] for path in legacy_paths if len(path) > 1}:
        if _get(tree.root, table) == {} and doc.header_span(table) is None \
                and doc.value_span(table) is None:
            tree.delete(table)
    return LegacyRewrite(tree.root, origin, tuple(diagnostics))


def _start(doc: Any, path: tuple[str, ...]) -> int:
    span = doc.key_span(path)
    return span.start if span is not None else 0


def _renamed(doc: Any, rule: LegacyKey, old_path: tuple[str, ...], raw: Any,
             applied: list[tuple[tuple[str, str], Any]], notes: tuple[str, ...]) -> Diagnostic:
    if rule.also_v3 and old_path == _canonical(rule.key):
        # `[hardware] device = "cuda"`: the key is v3, only the value is a v2 name.
        message = f"{format_value(raw)} is a v2 device name"
        span, label = doc.value_span(old_path), "v2 device name"
        new_value = applied[0][1] if applied else raw
        help = f"write `device = {format_value(new_value)}`"
        rest = [item for item in applied if item[0] != old_path]
        if rest:
            help += "; v2 also implied " + _help_for(rest).removeprefix("write ")
    else:
        message = rule.message.format(key=_spelled(old_path))
        span, label = doc.key_span(old_path), "v2 key"
        help = (_help_for(applied) + " instead" if applied else
                "delete it: the v3 keys beside it already say everything it said")
    return Diagnostic.warning(rule.code, message, span, label=label, notes=notes, help=help)


def _conflict(doc: Any, old_path: tuple[str, ...], raw: Any, other_path: tuple[str, ...],
              found: Any, new_path: tuple[str, ...]) -> Diagnostic:
    other_span = doc.value_span(other_path)
    labels = [Label(other_span, f"this says {format_value(found)}")] if other_span else []
    notes = () if old_path == new_path else (
        f"{_spelled(old_path)} is the v2 spelling of {_spelled(new_path)}",)
    return Diagnostic.error(
        LEGACY_CONFLICT,
        f"{_spelled(old_path)} = {format_value(raw)} contradicts {_spelled(other_path)} = "
        f"{format_value(found)}", doc.value_span(old_path), label="the v2 setting",
        labels=labels, notes=notes,
        help=f"delete {_spelled(old_path)}, or make the two agree")


# --------------------------------------------------------------------------- dict migration


def is_legacy_mapping(values: Mapping[str, Any]) -> bool:
    """Whether a flat dict is a v2 config: it holds a key only v2 had, or a v2-only
    device name (``{"device": "gpu"}`` alone is a valid v3 dict and stays one)."""
    if any(key in values and not rule.also_v3 for key, rule in LEGACY_KEYS.items()):
        return True
    device = values.get("device")
    return isinstance(device, str) and device.lower() in V2_ONLY_DEVICES


class Migration(msgspec.Struct, frozen=True):
    """A migrated config and what the migration found (warnings; no errors)."""

    config: Any
    diagnostics: tuple[Diagnostic, ...]


def _unknown_key(name: Any) -> Diagnostic:
    from capibara.config.fieldtypes import closest
    from capibara.config.values import UNKNOWN_FIELD
    from capibara.config.fields import FIELD_BY_NAME

    near = closest(str(name), [*LEGACY_KEYS, *FIELD_BY_NAME], cutoff=0.7)
    return Diagnostic.error(
        UNKNOWN_FIELD, f"unknown legacy key `{name}`",
        help=f"did you mean `{near}`?" if near else
        "a legacy config holds `model_size`, `use_quantum`, `device` and v3 field names")


def translate_mapping(legacy: Mapping[str, Any]) -> tuple[dict[str, Any], list[Diagnostic]]:
    """A flat legacy dict → checked v3 assignments by field name, and diagnostics.

    Reads the same :data:`LEGACY_KEYS` table as :func:`rewrite_document`: each
    legacy key's translation is applied, v3 field names pass through, explicit
    v3 values win over what a legacy key implies, and a direct contradiction
    (``use_quantum=True`` with ``use_vq=False``) is an error.  Every assignment's
    provenance is ``legacy``.
    """
    from capibara.config.values import Provenance, check_value
    from capibara.config.fields import FIELD_BY_NAME

    diagnostics: list[Diagnostic] = []
    unknown = [key for key in legacy if key not in FIELD_BY_NAME and key not in LEGACY_KEYS]
    diagnostics.extend(_unknown_key(key) for key in unknown)
    convert = is_legacy_mapping(legacy)
    # field -> (value, provenance detail, implied?)
    wanted: dict[str, tuple[Any, str, bool]] = {}
    explicit = {key: value for key, value in legacy.items() if key in FIELD_BY_NAME
                and not (convert and key in LEGACY_KEYS)}
    for key, value in explicit.items():
        wanted[key] = (value, f"`{key}` in the legacy config", False)
    if convert:
        for key, rule in LEGACY_KEYS.items():
            if key not in legacy:
                continue
            raw = legacy[key]
            try:
                translation = rule.translate(raw)
            except LegacyValueError as problem:
                diagnostics.append(Diagnostic.error(problem.code, problem.message,
                                                    help=problem.help))
                continue
            origin = f"legacy `{key} = {format_value(raw)}`"
            applied: list[str] = []
            for assignment in translation.assignments:
                if assignment.field in explicit:
                    given = explicit[assignment.field]
                    if not assignment.implied and not _same(given, assignment.value):
                        diagnostics.append(Diagnostic.error(
                            LEGACY_CONFLICT, f"`{key}` = {format_value(raw)} means "
                            f"`{assignment.field}` = {format_value(assignment.value)}, but "
                            f"`{assignment.field}` = {format_value(given)} is also given",
                            help=f"keep one of `{key}` and `{assignment.field}`, or make "
                                 "them agree"))
                    continue
                wanted[assignment.field] = (assignment.value, origin, assignment.implied)
                applied.append(f"`{assignment.field} = {format_value(assignment.value)}`")
            if translation.notes:
                diagnostics.append(Diagnostic.warning(
                    rule.code, f"legacy `{key} = {format_value(raw)}` became {_join(applied)}"
                    if applied else f"legacy `{key} = {format_value(raw)}` changed nothing",
                    notes=translation.notes))
    assignments: dict[str, Any] = {}
    for name, (value, detail, _) in wanted.items():
        result = check_value(name, value, Provenance("legacy", None, detail))
        if isinstance(result, Diagnostic):
            diagnostics.append(result)
        else:
            assignments[name] = result
    return assignments, diagnostics


class ConfigMigrator:
    """The seed's migrator (``capibara.config.ConfigMigrator``): v2.x dicts → v3 configs.

    Stateless.  The environment is never read, so a migration gives the same
    config on every machine.
    """

    def migrate(self, legacy_config: Mapping[str, Any]) -> Migration:
        """Migrate and validate; returns the config with the migration's warnings.

        Raises :class:`~capibara.diagnostics.ConfigError` (a ``ValueError``)
        listing every unknown key, unusable legacy value, contradiction, or
        cross-field error of the result.
        """
        from capibara.diagnostics import ConfigError
        from capibara.config.model_config import build_config, raise_for
        from capibara.config.validate import get_validation_errors

        if not isinstance(legacy_config, Mapping):
            raise TypeError(f"migrate_from_legacy expects a mapping, got "
                            f"{type(legacy_config).__name__}")
        assignments, diagnostics = translate_mapping(legacy_config)
        raise_for(diagnostics)
        config = build_config(assignments)
        problems = get_validation_errors(config)
        if any(d.is_error for d in problems):
            raise ConfigError([*diagnostics, *problems])
        return Migration(config, tuple(diagnostics) + tuple(problems))

    def migrate_from_legacy(self, legacy_config: Mapping[str, Any]) -> Any:
        """The seed's call: a legacy dict → ``ModularModelConfig``.

        ``{"model_size": "600m", "use_quantum": True, "device": "tpu_v4"}`` gives
        ``model_name="capibara_600m"``, 2048 hidden × 12 layers × 32 heads,
        ``use_vq=True``, ``device="tpu_v4"`` and ``use_tpu_v4_optimizations=True``.
        Warnings (shapes to check against the checkpoint, the generic ``"tpu"``)
        are issued as :class:`capibara.config.model_config.ConfigWarning`.
        """
        import warnings

        from capibara.config.values import ConfigWarning

        migration = self.migrate(legacy_config)
        for diagnostic in migration.diagnostics:
            if diagnostic.code.startswith("L"):
                warnings.warn(_plain(diagnostic), ConfigWarning, stacklevel=2)
        return migration.config


def _plain(diagnostic: Diagnostic) -> str:
    from capibara.diagnostics import escape

    return escape("; ".join((diagnostic.message, *diagnostic.notes)))


# --------------------------------------------------------------------------- rewriting the file (`capibara migrate`)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    from capibara.config.writer import toml_value

    return key if _BARE_KEY.fullmatch(key) else toml_value(key)


def _toml_inline(value: Any) -> str:
    """A value in TOML syntax, tables as inline tables (for rewriting an inline table)."""
    from capibara.config.writer import toml_value

    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_inline(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    if hasattr(value, "isoformat") and not isinstance(value, (str, int, float)):
        return value.isoformat()
    return toml_value(value)


class _Edit(msgspec.Struct, frozen=True):
    start: int
    end: int
    text: str


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The full lines holding ``text[start:end]``, newline included."""
    line_start = text.rfind("\n", 0, start) + 1
    newline = text.find("\n", end)
    return line_start, len(text) if newline == -1 else newline + 1


def _trailing_comment(text: str, end: int) -> str:
    """The comment after a value on its line (``"# ..."``), or ``""``."""
    newline = text.find("\n", end)
    rest = text[end: len(text) if newline == -1 else newline].strip()
    return rest if rest.startswith("#") else ""


def _owned_by_header(doc: Any, path: tuple, depth: int) -> bool:
    """Whether a header deeper than ``depth`` (``[a.b]``, ``[[a.b]]``) owns ``path``."""
    return any(doc.header_span(path[:k]) is not None for k in range(depth + 1, len(path)))


def _plan_edits(doc: Any, rewrite: LegacyRewrite) -> tuple[list[_Edit], list[str]]:
    """Span edits turning the v2 text into the v3 layout, keeping every untouched line,
    and the new tables to append at the end."""
    text = doc.source.text
    newline = "\r\n" if "\r\n" in text else "\n"
    legacy_paths = find_legacy_paths(doc.value)
    deleted = {path for path in legacy_paths if rewrite.origin.get(path) != path}
    edits: list[_Edit] = []
    comments: dict[tuple[str, ...], str] = {}  # legacy path -> its trailing comment
    inline: set[tuple[str, ...]] = set()  # inline tables rewritten whole

    for path in legacy_paths:
        parent = path[:-1]
        if parent and doc.value_span(parent) is not None:
            inline.add(parent)  # `model = { model_size = "600m" }`
            continue
        value_span = doc.value_span(path)
        if path not in deleted:  # `[hardware] device = "cuda"` becomes "gpu" in place
            edits.append(_Edit(value_span.start, value_span.end,
                               _toml_inline(_get(rewrite.value, path))))
            continue
        # A key/value owns its lines: TOML puts nothing but a comment after a value.
        start, end = _line_bounds(text, doc.key_span(path).start, value_span.end)
        edits.append(_Edit(start, end, ""))
        if comment := _trailing_comment(text, value_span.end):
            comments[path] = comment

    # New values, grouped by the table that receives them, in the order the rules wrote them.
    by_table: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for new_path, old_path in rewrite.origin.items():
        if new_path != old_path:
            by_table.setdefault(new_path[:-1], []).append(new_path)
    appended: list[str] = []
    for table, paths in by_table.items():
        if doc.value_span(table) is not None:
            inline.add(table)
            continue
        lines = []
        for new_path in paths:
            line = f"{_toml_key(new_path[-1])} = {_toml_inline(_get(rewrite.value, new_path))}"
            comment = comments.pop(rewrite.origin[new_path], "")
            lines.append(f"{line}  {comment}" if comment else line)
        header = doc.header_span(table)
        block = [value for path, _, value in doc.entries()
                 if path[: len(table)] == table and len(path) > len(table)
                 and path not in deleted and not _owned_by_header(doc, path, len(table))]
        if block:  # after the table's last key; a table made by dotted keys gets dotted keys
            anchor = _line_bounds(text, block[-1].start, max(v.end for v in block))[1]
            if header is None:
                dotted = ".".join(map(_toml_key, table)) + "."
                lines = [dotted + line for line in lines]
        elif header is not None:
            anchor = _line_bounds(text, header.start, header.end)[1]
        else:
            appended.append(f"[{'.'.join(map(_toml_key, table))}]{newline}"
                            + "".join(line + newline for line in lines))
            continue
        lead = newline if anchor == len(text) and not text.endswith("\n") else ""
        edits.append(_Edit(anchor, anchor, lead + "".join(line + newline for line in lines)))

    for table in sorted(inline, key=len):
        span = doc.value_span(table)
        if span is None:
            continue
        edits = [e for e in edits if not span.start <= e.start <= span.end]
        edits.append(_Edit(span.start, span.end, _toml_inline(_get(rewrite.value, table))))
    return edits, appended


def _apply(text: str, edits: list[_Edit]) -> str:
    out, position = [], 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        out.append(text[position: edit.start])
        out.append(edit.text)
        position = max(position, edit.end)
    out.append(text[position:])
    return "".join(out)


def migrate_document(doc: Any) -> tuple[str, tuple[Diagnostic, ...]]:
    """The v3 text of a parsed v2 document and the rewrite's diagnostics.

    Lines without legacy keys are kept byte for byte (comments included); a
    legacy line's trailing comment moves to the first line that replaces it.
    Raises :class:`~capibara.diagnostics.ConfigError` if the rewrite found an
    error (nothing can be written then).
    """
    from capibara.diagnostics import ConfigError

    rewrite = rewrite_document(doc)
    if any(d.is_error for d in rewrite.diagnostics):
        raise ConfigError(rewrite.diagnostics)
    if not rewrite.changed:
        return doc.source.text, ()
    from capibara import toml

    edits, appended = _plan_edits(doc, rewrite)
    new_text = _apply(doc.source.text, edits)
    if appended:
        newline = "\r\n" if "\r\n" in doc.source.text else "\n"
        kept = new_text.rstrip("\r\n")
        new_text = (kept + newline * 2 if kept.strip() else "") + newline.join(appended)
    # The edits must mean exactly the rewritten document; writing anything else would
    # corrupt the user's file, so a mismatch is a bug and stops here.
    if toml.parse(new_text, doc.source.name).value != rewrite.value:
        raise AssertionError(f"migrating {doc.source.name} produced text that does not match "
                             "its rewrite")
    return new_text, rewrite.diagnostics


def migrate_toml(text: str, source: str = "<string>") -> tuple[str, tuple[Diagnostic, ...]]:
    """``capibara migrate``: v2 TOML text → (v3 TOML text, the rewrite's warnings).

    A v3 file comes back unchanged with no diagnostics.  Raises
    :class:`~capibara.diagnostics.ConfigError` for invalid TOML or an unusable
    legacy value.
    """
    from capibara import toml

    return migrate_document(toml.parse(text, source))


def write_migrated(path: str | os.PathLike[str]) -> tuple[bool, tuple[Diagnostic, ...]]:
    """``capibara migrate --write``: rewrite a v2 file in place, atomically.

    Returns ``(changed, diagnostics)``; a file with nothing to migrate is not
    touched. The new text goes to a temporary file beside the file, takes its
    mode, owner, group and byte-order mark, is flushed to disk and then
    replaces it with :func:`os.replace`, so a crash leaves the old file or the
    new one, never half of one. A symbolic link is followed: the file it points
    at is migrated and the link stays a link. A file with other hard links gets
    a new inode, so its other names keep the old text (as with ``sed -i``). Raises
    :class:`~capibara.diagnostics.ConfigError` (P004, nothing written) when the
    file is read-only, its folder cannot be written, its owner could not be
    kept, or it changed while it was being migrated.
    """
    from capibara import toml
    from capibara.files import is_writable

    given = os.fspath(path)
    target = os.path.realpath(given)
    before = _stat(target)
    data = toml.read_bytes(given)
    read_only = before is not None and not is_writable(target, before)
    doc = toml.parse_bytes(data, given)
    new_text, diagnostics = migrate_document(doc)
    if new_text == doc.source.text:
        return False, diagnostics
    if read_only:
        raise _unwritable(given, "the file is read-only",
                          "make it writable (`chmod u+w`) if it should change, or print the "
                          "migrated text with `capibara migrate FILE` and save it elsewhere")
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    _replace_if_unchanged(target, given, before, data, bom + new_text.encode("utf-8"))
    return True, diagnostics


#: The code of every refusal to write a file in place (explained in capibara/codes.py).
CANNOT_WRITE = "P004"


def _unwritable(shown: str, reason: str, help: str) -> Exception:
    from capibara.diagnostics import ConfigError

    return ConfigError([Diagnostic.error(
        CANNOT_WRITE, f"cannot rewrite `{shown}`: {reason}; nothing was written", help=help)])


def _stat(target: str) -> os.stat_result | None:
    try:
        return os.stat(target)
    except OSError:
        return None  # reading it next says why, with its own code


def _replace_if_unchanged(target: str, shown: str, before: os.stat_result | None,
                          old: bytes, new: bytes) -> None:
    """Write ``new`` beside ``target`` and rename it over ``target``, unless ``target``
    no longer holds ``old`` just before the rename (another edit would be lost)."""
    import contextlib
    import stat
    import tempfile

    from capibara.files import TEMPORARY, remove_stale_temporaries

    directory = os.path.dirname(target) or "."
    remove_stale_temporaries(target, TEMPORARY)  # left by a migrate that was killed
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.",
                                             suffix=".tmp", dir=directory)
    except OSError as error:
        raise _unwritable(shown, f"its folder cannot be written ({_reason(error)})",
                          "print the migrated text with `capibara migrate FILE` and save it "
                          "where you can write") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            if before is not None:
                _keep_owner(stream.fileno(), before, shown)
                os.fchmod(stream.fileno(), stat.S_IMODE(before.st_mode))
            stream.write(new)
            stream.flush()
            os.fsync(stream.fileno())
        # Another editor may have saved the file while it was being migrated: compare
        # what is there now with what was read, as late as possible, and keep their edit.
        if not _still_holds(target, before, old):
            raise _unwritable(shown, "it changed while it was being migrated",
                              "run `capibara migrate --write` again on the new version")
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _unwritable(shown, _reason(error), "check the disk and the file's "
                              "permissions; the original is unchanged") from None
        raise


def _still_holds(target: str, before: os.stat_result | None, old: bytes) -> bool:
    """Whether ``target`` is still the file that was read, with the bytes it had."""
    from capibara import toml
    from capibara.diagnostics import ConfigError

    now = _stat(target)
    if before is None or now is None or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
        return False
    try:
        return toml.read_bytes(target) == old
    except ConfigError:
        return False


def _keep_owner(fd: int, before: os.stat_result, shown: str) -> None:
    """Give the new file the old one's owner and group, or refuse to replace it."""
    if os.fstat(fd).st_uid == before.st_uid and os.fstat(fd).st_gid == before.st_gid:
        return
    try:
        os.fchown(fd, before.st_uid, before.st_gid)
    except PermissionError:
        raise _unwritable(shown, "it belongs to another user or group, and a rewritten file "
                          "would belong to you", "run it as the file's owner, or print the "
                          "migrated text with `capibara migrate FILE`") from None


def _reason(error: OSError) -> str:
    reason = error.strerror or str(error)
    return reason[:1].lower() + reason[1:]
