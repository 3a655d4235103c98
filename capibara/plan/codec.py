"""Plan bytes: canonical encoding, the digest, and reading and writing plan files.

Encoding is canonical, so the same inputs always give byte-identical files:

- struct fields and dict keys are written in sorted order;
- floats use the shortest text that reads back as the same float, and
  non-finite floats are refused (JSON has no spelling for them);
- the digest is the sha256 of the compact canonical JSON with ``digest``
  set to ``""``, whatever container the file uses, so a JSON plan and its
  msgpack twin carry the same digest.

    >>> blob = encode_plan(plan)                  # JSON, indented, digest filled in
    >>> write_plan_file(plan, "tpu_v4.plan.json")  # atomic: temp file + os.replace
    >>> load_plan_file("tpu_v4.plan.json")         # bounded read, then decode_plan

Loading never half-uses a file: a truncated, edited, foreign, oversized or
inconsistent file is refused with a :class:`~capibara.diagnostics.ConfigError`
carrying ``R1xx`` diagnostics. The digest is a checksum anyone can recompute,
so a sealed plan is still checked field by field (:mod:`capibara.plan.validate`).
No pickle anywhere; this module imports no JAX.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import msgspec

from capibara.diagnostics import ConfigError, Diagnostic
from capibara.plan.types import FORMAT, FORMAT_FAMILY, Plan

if TYPE_CHECKING:
    from pathlib import Path

# CPython's own sha256, as hashlib's fallback is: hashlib loads OpenSSL first, ~1.7 ms of a
# cold `capibara compile` (benchmarks/cold_start.py); the digest is the same.
try:
    from _sha256 import sha256 as _sha256  # Python 3.11
except ImportError:
    try:
        from _sha2 import sha256 as _sha256  # Python 3.12 and later
    except ImportError:
        from hashlib import sha256 as _sha256

__all__ = [
    "MAX_PLAN_BYTES",
    "MAX_PLAN_DEPTH",
    "canonical_bytes",
    "compute_digest",
    "seal",
    "plan_format_for",
    "encode_plan",
    "write_plan_file",
    "is_compatible",
    "decode_plan",
    "load_plan_file",
    "read_plan_bytes",
]

#: The largest plan file read. Plans of the bundled configs are 20-60 KB; a
#: thousand kernels would still fit, and no read grows past this before it is refused.
MAX_PLAN_BYTES = 16 << 20
#: The deepest nesting of objects and arrays a plan may hold. A plan's own
#: layout is 4 deep (``kernels[i].shapes.q``); config values add one or two.
MAX_PLAN_DEPTH = 16

NOT_FOUND = "R101"
CORRUPT = "R102"
NOT_A_PLAN = "R103"
INCOMPATIBLE = "R104"
MODIFIED = "R105"
NOT_A_REGULAR_FILE = "R106"
OVER_BOUNDS = "R107"

_JSON = msgspec.json.Encoder(order="sorted")
_MSGPACK = msgspec.msgpack.Encoder(order="sorted")
_DIGEST_PREFIX = "sha256:"


# --------------------------------------------------------------------------- encoding


def _non_finite(plan: Plan) -> Iterator[str]:
    """Paths of non-finite floats. Every float in a plan is a config value (the
    ``config`` section, and copies of it in decisions), a loss weight or a
    catalog fact, so only those are walked: the whole tree would cost more
    than the compile."""
    for path, value in plan.config.items():
        for leaf in (value if isinstance(value, list) else (value,)):
            if isinstance(leaf, float) and not math.isfinite(leaf):
                yield f"config.{path}"
    for decision in plan.decisions:
        for value in (decision.before, decision.after):
            if isinstance(value, float) and not math.isfinite(value):
                yield f"decisions.{decision.path}"
    for name in plan.loss.__struct_fields__:
        if not math.isfinite(getattr(plan.loss, name)):
            yield f"loss.{name}"


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
    return _DIGEST_PREFIX + _sha256(canonical_bytes(plan)).hexdigest()


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
    """Write ``plan`` atomically (:func:`capibara.files.replace_atomically`: a temp
    file in the same folder, then ``os.replace``).

    A reader never sees a half-written plan, and a crash leaves the previous
    file (if any) intact. Returns the path written.
    """
    from pathlib import Path

    from capibara.files import replace_atomically

    target = Path(path)
    replace_atomically(target, encode_plan(plan, plan_format_for(target, fmt)))
    return target


# --------------------------------------------------------------------------- reading


def _refuse(code: str, message: str, *, notes: Iterable[str] = (), help: str | None = None) -> ConfigError:
    return ConfigError([Diagnostic.error(code, message, notes=notes, help=help)])


def read_plan_bytes(path: str | os.PathLike[str], limit: int = MAX_PLAN_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them
    (:func:`capibara.files.read_regular_file`: opened without blocking, its kind
    checked on the open descriptor). A device, FIFO or directory is ``R106``, a
    file over ``limit`` bytes ``R107`` before any of it is read, a missing or
    unreadable file or a symlink loop ``R101``."""
    from capibara.files import FileProblem, read_regular_file

    name = str(path)
    try:
        return read_regular_file(path, limit)
    except FileProblem as problem:
        if problem.kind == "not-regular":
            raise _refuse(NOT_A_REGULAR_FILE, f"plan `{name}` cannot be read: {problem.reason}",
                          notes=["capibara reads plans only from regular files, so a device or "
                                 "pipe can neither hang it nor feed it without end"],
                          help="pass a plan written by `capibara compile CONFIG.toml -o PLAN`") from None
        if problem.kind == "too-large":
            raise _refuse(OVER_BOUNDS, f"plan file `{name}` is too large to be a plan",
                          notes=[f"{problem.reason}; plans of the bundled configs are 20-60 KB"],
                          help="pass a plan written by `capibara compile CONFIG.toml -o PLAN`") from None
        if problem.kind == "missing":
            raise _refuse(NOT_FOUND, f"plan file `{name}` not found",
                          notes=[problem.reason] if problem.reason != "no such file" else [],
                          help="compile one with `capibara compile CONFIG.toml -o PLAN`") from None
        raise _refuse(NOT_FOUND, f"plan file `{name}` cannot be read",
                      notes=[problem.reason]) from None


def _depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests lists and dicts, counting no further than ``limit`` + 1.

    Iterative: a hostile plan must not be able to exhaust the Python stack here."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _too_deep(name: str) -> ConfigError:
    return _refuse(OVER_BOUNDS, f"plan `{name}` is nested too deeply to be a plan",
                   notes=[f"plans nest objects and arrays at most {MAX_PLAN_DEPTH} deep"],
                   help="pass a plan written by `capibara compile CONFIG.toml -o PLAN`")


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


def _format_version(found: str) -> int | None:
    tail = found.removeprefix(FORMAT_FAMILY)
    return int(tail) if tail.isdigit() and len(tail) < 6 else None


def decode_plan(data: bytes, name: str = "<plan>", fmt: str | None = None) -> Plan:
    """Verify and decode plan bytes; raise :class:`ConfigError` (``R1xx``) on any doubt.

    Checks, in order: the bytes decode (``R102`` truncated or corrupt) and nest
    no deeper than a plan does (``R107``), they are a capibara plan (``R103``),
    in this format (``R104``), from a compatible compiler (``R104``),
    unmodified since they were sealed (``R105``), match the plan schema
    exactly (``R103``), and every value is in its domain and every reference
    resolves (``R110``-``R112``, :func:`capibara.plan.validate.validate_plan`).
    """
    from capibara import __version__

    fmt = fmt or ("json" if data.lstrip()[:1] in (b"{", b"[") else "msgpack")
    decoder = msgspec.json if fmt == "json" else msgspec.msgpack
    recompile = f"recompile it: `capibara compile CONFIG.toml -o {name}`"
    try:
        raw = decoder.decode(data)
    except RecursionError:
        raise _too_deep(name) from None
    # msgspec reports invalid UTF-8 inside a JSON string as UnicodeDecodeError (found by fuzzing)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        truncated = "truncated" in str(error).lower() or not data.strip()
        what = "truncated" if truncated else "corrupt"
        raise _refuse(
            CORRUPT, f"plan `{name}` is {what}",
            notes=[f"decoding as {fmt} failed: {str(error).rstrip('.')}"],
            help=f"the file was not written completely or was damaged; {recompile}") from None
    if _depth(raw, MAX_PLAN_DEPTH) > MAX_PLAN_DEPTH:
        raise _too_deep(name)
    written_by = "pass a plan written by `capibara compile CONFIG.toml -o PLAN`"
    if not isinstance(raw, dict) or "format" not in raw:
        raise _refuse(NOT_A_PLAN, f"`{name}` is not a capibara plan",
                      notes=[f"a plan is a {fmt} object whose `format` is `{FORMAT}`"],
                      help=written_by)
    found = raw.get("format")
    if found != FORMAT:
        version = _format_version(found) if isinstance(found, str) else None
        if isinstance(found, str) and found.startswith(FORMAT_FAMILY):
            older = version is not None and version < _format_version(FORMAT)
            raise _refuse(INCOMPATIBLE, f"plan `{name}` has format `{found}`, this capibara reads `{FORMAT}`",
                          notes=["it was written by an earlier capibara, before the plan "
                                 "layout changed"] if older else [],
                          help=recompile if older else
                          f"use the capibara release that wrote it, or {recompile}")
        raise _refuse(NOT_A_PLAN, f"`{name}` is not a capibara plan",
                      notes=[f"its `format` is {msgspec.json.encode(found).decode()}, "
                             f"expected `{FORMAT}`"],
                      help=written_by)
    compiler = raw.get("compiler")
    version = compiler.get("version") if isinstance(compiler, dict) else None
    if not isinstance(version, str) or not is_compatible(version, __version__):
        shown = msgspec.json.encode(version).decode() if not isinstance(version, str) else version
        raise _refuse(INCOMPATIBLE, f"plan `{name}` was written by capibara {shown[:40]}, "
                                    f"which this capibara {__version__} cannot load",
                      notes=["plans load across patch releases (and minor releases from 1.0 on)"],
                      help=f"use that capibara to run it, or {recompile}")
    claimed = raw.get("digest")
    raw["digest"] = ""
    try:
        actual = _DIGEST_PREFIX + _sha256(_JSON.encode(raw)).hexdigest()
    except (TypeError, ValueError, OverflowError) as error:
        raise _refuse(CORRUPT, f"plan `{name}` is corrupt", notes=[str(error)],
                      help=recompile) from None
    if claimed != actual:
        shown = claimed if isinstance(claimed, str) else msgspec.json.encode(claimed).decode()
        raise _refuse(MODIFIED, f"plan `{name}` was modified after it was written",
                      notes=[f"its digest says `{shown[:80]}`", f"its contents hash to `{actual}`"],
                      help=f"never edit a plan; change the config and {recompile}")
    raw["digest"] = claimed
    try:
        plan = msgspec.convert(raw, Plan)
    except msgspec.ValidationError as error:
        raise _refuse(NOT_A_PLAN, f"`{name}` does not match the `{FORMAT}` layout",
                      notes=[str(error)], help=written_by) from None
    # A loaded plan must be writable again in either container; a free-form value may
    # hold what one cannot (an integer beyond 64 bits, a msgpack NaN). Found by fuzzing.
    try:
        _MSGPACK.encode(plan)
        canonical_bytes(plan)
    except (OverflowError, ValueError) as error:
        raise _refuse(NOT_A_PLAN, f"`{name}` holds a value no plan can hold",
                      notes=[str(error)], help=written_by) from None
    from capibara.plan.validate import validate_plan

    validate_plan(plan, name)
    return plan


def load_plan_file(path: str | os.PathLike[str], fmt: str | None = None) -> Plan:
    """Read (bounded, regular files only) and verify a plan file (JAX-free).
    See :func:`read_plan_bytes` and :func:`decode_plan` for the checks."""
    name = str(path)
    data = read_plan_bytes(path)
    if fmt is None and name.endswith((".msgpack", ".mpk")):
        fmt = "msgpack"
    elif fmt is None and name.endswith(".json"):
        fmt = "json"
    return decode_plan(data, name, fmt)
