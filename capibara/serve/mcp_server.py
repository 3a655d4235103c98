"""The Model Context Protocol server (with ``mcp_enabled``), on ``mcp_port``.

Built on the official ``mcp`` SDK (Streamable HTTP at ``/mcp``), with three tools:

- ``generate``: a completion from the served model (text with a tokenizer, or token IDs);
- ``check_config``: ``capibara check`` on the TOML text given, returning its diagnostics;
- ``explain``: ``capibara explain`` for a diagnostic code or a config field.

With ``mcp_auth_required`` every request carries ``Authorization: Bearer KEY``
(the server's API keys); with ``mcp_rate_limiting`` each key gets the rate
limit (``--rate-limit``, else 60 a minute). Generation goes through the same
batcher, hooks, limits and audit log as the HTTP API.
"""

from __future__ import annotations

import contextvars
import os
import tempfile
import time
from typing import Any

from starlette.responses import JSONResponse

from capibara.serve.auth import RateLimiter, bearer_token, key_id
from capibara.serve.requests import CompletionRequest, HTTPError

__all__ = ["build_mcp_app", "check_config_text", "explain_text", "MAX_CONFIG_BYTES"]

#: The largest config text ``check_config`` reads.
MAX_CONFIG_BYTES = 1 << 20

#: Who is calling, as the audit log names them (set per request by the key check).
_caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="mcp")


def check_config_text(text: str) -> str:
    """The diagnostics ``capibara check --no-env`` gives for a config with this TOML
    text (shown as ``config.toml``), and the verdict."""
    from capibara.compiler.check import check
    from capibara.diagnostics import ConfigError, render

    with tempfile.TemporaryDirectory(prefix="capibara-mcp-") as directory:
        path = os.path.join(directory, "config.toml")
        with open(path, "x", encoding="utf-8", errors="surrogatepass") as handle:
            handle.write(text)
        try:
            diagnostics = check([path], env=None)
        except ConfigError as error:
            diagnostics = list(error.diagnostics)
        shown = "\n\n".join(render(d) for d in diagnostics).replace(path, "config.toml")
    errors = sum(d.is_error for d in diagnostics)
    verdict = (f"{errors} error{'s' if errors != 1 else ''}" if errors else "no errors")
    return f"{shown}\n\n{verdict}\n" if shown else f"{verdict}\n"


def explain_text(name: str) -> str:
    """What ``capibara explain`` prints for a diagnostic code or a config field."""
    from capibara.codes import CODES, explain
    from capibara.config.fields import explain_field

    if name.upper() in CODES:
        return explain(name.upper())
    try:
        return explain_field(name)
    except KeyError:
        raise ValueError(f"`{name}` is neither a diagnostic code nor a config field") from None


def build_mcp_app(state: Any, limiter: RateLimiter | None) -> Any:
    """The MCP server's ASGI app, behind the key check and the rate limit."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("capibara", instructions=f"capibara serving `{state.model_name}`: "
                       "generate text or tokens, check configs, explain codes and fields")

    @server.tool()
    async def generate(prompt: str | None = None, tokens: list[int] | None = None,
                       max_new_tokens: int = 16) -> dict[str, Any]:
        """Generate a completion from the served model: give `prompt` (text; needs the
        server's tokenizer) or `tokens` (token IDs), and how many tokens to add."""
        from capibara.serve.app import Generation

        started = time.perf_counter()
        if (prompt is None) == (tokens is None):
            raise ValueError("give exactly one of `prompt` and `tokens`")
        if max_new_tokens < 1:
            raise ValueError("`max_new_tokens` must be at least 1")
        if tokens is not None:
            vocab = state.service.plan.model.vocab_size
            if not tokens or any(not 0 <= t < vocab for t in tokens):
                raise ValueError(f"`tokens` must be a non-empty list of IDs in [0, {vocab})")
        try:
            state.check_ready()
            ids, seen = state.prepare(CompletionRequest(prompt, tokens, max_new_tokens, False))
            generation = Generation(state, ids, max_new_tokens)
            generated: list[int] = []
            async for chunk in generation.chunks():
                generated.extend(chunk)
            completion = state.finish(seen, state.tokenizer.decode(generated)
                                      if prompt is not None else generated)
        except HTTPError as error:
            state.audit(_caller.get(), "mcp:generate", error.status, started, reason=error.kind)
            raise ValueError(error.message) from None
        state.audit(_caller.get(), "mcp:generate", 200, started, prompt=seen,
                    prompt_tokens=len(ids), completion_tokens=len(generated))
        return {"completion": completion, "prompt_tokens": len(ids),
                "completion_tokens": len(generated)}

    @server.tool()
    def check_config(toml: str) -> str:
        """Check a capibara TOML config (given as text): the diagnostics `capibara check`
        prints, and how many errors."""
        if len(toml.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
            raise ValueError(f"the config is larger than {MAX_CONFIG_BYTES} bytes")
        return check_config_text(toml)

    @server.tool()
    def explain(code_or_field: str) -> str:
        """Explain a diagnostic code (e.g. `S501`) or a config field (e.g.
        `model.hidden_size`), as `capibara explain` does."""
        if len(code_or_field) > 200:
            raise ValueError("give a diagnostic code or a field name")
        return explain_text(code_or_field)

    inner = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True,
                                       json_response=True)
    config = state.service.config

    async def app(scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope.get("headers", [])}
            token = bearer_token(headers.get("authorization"))
            refusal = None
            client = scope.get("client") or ("unknown", 0)
            who = key_id(token) if token and state.keys.check(token) else f"client-{client[0]}"
            if config.mcp_auth_required and not state.keys.check(token):
                refusal = HTTPError(401, "the MCP server needs a valid API key: send "
                                    "`Authorization: Bearer KEY`", "unauthorized",
                                    headers={"WWW-Authenticate": "Bearer"})
            elif limiter is not None:
                wait = limiter.take(who)
                if wait > 0:
                    refusal = HTTPError(429, f"rate limit of {limiter.per_minute:g} requests a "
                                        "minute reached", "rate_limited",
                                        headers={"Retry-After": str(max(1, round(wait)))})
            if refusal is not None:
                state.metrics.requests.labels("mcp", str(refusal.status)).inc()
                state.audit(who, "mcp", refusal.status, time.perf_counter(),
                            reason=refusal.kind)
                response = JSONResponse(refusal.body(), status_code=refusal.status,
                                        headers=refusal.headers)
                await response(scope, receive, send)
                return
            state.metrics.requests.labels("mcp", "accepted").inc()
            _caller.set(who)
        await inner(scope, receive, send)

    return app
