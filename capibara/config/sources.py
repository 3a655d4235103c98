"""Where configuration comes from, and who wins: files, environment, keywords, ``--set``.

:func:`resolve_config` is the one entry point the CLI, ``capibara.compile``
and ``ModularModelConfig.from_toml`` share.  Precedence, lowest first (the
usual twelve-factor order: what is set closer to the run wins)::

    defaults < files (in order, later files win key by key) < CAPIBARA_* environment
             < Python keywords < --set overrides        (< update_runtime_settings later)

Every source is decoded on its own, so each file, variable and override is
checked in full and every problem is reported with its own place, all in one
``ConfigError``.  Each field of the result records where its value came from
(``config.provenance(name)``).

Environment variables are exactly the names in the field table: the seed's
20 plus the systematic spellings ``CAPIBARA_USE_SPARSE``,
``CAPIBARA_JAX_DEBUG_MODE``, ``CAPIBARA_USE_ARM_OPTIMIZATIONS`` and
``CAPIBARA_TPU_MESH_SHAPE``.  Values are parsed by the field's type:
booleans are ``true/false/1/0/yes/no/on/off`` in any case, numbers in decimal
(``1e-4`` allowed for floats), enums in any case, the mesh as ``"4,8"``,
``"4x8"``, ``"[4, 8]"`` or ``"auto"``.  An empty value counts as unset.  Two
spellings of one field with different values are an error (S301); an unknown
``CAPIBARA_*`` variable is a warning with a "did you mean" (S104) that names it
and never shows its value.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import msgspec

from capibara.config.decode import ALIAS_CONFLICT, DecodedSource, decode_document, not_utf8
from capibara.diagnostics import ConfigError, Diagnostic, Label, Source
from capibara.config.fieldtypes import ValueProblem, closest, format_value
from capibara.config.model_config import (Assignment, ModularModelConfig, Provenance, build_config,
                                   check_keywords, raise_for)
from capibara.config.fields import ENV_VARS, FIELD_BY_NAME
from capibara.toml.reading import FILE_NOT_FOUND

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Resolved", "resolve_config", "resolve_path", "config_path", "read_file", "read_env",
           "TOOL_ENV"]

UNKNOWN_ENV = "S104"

#: ``CAPIBARA_*`` variables capibara itself reads that are not config fields (the CLI's
#: traceback switch, the host-target override of ``capibara.targets``, ``capibara serve``'s
#: API keys): never warned about.
TOOL_ENV: frozenset[str] = frozenset({"CAPIBARA_TRACEBACK", "CAPIBARA_HOST_TARGET",
                                      "CAPIBARA_API_KEYS"})

#: The seed's own prefix for the bundled presets (its examples load them by that path).
_SEED_PREFIX = ("capibara", "config", "configs_toml")


class Resolved(msgspec.Struct, frozen=True):
    """A resolved configuration and the warnings found on the way."""

    config: ModularModelConfig
    diagnostics: tuple[Diagnostic, ...]


# --------------------------------------------------------------------------- files


def resolve_path(path: str | os.PathLike[str]) -> tuple[Path | None, list[Path]]:
    """Find a config file: as given, then among the bundled presets.

    Returns ``(found, tried)``.  A relative path missing from the working
    directory is looked up in ``capibara.resources.configs_dir()``, also with
    the seed's ``capibara/config/configs_toml/`` or a leading ``configs/``
    removed, so ``production/tpu_v4.toml`` finds the preset.
    """
    from capibara.resources import configs_dir

    from pathlib import Path  # not needed by a check of files that exist, which skips this

    given = Path(path)
    tried = [given]
    if os.path.lexists(given):  # a dangling link or a link loop is the user's file: say what it is
        return given, tried
    if not given.is_absolute():
        parts = given.parts
        candidates = [parts]
        if parts[:3] == _SEED_PREFIX:
            candidates.append(parts[3:])
        if parts[:1] == ("configs",):
            candidates.append(parts[1:])
        for rest in candidates:
            if not rest:
                continue
            candidate = configs_dir().joinpath(*rest)
            if candidate not in tried:
                tried.append(candidate)
            if candidate.exists():
                return candidate, tried
    return None, tried


def config_path(path: str | os.PathLike[str]) -> str | os.PathLike[str] | None:
    """The file a config argument names: ``path`` itself when it exists, else the
    bundled preset :func:`resolve_path` finds for it; ``None`` when there is neither."""
    return path if _found_as_given(path) else resolve_path(path)[0]


def _found_as_given(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`resolve_path` would find ``path`` as given and name it as given: it
    exists, and pathlib spells it the same (no empty or ``.`` parts), so it is read without
    importing pathlib (~2 ms of a cold compile, benchmarks/cold_start.py)."""
    name = os.fspath(path)
    if os.name != "posix" or not isinstance(name, str) or not os.path.lexists(name):
        return False
    rest = name[1:] if name.startswith("/") and not name.startswith("//") else name
    return all(part not in ("", ".") for part in rest.split("/"))


def _shown_place(path: Path) -> str:
    """A place tried, as the user can recognise it: bundled presets by their preset name."""
    from capibara.resources import configs_dir

    try:
        return f"bundled preset `{path.relative_to(configs_dir())}`"
    except ValueError:
        return f"`{path}`"


def read_file(path: str | os.PathLike[str], text: str | None = None, *,
              spans: bool = True) -> DecodedSource:
    """Parse, legacy-rewrite and decode one file; never raises for bad input.

    ``text``, when given, is the file's content as an editor holds it (unsaved
    changes included): it is checked instead of what is on disk, under ``path``.
    ``spans=False`` reads only the values where it can (:mod:`capibara.toml.plain`,
    no parser loaded): every span and provenance place is then ``None``, which
    suits a check that only wants to know whether there is anything to say.
    """
    from capibara import toml

    if not spans and text is None and os.path.exists(path):  # a bundled preset is read in full
        from capibara.toml.plain import read_plain

        plain = read_plain(path)
        if plain is not None:
            return _decode(plain)
    if text is not None:
        try:
            doc = toml.parse(text, os.fspath(path))
        except ConfigError as error:
            return DecodedSource({}, error.diagnostics)
        return _decode(doc)
    found: str | os.PathLike[str] | None = path if _found_as_given(path) else None
    if found is None:
        found, tried = resolve_path(path)
    if found is None:
        places = ", ".join(_shown_place(p) for p in tried)
        return DecodedSource({}, (Diagnostic.error(
            FILE_NOT_FOUND, f"file `{os.fspath(path)}` not found", None,
            help=f"tried {places}; check the spelling, or name a bundled preset such as "
                 "`production/tpu_v4.toml`"),))
    try:
        doc = toml.parse_file(found)
    except ConfigError as error:
        return DecodedSource({}, error.diagnostics)
    return _decode(doc)


def _decode(doc: Any) -> DecodedSource:
    """Legacy-rewrite and decode one parsed file."""
    from capibara.config.legacy.rewrite import rewrite_document

    rewrite = rewrite_document(doc)
    decoded = decode_document(doc, rewrite.value, rewrite.origin)
    return DecodedSource(decoded.assignments, tuple(rewrite.diagnostics) + decoded.diagnostics)


# --------------------------------------------------------------------------- environment


def _env_source(name: str, text: str) -> Source:
    return Source(f"${name}", f"{name}={text}")


def read_env(env: Mapping[str, str]) -> DecodedSource:
    """Decode the ``CAPIBARA_*`` variables of ``env`` (other names are ignored)."""
    diagnostics: list[Diagnostic] = []
    by_field: dict[str, list[tuple[str, Assignment]]] = {}
    for name in sorted(env):
        if not name.startswith("CAPIBARA_") or name in TOOL_ENV:
            continue
        text = env[name]
        field = ENV_VARS.get(name)
        if field is None:
            # Only the name: the value of a variable capibara does not read may be anyone's
            # secret (`CAPIBARA_API_KEY=sk-...`), so it is never shown, nor even decoded.
            undecodable = not_utf8(f"${name}", name, f"environment variable name `{name}`")
            diagnostics.append(undecodable or _unknown_env(name, Source(f"${name}", name)))
            continue
        undecodable = not_utf8(f"${name}", f"{name}={text}", f"environment variable `{name}`")
        if undecodable is not None:
            diagnostics.append(undecodable)
            continue
        source = _env_source(name, text)
        if not text.strip():
            continue  # `export CAPIBARA_X=` clears a setting; no field takes an empty value
        span = source.span(len(name) + 1, len(source.text))
        try:
            value = field.type.check(field.type.parse_env(text, field.name), field.name)
        except ValueProblem as problem:
            diagnostics.append(Diagnostic.error(problem.code, problem.message, span,
                                                label=problem.label, help=problem.help))
            continue
        by_field.setdefault(field.name, []).append(
            (name, Assignment(field.name, value, Provenance("env", span, name))))

    assignments: dict[str, Assignment] = {}
    for field_name, found in by_field.items():
        first_name, first = found[0]
        clash = next(((n, a) for n, a in found[1:] if a.value != first.value), None)
        if clash is not None:
            other_name, other = clash
            diagnostics.append(Diagnostic.error(
                ALIAS_CONFLICT, f"`{field_name}` is set twice with different values: "
                f"`{first_name}` and `{other_name}`", other.provenance.span,
                label=f"this says {format_value(other.value)}",
                labels=[Label(first.provenance.span, f"this says {format_value(first.value)}")],
                help=f"unset one of them; `{FIELD_BY_NAME[field_name].env[0]}` is the seed's name"))
            continue
        # the seed's spelling is the one recorded when both agree
        seed_name = FIELD_BY_NAME[field_name].env[0]
        assignments[field_name] = next((a for n, a in found if n == seed_name), first)
    return DecodedSource(assignments, tuple(diagnostics))


def _unknown_env(name: str, source: Source) -> Diagnostic:
    near = closest(name, list(ENV_VARS), cutoff=0.8)
    flat = FIELD_BY_NAME.get(name.removeprefix("CAPIBARA_").lower())
    if near:
        help = f"did you mean `{near}`?"
    elif flat is not None:
        help = (f"`{flat.name}` has no environment variable; set `[{flat.section}] {flat.key}` "
                f"in a file or pass `--set {flat.path}=...`")
    else:
        help = "the variables are " + ", ".join(f"`{v}`" for v in ENV_VARS)
    return Diagnostic.warning(
        UNKNOWN_ENV, f"unknown environment variable `{name}` is ignored",
        source.span(0, len(name)), label="not a capibara setting",
        notes=("its value is not shown: it may be a secret",), help=help)


# --------------------------------------------------------------------------- layering


def resolve_config(paths: Sequence[str | os.PathLike[str]] = (), *,
                   env: Mapping[str, str] | None = os.environ,
                   overrides: Sequence[str] = (),
                   keywords: Mapping[str, Any] | None = None,
                   buffers: Mapping[str, str] | None = None, spans: bool = True) -> Resolved:
    """Layer files, environment, keywords and ``--set`` overrides into one config.

    ``paths`` compile in order, later files winning key by key; ``env=None``
    ignores the environment (``--no-env``); ``keywords`` are flat field names
    with Python values; ``overrides`` are ``--set`` arguments (``PATH=VALUE``,
    TOML value syntax); ``buffers`` maps some of ``paths`` to the text an
    editor holds for them, read instead of the files; ``spans=False`` reads
    files without places where it can (see :func:`read_file`).  Returns the config and the warnings; raises
    :class:`ConfigError` carrying every diagnostic (errors and warnings, in
    source order) when any source has an error.
    """
    diagnostics: list[Diagnostic] = []
    layers: list[Mapping[str, Assignment]] = []

    def add(decoded: DecodedSource) -> None:
        diagnostics.extend(decoded.diagnostics)
        layers.append(decoded.assignments)

    for path in paths:
        add(read_file(path, (buffers or {}).get(os.fspath(path)), spans=spans))
    if env is not None:
        add(read_env(env))
    if keywords:
        assignments, problems = check_keywords(keywords)
        add(DecodedSource(assignments, tuple(problems)))
    if overrides:
        from capibara.config.overrides import read_overrides

        add(read_overrides(overrides))
    raise_for(diagnostics)
    try:
        config = build_config(*layers)
    except ConfigError as error:
        raise_for(diagnostics + list(error.diagnostics))
        raise
    return Resolved(config, tuple(diagnostics))
