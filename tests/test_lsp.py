"""The language server: the feature functions on their own, then end to end
over stdio (pytest-lsp starts `python -m policydsl lsp` as an editor would)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policydsl import language_features as lf

pygls = pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"

# One document for each kind of failure: a syntax error stops the parse, so
# it cannot be in the same text as the checker's errors (the checker never
# runs on text that does not parse).
BROKEN_SYNTAX = ('policy "demo" version "1"\naccount { id : text  days_past_due : int }\nactions { sms }\n'
                 'allow sms when\n')
CHECK_ERRORS = """policy "demo" version "1"
account {
    id            : text
    days_past_due : int
}
actions { sms }
stages on days_past_due {
    early  .. 5
    late  10 ..
}
allow sms when days_pst_due > 3
"""


def _line_of(text: str, needle: str) -> tuple[int, int]:
    for number, line in enumerate(text.split("\n")):
        if needle in line:
            return number, line.index(needle)
    raise AssertionError(needle)


# ---------------------------------------------------------------- unit tests


def test_syntax_error_is_one_diagnostic_at_its_place(tmp_path: Path) -> None:
    found = lf.diagnostics_for(BROKEN_SYNTAX, str(tmp_path / "demo.policy"))
    assert [d.code for d in found] == ["E001"]
    assert lf.span_range(found[0].span).start_line == 3


def test_unknown_name_and_stage_gap_with_ranges_and_fixes(tmp_path: Path) -> None:
    path = str(tmp_path / "demo.policy")
    analysis = lf.analyze(CHECK_ERRORS, path)
    by_code = {d.code: d for d in analysis.own_diagnostics}
    assert set(by_code) == {"E101", "E107"}
    line, column = _line_of(CHECK_ERRORS, "days_pst_due")
    assert lf.span_range(by_code["E101"].span) == lf.Range(line, column, line, column + len("days_pst_due"))
    assert lf.span_range(by_code["E107"].span).start_line == _line_of(CHECK_ERRORS, "late")[0]
    related = lf.related(analysis, by_code["E107"])
    assert related and related[0][0].range.start_line == _line_of(CHECK_ERRORS, "early")[0]
    fixes = {action.title: action for action in lf.code_actions(analysis, lf.Range(0, 0, 20, 0))}
    fixed = CHECK_ERRORS
    for action in fixes.values():  # the edits do not overlap: apply from the end
        for edit in sorted(action.edits, key=lambda e: (e.range.start_line, e.range.start_character), reverse=True):
            fixed = _apply(fixed, edit)
    assert "days_past_due > 3" in fixed and "late  6 .." in fixed
    assert lf.diagnostics_for(fixed, path) == []


def _apply(text: str, edit: lf.Edit) -> str:
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[:edit.range.start_line]) + edit.range.start_character
    end = sum(len(line) + 1 for line in lines[:edit.range.end_line]) + edit.range.end_character
    return text[:start] + edit.new_text + text[end:]


def test_missing_because_fix_adds_one(tmp_path: Path) -> None:
    text = ('policy "d" version "1"\naccount { id : text  flags : set<text> = {} }\nactions { sms }\nallow sms\n'
            'forbid sms when "x" in flags\n')
    path = str(tmp_path / "d.policy")
    analysis = lf.analyze(text, path)
    assert [d.code for d in analysis.own_diagnostics] == ["W203"]
    [action] = lf.code_actions(analysis, lf.Range(4, 0, 4, 0))
    fixed = _apply(text, action.edits[0])
    assert lf.diagnostics_for(fixed, path) == []


def test_lint_link_and_documentation() -> None:
    assert lf.lint_url("E101").endswith("lints.md#e101")
    assert "unknown field or segment" in lf.lint_doc("E101")


def _shipped(name: str) -> tuple[str, lf.Analysis]:
    path = POLICIES / name
    text = path.read_text(encoding="utf-8")
    return text, lf.analyze(text, str(path))


def test_hover_on_shipped_policies() -> None:
    text, analysis = _shipped("ecommerce_consumer_loan.policy")
    line, column = _line_of(text, "balance             : money")
    assert "balance : money" in (lf.hover_at(analysis, line, column + 1) or "")
    line, column = _line_of(text, "segment high_risk")
    hover = lf.hover_at(analysis, line, column + len("segment h")) or ""
    assert "risk_score >= 0.7 or broken_promises >= 2" in hover
    line, column = _line_of(text, "allow agent_call when early_warning")
    assert "`human_call`" in (lf.hover_at(analysis, line, column + len("allow a")) or "")
    text, analysis = _shipped("us_reg_f.policy")
    line, _ = _line_of(text, 'because "before 8:00 a.m.')
    hover = lf.hover_at(analysis, line, 6) or ""
    assert "12 CFR 1006.6(b)(1)(i)" in hover and "before 8:00 a.m." in hover


def test_definition_into_the_included_baseline() -> None:
    text, analysis = _shipped("us_state_rules.policy")
    line, column = _line_of(text, "limit call")
    [location] = lf.definition_at(analysis, line, column + len("limit c"))
    assert Path(location.path).name == "us_reg_f.policy"
    baseline = (POLICIES / "us_reg_f.policy").read_text(encoding="utf-8").split("\n")
    assert baseline[location.range.start_line][location.range.start_character:location.range.end_character] == "call"
    references = lf.references_at(analysis, line, column + len("limit c"))
    assert {Path(r.path).name for r in references} == {"us_reg_f.policy", "us_state_rules.policy"}


def test_completion_in_context() -> None:
    text, analysis = _shipped("ecommerce_consumer_loan.policy")
    line, column = _line_of(text, "allow agent_call when early_warning")
    labels = {c.label for c in lf.completions_at(analysis, line, column + len("allow "))}
    assert {"agent_call", "human_call", "all"} <= labels and "balance" not in labels
    labels = {c.label for c in lf.completions_at(analysis, line, column + len("allow agent_call when "))}
    assert {"balance", "early_warning", "days_since"} <= labels
    edited = text.replace('timezone            : zone = "Asia/Shanghai"', 'timezone            : zone = "Asia/Sh')
    line, column = _line_of(edited, '"Asia/Sh')
    labels = {c.label for c in lf.completions_at(lf.analyze(edited, analysis.path), line, column + 8)}
    assert "Asia/Shanghai" in labels
    labels = {c.label for c in lf.completions_at(lf.analyze("\n", analysis.path), 0, 0)}
    assert {"policy", "account", "stages", "forbid"} <= labels


def test_holiday_calendars_complete() -> None:
    analysis = lf.analyze('window sms 08:00-20:00 except holidays "', "/tmp/x.policy")
    labels = {c.label for c in lf.completions_at(analysis, 0, len(analysis.text))}
    assert {"CN", "US", "DE"} <= labels


def test_formatting_symbols_and_folding() -> None:
    for path in sorted(POLICIES.glob("*.policy")):
        text = path.read_text(encoding="utf-8")
        assert lf.formatting(text, str(path)) == []  # the shipped policies are formatted
    text, analysis = _shipped("ecommerce_consumer_loan.policy")
    messy = text.replace("policy \"ecommerce-consumer-loan\"", "policy   \"ecommerce-consumer-loan\"")
    [edit] = lf.formatting(messy, analysis.path) or []
    assert edit.new_text == text
    assert lf.formatting("policy", analysis.path) is None
    assert analysis.tree is not None
    names = [s.name for s in lf.symbols(analysis.tree)]
    assert "stage M1" in names and "high_risk" in names and "account" in names
    assert any(end > start for start, end in lf.folding(text, analysis.tree))


# ---------------------------------------------------------------- end to end over stdio


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "policydsl", "lsp"],
                              server_env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}),
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                               root_uri=ROOT.as_uri()))
    yield
    await lsp_client.shutdown_session()


async def _open(client: LanguageClient, path: Path, text: str) -> list[types.Diagnostic]:
    uri = path.resolve().as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="policy", version=1, text=text)))
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri])


async def _change(client: LanguageClient, path: Path, text: str, version: int) -> list[types.Diagnostic]:
    uri = path.resolve().as_uri()
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri])


@pytest.mark.asyncio
async def test_stdio_three_diagnostics_and_fixing_each_clears_it(client: LanguageClient, tmp_path: Path) -> None:
    syntax_doc, check_doc = tmp_path / "syntax.policy", tmp_path / "names.policy"
    [syntax] = await _open(client, syntax_doc, BROKEN_SYNTAX)
    assert syntax.code == "E001" and syntax.range.start.line == 3
    assert syntax.code_description is not None and syntax.code_description.href.endswith("#e001")
    found = await _open(client, check_doc, CHECK_ERRORS)
    by_code = {d.code: d for d in found}
    assert set(by_code) == {"E101", "E107"}
    line, column = _line_of(CHECK_ERRORS, "days_pst_due")
    assert by_code["E101"].range == types.Range(types.Position(line, column),
                                                types.Position(line, column + len("days_pst_due")))
    assert by_code["E107"].range.start.line == _line_of(CHECK_ERRORS, "late")[0]
    assert by_code["E107"].related_information
    # fix each: the syntax error, then the unknown name (the gap stays), then the gap
    assert await _change(client, syntax_doc, BROKEN_SYNTAX.replace("when\n", "\n"), 2) == []
    step = CHECK_ERRORS.replace("days_pst_due", "days_past_due")
    assert [d.code for d in await _change(client, check_doc, step, 2)] == ["E107"]
    assert await _change(client, check_doc, step.replace("late  10", "late   6"), 3) == []


@pytest.mark.asyncio
async def test_stdio_hover_definition_references_completion(client: LanguageClient) -> None:
    path = POLICIES / "us_state_rules.policy"
    text = path.read_text(encoding="utf-8")
    uri = path.resolve().as_uri()
    await _open(client, path, text)
    line, column = _line_of(text, "limit call")
    position = types.Position(line, column + len("limit c"))
    document = types.TextDocumentIdentifier(uri=uri)
    hover = await client.text_document_hover_async(types.HoverParams(text_document=document, position=position))
    assert hover is not None and "action `call`" in str(hover.contents)
    found = await client.text_document_definition_async(
        types.DefinitionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position))
    assert isinstance(found, list) and found[0].uri.endswith("/us_reg_f.policy")
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position,
        context=types.ReferenceContext(include_declaration=True)))
    assert refs is not None and len(refs) > 2
    completion = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, column + len("limit "))))
    assert completion is not None
    items = completion.items if isinstance(completion, types.CompletionList) else completion
    assert {"call", "sms", "all"} <= {item.label for item in items}


@pytest.mark.asyncio
async def test_stdio_formatting_symbols_folding_code_actions(client: LanguageClient, tmp_path: Path) -> None:
    path = POLICIES / "ecommerce_consumer_loan.policy"
    text = path.read_text(encoding="utf-8")
    messy = tmp_path / "messy.policy"
    shutil.copy(POLICIES / "cn_collection_baseline.policy", tmp_path)
    uri = messy.resolve().as_uri()
    await _open(client, messy, text.replace("stages on days_past_due", "stages   on    days_past_due"))
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        options=types.FormattingOptions(tab_size=4, insert_spaces=True)))
    assert edits is not None and len(edits) == 1 and edits[0].new_text == text
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert symbols is not None and "stage M2" in {s.name for s in symbols}
    folds = await client.text_document_folding_range_async(types.FoldingRangeParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert folds
    names = tmp_path / "names.policy"
    await _open(client, names, CHECK_ERRORS)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=names.resolve().as_uri()),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=20, character=0)),
        context=types.CodeActionContext(diagnostics=[])))
    titles = {action.title for action in actions or [] if isinstance(action, types.CodeAction)}
    assert "Change 'days_pst_due' to 'days_past_due'" in titles
    assert any(title.startswith("Start stage 'late' at 6") for title in titles)


def test_policy_lsp_without_pygls_names_the_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "pygls"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('no pygls here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run([sys.executable, "-m", "policydsl", "lsp"], env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 2
    assert "policydsl[lsp]" in result.stderr


def _explain_dir(tmp_path: Path) -> Path:
    shutil.copy(POLICIES / "us_reg_f.policy", tmp_path)
    (tmp_path / "accounts.csv").write_text("id,days_past_due,flags,timezone\nA1,10,,America/New_York\n"
                                           "A2,40,cease_communication,America/Chicago\n", encoding="utf-8")
    (tmp_path / "contacts.csv").write_text("account_id,action,at,outcome\n", encoding="utf-8")
    return tmp_path / "us_reg_f.policy"


def test_explain_lens_decides_each_account_beside_the_policy(tmp_path: Path) -> None:
    import datetime as dt

    path = _explain_dir(tmp_path)
    analysis = lf.analyze(path.read_text(encoding="utf-8"), str(path))
    noon = dt.datetime(2026, 12, 7, 17, 0, tzinfo=dt.UTC)  # 12:00 in New York, 11:00 in Chicago
    first, second = lf.explain_lenses(analysis, now=noon)
    assert first.account_id == "A1" and "allowed call, sms, email, letter, legal_action" in first.title
    assert second.account_id == "A2" and "allowed letter, legal_action; blocked 3" in second.title  # ceased
    assert lf.explain_lenses(analysis, accounts="missing.csv") == []


@pytest.mark.asyncio
async def test_stdio_explain_lens(client: LanguageClient, tmp_path: Path) -> None:
    path = _explain_dir(tmp_path)
    await _open(client, path, path.read_text(encoding="utf-8"))
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(
        text_document=types.TextDocumentIdentifier(uri=path.resolve().as_uri())))
    assert lenses is not None and [lens.command.title.split(":")[0] for lens in lenses if lens.command] == \
        ["Explain A1", "Explain A2"]


# ---------------------------------------------------------------- the VS Code client


def test_vscode_extension_declares_the_client() -> None:
    import json

    manifest = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text(encoding="utf-8"))
    assert manifest["main"] == "./extension.js" and "onLanguage:policy" in manifest["activationEvents"]
    assert "vscode-languageclient" in manifest["dependencies"]
    settings = manifest["contributes"]["configuration"]["properties"]
    assert settings["policydsl.server.command"]["default"] == "policy"
    assert {"policydsl.explain.accounts", "policydsl.explain.history"} <= set(settings)
    assert manifest["contributes"]["grammars"][0]["path"] == "./syntaxes/policy.tmLanguage.json"


def test_vscode_extension_packages_as_vsix(tmp_path: Path) -> None:
    """`npm install` and `vsce package` in a copy of editors/vscode (about 15 s here)."""
    node, npm, npx = shutil.which("node"), shutil.which("npm"), shutil.which("npx")
    if not (node and npm and npx):
        pytest.skip("building the .vsix needs node, npm and npx on PATH")
    work = tmp_path / "vscode"
    shutil.copytree(ROOT / "editors" / "vscode", work, ignore=shutil.ignore_patterns("node_modules", "*.vsix"))
    assert subprocess.run([node, "--check", "extension.js"], cwd=work, timeout=60).returncode == 0
    install = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=work, capture_output=True, text=True,
                             timeout=300)
    if install.returncode != 0:
        pytest.skip("npm install failed (is the npm registry reachable?): " + install.stderr.strip()[-300:])
    built = subprocess.run([npx, "--no-install", "vsce", "package", "--allow-missing-repository", "--skip-license"],
                           cwd=work, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    import zipfile

    [vsix] = work.glob("*.vsix")
    names = zipfile.ZipFile(vsix).namelist()
    assert "extension/extension.js" in names and "extension/syntaxes/policy.tmLanguage.json" in names
    assert any(name.startswith("extension/node_modules/vscode-languageclient/") for name in names)
    assert not any(name.startswith("extension/node_modules/@vscode/vsce/") for name in names)


def test_did_you_mean_fixes_for_stages_and_actions_and_code_hover(tmp_path: Path) -> None:
    text = ('policy "x" version "1"\naccount { id : text  days_past_due : int }\nactions { sms, call }\n'
            'stages on days_past_due {\n  early .. 5\n  late 6 ..\n}\nstage eraly { allow smss }\n'
            'forbid cal because "x"  # policy: ignore[W203]\n')
    path = str(tmp_path / "x.policy")
    analysis = lf.analyze(text, path)
    assert {d.code for d in analysis.own_diagnostics} == {"E102", "E103", "W201"}
    fixed = text
    actions = lf.code_actions(analysis, lf.Range(0, 0, 20, 0))
    assert {a.title for a in actions} == {"Change 'eraly' to 'early'", "Change 'smss' to 'sms'",
                                          "Change 'cal' to 'call'"}
    for edit in sorted((e for a in actions for e in a.edits), key=lambda e: (e.range.start_line,
                                                                            e.range.start_character), reverse=True):
        fixed = _apply(fixed, edit)
    # left: the suppression of a W203 that this forbid (with its because) does not raise
    assert {d.code for d in lf.diagnostics_for(fixed, path)} == {"W310"}
    line, column = _line_of(text, "W203")
    assert (lf.hover_at(analysis, line, column + 1) or "").startswith("### W203")
    labels = [c.label for c in lf.completions_at(analysis, _line_of(text, "stage eraly")[0], len("stage "))]
    assert labels == ["early", "late"]


def test_completion_in_text_that_does_not_parse_uses_the_last_model() -> None:
    text, analysis = _shipped("us_reg_f.policy")
    broken = text + "\nforbid \n"
    line = len(broken.split("\n")) - 2
    now = lf.analyze(broken, analysis.path)
    assert now.model is None
    labels = {c.label for c in lf.completions_at(now, line, len("forbid "), analysis.model)}
    assert {"call", "letter", "legal_action", "all"} <= labels


def test_an_included_files_problem_shows_on_the_include(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text('policy "b" version "1"\naccount { id : text }\nactions { sms }\n'
                                          "forbid smss because \"x\"\n", encoding="utf-8")
    text = 'policy "top" version "1"\ninclude "base.policy"\naccount { id : text }\nactions { sms }\nallow sms\n'
    analysis = lf.analyze(text, str(tmp_path / "top.policy"))
    [shown] = analysis.own_diagnostics
    assert shown.code == "E102" and shown.span.line == 2 and shown.message.startswith("in base.policy (base.policy:4:")
    [(location, _)] = lf.related(analysis, shown)
    assert Path(location.path).name == "base.policy" and location.range.start_line == 3
    (tmp_path / "base.policy").write_text('policy "b" version\n', encoding="utf-8")
    [syntax] = lf.diagnostics_for(text, str(tmp_path / "top.policy"))
    assert syntax.code == "E001" and syntax.span.line == 2


def test_definition_on_an_include_opens_the_file_and_library_includes_resolve(tmp_path: Path) -> None:
    text, analysis = _shipped("us_state_rules.policy")
    line, column = _line_of(text, 'include "us_reg_f.policy"')
    [location] = lf.definition_at(analysis, line, column + len('include "u'))
    assert Path(location.path).name == "us_reg_f.policy"
    text = ('policy "top" version "1"\ninclude "policydsl:us_reg_f"\naccount { id : text }\nactions { ring }\n'
            "allow ring when not (\"deceased\" in flags)\n")
    analysis = lf.analyze(text, str(tmp_path / "top.policy"))
    line, column = _line_of(text, "in flags")
    [location] = lf.definition_at(analysis, line, column + len("in f"))
    assert Path(location.path).name == "us_reg_f.policy"
