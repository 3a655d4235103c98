"""What a server's user names outside the plan: the hooks' options and the
environment variable of the API keys (read by the CLI's parser, so nothing else here)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["API_KEYS_ENV", "Hook", "HOOKS"]

#: The environment variable API keys are read from by default (comma- or newline-separated).
API_KEYS_ENV = "CAPIBARA_API_KEYS"


class Hook(NamedTuple):
    """A setting that needs user code: its field, the option naming the code, its contract."""

    option: str
    field: str
    contract: str
    #: Another field that must be on too (the Meta Loop's parts need the loop).
    requires: str | None = None


HOOKS: tuple[Hook, ...] = (
    Hook("content-safety", "content_safety_check", "fn(prompt) -> None | refusal reason"),
    Hook("output-filter", "output_filtering", "fn(completion) -> completion"),
    Hook("meta-loop", "meta_loop_enabled", "fn(record: dict) -> None"),
    Hook("ethics-guard", "ethics_guard_enabled", "fn(prompt, completion) -> None | refusal reason",
         requires="meta_loop_enabled"),
    Hook("rag-hub", "rag_hub_enabled", "fn(prompt) -> prompt with context",
         requires="meta_loop_enabled"),
)
