"""The legacy (v2.x) keys and what each means in v3: the one table both readers share.

:data:`LEGACY_KEYS` maps each v2 key to its translation into v3 field
assignments; :data:`MODEL_SIZES` and :data:`LEGACY_DEVICES` are the values
those translations know.  :mod:`.rewrite` applies the table to a parsed TOML
document, :mod:`.mapping` to a flat dict.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

import msgspec

from capibara.config.fieldtypes import describe_kind, format_value

__all__ = [
    "ModelShape",
    "MODEL_SIZES",
    "LegacyKey",
    "LEGACY_KEYS",
    "LEGACY_DEVICES",
    "LEGACY_TABLES",
    "V2_ONLY_DEVICES",
    "Assignment",
    "Translation",
    "LegacyValueError",
    "parse_model_size",
    "canonical",
    "same",
]

#: Codes the legacy rules emit (explained in capibara/codes.py).
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


# --------------------------------------------------------------------------- sizes


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
#: 2.7b and 7b are the GPT-3 shapes: no documented shape is that large, and the
#: architecture sets are advisory, so they check with a warning, not an error.
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


#: The legacy keys, in the order their rules run.
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


def canonical(field_name: str) -> tuple[str, str]:
    """The ``(section, key)`` path where a v3 file keeps the field ``field_name``."""
    from capibara.config.fields import FIELD_BY_NAME

    entry = FIELD_BY_NAME[field_name]
    return entry.section, entry.key


def same(a: Any, b: Any) -> bool:
    """Equality as the schema will see it: enum strings compare case-insensitively."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return type(a) is type(b) and a == b
