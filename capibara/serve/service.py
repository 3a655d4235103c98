"""What a server serves: a plan, its config, the options given at start, and the
checks that must pass before anything listens.

Everything here is JAX-free: a server that must refuse to start (a TLS setting
without a certificate, a safety setting without its hook) says so in
milliseconds, with a diagnostic pointing at the field that asks for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from capibara.diagnostics import ConfigError, Diagnostic, Source, Span
from capibara.files import read_regular_file
from capibara.serve.names import API_KEYS_ENV

__all__ = ["ServeOptions", "OptionError", "ListenError", "Service", "load_service",
           "load_api_keys", "startup_diagnostics", "TLS_MISSING", "NO_API_KEYS",
           "TOKENIZER_UNUSABLE"]

TLS_MISSING = "R403"
NO_API_KEYS = "R404"
TOKENIZER_UNUSABLE = "R405"
MIXERS_NOT_SERVED = "R406"

#: Key files, certificates and plan files are small; a bigger file is a wrong path.
MAX_FILE_BYTES = 64 << 20


class OptionError(ValueError):
    """A serving option that does not fit the model (a bucket longer than its context)."""


class ListenError(OSError):
    """The address or port cannot be listened on."""


@dataclass(frozen=True)
class ServeOptions:
    """How to serve, beyond what the plan says (``capibara serve --help`` lists each).

    ``hooks`` maps a hook's option name (``output-filter``, ``content-safety``,
    ...; see :data:`capibara.serve.hooks.HOOKS`) to ``module:function``.
    ``rate_limit`` is requests per minute per API key (per client address
    without keys); ``None`` sets no limit, except on the MCP server with
    ``mcp_rate_limiting``, which then allows :data:`DEFAULT_MCP_RATE`.
    ``chunk_tokens`` is how many tokens one batching round generates for
    each request (the streaming granularity); ``batch_buckets`` and
    ``length_buckets`` are the padded shapes compiled at warm-up (default:
    see :func:`capibara.serve.batching.default_buckets`).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    tokenizer: str | None = None
    api_key_env: str = API_KEYS_ENV
    api_key_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    hooks: Mapping[str, str] = field(default_factory=dict)
    rate_limit: float | None = None
    chunk_tokens: int = 8
    batch_window_ms: float = 5.0
    batch_buckets: tuple[int, ...] | None = None
    length_buckets: tuple[int, ...] | None = None
    mcp_port: int | None = None


#: Requests per minute per key on the MCP server when ``mcp_rate_limiting`` is on
#: and no ``--rate-limit`` is given.
DEFAULT_MCP_RATE = 60.0


@dataclass
class Service:
    """A plan to serve with its config; ``origin`` is the file it came from."""

    plan: Any
    config: Any
    origin: str
    from_plan_file: bool

    def setting(self, name: str) -> Any:
        return getattr(self.config, name)

    def span_of(self, name: str) -> Span | None:
        """Where field ``name`` was set: its value in a TOML file or ``--set``, or
        its entry in the plan file's ``services`` section."""
        provenance = self.config.provenance(name)
        if provenance.span is not None:
            return provenance.span
        if not self.from_plan_file:
            return None
        try:
            text = read_regular_file(self.origin, MAX_FILE_BYTES).decode("utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        services = text.find('"services"')
        start = text.find(f'"{name}"', services if services >= 0 else 0)
        if start < 0:
            return None
        end = text.find("\n", start)
        entry = text[start:end if end >= 0 else len(text)].rstrip(",")
        return Source(self.origin, text).span(start, start + len(entry))

    def where(self, name: str) -> str:
        """How the value of ``name`` came to be, for a note."""
        provenance = self.config.provenance(name)
        value = json.dumps(getattr(self.config, name))
        return f"`{name}` is {value} ({provenance.kind})"


def load_service(path: str, *, overrides: Sequence[str] = (), target: str | None = None,
                 env: Mapping[str, str] | None = None) -> Service:
    """A plan file, or a TOML config compiled for ``target`` (default: this host).

    For a plan, ``overrides`` (``--set PATH=VALUE``) may change only
    runtime-mutable fields, exactly as a live update would (``S501``
    otherwise); for a config they are ordinary overrides. Raises
    :class:`ConfigError`.
    """
    from capibara.cli.plan import is_plan_path

    if is_plan_path(path):
        from capibara.plan import config_of_plan, load_plan_file

        plan = load_plan_file(path)
        config = config_of_plan(plan)
        if overrides:
            config.update_runtime_settings(_override_values(overrides))
        return Service(plan, config, path, from_plan_file=True)
    from capibara.compiler import compile_config
    from capibara.config.sources import resolve_config

    resolved = resolve_config([path], env=env, overrides=overrides)
    result = compile_config(resolved.config, target)
    if result.plan is None:
        raise ConfigError(list(resolved.diagnostics) + result.diagnostics)
    return Service(result.plan, resolved.config, path, from_plan_file=False)


def _override_values(overrides: Sequence[str]) -> dict[str, Any]:
    """``--set`` arguments as flat field names with checked values (for a plan's runtime fields)."""
    from capibara.config.sources import resolve_config

    resolved = resolve_config([], env=None, overrides=overrides)
    config = resolved.config
    return {name: getattr(config, name) for name in config.explicit_fields}


def load_api_keys(options: ServeOptions, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The accepted API keys: from the environment variable and/or the key file
    (one per line; blank lines and ``#`` comments skipped). Raises ``ValueError``."""
    keys = [k.strip() for k in environ.get(options.api_key_env, "").replace("\n", ",").split(",")]
    if options.api_key_file:
        text = read_regular_file(options.api_key_file, MAX_FILE_BYTES).decode("utf-8")
        keys += [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    return tuple(dict.fromkeys(k for k in keys if k))


def startup_diagnostics(service: Service, options: ServeOptions,
                        environ: Mapping[str, str]) -> tuple[list[Diagnostic], tuple[str, ...]]:
    """Everything that stops the server from starting, and the API keys found."""
    from capibara.serve.hooks import hook_diagnostics

    found = hook_diagnostics(service, options.hooks)
    if service.setting("request_encryption"):
        missing = [name for name, value in (("--tls-cert", options.tls_cert),
                                            ("--tls-key", options.tls_key)) if not value]
        if missing:
            found.append(Diagnostic.error(
                TLS_MISSING, f"`request_encryption` is on, but no {' or '.join(missing)} was given",
                service.span_of("request_encryption"), label="asks for TLS",
                help="start with `--tls-cert CERT.pem --tls-key KEY.pem`, or set "
                     "`enterprise.request_encryption = false` behind a TLS-terminating proxy"))
        else:
            for option, path in (("--tls-cert", options.tls_cert), ("--tls-key", options.tls_key)):
                try:
                    read_regular_file(path, MAX_FILE_BYTES)
                except (OSError, ValueError) as error:
                    found.append(Diagnostic.error(
                        TLS_MISSING, f"{option} `{path}` cannot be read: {_reason(error)}",
                        service.span_of("request_encryption"), label="asks for TLS",
                        help="give a PEM certificate and its private key"))
    mixers = getattr(service.plan.model, "mixers", None)
    if isinstance(mixers, tuple) and set(mixers) != {"attention"}:
        found.append(Diagnostic.error(
            MIXERS_NOT_SERVED, f"the server cannot batch a model with `{'`, `'.join(sorted(set(mixers) - {'attention'}))}` blocks yet",
            service.span_of("mixers"), label="not attention only",
            notes=("the server left-pads prompts of different lengths into one batch; attention "
                   "ignores the padding through its mask, but ssm and hyena blocks would carry "
                   "it in their state",),
            help="serve a plan whose `model.mixers` is [\"attention\"], or generate with "
                 "`capibara run PLAN --generate N`, which needs no padding"))
    keys: tuple[str, ...] = ()
    needs_keys = service.setting("api_key_required") or (
        service.setting("mcp_enabled") and service.setting("mcp_auth_required"))
    if needs_keys:
        field_name = ("api_key_required" if service.setting("api_key_required")
                      else "mcp_auth_required")
        try:
            keys = load_api_keys(options, environ)
        except (OSError, ValueError, UnicodeDecodeError) as error:
            found.append(Diagnostic.error(
                NO_API_KEYS, f"--api-key-file `{options.api_key_file}` cannot be read: "
                f"{_reason(error)}", service.span_of(field_name), label="needs API keys",
                help="give a readable file with one key per line"))
        else:
            if not keys:
                found.append(Diagnostic.error(
                    NO_API_KEYS, f"`{field_name}` is on, but no API key was given",
                    service.span_of(field_name), label="needs API keys",
                    notes=("keys never live in a config or plan",),
                    help=f"set `{options.api_key_env}` (keys separated by commas) or pass "
                         "`--api-key-file FILE` (one key per line)"))
    if options.tokenizer is not None:
        from capibara.serve.tokenizer import tokenizer_problem

        problem = tokenizer_problem(options.tokenizer, service.plan.model.vocab_size)
        if problem is not None:
            found.append(Diagnostic.error(
                TOKENIZER_UNUSABLE, f"tokenizer `{options.tokenizer}` cannot be used: {problem}",
                help="give a SentencePiece `.model` file whose vocabulary fits the model's "
                     "`vocab_size`, or leave out --tokenizer and send token IDs"))
    return found, keys


def _reason(error: Exception) -> str:
    if hasattr(error, "reason"):  # capibara.files.FileProblem says it in words
        return error.reason
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)
