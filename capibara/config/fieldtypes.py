"""The value types of configuration fields and their single-field checks.

Each field of :data:`capibara.config.fields.FIELDS` has one of these types.  A type
knows everything about one value in isolation, so no other module restates it:

- :meth:`check` turns a Python value (from TOML, a keyword, ``--set`` or an
  already parsed environment variable) into its canonical form, or raises
  :class:`ValueProblem` (type, range, enum, format);
- :meth:`parse_env` reads the text of an environment variable;
- :meth:`describe` says in words what is accepted (``capibara explain``);
- :meth:`json_schema` is the JSON Schema fragment of the TOML value;
- :meth:`to_toml` gives the value a TOML writer prints (``None`` is written
  as the string ``"none"`` where the type accepts that word);
- :attr:`annotation` is the Python type of the attribute on the msgspec struct.

Types are strict, so a value means one thing: a bool field takes only ``bool``, an
int field rejects ``bool`` (a subclass of ``int`` in Python) and floats, a
float field takes ints and converts them, enum strings match
case-insensitively and are stored in canonical case.  NaN and infinities are
refused everywhere: no field means anything with them.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, Mapping, Sequence

import msgspec

__all__ = [
    "ValueProblem",
    "FieldType",
    "Bool",
    "Int",
    "Float",
    "Text",
    "Choice",
    "IntChoice",
    "Optional",
    "AutoOr",
    "IntList",
    "Subset",
    "Pattern",
    "format_value",
    "toml_string",
    "describe_kind",
    "closest",
    "join_words",
]

#: Codes (see capibara/codes.py) of the single-field problems.
WRONG_TYPE = "S201"
OUT_OF_RANGE = "S202"
NOT_ALLOWED = "S203"
BAD_FORMAT = "S204"
DUPLICATE_ITEM = "S205"


class ValueProblem(Exception):
    """A single value is unacceptable; carries the parts of its diagnostic.

    Stages turn it into a :class:`capibara.diagnostics.Diagnostic` at the span
    of the value (see ``capibara.config.decode``), so the type itself stays free of
    places.
    """

    def __init__(self, code: str, message: str, label: str, help: str | None = None, *,
                 item: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.label = label
        self.help = help
        #: index of the offending element of a list value (its span is the smallest one)
        self.item = item


# --------------------------------------------------------------------------- helpers


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string, escaped (TOML forbids raw control characters)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def format_value(value: Any) -> str:
    """A value as TOML would spell it, for messages (``96``, ``"fast"``, ``[4, 8]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if value != value else
                                                         ("inf" if value > 0 else "-inf"))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if value is None:
        return "None"
    return str(value)


def describe_kind(value: Any) -> str:
    """What kind of value this is, with its article (``a string``, ``an array``)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    if value is None:
        return "None"
    name = type(value).__name__
    if name in ("date", "time", "datetime"):
        return "a date-time"
    return f"a value of type `{name}`"


def closest(word: str, candidates: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The candidate nearest to ``word`` (case-insensitive), or ``None``."""
    lowered = {c.lower(): c for c in candidates}
    import difflib  # only a misspelling pays for it

    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[match[0]] if match else None


def join_words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``: a list as a sentence says it."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _wrong_type(name: str, expected: str, value: Any, help: str | None = None) -> ValueProblem:
    return ValueProblem(WRONG_TYPE, f"`{name}` must be {expected}, found {describe_kind(value)}",
                        f"expected {expected}", help)


def _number(value: float | int) -> str:
    return format_value(value)


_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def _parse_int_text(text: str, name: str) -> int:
    if not _INT_TEXT.fullmatch(text.strip()):
        raise ValueProblem(WRONG_TYPE, f"`{name}` must be an integer, found `{text}`",
                           "expected a decimal integer", "write digits only, e.g. `64`")
    return int(text.strip())


# --------------------------------------------------------------------------- the types


class FieldType:
    """Base of the value types; see the module docstring for the protocol."""

    annotation: Any = Any
    #: the word that stands for ``None`` in TOML/env (``"none"``), if any
    none_word: str | None = None

    def check(self, value: Any, name: str) -> Any:
        raise NotImplementedError

    def parse_env(self, text: str, name: str) -> Any:
        """The Python value an environment variable's text stands for (then :meth:`check`)."""
        return text

    def describe(self) -> str:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_toml(self, value: Any) -> Any:
        return value


class Bool(msgspec.Struct, FieldType, frozen=True):
    """``true`` or ``false``; 0/1 and strings are refused (``1`` is no answer to yes or no)."""

    annotation = bool
    _ENV_WORDS = {"true": True, "1": True, "yes": True, "on": True,
                  "false": False, "0": False, "no": False, "off": False}

    def check(self, value: Any, name: str) -> bool:
        if isinstance(value, bool):
            return value
        hint = None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            hint = f"write `{value.lower()}` without quotes"
        elif isinstance(value, str):
            hint = "write `true` or `false`, without quotes"
        elif isinstance(value, int) and value in (0, 1):
            hint = f"write `{'true' if value else 'false'}`; 0 and 1 are not booleans here"
        raise _wrong_type(name, "a boolean (`true` or `false`)", value, hint)

    def parse_env(self, text: str, name: str) -> bool:
        word = text.strip().lower()
        if word in self._ENV_WORDS:
            return self._ENV_WORDS[word]
        raise ValueProblem(WRONG_TYPE, f"`{name}` must be a boolean, found `{text}`",
                           "expected a boolean",
                           "use true/false (also accepted: 1/0, yes/no, on/off)")

    def describe(self) -> str:
        return "a boolean"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Int(msgspec.Struct, FieldType, frozen=True):
    """An integer within ``[minimum, maximum]`` (either bound optional)."""

    minimum: int | None = None
    maximum: int | None = None
    annotation = int

    def check(self, value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = None
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                hint = f"write `{int(value)}` without the decimal point"
            raise _wrong_type(name, "an integer", value, hint)
        if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum):
            raise ValueProblem(OUT_OF_RANGE, f"`{name}` must be {self._bounds()}, found {value}",
                               f"expected {self._bounds()}", None)
        return value

    def parse_env(self, text: str, name: str) -> int:
        return _parse_int_text(text, name)

    def _bounds(self) -> str:
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return f"from {lo} to {hi}"
        if lo is not None:
            return f"at least {lo}"
        if hi is not None:
            return f"at most {hi}"
        return "an integer"

    def describe(self) -> str:
        bounds = self._bounds()
        if bounds == "an integer":
            return bounds
        return "a positive integer" if bounds == "at least 1" else f"an integer {bounds}"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


class Float(msgspec.Struct, FieldType, frozen=True):
    """A finite number; ints are converted (``1`` is exactly ``1.0``).  Bounds may be exclusive."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    annotation = float

    def check(self, value: Any, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong_type(name, "a number", value)
        number = float(value)
        if not math.isfinite(number):
            raise ValueProblem(OUT_OF_RANGE, f"`{name}` must be a finite number, found "
                               f"{format_value(number)}", "expected a finite number",
                               self._range_help())
        if not self.contains(number):
            raise ValueProblem(OUT_OF_RANGE, f"`{name}` must be {self._bounds()}, found "
                               f"{_number(value)}", f"expected {self.describe()}",
                               self._range_help())
        return number

    def parse_env(self, text: str, name: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            raise ValueProblem(WRONG_TYPE, f"`{name}` must be a number, found `{text}`",
                               "expected a number", "write a decimal number such as `0.5` or `1e-4`")

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies within the bounds."""
        lo, hi = self.minimum, self.maximum
        if lo is not None and (x <= lo if self.exclusive_minimum else x < lo):
            return False
        if hi is not None and (x >= hi if self.exclusive_maximum else x > hi):
            return False
        return True

    def _bounds(self) -> str:
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            left = "(" if self.exclusive_minimum else "["
            right = ")" if self.exclusive_maximum else "]"
            return f"in {left}{_number(lo)}, {_number(hi)}{right}"
        if lo is not None:
            if lo == 0:
                return "greater than 0" if self.exclusive_minimum else "at least 0"
            return f"greater than {_number(lo)}" if self.exclusive_minimum else f"at least {_number(lo)}"
        if hi is not None:
            return f"less than {_number(hi)}" if self.exclusive_maximum else f"at most {_number(hi)}"
        return "a number"

    def _range_help(self) -> str | None:
        if self.minimum is not None and self.maximum is not None:
            return f"use a number {self._bounds()}"
        return None

    def describe(self) -> str:
        bounds = self._bounds()
        return "a number" if bounds == "a number" else f"a number {bounds}"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            schema["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum is not None:
            schema["exclusiveMaximum" if self.exclusive_maximum else "maximum"] = self.maximum
        return schema


class Text(msgspec.Struct, FieldType, frozen=True):
    """A string; optionally non-empty and matching ``pattern`` (described by ``shape``)."""

    pattern: str | None = None
    shape: str = ""
    example: str = ""
    annotation = str

    def check(self, value: Any, name: str) -> str:
        if not isinstance(value, str):
            raise _wrong_type(name, "a string", value,
                              f'write it in double quotes, e.g. `"{self.example}"`' if self.example
                              else None)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ValueProblem(BAD_FORMAT, f"`{name}` must be {self.shape}, found {format_value(value)}",
                               f"expected {self.shape}",
                               f'for example `"{self.example}"`' if self.example else None)
        return value

    def describe(self) -> str:
        return f"a string ({self.shape})" if self.shape else "a string"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern})$"
        return schema


class Choice(msgspec.Struct, FieldType, frozen=True):
    """One string of ``values``, matched case-insensitively, stored in canonical case.

    ``aliases`` maps other accepted spellings to a canonical value (e.g.
    ``mixture_of_rookies`` → ``mor``: the seed uses both).  ``upper`` stores
    upper-case (``log_level``, as the seed writes ``"INFO"``); otherwise values
    are lower-case.
    """

    values: tuple[str, ...]
    aliases: Mapping[str, str] = msgspec.field(default_factory=dict)
    upper: bool = False

    @property
    def annotation(self) -> Any:  # type: ignore[override]
        return Literal[self.values]  # type: ignore[valid-type]

    def _spellings(self) -> list[str]:
        return list(self.values) + list(self.aliases)

    def listing(self) -> str:
        """``mor` (also `mixture_of_rookies`), `topk`, `magnitude``: every accepted spelling."""
        parts = []
        for v in self.values:
            also = [a for a, target in self.aliases.items() if target == v]
            parts.append(f"`{v}`" + (f" (also {', '.join(f'`{a}`' for a in also)})" if also else ""))
        if len(parts) == 2:
            return f"{parts[0]} or {parts[1]}"
        return ", ".join(parts[:-1]) + f" or {parts[-1]}"

    def check(self, value: Any, name: str) -> str:
        if not isinstance(value, str):
            raise _wrong_type(name, "a string", value, f"use one of {self.listing()}")
        key = value.lower()
        for v in self.values:
            if v.lower() == key:
                return v
        for alias, target in self.aliases.items():
            if alias.lower() == key:
                return target
        near = closest(value, self._spellings())
        raise ValueProblem(
            NOT_ALLOWED, f"`{name}` must be one of {self.listing()}, found {format_value(value)}",
            "not an accepted value",
            f"did you mean `{near}`?" if near else f"use one of {self.listing()}")

    def describe(self) -> str:
        case = "upper" if self.upper else "lower"
        return f"one of {self.listing()} (any case; stored in {case} case)"

    def json_schema(self) -> dict[str, Any]:
        # JSON Schema (ECMA-262 regexes) has no case-insensitive flag: the pattern spells each
        # letter as a class, `[mM][oO][rR]`, so every case of every spelling is accepted.
        def any_case(word: str) -> str:
            return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)

        spellings = self._spellings()
        return {"type": "string",
                "anyOf": [{"enum": spellings},
                          {"pattern": "^(?:" + "|".join(any_case(s) for s in spellings) + ")$"}]}


class IntChoice(msgspec.Struct, FieldType, frozen=True):
    """One integer of ``values`` (``vq_codes`` ∈ {64, 128}, ``affine_bits`` ∈ {4, 8, 16})."""

    values: tuple[int, ...]
    hint: str | None = None
    annotation = int

    def listing(self) -> str:
        items = [str(v) for v in self.values]
        return " or ".join(items) if len(items) == 2 else ", ".join(items[:-1]) + f" or {items[-1]}"

    def check(self, value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(name, "an integer", value, f"use {self.listing()}")
        if value not in self.values:
            raise ValueProblem(NOT_ALLOWED, f"`{name}` must be {self.listing()}, found {value}",
                               f"expected {self.listing()}", self.hint or f"use {self.listing()}")
        return value

    def parse_env(self, text: str, name: str) -> int:
        return _parse_int_text(text, name)

    def describe(self) -> str:
        return f"{self.listing()}"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "enum": list(self.values)}


class Optional(msgspec.Struct, FieldType, frozen=True):
    """``inner`` or ``None``.  TOML has no null: omitting the key gives the
    default, and ``none_word`` (``"none"``) says ``None`` explicitly where the
    default is not already ``None`` or for clarity."""

    inner: FieldType
    none_word: str | None = "none"

    @property
    def annotation(self) -> Any:  # type: ignore[override]
        return self.inner.annotation | None

    def check(self, value: Any, name: str) -> Any:
        if value is None:
            return None
        if self.none_word and isinstance(value, str) and value.lower() == self.none_word:
            return None
        try:
            return self.inner.check(value, name)
        except ValueProblem as problem:
            if problem.code == WRONG_TYPE and self.none_word and not isinstance(self.inner, Choice):
                problem.help = (problem.help + "; " if problem.help else "") + \
                    f'`"{self.none_word}"` (or omitting the key where the default is none) means none'
            raise

    def parse_env(self, text: str, name: str) -> Any:
        if self.none_word and text.strip().lower() == self.none_word:
            return None
        return self.inner.parse_env(text, name)

    def describe(self) -> str:
        word = f' or `"{self.none_word}"`' if self.none_word else ""
        return f"{self.inner.describe()}{word}"

    def json_schema(self) -> dict[str, Any]:
        if not self.none_word:
            return self.inner.json_schema()
        return {"anyOf": [self.inner.json_schema(), {"const": self.none_word}]}

    def to_toml(self, value: Any) -> Any:
        return self.none_word if value is None else self.inner.to_toml(value)


class AutoOr(msgspec.Struct, FieldType, frozen=True):
    """The string ``"auto"`` (detected at run time, the seed's idiom) or a value of ``inner``."""

    inner: FieldType

    @property
    def annotation(self) -> Any:  # type: ignore[override]
        return self.inner.annotation | Literal["auto"]

    def check(self, value: Any, name: str) -> Any:
        if isinstance(value, str):
            if value.lower() == "auto":
                return "auto"
            raise ValueProblem(NOT_ALLOWED, f'`{name}` must be "auto" or {self.inner.describe()}, '
                               f"found {format_value(value)}", 'expected "auto"',
                               'write `"auto"` or a value such as ' + self._example())
        try:
            return self.inner.check(value, name)
        except ValueProblem as problem:
            if problem.code == WRONG_TYPE:
                problem.message = problem.message.replace(
                    "` must be ", '` must be "auto" or ', 1)
            raise

    def _example(self) -> str:
        return "`[4, 4]`" if isinstance(self.inner, IntList) else "`32`"

    def parse_env(self, text: str, name: str) -> Any:
        if text.strip().lower() == "auto":
            return "auto"
        return self.inner.parse_env(text, name)

    def describe(self) -> str:
        return f'"auto" or {self.inner.describe()}'

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"const": "auto"}, self.inner.json_schema()]}


class IntList(msgspec.Struct, FieldType, frozen=True):
    """A non-empty list of integers, each at least ``minimum`` (a device mesh)."""

    minimum: int = 1
    annotation = list[int]

    def check(self, value: Any, name: str) -> list[int]:
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(name, "an array of integers", value, "for example `[4, 4]`")
        if not value:
            raise ValueProblem(OUT_OF_RANGE, f"`{name}` must not be empty", "expected at least one axis",
                               "give one size per mesh axis, e.g. `[4, 4]`")
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int):
                raise ValueProblem(WRONG_TYPE, f"`{name}` must contain integers, found "
                                   f"{describe_kind(item)}", "expected an integer",
                                   "for example `[4, 4]`", item=index)
            if item < self.minimum:
                raise ValueProblem(OUT_OF_RANGE, f"every axis of `{name}` must be at least "
                                   f"{self.minimum}, found {item}",
                                   f"expected at least {self.minimum}", None, item=index)
        return list(value)

    def parse_env(self, text: str, name: str) -> list[int]:
        # The seed writes CAPIBARA_TPU_MESH="4,8"; "4x8" and "[4, 8]" are accepted too.
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        parts = re.split(r"\s*[,x×]\s*", body.strip())
        if not all(_INT_TEXT.fullmatch(p) for p in parts):
            raise ValueProblem(WRONG_TYPE, f"`{name}` must be a list of integers, found `{text}`",
                               "expected sizes separated by commas",
                               'write it like "4,8" (also accepted: "4x8", "[4, 8]", "auto")')
        return [int(p) for p in parts]

    def describe(self) -> str:
        return f"a non-empty array of integers ≥ {self.minimum}"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer", "minimum": self.minimum}, "minItems": 1}


class Subset(msgspec.Struct, FieldType, frozen=True):
    """A list of distinct strings taken from a closed set (``kernel_categories``: a
    misspelt category would otherwise select nothing, silently)."""

    values: tuple[str, ...]
    annotation = list[str]

    def check(self, value: Any, name: str) -> list[str]:
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(name, "an array of strings", value,
                              "for example `[" + ", ".join(f'"{v}"' for v in self.values[:2]) + "]`")
        seen: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueProblem(WRONG_TYPE, f"`{name}` must contain strings, found "
                                   f"{describe_kind(item)}", "expected a string", None, item=index)
            canonical = next((v for v in self.values if v == item.lower()), None)
            if canonical is None:
                near = closest(item, self.values)
                listing = ", ".join(f"`{v}`" for v in self.values)
                raise ValueProblem(NOT_ALLOWED, f"`{name}` may contain only {listing}, found "
                                   f"{format_value(item)}", "not a known category",
                                   f"did you mean `{near}`?" if near else f"use some of {listing}",
                                   item=index)
            if canonical in seen:
                raise ValueProblem(DUPLICATE_ITEM, f"`{name}` lists {format_value(canonical)} twice",
                                   "listed again", "list each category once", item=index)
            seen.append(canonical)
        return seen

    def parse_env(self, text: str, name: str) -> list[str]:
        return [p for p in re.split(r"\s*,\s*", text.strip()) if p]

    def describe(self) -> str:
        return "an array of distinct values from " + ", ".join(f"`{v}`" for v in self.values)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"enum": list(self.values)}, "uniqueItems": True}


class Pattern(msgspec.Struct, FieldType, frozen=True):
    """A short non-empty list of words from a closed set, repeats allowed, that
    repeats to cover something longer (the per-block ``mixers``)."""

    values: tuple[str, ...]
    max_items: int = 64
    annotation = list[str]

    def check(self, value: Any, name: str) -> list[str]:
        example = "for example `[" + ", ".join(f'"{v}"' for v in self.values[-1:] + self.values[:1]) + "]`"
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(name, "an array of strings", value, example)
        if not value:
            raise ValueProblem(OUT_OF_RANGE, f"`{name}` must not be empty", "expected at least one item",
                               example)
        if len(value) > self.max_items:
            raise ValueProblem(OUT_OF_RANGE, f"`{name}` has {len(value)} items, at most "
                               f"{self.max_items} are allowed", f"more than {self.max_items} items",
                               "write the shortest pattern that repeats")
        listing = ", ".join(f"`{v}`" for v in self.values)
        checked: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ValueProblem(WRONG_TYPE, f"`{name}` must contain strings, found "
                                   f"{describe_kind(item)}", "expected a string",
                                   f"use {listing}", item=index)
            canonical = next((v for v in self.values if v == item.lower()), None)
            if canonical is None:
                near = closest(item, self.values)
                raise ValueProblem(NOT_ALLOWED, f"`{name}` may contain only {listing}, found "
                                   f"{format_value(item)}", "not a known value",
                                   f"did you mean `{near}`?" if near else f"use {listing}",
                                   item=index)
            checked.append(canonical)
        return checked

    def parse_env(self, text: str, name: str) -> list[str]:
        return [p for p in re.split(r"\s*,\s*", text.strip()) if p]

    def describe(self) -> str:
        return (f"a non-empty array of at most {self.max_items} values from "
                + ", ".join(f"`{v}`" for v in self.values) + " (repeats allowed)")

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"enum": list(self.values)}, "minItems": 1,
                "maxItems": self.max_items}
