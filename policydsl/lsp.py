"""`policy lsp`: the language server, over stdio (pygls 2.x).

Only the wiring lives here: every answer comes from language_features.py,
which checks a document's unsaved text with the project's own loader,
checker, lints and formatter. Diagnostics are published on open, on save and,
debounced (DEBOUNCE_SECONDS after the last keystroke, or the
`diagnostics.debounce` milliseconds of the initialization options or
settings), on change. Settings come as `{"explain": {...}, "diagnostics":
{...}}`, bare or under `policydsl`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from . import __version__
from . import language_features as lf
from .model import Model

# A check takes 3-10 ms on the shipped policies (benchmarks/bench_lsp.py), so a short wait is enough to skip
# the texts of a burst of keystrokes. Setting `policydsl.diagnostics.debounce` (milliseconds).
DEBOUNCE_SECONDS = 0.05

_SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}
_COMPLETION_KIND = {
    "keyword": types.CompletionItemKind.Keyword, "field": types.CompletionItemKind.Field,
    "segment": types.CompletionItemKind.Variable, "action": types.CompletionItemKind.EnumMember,
    "group": types.CompletionItemKind.Enum, "stage": types.CompletionItemKind.Module,
    "outcome": types.CompletionItemKind.Constant, "function": types.CompletionItemKind.Function,
    "zone": types.CompletionItemKind.Value, "calendar": types.CompletionItemKind.Value,
    "type": types.CompletionItemKind.TypeParameter,
}
_SYMBOL_KIND = {
    "header": types.SymbolKind.Package, "block": types.SymbolKind.Namespace, "field": types.SymbolKind.Field,
    "action": types.SymbolKind.EnumMember, "stage": types.SymbolKind.Module, "segment": types.SymbolKind.Variable,
    "rule": types.SymbolKind.Event, "experiment": types.SymbolKind.Class,
}


class PolicyServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("policydsl", __version__)
        self.analyses: dict[str, lf.Analysis] = {}
        self.last_model: dict[str, Model] = {}  # the last text that checked, for completion in broken text
        self.pending: dict[str, asyncio.TimerHandle] = {}
        # the Explain lens's files beside the policy (settings `policydsl.explain.accounts` and `.history`)
        self.explain: dict[str, str | None] = {"accounts": "accounts.csv", "history": "contacts.csv"}
        self.debounce = DEBOUNCE_SECONDS

    def configure(self, settings: Any) -> None:
        """Take `{"explain": {"accounts": ..., "history": ...}}`, bare or under `policydsl`."""
        if isinstance(settings, dict):
            settings = settings.get("policydsl", settings)
            if not isinstance(settings, dict):
                return
            diagnostics = settings.get("diagnostics")
            debounce = diagnostics.get("debounce") if isinstance(diagnostics, dict) else None
            if isinstance(debounce, int | float) and 0 <= debounce <= 10_000:
                self.debounce = debounce / 1000
            explain = settings.get("explain")
            if isinstance(explain, dict):
                for key in ("accounts", "history"):
                    if isinstance(explain.get(key), str):
                        self.explain[key] = explain[key] or None

    def analysis(self, uri: str) -> lf.Analysis:
        document = self.workspace.get_text_document(uri)
        cached = self.analyses.get(uri)
        if cached is None or cached.text != document.source:
            cached = lf.analyze(document.source, uri_path(uri))
            self.analyses[uri] = cached
            if cached.model is not None:
                self.last_model[uri] = cached.model
        return cached

    def publish(self, uri: str) -> None:
        self.pending.pop(uri, None)
        document = self.workspace.get_text_document(uri)
        analysis = self.analysis(uri)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=document.version,
            diagnostics=[to_diagnostic(analysis, d) for d in analysis.own_diagnostics]))

    def schedule(self, uri: str) -> None:
        waiting = self.pending.pop(uri, None)
        if waiting is not None:
            waiting.cancel()
        self.pending[uri] = asyncio.get_running_loop().call_later(self.debounce, self.publish, uri)


def uri_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def path_uri(path: str) -> str:
    from pathlib import Path

    return Path(path).resolve().as_uri()


def to_range(where: lf.Range) -> types.Range:
    return types.Range(types.Position(where.start_line, where.start_character),
                       types.Position(where.end_line, where.end_character))


def from_range(where: types.Range) -> lf.Range:
    return lf.Range(where.start.line, where.start.character, where.end.line, where.end.character)


def to_location(location: lf.Location) -> types.Location:
    return types.Location(path_uri(location.path), to_range(location.range))


def to_diagnostic(analysis: lf.Analysis, diagnostic: Any) -> types.Diagnostic:
    return types.Diagnostic(
        range=to_range(lf.span_range(diagnostic.span)), message=diagnostic.message,
        severity=_SEVERITY.get(diagnostic.severity, types.DiagnosticSeverity.Information),
        code=diagnostic.code, source="policydsl",
        code_description=types.CodeDescription(href=lf.lint_url(diagnostic.code)),
        related_information=[types.DiagnosticRelatedInformation(to_location(location), message)
                             for location, message in lf.related(analysis, diagnostic)] or None)


def _edits(edits: tuple[lf.Edit, ...] | list[lf.Edit]) -> list[types.TextEdit]:
    return [types.TextEdit(range=to_range(edit.range), new_text=edit.new_text) for edit in edits]


def _symbol(symbol: lf.Symbol) -> types.DocumentSymbol:
    where = to_range(symbol.range)
    return types.DocumentSymbol(name=symbol.name, kind=_SYMBOL_KIND.get(symbol.kind, types.SymbolKind.Object),
                                range=where, selection_range=where,
                                children=[_symbol(child) for child in symbol.children] or None)


def make_server() -> PolicyServer:
    server = PolicyServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: PolicyServer, params: types.InitializeParams) -> None:
        ls.configure(params.initialization_options)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: PolicyServer, params: types.DidChangeConfigurationParams) -> None:
        ls.configure(params.settings)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: PolicyServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: PolicyServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: PolicyServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.analyses.pop(params.text_document.uri, None)  # an include may have changed on disk
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: PolicyServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.analyses.pop(uri, None)
        ls.last_model.pop(uri, None)
        waiting = ls.pending.pop(uri, None)
        if waiting is not None:
            waiting.cancel()
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: PolicyServer, params: types.HoverParams) -> types.Hover | None:
        text = lf.hover_at(ls.analysis(params.text_document.uri), params.position.line, params.position.character)
        if text is None:
            return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: PolicyServer, params: types.DefinitionParams) -> list[types.Location]:
        found = lf.definition_at(ls.analysis(params.text_document.uri), params.position.line,
                                 params.position.character)
        return [to_location(location) for location in found]

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    def references(ls: PolicyServer, params: types.ReferenceParams) -> list[types.Location]:
        found = lf.references_at(ls.analysis(params.text_document.uri), params.position.line,
                                 params.position.character, params.context.include_declaration)
        return [to_location(location) for location in found]

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(ls: PolicyServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
        tree = ls.analysis(params.text_document.uri).tree
        return [] if tree is None else [_symbol(symbol) for symbol in lf.symbols(tree)]

    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    def folding_range(ls: PolicyServer, params: types.FoldingRangeParams) -> list[types.FoldingRange]:
        analysis = ls.analysis(params.text_document.uri)
        return [types.FoldingRange(start_line=start, end_line=end) for start, end in lf.folding(analysis.text,
                                                                                                  analysis.tree)]

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=['"', ",", "/"]))
    def completion(ls: PolicyServer, params: types.CompletionParams) -> types.CompletionList:
        uri = params.text_document.uri
        items = lf.completions_at(ls.analysis(uri), params.position.line, params.position.character,
                                  ls.last_model.get(uri))
        return types.CompletionList(is_incomplete=False, items=[
            types.CompletionItem(label=item.label, kind=_COMPLETION_KIND.get(item.kind), detail=item.detail or None)
            for item in items])

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: PolicyServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        edits = lf.formatting(document.source, uri_path(params.text_document.uri))
        return None if edits is None else _edits(edits)

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls: PolicyServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        analysis = ls.analysis(uri)
        return [types.CodeAction(
            title=action.title, kind=types.CodeActionKind.QuickFix, is_preferred=action.preferred or None,
            diagnostics=[to_diagnostic(analysis, action.diagnostic)] if action.diagnostic else None,
            edit=types.WorkspaceEdit(changes={uri: _edits(action.edits)}))
            for action in lf.code_actions(analysis, from_range(params.range))]

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: PolicyServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        uri = params.text_document.uri
        lenses = lf.explain_lenses(ls.analysis(uri), ls.explain["accounts"] or "accounts.csv",
                                   ls.explain["history"])
        return [types.CodeLens(range=to_range(lens.range), command=types.Command(
            title=lens.title, command="policydsl.explain", arguments=[uri, lens.account_id]))
            for lens in lenses]

    return server


def main() -> None:
    make_server().start_io()
