"""One check of one open config file, kept for the requests that follow it.

:func:`analyse` runs exactly what ``capibara check`` runs (``--no-env``: the
editor's environment is not the one a config is compiled under), on the
layered files below the open one and the open one itself, with the text the
editor holds for every open file instead of what is on disk. Hover, actions,
symbols and go-to-definition read the result; nothing is re-parsed for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from capibara import toml
from capibara.compiler import check as pipeline
from capibara.diagnostics import ConfigError, Diagnostic, Source
from capibara.lsp.settings import Settings, settings_for

if TYPE_CHECKING:
    from capibara.config.model_config import ModularModelConfig


class Analysis:
    """What the server knows about one open file after its last change.

    ``diagnostics`` are those of ``capibara check`` for the files of its stack
    up to this one; ``document`` is ``None`` when the text is not valid TOML;
    ``config`` is the config of the whole stack (the files above this one
    included, so provenance names the file that wins), ``None`` when the
    stack has errors.
    """

    __slots__ = ("path", "source", "document", "diagnostics", "config", "settings", "stack")

    def __init__(self, path: str, source: Source, document: toml.Document | None,
                 diagnostics: list[Diagnostic], config: ModularModelConfig | None,
                 settings: Settings, stack: tuple[str, ...]) -> None:
        self.path = path
        self.source = source
        self.document = document
        self.diagnostics = diagnostics
        self.config = config
        self.settings = settings
        self.stack = stack

    def here(self, diagnostic: Diagnostic) -> bool:
        """Whether a diagnostic's primary span is in this file."""
        return diagnostic.span is not None and diagnostic.span.file == self.path


def analyse(path: str, text: str, buffers: Mapping[str, str],
            settings: Settings | None = None) -> Analysis:
    """Check the open file ``path`` holding ``text``; ``buffers`` are the texts of
    all open files by path (read instead of the files on disk); ``settings``
    are those of the workspace unless given."""
    settings = settings_for(path) if settings is None else settings
    stack = settings.stack(path)
    below = stack[: stack.index(path) + 1]
    buffers = {**buffers, path: text}
    try:
        document: toml.Document | None = toml.parse(text, path)
    except ConfigError:
        document = None
    source = document.source if document is not None else Source(path, text)
    config: ModularModelConfig | None
    try:
        diagnostics, config = pipeline.check_config(list(below), env=None,
                                                    target=settings.target, buffers=buffers)
    except ConfigError as error:
        diagnostics, config = list(error.diagnostics), None
    if config is not None and len(below) < len(stack):
        from capibara.config.sources import resolve_config

        try:
            config = resolve_config(stack, env=None, buffers=buffers).config
        except ConfigError:
            config = None
    return Analysis(path, source, document, diagnostics, config, settings, stack)
