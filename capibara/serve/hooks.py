"""Hooks: the user's own code for the settings capibara has nothing to run for.

A content-safety classifier, an output filter, the Meta Loop's Elixir bridge,
its ethics guard and RAG hub are not part of capibara. When the plan turns
one on, the server calls a function the user names by import path
(``--output-filter mypackage.filters:redact``); with the setting on and no
hook given, it refuses to start rather than pretend. Each hook's contract:

- ``content-safety`` (``content_safety_check``): ``fn(prompt) -> None | str``,
  called before generation with the prompt (``str``, or ``list[int]`` token
  IDs); a string refuses the request (HTTP 400, the string as the reason).
- ``output-filter`` (``output_filtering``): ``fn(completion) -> completion``,
  called on the generated text (``str``, or ``list[int]``) before it is sent;
  a streamed completion is filtered one chunk at a time.
- ``meta-loop`` (``meta_loop_enabled``): ``fn(record: dict) -> None``, called
  after each request with its audit record (the bridge to the Meta Loop, e.g.
  a client of the Elixir node on ``elixir_bridge_port``, passed as
  ``record["elixir_bridge_port"]``).
- ``ethics-guard`` (``ethics_guard_enabled``, with the Meta Loop):
  ``fn(prompt, completion) -> None | str``; a string withholds the completion
  (HTTP 400).
- ``rag-hub`` (``rag_hub_enabled``, with the Meta Loop): ``fn(prompt) -> prompt``,
  the prompt with retrieved context added, before generation.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, NamedTuple

from capibara.diagnostics import Diagnostic

from capibara.serve.names import HOOKS, Hook

__all__ = ["Hook", "HOOKS", "Hooks", "hook_diagnostics", "load_hooks", "HOOK_MISSING",
           "HOOK_UNLOADABLE"]

HOOK_MISSING = "R401"
HOOK_UNLOADABLE = "R402"


def _active(service: Any, hook: Hook) -> bool:
    return bool(service.setting(hook.field)) and (
        hook.requires is None or bool(service.setting(hook.requires)))


def _load(path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError("expected `module:function`")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"`{attribute}` is not callable")
    return target


def hook_diagnostics(service: Any, given: Mapping[str, str]) -> list[Diagnostic]:
    """An ``R401`` per active setting without its hook, an ``R402`` per hook that
    does not import, and an ``R402`` per hook given for a setting that is off."""
    from capibara.config.fields import FIELD_BY_NAME

    found = []
    for hook in HOOKS:
        path = given.get(hook.option)
        active = _active(service, hook)
        if active and not path:
            found.append(Diagnostic.error(
                HOOK_MISSING, f"`{hook.field}` is on, but capibara has no "
                f"{hook.option.replace('-', ' ')} of its own: give one with "
                f"`--{hook.option} module:function`",
                service.span_of(hook.field), label="needs a hook",
                notes=(f"the hook is called as `{hook.contract}`",),
                help=f"pass `--{hook.option} module:function`, or turn it off: "
                     f"`--set {FIELD_BY_NAME[hook.field].path}=false`"))
        elif path and not active:
            found.append(Diagnostic.error(
                HOOK_UNLOADABLE, f"`--{hook.option}` was given, but `{hook.field}` is off",
                service.span_of(hook.field), label="off",
                help=f"turn `{hook.field}` on, or leave out `--{hook.option}`"))
        elif path:
            try:
                _load(path)
            except Exception as error:  # any import-time failure of user code
                found.append(Diagnostic.error(
                    HOOK_UNLOADABLE, f"`--{hook.option} {path}` cannot be loaded: "
                    f"{type(error).__name__}: {error}",
                    help="give `module:function` importable from the server's Python path"))
    return found


class Hooks(NamedTuple):
    """The loaded hooks; ``None`` where the setting is off."""

    content_safety: Callable[[Any], str | None] | None = None
    output_filter: Callable[[Any], Any] | None = None
    meta_loop: Callable[[dict], None] | None = None
    ethics_guard: Callable[[Any, Any], str | None] | None = None
    rag_hub: Callable[[Any], Any] | None = None


def load_hooks(service: Any, given: Mapping[str, str]) -> Hooks:
    """Import the hooks of the active settings (after :func:`hook_diagnostics` passed)."""
    loaded = {hook.option.replace("-", "_"): _load(given[hook.option])
              for hook in HOOKS if _active(service, hook) and given.get(hook.option)}
    return Hooks(**loaded)
