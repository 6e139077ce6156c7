"""`outcomes { … }`: a policy closes its history outcome vocabulary, the
checker holds every rule to it (E118, with did-you-mean), declarations of
included baselines merge, and the formatter and highlighter know the block."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pygments.token import Keyword, Name, String

from policydsl import load_policy
from policydsl.checker import CODES, check
from policydsl.cli import main
from policydsl.errors import Diagnostic
from policydsl.formatter import format_source
from policydsl.highlight import PolicyLexer
from policydsl.loader import load_file, load_text

ROOT = Path(__file__).resolve().parents[1]
HEAD = """\
policy "p" version "1"
account { id : text }
actions { call, sms }
events { inbound_call }
allow all
"""


def found(source: str, path: str = "t.policy") -> tuple[list[str], list[Diagnostic]]:
    model, diagnostics = check(load_text(source, path))
    return model.outcomes, [d for d in diagnostics if d.severity == "error"]


def test_declared_outcomes_come_first_in_order_and_close_the_vocabulary() -> None:
    source = HEAD + 'outcomes { voicemail, conversation, "no-answer" }\n' \
        'limit call 3 per day where outcome in {"conversation"}\n'
    model, diagnostics = check(load_text(source, "t.policy"))
    assert diagnostics == []
    assert model.outcomes == ["voicemail", "conversation", "no-answer"]
    assert model.outcomes_declared is True


def test_without_a_declaration_the_rules_outcomes_are_the_vocabulary_and_it_stays_open() -> None:
    source = HEAD + 'quiet call for 1 day after "refused" on call\nlimit sms 1 per day where outcome in {"sent"}\n'
    model, diagnostics = check(load_text(source, "t.policy"))
    assert diagnostics == [] and model.outcomes == ["refused", "sent"] and model.outcomes_declared is False


@pytest.mark.parametrize("rule", [
    'limit call 3 per day where outcome not in {"not_connected", "Conversation"}\n',
    'quiet sms for 2 days after "not_connected", "Conversation" on call, inbound_call\n',
])
def test_an_undeclared_outcome_in_a_rule_is_an_error_at_its_text_with_the_name_meant(rule: str) -> None:
    source = HEAD + "outcomes { conversation, not_connected }\n" + rule
    _, errors = found(source)
    (error,) = errors
    assert error.code == "E118" and CODES["E118"] == "outcome not declared"
    assert error.message == "outcome 'Conversation' is not declared in `outcomes` (t.policy:6); " \
                            "did you mean 'conversation'?"
    line = source.split("\n")[error.span.line - 1]
    assert (error.span.line, line[error.span.column - 1:error.span.end_column - 1]) == (7, '"Conversation"')


def test_an_empty_declaration_knows_no_outcome() -> None:
    _, errors = found(HEAD + "outcomes {}\n" + 'limit call 1 per day where outcome in {"x"}\n')
    assert [e.message for e in errors] == ["outcome 'x' is not declared in `outcomes` (it is empty)"]


def test_an_outcome_declared_twice_in_one_file_is_a_duplicate() -> None:
    _, errors = found(HEAD + "outcomes { a, b }\noutcomes { a }\n")
    assert [(e.code, e.message, e.span.line) for e in errors] == [("E106", "outcome 'a' declared twice", 7)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BASELINE = 'policy "b" version "1"\naccount { id : text }\nactions { call }\n' \
           'outcomes { conversation }\nlimit call 1 per day where outcome in {"conversation"}\n'


def test_an_includer_adds_outcomes_and_the_declarations_merge(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASELINE)
    main_policy = write(tmp_path / "main.policy", 'policy "m" version "1"\ninclude "base.policy"\n'
                        "outcomes { refused, conversation }\nallow call\n"
                        'quiet call for 1 day after "refused" on call\n')
    model, diagnostics = check(load_file(main_policy))
    assert [d for d in diagnostics if d.severity == "error"] == []
    assert model.outcomes == ["conversation", "refused"] and model.outcomes_declared


def test_a_baselines_declaration_closes_the_includers_vocabulary_too(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASELINE)
    main_policy = write(tmp_path / "main.policy", 'policy "m" version "1"\ninclude "base.policy"\nallow call\n'
                        'quiet call for 1 day after "conversaton" on call\n')
    _, diagnostics = check(load_file(main_policy))
    (error,) = [d for d in diagnostics if d.severity == "error"]
    assert error.code == "E118" and error.span.file.endswith("main.policy")
    assert "in `outcomes` (" in error.message and "base.policy:4" in error.message
    assert error.message.endswith("did you mean 'conversation'?")


def test_an_includer_that_declares_must_declare_its_baselines_outcomes(tmp_path: Path) -> None:
    write(tmp_path / "base.policy", BASELINE.replace("outcomes { conversation }\n", "actions { sms }\n"))
    main_policy = write(tmp_path / "main.policy", 'policy "m" version "1"\ninclude "base.policy"\n'
                        "outcomes { refused }\nallow call\n")
    _, diagnostics = check(load_file(main_policy))
    (error,) = [d for d in diagnostics if d.severity == "error"]
    assert error.code == "E118" and error.span.file.endswith("base.policy") and error.span.line == 5


def test_the_cli_shows_the_error_with_a_caret(tmp_path: Path) -> None:
    path = write(tmp_path / "p.policy", HEAD + "outcomes { conversation }\n"
                 'limit call 3 per day where outcome in {"conversatoin"}\n')
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 1
    assert "error[E118]: outcome 'conversatoin' is not declared" in result.output
    assert "did you mean 'conversation'?" in result.output
    assert '   7 | limit call 3 per day where outcome in {"conversatoin"}\n' \
           '     |                                        ^~~~~~~~~~~~~~\n' in result.output


@pytest.mark.parametrize("name", ["us_reg_f", "cn_collection_baseline", "ecommerce_consumer_loan"])
def test_the_shipped_policies_declare_their_outcomes(name: str) -> None:
    policy = load_policy(ROOT / "policies" / f"{name}.policy")
    assert policy.model.outcomes_declared
    assert {"conversation", "not_connected"} <= set(policy.model.outcomes)
    if name == "ecommerce_consumer_loan":  # merged with the China baseline's
        assert {"connected", "promise_to_pay", "refused"} <= set(policy.model.outcomes)


def test_the_formatter_lays_out_outcomes_and_keeps_comments() -> None:
    source = HEAD + 'outcomes {conversation,"no-answer" ,"voicemail"}\noutcomes {\n  # dialer\n  busy, # line busy\n' \
        "  hangup\n}\noutcomes {  }\n"
    formatted = format_source(source)
    assert 'outcomes { conversation, "no-answer", voicemail }\n' in formatted
    assert "outcomes {\n    # dialer\n    busy,  # line busy\n    hangup\n}\n" in formatted
    assert "outcomes {}\n" in formatted
    assert format_source(formatted) == formatted
    long = HEAD + "outcomes { " + ", ".join(f"outcome_number_{i}" for i in range(8)) + " }\n"
    assert "outcomes {\n    outcome_number_0,\n" in format_source(long)


def test_the_lexer_shows_the_block_as_a_declaration_and_a_field_called_outcomes_as_a_name() -> None:
    lexed = [(kind, value) for kind, value in PolicyLexer().get_tokens(
        'outcomes { conversation, "no-answer" }\naccount { outcomes : text }\n') if value.strip()]
    assert lexed[0] == (Keyword.Declaration, "outcomes")
    assert (Name, "conversation") in lexed and (String.Double, "no-answer") in lexed
    assert (Name.Variable, "outcomes") in lexed
