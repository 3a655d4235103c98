"""``ModularModelConfig``: the checked configuration, as a msgspec struct.

The struct's attributes are the 127 flat field names of
:data:`capibara.config.fields.FIELDS` (generated from the table, so the two cannot
drift).  It is plain data: msgspec encodes it, ``==`` compares values only,
and it is frozen, so every change goes through a checked path
(:meth:`~ModularModelConfig.update_runtime_settings`,
:meth:`~ModularModelConfig.replace`).

Construction is the seed's API, keyword arguments only::

    config = ModularModelConfig(hidden_size=1024, num_layers=24, vq_codes=128)
    config.num_heads                    # 16, derived as hidden_size // 64
    config.provenance("num_heads")      # Provenance(kind='derived', ...)
    config.explicit_fields              # frozenset({'hidden_size', 'num_layers', 'vq_codes'})

Every value is checked on its own (type, range, enum) and all problems are
reported at once as a :class:`~capibara.diagnostics.ConfigError`; an unknown
keyword raises :class:`UnknownFieldError`, which is also a ``TypeError``
(Python's convention for an unexpected keyword) and a ``KeyError`` (what a
runtime update raises for an unknown key, as dict updates do).  Cross-field
rules are not checked here: they are ``capibara.config.validate``'s job, as
in the seed's flow (build the config, then ``validate_full_config``).

The constructor does **not** read ``CAPIBARA_*`` variables: a constructor
that depends on the shell makes every config built in Python (by the
migrator, the validator's tests, ``replace``) differ between processes.  The
environment applies where configuration is *loaded*:
:meth:`ModularModelConfig.from_toml` and :func:`capibara.config.sources.resolve_config`.
"""

from __future__ import annotations

import copy as _copy
import os
import warnings
from dataclasses import replace as _dc_replace
from typing import Any, Mapping

import msgspec

from capibara.diagnostics import ConfigError, Diagnostic
from capibara.config.fieldtypes import format_value
from capibara.config.fields import FIELD_BY_NAME, FIELDS, RUNTIME_MUTABLE, SECURITY_SWITCHES

__all__ = [
    "ModularModelConfig",
    "Provenance",
    "Assignment",
    "UnknownFieldError",
    "ConfigWarning",
    "build_config",
    "check_keywords",
    "unknown_field",
]

# Re-exported: the seed's and the tests' import path for these names.
from capibara.config.values import (NOT_RUNTIME_MUTABLE, UNDERIVABLE, Assignment,  # noqa: F401
                                    ConfigWarning, Provenance, UnknownFieldError, _DEFAULT,
                                    check_keywords, raise_for, unknown_field)


# --------------------------------------------------------------------------- derivation

def _derive(values: dict[str, Any], provenance: dict[str, Provenance]) -> list[Diagnostic]:
    """Fill the derived defaults of the fields the user did not set.

    Each rule only touches a field whose provenance is still ``default``, so an
    explicit value always wins; contradictions between explicit values are the
    validator's.
    """
    diagnostics: list[Diagnostic] = []

    def unset(name: str) -> bool:
        return not provenance[name].explicit

    def put(name: str, value: Any, why: str) -> None:
        values[name] = value
        provenance[name] = Provenance("derived", None, why)

    hidden = values["hidden_size"]
    if unset("num_heads"):
        if hidden % 64:
            source = provenance["hidden_size"]
            diagnostics.append(Diagnostic.error(
                UNDERIVABLE, f"`num_heads` cannot be derived: `hidden_size` {hidden} is not a "
                "multiple of 64", source.span, label="not a multiple of 64",
                help=f"set `[model] num_heads` to a divisor of {hidden}, or use a hidden size "
                     "that is a multiple of 64 (head dimension 64)"))
            values["num_heads"] = None
        else:
            put("num_heads", hidden // 64, "hidden_size // 64")
    if unset("vq_embedding_dim"):
        put("vq_embedding_dim", hidden, "equal to hidden_size")
    if unset("auto_device_selection"):
        put("auto_device_selection", values["device"] == "auto", 'device == "auto"')
    # use_jax_native and jax_backend say the same thing; one explicit side decides the other.
    if not unset("use_jax_native") and unset("jax_backend") and values["use_jax_native"] is False:
        put("jax_backend", "standard", "use_jax_native = false")
    if not unset("jax_backend") and unset("use_jax_native") and values["jax_backend"] == "standard":
        put("use_jax_native", False, 'jax_backend = "standard"')
    # An explicit BitNet switch turns off the affine quantizer the user never asked for
    # (the two quantize the same weights).
    if values["use_bitnet"] and not unset("use_bitnet") and unset("use_affine_quantization"):
        put("use_affine_quantization", False, "use_bitnet = true")
    # The "high" preset fills every security switch the user left unset.
    if values["security_level"] == "high":
        for name in SECURITY_SWITCHES:
            if unset(name):
                put(name, True, 'security_level = "high"')
    # Enterprise mode means 128 codes (the seed's "128 codes + adaptive ML").
    if values["vq_enterprise_mode"] and unset("vq_codes"):
        put("vq_codes", 128, "vq_enterprise_mode = true")
    return diagnostics


def build_config(*layers: Mapping[str, Assignment]) -> "ModularModelConfig":
    """Build a config from layers of checked assignments, lowest precedence first.

    Later layers win field by field; fields no layer sets take their default
    or their derived value.  Raises :class:`ConfigError` if a derivation is
    impossible (``num_heads`` from a ``hidden_size`` that is not a multiple of 64).
    """
    values: dict[str, Any] = {}
    provenance: dict[str, Provenance] = {}
    for field in FIELDS:
        values[field.name] = _copy.copy(field.default)
        provenance[field.name] = _DEFAULT
    for layer in layers:
        for name, assignment in layer.items():
            values[name] = _copy.copy(assignment.value)
            provenance[name] = assignment.provenance
    raise_for(_derive(values, provenance))
    return _ConfigMeta.instantiate(ModularModelConfig, values, provenance)


# --------------------------------------------------------------------------- the struct


class _ConfigMeta(type(msgspec.Struct)):  # type: ignore[misc]
    """Routes ``ModularModelConfig(**kwargs)`` through the checks and derivations.

    msgspec structs cannot define ``__init__``; the metaclass's ``__call__`` is
    the one place construction can be intercepted.  Decoding with msgspec
    (``msgspec.json.decode(data, type=ModularModelConfig)``) bypasses it and
    yields the values exactly as encoded, with every field counted as explicit.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(f"{cls.__name__} takes keyword arguments only "
                            f"(got {len(args)} positional)")
        assignments, diagnostics = check_keywords(kwargs)
        raise_for(diagnostics)
        return build_config(assignments)

    def instantiate(cls, values: Mapping[str, Any], provenance: Mapping[str, Provenance]) -> Any:
        instance = super().__call__(**values)
        instance.__dict__["_provenance"] = dict(provenance)
        return instance


def _struct_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for field in FIELDS:
        default = field.default
        if isinstance(default, list):
            default = msgspec.field(default_factory=lambda d=default: list(d))
        defaults[field.name] = default
    return defaults


class ModularModelConfig(msgspec.Struct, frozen=True, kw_only=True, dict=True,
                         metaclass=_ConfigMeta):
    """The model configuration: one attribute per field of ``capibara.config.fields.FIELDS``,
    keyword-only construction, checked values, derived defaults and per-field
    provenance (see the module docstring).

    ``ModularModelConfig(**keywords)`` reads no ``CAPIBARA_*`` environment
    variable, on purpose: the same keywords give the same config on every
    machine. For the environment layered over files and keywords use
    :meth:`from_toml` or :func:`capibara.config.sources.resolve_config`
    (``env=os.environ``).
    """

    # The fields are generated from the table (one fact, one place): the class
    # namespace receives each field's annotation and default, as if written out.
    __annotations__ = {f.name: f.type.annotation for f in FIELDS}
    locals().update(_struct_defaults())

    # ----------------------------------------------------------------- provenance

    def _provenance_map(self) -> dict[str, Provenance]:
        recorded = self.__dict__.get("_provenance")
        if recorded is None:  # decoded by msgspec: the values are exactly as given
            recorded = {f.name: Provenance("keyword", None, "decoded") for f in FIELDS}
            self.__dict__["_provenance"] = recorded
        return recorded

    def provenance(self, name: str) -> Provenance:
        """Where field ``name``'s value came from (see :class:`Provenance`)."""
        if name not in FIELD_BY_NAME:
            raise UnknownFieldError([unknown_field(name)])
        return self._provenance_map()[name]

    @property
    def explicit_fields(self) -> frozenset[str]:
        """Names of the fields set explicitly (file, env, ``--set``, keyword, legacy, runtime)."""
        return frozenset(name for name, p in self._provenance_map().items() if p.explicit)

    def explicit_assignments(self) -> dict[str, Assignment]:
        """The explicitly set values with their provenance (to rebuild or re-layer a config)."""
        return {name: Assignment(name, _copy.copy(getattr(self, name)), p)
                for name, p in self._provenance_map().items() if p.explicit}

    # ----------------------------------------------------------------- views and copies

    def to_dict(self) -> dict[str, Any]:
        """Every field by flat name (lists copied)."""
        return {f.name: _copy.copy(getattr(self, f.name)) for f in FIELDS}

    def to_toml(self, *, full: bool = False) -> str:
        """TOML in the canonical layout (canonical sections and keys).

        By default only the explicitly set fields are written, so derived
        values stay derived when the file is read back and
        ``from_toml(to_toml(c)) == c`` keeps ``explicit_fields`` too;
        ``full=True`` writes every field.
        """
        from capibara.config.writer import write_config

        names = {f.name for f in FIELDS} if full else self.explicit_fields
        return write_config(self, names)

    def replace(self, **changes: Any) -> "ModularModelConfig":
        """A new config: this one's explicit values, then ``changes`` (checked, as keywords).

        Derived values are derived again, so ``replace(hidden_size=1024)`` also
        changes a derived ``num_heads``.
        """
        assignments, diagnostics = check_keywords(changes)
        raise_for(diagnostics)
        return build_config(self.explicit_assignments(), assignments)

    def __copy__(self) -> "ModularModelConfig":
        return _ConfigMeta.instantiate(type(self), self.to_dict(), self._provenance_map())

    def __deepcopy__(self, memo: dict) -> "ModularModelConfig":
        return self.__copy__()

    # ----------------------------------------------------------------- runtime updates

    def update_runtime_settings(self, updates: Mapping[str, Any]) -> None:
        """Change runtime-mutable fields in place, all or nothing (the seed's runtime update).

        Keys are flat field names, values Python-typed.  Every key must name a
        runtime-mutable field and every value must pass its field's checks;
        then the changed config is revalidated in full
        (``capibara.config.validate.get_validation_errors``) and applied only if it
        has no errors.  Refusals raise :class:`ConfigError` naming each
        offending field and why (:class:`UnknownFieldError` for unknown keys).
        """
        if not isinstance(updates, Mapping):
            raise TypeError(f"update_runtime_settings expects a mapping of field names to values, "
                            f"got {type(updates).__name__}")
        diagnostics: list[Diagnostic] = []
        checkable: dict[str, Any] = {}
        for name, value in updates.items():
            if name in FIELD_BY_NAME and name not in RUNTIME_MUTABLE:
                diagnostics.append(_immutable(name, value))
            else:
                checkable[name] = value
        assignments, problems = check_keywords(checkable, "runtime", detail="update_runtime_settings",
                                               what="runtime setting")
        raise_for(diagnostics + problems)
        candidate = build_config(self.explicit_assignments(), assignments)

        from capibara.config.validate import get_validation_errors

        errors = [d for d in get_validation_errors(candidate) if d.is_error]
        if errors:
            refused = ", ".join(f"`{n}`" for n in updates)
            raise ConfigError([_dc_replace(d, notes=d.notes + (
                f"update_runtime_settings refused the update of {refused}; nothing was changed",))
                for d in errors])
        for field in FIELDS:
            msgspec.structs.force_setattr(self, field.name, getattr(candidate, field.name))
        self.__dict__["_provenance"] = candidate._provenance_map()

    # ----------------------------------------------------------------- loading

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *more_paths: str | os.PathLike[str],
                  env: Mapping[str, str] | None = os.environ, **overrides: Any
                  ) -> "ModularModelConfig":
        """Load one or more TOML files, layered in order (later files win key by key).

        Precedence, lowest first: defaults < files < ``CAPIBARA_*`` variables
        in ``env`` (``None`` ignores the environment) < ``overrides`` (flat
        field names, as keywords).  A relative path not found in the working
        directory is looked up among the bundled presets, so the seed's
        ``"capibara/config/configs_toml/production/tpu_v4.toml"`` and
        ``"production/tpu_v4.toml"`` both work.  Warnings (legacy keys,
        unknown variables) are issued as :class:`ConfigWarning`; errors raise
        :class:`ConfigError` with every diagnostic.
        """
        from capibara.diagnostics import render
        from capibara.config.sources import resolve_config

        resolved = resolve_config([path, *more_paths], env=env, keywords=overrides)
        for diagnostic in resolved.diagnostics:
            warnings.warn(render(diagnostic), ConfigWarning, stacklevel=2)
        return resolved.config


def _immutable(name: str, value: Any) -> Diagnostic:
    mutable = ", ".join(f"`{n}`" for n in sorted(RUNTIME_MUTABLE))
    return Diagnostic.error(
        NOT_RUNTIME_MUTABLE, f"`{name}` cannot change at run time (to {format_value(value)})",
        None, notes=(f"the runtime-mutable fields are {mutable}",),
        help="build a new config (and a new model) to change it, e.g. "
             f"`config.replace({name}=...)`")
