"""Reading and checking request bodies: bounded JSON, known fields, clear errors.

Every refusal is an :class:`HTTPError`, which the app turns into a JSON error
body of the OpenAI shape (``{"error": {"message", "type", "param", "code"}}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["HTTPError", "read_json", "CompletionRequest", "parse_completion", "parse_generate",
           "body_limit"]


class HTTPError(Exception):
    """A refusal with its HTTP status, error type and (optionally) the offending parameter."""

    def __init__(self, status: int, message: str, kind: str, *, param: str | None = None,
                 extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.status, **self.extra}}


def body_limit(max_seq_len: int) -> int:
    """The largest request body accepted: room for a prompt of ``max_seq_len`` tokens
    as JSON token IDs (up to 8 bytes each) or text (up to 32 bytes a token), and
    the other fields."""
    return max(64 << 10, 32 * max_seq_len + 4096)


async def read_json(request: Any, limit: int) -> Any:
    """The request's JSON body, read no further than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"request body of {declared} bytes is over the limit of {limit}",
                        "request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body is over the limit of {limit} bytes",
                            "request_too_large")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as error:
        raise HTTPError(400, f"request body is not valid JSON: {error}", "invalid_json") from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HTTPError(400, "request body must be a JSON object", "invalid_request")
    return body


def _unknown(body: Mapping[str, Any], known: frozenset[str], notes: Mapping[str, str]) -> None:
    for name in body:
        if name in notes:
            raise HTTPError(400, f"`{name}` is not supported here: {notes[name]}",
                            "unsupported_parameter", param=name)
        if name not in known:
            allowed = ", ".join(f"`{k}`" for k in sorted(known))
            raise HTTPError(400, f"unknown field `{name}`; the fields are {allowed}",
                            "unknown_parameter", param=name)


def _positive_int(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HTTPError(400, f"`{name}` must be a positive integer", "invalid_parameter",
                        param=name)
    return value


def _bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise HTTPError(400, f"`{name}` must be true or false", "invalid_parameter", param=name)
    return value


#: Sampling is a server-wide runtime setting here, not a per-request one.
_SERVER_WIDE = {
    "temperature": "sampling temperature is server-wide: change it with a runtime update "
                   "(POST /v1/runtime {\"temperature\": ...})",
    "top_p": "sampling takes the server's `temperature` only",
    "n": "one completion per request",
    "best_of": "one completion per request",
    "logprobs": "log-probabilities are not returned",
    "echo": "the prompt is not echoed",
    "stop": "generation stops after `max_tokens` only",
    "seed": "the sample depends on the batching round, not a per-request seed",
    "suffix": "no insertion mode",
    "presence_penalty": "no penalties",
    "frequency_penalty": "no penalties",
    "logit_bias": "no logit bias",
}

_DEFAULT_MAX_TOKENS = 16


@dataclass(frozen=True)
class CompletionRequest:
    """A checked request: a text prompt or token IDs, how many tokens, streamed or not."""

    text: str | None
    tokens: list[int] | None
    max_new_tokens: int
    stream: bool
    user: str | None = None


def parse_completion(body: Any, model_name: str) -> CompletionRequest:
    """An OpenAI ``/v1/completions`` body: ``prompt`` (a string), ``max_tokens``,
    ``stream``, optional ``model`` (must be this server's) and ``user``."""
    body = _object(body)
    _unknown(body, frozenset({"model", "prompt", "max_tokens", "stream", "user"}), _SERVER_WIDE)
    model = body.get("model")
    if model is not None and model != model_name:
        raise HTTPError(404, f"model `{model}` is not served here; this server serves "
                        f"`{model_name}`", "model_not_found", param="model")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise HTTPError(400, "`prompt` must be a non-empty string (token IDs go to "
                        "/v1/generate)", "invalid_parameter", param="prompt")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise HTTPError(400, "`user` must be a string", "invalid_parameter", param="user")
    return CompletionRequest(prompt, None, _positive_int(body, "max_tokens", _DEFAULT_MAX_TOKENS),
                             _bool(body, "stream"), user)


def parse_generate(body: Any, vocab_size: int) -> CompletionRequest:
    """A ``/v1/generate`` body: ``tokens`` (a list of token IDs), ``max_new_tokens``, ``stream``."""
    body = _object(body)
    _unknown(body, frozenset({"tokens", "max_new_tokens", "stream"}), _SERVER_WIDE)
    tokens = body.get("tokens")
    if (not isinstance(tokens, list) or not tokens
            or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens)):
        raise HTTPError(400, "`tokens` must be a non-empty list of integer token IDs",
                        "invalid_parameter", param="tokens")
    bad = next((t for t in tokens if not 0 <= t < vocab_size), None)
    if bad is not None:
        raise HTTPError(400, f"token ID {bad} is outside the vocabulary [0, {vocab_size})",
                        "invalid_parameter", param="tokens")
    return CompletionRequest(None, tokens, _positive_int(body, "max_new_tokens",
                                                         _DEFAULT_MAX_TOKENS),
                             _bool(body, "stream"))
