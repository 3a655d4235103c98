"""The one-input functions the fuzzers drive, shared with the regression tests.

Each target takes the raw bytes of one fuzz input and runs one front door of
capibara on them. The contract under test is the house rule for bad input:
:class:`~capibara.diagnostics.ConfigError` is the only exception allowed out,
and its diagnostics must render. Anything else (``KeyError``, ``RecursionError``,
``UnicodeEncodeError``, an ``AssertionError`` from a check below) is a crash.

Targets, by name (the harness file is ``fuzz/fuzz_<name>.py``):

``toml``
    The bytes as a TOML file: UTF-8 decoding (byte-order mark, bad bytes),
    then the parser; a document that parses must give what :mod:`tomllib`
    gives (the one allowed difference: integers beyond 64 bits, P106).
``override``
    NUL-separated arguments: one starting with ``$`` is an environment
    assignment ``$NAME=VALUE``, any other a ``--set`` argument, decoded from
    bytes as ``sys.argv`` is (``surrogateescape``), then resolved together.
``compile``
    The first byte picks a target from :data:`COMPILE_TARGETS`, the rest is a
    config file: read, parsed, legacy-rewritten, decoded, validated, lowered,
    optimized and frozen. Every diagnostic must sit on a whole token of the
    file (:func:`capibara.testing.spans.span_problems`); a plan that comes
    out must encode, decode to itself and pass its own verification.
``plan``
    The first byte picks a mode: ``0`` passes the rest to
    :func:`capibara.plan.decode_plan` as a file would (digest checked);
    ``1`` treats the rest as a JSON plan body and seals it with the right
    digest first, so the fuzzer reaches the layout checks behind the digest.
    A plan that loads must re-encode and load again to the same plan.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Callable, TypeVar

import msgspec

from capibara.diagnostics import ConfigError, render_all, to_json

__all__ = ["TARGETS", "COMPILE_TARGETS", "run_target", "compile_input"]

T = TypeVar("T")

#: Targets the compile harness picks from with its first byte: ``None`` is the
#: config's own ``device`` on the host the catalog detects.
COMPILE_TARGETS: tuple[str | None, ...] = (None, "cpu", "cpu-amx", "cpu-arm", "gpu-h100",
                                           "tpu_v4-32", "tpu_v6e-8", "tpu_v4-8")

#: Where the compile target writes its one file per input (memory-backed when possible).
_SCRATCH = Path(os.environ.get("FUZZ_TMPDIR") or
                ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()))


def _check_renders(error: ConfigError) -> None:
    """The diagnostics of a refusal must render as text and as JSON (what the CLI prints)."""
    assert error.diagnostics, "a ConfigError without diagnostics tells the user nothing"
    text = render_all(error.diagnostics)
    # The CLI writes to a UTF-8 stream; a lone surrogate in the text would crash it there.
    text.encode("utf-8")
    for diagnostic in error.diagnostics:
        to_json(diagnostic).encode("utf-8")


def _out_of_int64(value: object) -> bool:
    if isinstance(value, dict):
        return any(_out_of_int64(v) for v in value.values())
    if isinstance(value, list):
        return any(_out_of_int64(v) for v in value)
    return type(value) is int and not -(2**63) <= value < 2**63


def fuzz_toml(data: bytes) -> None:
    """Parse ``data`` as a TOML file; compare with :mod:`tomllib`."""
    from capibara import toml
    from capibara.testing.strategies import same_toml_value
    from capibara.toml.reading import decode as _decode

    try:
        text = _decode(data, "fuzz.toml")
    except ConfigError as error:
        _check_renders(error)
        return
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        expected = None
    except RecursionError:  # tomllib recurses per nesting level; capibara refuses deep nesting
        expected = None
    try:
        got = toml.loads(text, source="fuzz.toml")
    except ConfigError as error:
        _check_renders(error)
        if expected is not None:
            codes = {d.code for d in error.diagnostics}
            # P106 (beyond 64 bits) and P113 (deeper than MAX_NESTING) are capibara's own limits.
            assert _out_of_int64(expected) or codes & {"P113"}, \
                f"tomllib accepts what capibara refuses: {codes}"
        return
    assert expected is not None, "capibara accepts a document tomllib refuses"
    assert same_toml_value(got, expected), "capibara and tomllib read different values"


def _arguments(data: bytes) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    sets: list[str] = []
    for chunk in data.split(b"\0"):
        argument = chunk.decode("utf-8", "surrogateescape")
        if argument.startswith("$"):
            name, _, value = argument[1:].partition("=")
            env[name] = value
        else:
            sets.append(argument)
    return env, sets


def fuzz_override(data: bytes) -> None:
    """Resolve ``--set`` arguments and ``CAPIBARA_*`` variables drawn from ``data``."""
    from capibara.config.sources import resolve_config

    env, sets = _arguments(data)
    try:
        resolved = resolve_config([], env=env, overrides=sets)
    except ConfigError as error:
        _check_renders(error)
        return
    if resolved.diagnostics:
        _check_renders(ConfigError(resolved.diagnostics))
    _check_round_trip(resolved.config)


def _with_file(data: bytes, use: Callable[[str], T]) -> T:
    """``use(path)`` on a scratch file holding ``data`` (the real file-reading path runs)."""
    fd, name = tempfile.mkstemp(suffix=".toml", dir=_SCRATCH)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return use(name)
    finally:
        os.unlink(name)


def _check_round_trip(config: Any) -> None:
    """A resolved config written with ``to_toml`` must read back as the same config."""
    from capibara.config.sources import resolve_config

    data = config.to_toml().encode("utf-8")
    back = _with_file(data, lambda name: resolve_config([name], env=None).config)
    assert back == config, "to_toml does not read back as the same config"


def compile_input(data: bytes) -> tuple[str | None, bytes]:
    """Split a compile input into (target, file bytes)."""
    if not data:
        return None, b""
    return COMPILE_TARGETS[data[0] % len(COMPILE_TARGETS)], data[1:]


def fuzz_compile(data: bytes) -> None:
    """Compile the file in ``data`` for the target its first byte picks."""
    from capibara import toml
    from capibara.compiler.driver import compile_sources
    from capibara.plan import compute_digest, decode_plan, encode_plan
    from capibara.testing.spans import span_problems
    from capibara.toml.reading import decode as _decode

    target, body = compile_input(data)
    documents = {}

    def run(name: str):
        try:
            documents[name] = toml.parse(_decode(body, name), name)
        except ConfigError:
            pass
        return compile_sources([name], target=target, env=None)

    result = _with_file(body, run)
    if result.diagnostics:
        _check_renders(ConfigError(result.diagnostics))
        problems = span_problems(result.diagnostics, documents)
        assert not problems, problems
    if result.plan is None:
        assert result.has_errors, "no plan and no error"
        return
    plan = result.plan
    assert plan.digest == compute_digest(plan)
    for fmt in ("json", "msgpack"):
        assert decode_plan(encode_plan(plan, fmt), f"fuzz.{fmt}", fmt) == plan


def _sealed(body: bytes) -> bytes:
    """``body`` (JSON) with its ``digest`` set to what the loader will compute."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return body
    if not isinstance(raw, dict):
        return body
    raw["digest"] = ""
    try:
        canonical = msgspec.json.encode(raw, order="sorted")
    except (TypeError, ValueError, OverflowError):
        return body
    raw["digest"] = "sha256:" + hashlib.sha256(canonical).hexdigest()
    return msgspec.json.encode(raw)


def fuzz_plan(data: bytes) -> None:
    """Load plan bytes (mode 0) or a resealed JSON plan body (mode 1)."""
    from capibara.plan import decode_plan, encode_plan, seal

    if not data:
        mode, body = 0, b""
    else:
        mode, body = data[0] % 2, data[1:]
    if mode == 1:
        body = _sealed(body)
    try:
        plan = decode_plan(body, "fuzz.plan")
    except ConfigError as error:
        _check_renders(error)
        return
    for fmt in ("json", "msgpack"):
        assert decode_plan(encode_plan(plan, fmt), "again.plan", fmt) == seal(plan)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "toml": fuzz_toml,
    "override": fuzz_override,
    "compile": fuzz_compile,
    "plan": fuzz_plan,
}


def run_target(name: str, data: bytes) -> None:
    """Run target ``name`` on ``data`` (raises whatever the target lets out)."""
    TARGETS[name](data)
