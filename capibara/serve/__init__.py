"""``capibara serve``: a compiled plan served over HTTP, with the plan's services.

    capibara serve demo.plan.json --tokenizer tokenizer.model
    curl -s localhost:8000/v1/completions -d '{"prompt": "Hello", "max_tokens": 16}'

    import capibara
    capibara.serve("demo.plan.json", port=8000, tokenizer="tokenizer.model")

What the plan's ``services`` say, the server does: OpenAI-compatible
completions (streamed as server-sent events on request) and a token-ID
endpoint, dynamic batching up to ``max_batch_size`` (:mod:`.batching`),
Prometheus metrics at ``metrics_endpoint`` with ``monitoring_enabled``, API
keys, rate limits, TLS, JSON and audit logs (:mod:`.auth`, :mod:`.logs`), live
runtime updates (:mod:`.app`), an MCP server with ``mcp_enabled``
(:mod:`.mcp_server`), and hooks for what capibara does not have
(:mod:`.hooks`). Settings it cannot honour stop it from starting, with a
diagnostic naming the field (``R401``–``R405``).
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any, Mapping, Sequence

from capibara.lazy import lazy_exports

__all__ = ["serve", "ServeOptions"]

__getattr__ = lazy_exports(__name__, globals(), {"ServeOptions": "capibara.serve.service"})


def serve(plan_or_config: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 8000,
          tokenizer: str | None = None, overrides: Sequence[str] = (), target: str | None = None,
          hooks: Mapping[str, str] | None = None, **options: Any) -> int:
    """Serve a plan file (or a TOML config, compiled for this host) until SIGTERM.

    ``overrides`` are ``--set PATH=VALUE`` arguments (for a plan: runtime fields
    only); ``hooks`` maps a hook's name (``"output-filter"``, ...) to
    ``"module:function"``; other keywords are :class:`ServeOptions` fields
    (``api_key_file``, ``tls_cert``, ``tls_key``, ``rate_limit``, ...).
    Returns 0 after a graceful shutdown; raises
    :class:`~capibara.diagnostics.ConfigError` when a setting keeps it from starting.
    """
    from capibara.serve.server import run
    from capibara.serve.service import ServeOptions, load_service

    service = load_service(os.fspath(plan_or_config), overrides=overrides, target=target,
                           env=os.environ)
    return run(service, ServeOptions(host=host, port=port, tokenizer=tokenizer,
                                     hooks=dict(hooks or {}), **options))


class _ServeModule(types.ModuleType):
    """``capibara.serve`` names both this package and :func:`serve`: importing a
    submodule binds the package to that name, so calling the package serves."""

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        return serve(*args, **kwargs)


sys.modules[__name__].__class__ = _ServeModule
