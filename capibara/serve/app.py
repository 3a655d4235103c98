"""The HTTP endpoints (Starlette).

- ``POST /v1/completions``: OpenAI-compatible text completion; ``"stream": true``
  sends server-sent events (``data: {...}`` chunks, then ``data: [DONE]``).
- ``POST /v1/generate``: the same on token IDs (``{"tokens": [...]}``), for
  clients without the tokenizer.
- ``GET /v1/models``: the one model served.
- ``GET /health``: liveness and readiness (503 while warming up);
  ``GET /health/live``: liveness alone (200 while warming up).
- ``GET`` the plan's ``metrics_endpoint`` (with ``monitoring_enabled``):
  Prometheus text.
- ``GET``/``POST /v1/runtime``: the runtime settings; a POST applies
  ``update_runtime_settings`` + ``apply_config_updates`` between two batching
  rounds, all or nothing (409 with the ``S501`` diagnostic for a field that
  cannot change on a running model). Always needs an API key.

Errors are JSON: ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from capibara.diagnostics import ConfigError, to_json
from capibara.serve.auth import KeyRing, RateLimiter, bearer_token, key_id
from capibara.serve.batching import Batcher, Sequence, ServerClosing
from capibara.serve.hooks import HOOKS, Hooks
from capibara.serve.logs import audit_logger, configure_logging, server_logger
from capibara.serve.metrics import CONTENT_TYPE, Metrics
from capibara.serve.requests import (CompletionRequest, HTTPError, body_limit, parse_completion,
                                     parse_generate, read_json)

__all__ = ["ServerState", "build_app", "Generation"]

#: Runtime fields the server or the model acts on; a live update of any other
#: runtime field is applied to the config and reported as read by nothing here.
ACTED_ON = frozenset({
    "temperature", "use_vq", "vq_adaptive_threshold", "batch_size", "max_batch_size",
    "adaptive_batching", "monitoring_enabled", "health_check_interval", "performance_profiling",
    "structured_logging", "log_level", "audit_logging", "sensitive_data_masking",
    "output_filtering", "content_safety_check"})


@dataclass
class ServerState:
    """What the endpoints share: the service, the model's batcher, security and metrics."""

    service: Any
    batcher: Batcher
    metrics: Metrics
    keys: KeyRing
    limiter: RateLimiter | None
    tokenizer: Any
    hooks: Hooks
    started: float = field(default_factory=time.time)
    last_health_check: float | None = None
    healthy: bool = True

    @property
    def config(self) -> Any:
        """The runtime settings now (a snapshot; see :attr:`Batcher.settings`)."""
        return self.batcher.settings

    @property
    def model_name(self) -> str:
        return self.service.config.model_name

    def caller(self, request: Request) -> str:
        """Check the API key (when required) and the rate limit; return the caller's name."""
        token = bearer_token(request.headers.get("authorization"))
        if self.service.setting("api_key_required"):
            if token is None:
                raise HTTPError(401, "an API key is required: send `Authorization: Bearer KEY`",
                                "unauthorized", headers={"WWW-Authenticate": "Bearer"})
            if not self.keys.check(token):
                raise HTTPError(401, "the API key is not valid", "unauthorized",
                                headers={"WWW-Authenticate": "Bearer"})
        who = key_id(token) if token is not None and self.keys.check(token) else (
            f"client-{request.client.host}" if request.client else "client-unknown")
        if self.limiter is not None:
            wait = self.limiter.take(who)
            if wait > 0:
                raise HTTPError(429, f"rate limit of {self.limiter.per_minute:g} requests a "
                                "minute reached", "rate_limited",
                                headers={"Retry-After": str(max(1, round(wait)))})
        return who

    def audit(self, who: str, endpoint: str, status: int, started: float, *, prompt: Any = None,
              prompt_tokens: int = 0, completion_tokens: int = 0, reason: str = "") -> None:
        config = self.config
        record = {"caller": who, "endpoint": endpoint, "status": status,
                  "outcome": "ok" if status < 400 else "refused" if status < 500 else "failed",
                  "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "seconds": round(time.perf_counter() - started, 4)}
        if reason:
            record["reason"] = reason
        if prompt is not None and not config.sensitive_data_masking:
            record["prompt"] = prompt
        if config.audit_logging:
            audit_logger().info("request", extra=record)
        if self.hooks.meta_loop is not None:
            try:
                self.hooks.meta_loop({**record, "elixir_bridge_port": config.elixir_bridge_port})
            except Exception:
                server_logger().exception("the meta-loop hook failed")

    def check_ready(self) -> None:
        if self.batcher.warmup_error is not None:
            raise HTTPError(503, "the model failed to warm up; see the server log", "unavailable")
        if not self.batcher.ready.is_set():
            raise HTTPError(503, "the model is warming up (compiling its batch shapes)",
                            "warming_up", headers={"Retry-After": "5"})

    def prepare(self, parsed: CompletionRequest) -> tuple[list[int], Any]:
        """The prompt's token IDs after the hooks, and the prompt as the hooks saw it."""
        prompt: Any = parsed.text if parsed.text is not None else parsed.tokens
        if self.hooks.rag_hub is not None:
            prompt = self.hooks.rag_hub(prompt)
        if self.hooks.content_safety is not None and self.config.content_safety_check:
            refusal = self.hooks.content_safety(prompt)
            if refusal:
                raise HTTPError(400, f"the prompt was refused by the content-safety check: "
                                f"{refusal}", "content_refused", param="prompt")
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise HTTPError(400, "this server has no tokenizer, so it cannot read text: "
                                "start it with `--tokenizer FILE.model`, or send token IDs to "
                                "/v1/generate", "no_tokenizer", param="prompt")
            tokens = self.tokenizer.encode(prompt)
        else:
            tokens = list(prompt)
        context = self.batcher.context_limit
        if len(tokens) + parsed.max_new_tokens > context:
            raise HTTPError(400, f"the prompt ({len(tokens)} tokens) plus {parsed.max_new_tokens} "
                            f"new tokens is more than this server's context of {context} tokens",
                            "context_length_exceeded", param="prompt")
        self.metrics.prompt_tokens.inc(len(tokens))
        return tokens, prompt

    def finish(self, prompt: Any, completion: Any) -> Any:
        """The completion after the output filter and the ethics guard."""
        if self.hooks.output_filter is not None and self.config.output_filtering:
            completion = self.hooks.output_filter(completion)
        if self.hooks.ethics_guard is not None:
            refusal = self.hooks.ethics_guard(prompt, completion)
            if refusal:
                raise HTTPError(400, f"the completion was withheld by the ethics guard: {refusal}",
                                "content_refused")
        return completion


class Generation:
    """One request's tokens as they arrive from the batcher's thread."""

    def __init__(self, state: ServerState, prompt: list[int], max_new_tokens: int) -> None:
        loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

        def emit(tokens: list[int], done: bool, error: BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(self.queue.put_nowait, (tokens, done, error))
            except RuntimeError:  # the event loop is gone: nobody is waiting any more
                pass

        self.sequence = Sequence(list(prompt), max_new_tokens, emit)
        try:
            state.batcher.submit(self.sequence)
        except ServerClosing:
            raise HTTPError(503, "the server is shutting down", "unavailable") from None

    async def chunks(self) -> AsyncIterator[list[int]]:
        try:
            while True:
                tokens, done, error = await self.queue.get()
                if error is not None:
                    raise HTTPError(500, f"generation failed: {type(error).__name__}: {error}",
                                    "generation_failed")
                if tokens:
                    yield tokens
                if done:
                    return
        finally:
            self.sequence.cancelled = True  # a client that went away frees its row


def _error_response(error: HTTPError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _diagnostics_json(error: ConfigError) -> list[dict[str, Any]]:
    return [json.loads(to_json(d)) for d in error.diagnostics]


def build_app(state: ServerState) -> Starlette:
    """The Starlette application serving ``state``."""
    log = server_logger()
    limit = body_limit(state.batcher.context_limit)
    vocab = state.service.plan.model.vocab_size

    async def guarded(request: Request, endpoint: str, handler) -> Response:
        started = time.perf_counter()
        who = "anonymous"
        try:
            who = state.caller(request)
            response = await handler(request, who, started)
        except HTTPError as error:
            response = _error_response(error)
            state.audit(who, endpoint, error.status, started, reason=error.kind)
        except Exception as error:  # a bug: reported as JSON, the server keeps serving
            log.exception("internal error", extra={"endpoint": endpoint})
            response = _error_response(HTTPError(500, f"internal error: {type(error).__name__}",
                                                 "internal_error"))
            state.audit(who, endpoint, 500, started, reason="internal_error")
        state.metrics.requests.labels(endpoint, str(response.status_code)).inc()
        if not isinstance(response, StreamingResponse):
            state.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def generate_common(request: Request, who: str, started: float, *, text: bool):
        endpoint = "/v1/completions" if text else "/v1/generate"
        state.check_ready()
        body = await read_json(request, limit)
        parsed = (parse_completion(body, state.model_name) if text else parse_generate(body, vocab))
        tokens, prompt = state.prepare(parsed)
        generation = Generation(state, tokens, parsed.max_new_tokens)
        decode = state.tokenizer.decode if text else None
        ident = ("cmpl-" if text else "gen-") + uuid.uuid4().hex[:24]
        created = int(time.time())

        def payload(piece: Any, finish_reason: str | None) -> dict[str, Any]:
            if text:
                return {"id": ident, "object": "text_completion", "created": created,
                        "model": state.model_name,
                        "choices": [{"text": piece, "index": 0, "logprobs": None,
                                     "finish_reason": finish_reason}]}
            return {"id": ident, "object": "generation", "created": created, "tokens": piece,
                    "finish_reason": finish_reason}

        if not parsed.stream:
            generated: list[int] = []
            async for chunk in generation.chunks():
                generated.extend(chunk)
            completion = state.finish(prompt, decode(generated) if text else generated)
            result = payload(completion, "length")
            result["usage"] = {"prompt_tokens": len(tokens), "completion_tokens": len(generated),
                               "total_tokens": len(tokens) + len(generated)}
            state.audit(who, endpoint, 200, started, prompt=prompt, prompt_tokens=len(tokens),
                        completion_tokens=len(generated))
            return JSONResponse(result)

        async def events() -> AsyncIterator[bytes]:
            generated: list[int] = []
            sent = ""
            status, reason = 200, ""
            try:
                async for chunk in generation.chunks():
                    generated.extend(chunk)
                    if text:
                        so_far = decode(generated)
                        # SentencePiece may still change the tail of a partial text
                        # (byte pieces): send only what extends what was sent.
                        piece = so_far[len(sent):] if so_far.startswith(sent) else ""
                        sent += piece
                    else:
                        piece = chunk
                    piece = state.finish(prompt, piece)
                    yield f"data: {json.dumps(payload(piece, None))}\n\n".encode()
                yield f"data: {json.dumps(payload('' if text else [], 'length'))}\n\n".encode()
                yield b"data: [DONE]\n\n"
            except HTTPError as error:  # headers are gone: the error is the last event
                status, reason = error.status, error.kind
                yield f"data: {json.dumps(error.body())}\n\n".encode()
            finally:
                state.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
                state.audit(who, endpoint, status, started, prompt=prompt,
                            prompt_tokens=len(tokens), completion_tokens=len(generated),
                            reason=reason)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def completions(request: Request) -> Response:
        async def handler(request, who, started):
            return await generate_common(request, who, started, text=True)
        return await guarded(request, "/v1/completions", handler)

    async def generate(request: Request) -> Response:
        async def handler(request, who, started):
            return await generate_common(request, who, started, text=False)
        return await guarded(request, "/v1/generate", handler)

    async def models(request: Request) -> Response:
        async def handler(request, who, started):
            return JSONResponse({"object": "list", "data": [
                {"id": state.model_name, "object": "model", "created": int(state.started),
                 "owned_by": "capibara", "plan": state.service.plan.digest}]})
        return await guarded(request, "/v1/models", handler)

    async def health(request: Request) -> Response:
        ready = state.batcher.ready.is_set() and state.batcher.warmup_error is None
        live = state.batcher.alive and state.healthy
        body = {"live": live, "ready": ready and live,
                "warming_up": not state.batcher.ready.is_set()
                and state.batcher.warmup_error is None,
                "last_check": state.last_health_check}
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    async def liveness(request: Request) -> Response:
        live = state.batcher.alive and state.healthy
        return JSONResponse({"live": live}, status_code=200 if live else 503)

    async def metrics(request: Request) -> Response:
        async def handler(request, who, started):
            if not state.config.monitoring_enabled:
                raise HTTPError(404, "monitoring is off (`monitoring_enabled = false`)",
                                "not_found")
            return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)
        return await guarded(request, "metrics", handler)

    async def runtime(request: Request) -> Response:
        async def handler(request, who, started):
            token = bearer_token(request.headers.get("authorization"))
            if not state.keys:
                raise HTTPError(403, "runtime updates need an API key, and this server has "
                                "none: start it with keys in `CAPIBARA_API_KEYS` or "
                                "`--api-key-file`", "forbidden")
            if not state.keys.check(token):
                raise HTTPError(401, "runtime updates need a valid API key", "unauthorized",
                                headers={"WWW-Authenticate": "Bearer"})
            if request.method == "GET":
                return JSONResponse({"settings": _runtime_settings(state.config)})
            state.check_ready()
            updates = await read_json(request, 64 << 10)
            if not isinstance(updates, dict) or not updates:
                raise HTTPError(400, "a runtime update is a non-empty JSON object of field "
                                "names and values", "invalid_request")
            future = state.batcher.between_rounds(lambda: apply_update(state, updates))
            try:
                ignored = await asyncio.wrap_future(future)
            except ConfigError as error:
                immutable = any(d.code in ("S501", "R212") for d in error.diagnostics)
                state.metrics.runtime_updates.labels("refused").inc()
                first = error.diagnostics[0]
                raise HTTPError(409 if immutable else 400, first.message,
                                "immutable_field" if immutable else "invalid_runtime_update",
                                extra={"diagnostics": _diagnostics_json(error)}) from None
            state.metrics.runtime_updates.labels("applied").inc()
            state.audit(who, "/v1/runtime", 200, started,
                        reason="applied " + ",".join(sorted(updates)))
            body: dict[str, Any] = {"settings": _runtime_settings(state.config)}
            if ignored:
                body["notes"] = [f"`{name}` is set, but nothing in the server reads it"
                                 for name in ignored]
            return JSONResponse(body)
        return await guarded(request, "/v1/runtime", handler)

    metrics_path = state.service.setting("metrics_endpoint")
    routes = [Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/generate", generate, methods=["POST"]),
              Route("/v1/models", models, methods=["GET"]),
              Route("/health", health, methods=["GET"]),
              Route("/health/live", liveness, methods=["GET"]),
              Route("/v1/runtime", runtime, methods=["GET", "POST"]),
              Route(metrics_path, metrics, methods=["GET"])]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return JSONResponse(HTTPError(status, f"no endpoint {request.method} {request.url.path}",
                                      "not_found").body(), status_code=status)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def _runtime_settings(config: Any) -> dict[str, Any]:
    from capibara.config.fields import RUNTIME_MUTABLE

    return {name: getattr(config, name) for name in sorted(RUNTIME_MUTABLE)}


def apply_update(state: ServerState, updates: dict[str, Any]) -> list[str]:
    """Apply a runtime update to the model (on the batcher's thread, between rounds);
    returns the changed fields nothing in the server reads. Raises ConfigError."""
    from capibara.diagnostics import Diagnostic
    from capibara.serve.hooks import HOOK_MISSING

    model = state.batcher.model
    before = model.get_current_config()
    candidate = model.get_current_config()
    candidate.update_runtime_settings(updates)
    missing = [hook for hook in HOOKS if hook.requires is None
               and getattr(candidate, hook.field) and not getattr(before, hook.field)
               and getattr(state.hooks, hook.option.replace("-", "_")) is None]
    if missing:
        raise ConfigError([Diagnostic.error(
            HOOK_MISSING, f"`{hook.field}` cannot turn on: this server was started without "
            f"`--{hook.option}`", help=f"restart with `--{hook.option} module:function`")
            for hook in missing])
    model.apply_config_updates(candidate)
    state.batcher.settings = model.get_current_config()
    changed = [name for name in updates if getattr(before, name) != getattr(candidate, name)]
    if any(name in ("use_vq", "vq_adaptive_threshold") for name in changed):
        state.batcher.warm_up("update")  # a new static setting: compile before serving
    if {"structured_logging", "log_level"} & set(changed):
        configure_logging(structured=candidate.structured_logging, level=candidate.log_level)
    return [name for name in changed if name not in ACTED_ON]
