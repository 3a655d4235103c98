"""An editor for the tests: pygls's LanguageClient running ``python -m capibara lsp``
as a child process and talking to it over its stdin and stdout.

The client's asyncio loop runs in a thread of its own, so tests stay plain
functions and one server serves a whole test module.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any, Union

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.protocol import default_converter
from pygls.uris import from_fs_path

TIMEOUT = 30.0


class Editor:
    """A running server and the client attached to it."""

    def __init__(self, root: Path, encodings: list[str] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = LanguageClient("capibara-tests", "1", converter_factory=_converter)
        self.diagnostics: dict[str, tuple[int | None, list[types.Diagnostic]]] = {}
        self.messages: list[types.ShowMessageParams] = []
        self.changed = threading.Condition()
        self.versions: dict[str, int] = {}

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def publish(params: types.PublishDiagnosticsParams) -> None:
            with self.changed:
                self.diagnostics[params.uri] = (params.version, params.diagnostics)
                self.changed.notify_all()

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def show(params: types.ShowMessageParams) -> None:
            with self.changed:
                self.messages.append(params)
                self.changed.notify_all()

        self.call(self.client.start_io(sys.executable, "-m", "capibara", "lsp"))
        general = types.GeneralClientCapabilities(position_encodings=encodings) if encodings else None
        self.initialized = self.call(self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(general=general),
            root_uri=from_fs_path(str(root)))))
        self.client.initialized(types.InitializedParams())

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)

    def close(self) -> None:
        self.call(self.client.shutdown_async(None))
        self.client.exit(None)
        self.call(self.client.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)

    # ------------------------------------------------------------------ documents

    def open(self, path: Path, text: str | None = None) -> str:
        uri = from_fs_path(str(path))
        self.versions[uri] = 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="toml", version=1,
                text=path.read_text(encoding="utf-8") if text is None else text)))
        return uri

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        """An incremental edit, as editors send them."""
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(*start), end=types.Position(*end)),
                text=text)]))

    def replace_all(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))

    def save(self, uri: str) -> None:
        self.client.text_document_did_save(types.DidSaveTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    def close_document(self, uri: str) -> None:
        self.versions.pop(uri)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    def published(self, uri: str, version: int | None = None) -> list[types.Diagnostic]:
        """The diagnostics the server published for ``uri`` at ``version`` (the
        latest version sent when not given), waiting for them."""
        wanted = self.versions.get(uri) if version is None else version
        with self.changed:
            if not self.changed.wait_for(
                    lambda: uri in self.diagnostics and self.diagnostics[uri][0] == wanted,
                    TIMEOUT):
                raise TimeoutError(f"no diagnostics for {uri} version {wanted}")
            return list(self.diagnostics[uri][1])

    def wait_message(self, predicate) -> types.ShowMessageParams:
        with self.changed:
            self.changed.wait_for(lambda: any(predicate(m) for m in self.messages), TIMEOUT)
            return next(m for m in self.messages if predicate(m))

    # ------------------------------------------------------------------ requests

    def _doc(self, uri: str) -> types.TextDocumentIdentifier:
        return types.TextDocumentIdentifier(uri=uri)

    def hover(self, uri: str, line: int, character: int) -> types.Hover | None:
        return self.call(self.client.text_document_hover_async(types.HoverParams(
            text_document=self._doc(uri), position=types.Position(line, character))))

    def complete(self, uri: str, line: int, character: int) -> list[types.CompletionItem]:
        result = self.call(self.client.text_document_completion_async(types.CompletionParams(
            text_document=self._doc(uri), position=types.Position(line, character))))
        return result.items if isinstance(result, types.CompletionList) else list(result or [])

    def actions(self, uri: str, diagnostic: types.Diagnostic) -> list[types.CodeAction]:
        return self.call(self.client.text_document_code_action_async(types.CodeActionParams(
            text_document=self._doc(uri), range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic])))) or []

    def execute(self, command: types.Command) -> Any:
        return self.call(self.client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=command.command, arguments=command.arguments)))

    def symbols(self, uri: str) -> list[types.DocumentSymbol]:
        return self.call(self.client.text_document_document_symbol_async(
            types.DocumentSymbolParams(text_document=self._doc(uri)))) or []

    def definition(self, uri: str, line: int, character: int) -> Any:
        return self.call(self.client.text_document_definition_async(types.DefinitionParams(
            text_document=self._doc(uri), position=types.Position(line, character))))


def _converter():
    """pygls's converter, except that a code action carrying a command object is read as a
    code action (lsprotocol 2025.0.0 takes any object with a `command` key for a Command)."""
    converter = default_converter()

    def action_or_command(value: Any, _: type) -> Any:
        if isinstance(value.get("command"), str):
            return converter.structure(value, types.Command)
        return converter.structure(value, types.CodeAction)

    converter.register_structure_hook(Union[types.Command, types.CodeAction], action_or_command)
    return converter


def apply(text: str, edits: list[types.TextEdit]) -> str:
    """Apply protocol edits (UTF-16 positions) to ``text``, as an editor does."""
    lines = text.split("\n")

    def offset(position: types.Position) -> int:
        before = sum(len(line) + 1 for line in lines[: position.line])
        line = lines[position.line] if position.line < len(lines) else ""
        units = 0
        for index, char in enumerate(line):
            if units >= position.character:
                return before + index
            units += 2 if ord(char) > 0xFFFF else 1
        return before + len(line)

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character),
                       reverse=True):
        start, end = offset(edit.range.start), offset(edit.range.end)
        text = text[:start] + edit.new_text + text[end:]
    return text
