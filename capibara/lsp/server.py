"""The protocol wiring: which request runs which module, over stdio.

Every change of an open file re-runs its check (about 2 ms for the bundled
configs, so there is no debouncing) and republishes its diagnostics; the
open files layered above or below it are checked again too. The parser and
the field tables are built once per process and reused by every check.
"""

from __future__ import annotations

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from capibara import __version__
from capibara.diagnostics import Source
from capibara.lsp import actions, positions
from capibara.lsp.analysis import Analysis, analyse
from capibara.lsp.completion import completions
from capibara.lsp.convert import published, to_protocol, uri_of
from capibara.lsp.hover import hover_text
from capibara.lsp.settings import SETTINGS_FILE
from capibara.lsp.symbols import definition, document_symbols

__all__ = ["ConfigServer", "serve"]


class ConfigServer(LanguageServer):
    """A language server for capibara config files; ``analyses`` holds the last
    check of each open config file by URI."""

    def __init__(self) -> None:
        super().__init__("capibara", __version__,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.analyses: dict[str, Analysis] = {}
        self.reported: set[tuple[str, ...]] = set()

    @property
    def encoding(self) -> str:
        return self.workspace.position_encoding or positions.UTF16

    def buffers(self) -> dict[str, str]:
        """The text of every open file, by path."""
        return {analysis.path: analysis.source.text for analysis in self.analyses.values()}

    def recheck(self, uri: str) -> None:
        """Check the open file ``uri`` again and publish what the check says."""
        document = self.workspace.get_text_document(uri)
        path = to_fs_path(uri) or uri
        if path.endswith(SETTINGS_FILE):
            return
        analysis = analyse(path, document.source, self.buffers())
        self.analyses[uri] = analysis
        problems = analysis.settings.problems
        if problems and problems not in self.reported:
            self.reported.add(problems)
            self.window_show_message(types.ShowMessageParams(
                type=types.MessageType.Warning,
                message="capibara: `[tool.capibara]` settings ignored: " + "; ".join(problems)))
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=document.version, diagnostics=published(analysis, self.encoding)))

    def changed(self, uri: str) -> None:
        """Re-check ``uri`` and the open files that share a stack with it."""
        self.recheck(uri)
        analysis = self.analyses.get(uri)
        if analysis is None:
            return
        for other_uri, other in list(self.analyses.items()):
            if other_uri != uri and analysis.path in other.stack:
                self.recheck(other_uri)


def build_server() -> ConfigServer:
    """A server with every feature registered."""
    server = ConfigServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ConfigServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ConfigServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ConfigServer, params: types.DidSaveTextDocumentParams) -> None:
        # Settings are read from disk: a saved pyproject.toml may change every file's check.
        uri = params.text_document.uri
        if uri.endswith(SETTINGS_FILE):
            for open_uri in list(ls.analyses):
                ls.recheck(open_uri)
        else:
            ls.changed(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ConfigServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        if ls.analyses.pop(uri, None) is not None:
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: ConfigServer, params: types.HoverParams) -> types.Hover | None:
        analysis = ls.analyses.get(params.text_document.uri)
        if analysis is None:
            return None
        offset = positions.offset(analysis.source, params.position, ls.encoding)
        found = hover_text(analysis, offset)
        if found is None:
            return None
        text, item = found
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                           range=positions.span_range(item.span, ls.encoding))

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["[", "=", ".", '"']))
    def complete(ls: ConfigServer, params: types.CompletionParams) -> types.CompletionList:
        document = ls.workspace.get_text_document(params.text_document.uri)
        source = Source(document.path, document.source)
        offset = positions.offset(source, params.position, ls.encoding)
        return types.CompletionList(is_incomplete=False,
                                    items=completions(source, offset, ls.encoding))

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls: ConfigServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        analysis = ls.analyses.get(params.text_document.uri)
        if analysis is None:
            return []
        start = positions.offset(analysis.source, params.range.start, ls.encoding)
        end = positions.offset(analysis.source, params.range.end, ls.encoding)
        found: list[types.CodeAction] = []
        for index, diagnostic in enumerate(analysis.diagnostics):
            span = diagnostic.span
            at = (span.start, span.end) if analysis.here(diagnostic) and span is not None else (0, 0)
            if not (at[0] <= end and start <= at[1]):
                continue
            shown = to_protocol(diagnostic, analysis, ls.encoding, index)
            for number, fix in enumerate(actions.fixes(diagnostic, analysis)):
                found.append(types.CodeAction(
                    title=fix.title, kind=types.CodeActionKind.QuickFix, diagnostics=[shown],
                    is_preferred=number == 0, edit=workspace_edit(fix, ls.encoding)))
            found.append(types.CodeAction(
                title=f"explain {diagnostic.code}", diagnostics=[shown],
                command=types.Command(title=f"explain {diagnostic.code}",
                                      command=actions.EXPLAIN_COMMAND,
                                      arguments=[diagnostic.code])))
        return found

    @server.command(actions.EXPLAIN_COMMAND)
    def explain(ls: ConfigServer, code: str) -> str:
        from capibara.codes import CODES, explain as explanation

        text = explanation(code) if code in CODES else f"unknown diagnostic code `{code}`"
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=text))
        return text

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: ConfigServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
        analysis = ls.analyses.get(params.text_document.uri)
        return document_symbols(analysis, ls.encoding) if analysis is not None else []

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def goto_definition(ls: ConfigServer, params: types.DefinitionParams) -> types.Location | None:
        analysis = ls.analyses.get(params.text_document.uri)
        if analysis is None:
            return None
        return definition(analysis, positions.offset(analysis.source, params.position, ls.encoding),
                          ls.encoding)

    return server


def workspace_edit(fix: actions.Fix, encoding: str) -> types.WorkspaceEdit:
    """A fix's edits as the protocol carries them, grouped by file."""
    changes: dict[str, list[types.TextEdit]] = {}
    for edit in fix.edits:
        changes.setdefault(uri_of(edit.source.name), []).append(types.TextEdit(
            range=positions.offsets_range(edit.source, edit.start, edit.end, encoding),
            new_text=edit.text))
    return types.WorkspaceEdit(changes=changes)


def serve() -> None:
    """Serve one editor over stdin and stdout until it says exit."""
    build_server().start_io()
