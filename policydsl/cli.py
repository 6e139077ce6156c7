"""The `policy` command: run, check, explain.

Exit codes (documented in README): 0 success; 1 the command worked but found
problems (row errors in `run`, errors in `check`); 2 the command could not
do its job (bad usage, a policy that does not compile, an unreadable input).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import importlib.util
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import click
from rich import box
from rich.columns import Columns
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text
from rich.tree import Tree

from . import ENGINES, Policy, ReferencePolicy, load_policy, reports
from .batch import PolicySpec, Rendered, WorkerError, decide_stream
from .checker import check
from .decision import Decision, format_exact_instant, format_instant
from .errors import Diagnostic, PolicyCheckError, PolicySyntaxError, excerpt, source_lines
from .explain import Step, explanation, overview, provenance_text
from .formatter import FormatterError, format_source
from .highlight import highlight, highlight_fragment
from .history import RunHistory, open_history
from .inputs import normalise_id
from .io import (
    AccountRow,
    AccountsSource,
    History,
    HistoryFacts,
    InputError,
    Interrupted,
    LineFormat,
    RejectedRows,
    Vocabulary,
    actionable,
    atomic_binary_output,
    atomic_output,
    check_outputs,
    first_reasons,
    interruptible,
    is_parquet_name,
    read_accounts,
    read_history,
    stops_end_at_commit,
    visible,
)
from .loader import load_file, read_source
from .suggest import did_you_mean_aside

EXIT_OK, EXIT_PROBLEMS, EXIT_UNUSABLE = 0, 1, 2
_P = ParamSpec("_P")
_Built = TypeVar("_Built")


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _parse_now(value: str | None) -> dt.datetime:
    if value is None:
        # the CLI, never the evaluator, reads the clock; to the second, so that the instant it
        # reports reproduces every decision when passed back as --now
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        now = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO-8601, e.g. 2025-06-04T02:00:00Z") from None
    if now.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no offset; write Z or +08:00")
    return now


def _load(path: str, include_paths: tuple[str, ...]) -> Policy:
    """The compiled policy, or a clean exit 2 with positioned errors."""
    return _compiled_or_exit(lambda: load_policy(path, include_paths))


def _compiled_or_exit(build: Callable[[], _Built]) -> _Built:
    """What `build` compiles, or its policy errors as positioned diagnostics and exit 2."""
    try:
        return build()
    except PolicySyntaxError as error:
        _print_diagnostics([error.diagnostic], {error.span.file: error.source or ""})
        sys.exit(EXIT_UNUSABLE)
    except PolicyCheckError as error:
        _print_diagnostics([d for d in error.diagnostics if d.severity == "error"], error.sources)
        sys.exit(EXIT_UNUSABLE)


def _print_diagnostics(diagnostics: list[Diagnostic], sources: dict[str, str]) -> None:
    console = _stderr()
    for diagnostic in diagnostics:
        colour = {"error": "red", "warning": "yellow"}.get(diagnostic.severity, "dim")
        span = diagnostic.span
        console.print(f"[bold]{escape(span.file)}:{span.line}:{span.column}:[/] "
                      f"[{colour}]{diagnostic.severity}[{diagnostic.code}][/]: {escape(diagnostic.message)}")
        source = sources.get(span.file)
        if not source:
            continue
        shown = excerpt(source, span)
        # Highlighting is only seen in colour; skipping it keeps thousands of findings quick in CI logs.
        console.print(_coloured_excerpt(shown, source, span.line) if console.color_system else Text(shown))


def _position(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    span = diagnostic.span
    return span.file, span.line, span.column, diagnostic.code


def _coloured_excerpt(text: str, source: str, line_number: int) -> Text:
    """An `excerpt` with its source line highlighted."""
    shown, newline, marker = text.partition("\n")
    gutter, bar, code = shown.partition(" | ")
    lines = source_lines(source)
    line = lines[line_number - 1].expandtabs(1) if 1 <= line_number <= len(lines) else code
    return Text.assemble(gutter + bar, highlight_fragment(code, line), newline + marker)


# Whether this process is the `policy` program (`program()`), which exits when its command returns; not when
# a caller runs `main` in its own process (click's test runner, an application), whose signal handlers stay.
_AS_PROGRAM = False


def program() -> None:
    """The `policy` command and `python -m policydsl`."""
    global _AS_PROGRAM
    _AS_PROGRAM = True
    stops_end_at_commit()
    main(prog_name="policy")


def _stops_on_signals(command: Callable[_P, None]) -> Callable[_P, None]:
    """Ctrl-C, SIGTERM or SIGHUP end the command with one line and exit code
    128 + the signal number (130, 143, 129), never a traceback; outputs being
    written are not replaced and their temporary files are removed (by
    `atomic_output`, as the interruption unwinds through it)."""

    @functools.wraps(command)
    def stoppable(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            with interruptible(then_ignore=_AS_PROGRAM):  # the process exits next (see interruptible)
                command(*args, **kwargs)
        except Interrupted as interrupted:
            _stderr().print(f"[red]interrupted by {interrupted.name}:[/] stopped before the end; "
                            "no output file was replaced")
            sys.exit(interrupted.exit_code)

    return stoppable


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="policydsl")
def main() -> None:
    """policydsl: debt-collection policies as code."""


# ------------------------------------------------------------ run


@main.command()
@click.argument("policy_path", metavar="POLICY", type=click.Path(dir_okay=False))
@click.argument("accounts_path", metavar="ACCOUNTS", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--history", "history_path", type=click.Path(dir_okay=False),
              help="Contact history CSV: account_id,action,at,outcome.")
@click.option("--now", "now_text", help="Evaluation instant, ISO-8601 with offset (default: the current instant).")
@click.option("--format", "output_format", type=click.Choice(["jsonl", "csv", "table", "parquet"]),
              help="Decisions as JSONL (the default), CSV, a table, or Parquet (lists and structs; the default "
                   "for an -o file named .parquet).")
@click.option("--input-format", type=click.Choice(["csv", "jsonl", "parquet"]),
              help="The accounts file's format (default: Parquet for a file named .parquet, .pq or .parq, JSON "
                   "lines for .jsonl or .ndjson, else CSV). A --history file named .parquet is read as Parquet too.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write decisions here (atomically) instead of standard output.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False),
              help="Also write the rejected rows verbatim, with the reason, to this CSV.")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False),
              help="Another directory includes may read from.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes; output order is unchanged.")
@click.option("--engine", type=click.Choice(ENGINES), default="compiled", show_default=True,
              help="reference: the slow tree-walking interpreter, for cross-checking (same decisions).")
@click.option("--strict", is_flag=True,
              help="Exit 2 before any decision when an accounts column is no field or a defaulted field has no "
                   "column; an account with a history row naming an unknown action or outcome gets an error.")
@click.option("--blocked", "blocked_entries", type=click.Choice(["all", "actionable"]), default="all",
              show_default=True,
              help="JSONL: actionable leaves out the entries time cannot lift (not_allowed, and forbids whose "
                   "until is null).")
@_stops_on_signals
def run(policy_path: str, accounts_path: str, history_path: str | None, now_text: str | None,
        output_format: str | None, input_format: str | None, output_path: str | None, errors_path: str | None,
        include_paths: tuple[str, ...], quiet: bool, jobs: int, engine: str, strict: bool,
        blocked_entries: str) -> None:
    """Decide every account of ACCOUNTS (CSV or Parquet) under POLICY: one decision per row, in order."""
    output_format = output_format or ("parquet" if output_path and is_parquet_name(output_path) else "jsonl")
    _check_parquet_output(output_format, output_path, input_format, accounts_path, history_path)
    now = _parse_now(now_text)
    policy: Policy | ReferencePolicy = _load(policy_path, include_paths)
    if engine == "reference":
        policy = ReferencePolicy(policy.model)
    started = time.perf_counter()
    with contextlib.ExitStack() as resources:
        try:
            history = resources.enter_context(_open_run_history(policy, history_path, accounts_path, strict))
            rows = read_accounts(accounts_path, policy.required_fields(), set(policy.model.fields), input_format,
                                 strict)
            check_outputs({"-o": output_path, "--errors": errors_path},
                          [*policy.model.sources, accounts_path, *([history_path] if history_path else [])])
        except InputError as error:
            _stderr().print(f"[red]error:[/] {escape(str(error))}")
            sys.exit(EXIT_UNUSABLE)
        facts = history.facts  # complete once the run has read the whole history (`unmatched()`)
        if strict and rows.notes:
            _refuse_strict(rows.notes)
        stats = _RunStats()
        try:
            with _optional_output(errors_path) as rejected_handle:
                rejected = RejectedRows(rejected_handle, rows.header) if rejected_handle else None
                spec = PolicySpec.of(policy)
                line_format = None if output_format in ("table", "parquet") else \
                    LineFormat(output_format, blocked_entries, policy.actions)
                decisions = _decide_rows(policy, iter(rows), history, now, stats, rejected, jobs, spec, line_format)
                if not quiet and _stderr().is_terminal:
                    decisions = _with_progress(decisions, accounts_path)
                if output_format == "parquet":
                    with atomic_binary_output(output_path) as binary:
                        _write_parquet(decisions, binary, blocked_entries)
                else:
                    with atomic_output(output_path) as out:
                        _write(decisions, line_format, out)
            report = _input_report(rows, facts, history.unmatched())
        except (InputError, WorkerError) as error:  # an output that cannot be created or written, a dead worker
            _stderr().print(f"[red]error:[/] {escape(str(error))}")
            sys.exit(EXIT_UNUSABLE)
    for problem in facts.problems:
        _stderr().print(f"[yellow]history:[/] {visible(problem)}")
    if now_text is None:
        report.insert(0, f"decided at {format_exact_instant(now)} (the current instant; "
                         "pass --now to decide at another)")
    if quiet:
        for line in report:
            _stderr().print(line)
    else:
        _print_summary(stats, facts, history.how, time.perf_counter() - started,
                       [s.name for s in policy.model.stages], report)
    sys.exit(EXIT_PROBLEMS if stats.errors or facts.problems else EXIT_OK)


def _open_run_history(policy: Policy | ReferencePolicy, history_path: str | None, accounts_path: str,
                      strict: bool) -> RunHistory:
    """The run's contact history, found by a join or an index on disk
    (`policydsl.history`), or none without `--history`."""
    if history_path is None:
        return RunHistory()
    return open_history(history_path, Vocabulary.of(policy.model), accounts_path, strict)


def _refuse_strict(notes: list[str]) -> None:
    """`--strict`: every input the policy would ignore stops the run before
    any output is created."""
    console = _stderr()
    for note in notes:
        console.print(f"[red]error:[/] {visible(note)}")
    console.print(f"[red]--strict: {_plural(len(notes), 'problem')} in the inputs; nothing decided[/]")
    sys.exit(EXIT_UNUSABLE)


def _input_report(rows: AccountsSource, history: HistoryFacts, unmatched: int) -> list[str]:
    """What the inputs held that the policy does not read: ignored and absent
    columns, removed byte-order marks, history rows naming unknown actions or
    outcomes, history rows of no account in the run (rich markup)."""
    note = "[yellow]note:[/]"
    lines = [f"{note} {_shown(text)}" for text in rows.notes]
    for path, numbers in ((rows.path, rows.bom_lines), (history.path, history.bom_lines)):
        if numbers:
            lines.append(f"{note} {_shown(path)}: byte-order mark inside the file removed on "
                         f"line(s) {_lines_list(numbers)} (concatenated exports?)")
    free_text = []
    for (what, value), (count, meant) in sorted(history.unknown.items()):
        if what == "outcome" and meant is None and not history.outcomes_declared:
            free_text.append(f"{_shown(repr(value))} ×{count:,}")
            continue
        hint = f" (did you mean {_shown(repr(meant))}?)" if meant is not None else ""
        verb = "names" if count == 1 else "name"
        lines.append(f"{note} {_shown(history.path)}: {_plural(count, 'row')} {verb} {what} {_shown(repr(value))}, "
                     f"which the policy does not know{hint}")
    if free_text:
        lines.append(f"{note} {_shown(history.path)}: outcomes no rule names (free text, never matched): "
                     + ", ".join(free_text))
    if history.refused and history.refused.keys() <= history.broken.keys():
        lines.append(f"{note} --strict: {_plural(len(history.refused), 'account')} not decided because of "
                     "history rows naming an unknown action or outcome")
    if unmatched:
        lines.append(f"{note} {_shown(history.path)}: {_plural(unmatched, 'row')} for account ids that are not in "
                     "the accounts file (they decided nothing)")
    return lines


def _lines_list(numbers: list[int], shown: int = 5) -> str:
    listed = ", ".join(str(number) for number in numbers[:shown])
    return listed + (f" and {len(numbers) - shown:,} more" if len(numbers) > shown else "")


_Decided = TypeVar("_Decided", Decision, Decision | Rendered)


class _RunStats:
    def __init__(self) -> None:
        self.rows = 0
        self.errors = 0
        self.stages: Counter[str] = Counter()
        self.next_actions: Counter[str] = Counter()


def _decide_rows(policy: Policy | ReferencePolicy, rows: Iterator[AccountRow], history: RunHistory, now: dt.datetime,
                 stats: _RunStats, rejected: RejectedRows | None, jobs: int, spec: PolicySpec,
                 line_format: LineFormat | None) -> Iterator[Decision | Rendered]:
    for row, decision in decide_stream(policy, rows, history, now, jobs, spec, line_format):
        stats.rows += 1
        if decision.error:
            stats.errors += 1
            if rejected is not None:
                rejected.add(row, decision.error)
        else:
            stats.stages[decision.stage or "(no stage)"] += 1
            stats.next_actions[decision.next_action or "(nothing allowed now)"] += 1
        yield decision


def _with_progress(decisions: Iterator[_Decided], label: str) -> Iterator[_Decided]:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_stderr(), transient=True) as progress:
        task = progress.add_task(Path(label).name, total=None, rate="")
        started = time.perf_counter()
        for count, decision in enumerate(decisions, 1):
            yield decision
            if count % 500 == 0:
                elapsed = time.perf_counter() - started
                progress.update(task, completed=count, rate=f"{count / elapsed:,.0f} rows/s" if elapsed else "")


def _write(decisions: Iterator[Decision | Rendered], line_format: LineFormat | None, out: IO[str]) -> None:
    """Lines (JSONL, CSV) as they come, rendered here or already by a
    `--jobs` worker; else the table, which needs every Decision."""
    if line_format is None:
        _write_table((decision for decision in decisions if isinstance(decision, Decision)), out)
        return
    out.write(line_format.header())
    for decision in decisions:
        out.write(decision.line if isinstance(decision, Rendered) else line_format.line(decision))


def _check_parquet_output(output_format: str, output_path: str | None, input_format: str | None,
                          accounts_path: str, history_path: str | None) -> None:
    """Exit 2 before reading anything when Parquet is asked for and cannot
    be had: pyarrow missing (the extra names it), or Parquet bytes bound
    for a terminal."""
    wants = output_format == "parquet" or input_format == "parquet" or any(
        path is not None and path != "-" and is_parquet_name(path) for path in (accounts_path, history_path))
    if not wants:
        return
    if importlib.util.find_spec("pyarrow") is None:
        _stderr().print("[red]error:[/] Parquet needs pyarrow: " + escape("pip install 'policydsl[parquet]'"))
        sys.exit(EXIT_UNUSABLE)
    if output_format == "parquet" and (output_path is None or output_path == "-") and sys.stdout.isatty():
        _stderr().print("[red]error:[/] Parquet output is binary: give -o FILE.parquet (or redirect it)")
        sys.exit(EXIT_UNUSABLE)


def _write_parquet(decisions: Iterator[Decision | Rendered], out: IO[bytes], blocked_entries: str) -> None:
    """Row groups of decisions, as they come (`--blocked actionable` too)."""
    from .parquet import DecisionWriter

    writer = DecisionWriter(out)
    for decision in decisions:
        assert isinstance(decision, Decision)  # no line format: workers send Decisions back
        writer.add(actionable(decision) if blocked_entries == "actionable" else decision)
    writer.close()


def _shown(text: str) -> str:
    """Input text for the terminal: control characters escaped, then markup."""
    return escape(visible(text))


def _write_table(decisions: Iterator[Decision], out: IO[str]) -> None:
    """One row per account: id, stage and segments; the next action, then the
    other allowed ones; each block that time lifts with its `until` and first
    restricting reason, then the fixed ones grouped by kind (their reasons are
    in the JSONL and `policy explain`). One identifier per line, so a narrow
    terminal wraps between names rather than inside them."""
    rows: list[tuple[str, str, str]] = []
    widths = [len("account"), len("allowed"), len("forbidden:")]  # as wide as their longest name
    for decision in decisions:
        account = f"[bold]{_shown(decision.account_id or '?')}[/]"
        widths[0] = max(widths[0], len(visible(decision.account_id or "?")))
        if decision.error:
            rows.append((account, "", f"[red]{_shown(decision.error)}[/]"))
            continue
        names = [decision.stage or "(no stage)", *decision.segments]
        widths[0] = max(widths[0], *(len(visible(name)) for name in names))
        widths[1] = max(widths[1], *(len(visible(name)) for name in decision.allowed or ("-",)))
        account += "\n" + _shown(names[0]) + "".join(f"\n[dim]{_shown(name)}[/]" for name in names[1:])
        allowed = f"[green]{_shown(decision.next_action)}[/]" if decision.next_action else "-"
        allowed += "".join(f"\n{_shown(name)}" for name in decision.allowed[1:])
        rows.append((account, allowed, _blocked_cell(decision)))
    # No outer frame and no padding right of a cell: three columns of 18-, 24- and 31-character names (a
    # comma after the last: the e-commerce policy's) fit 80 columns without breaking a name.
    table = Table(show_lines=True, header_style="bold", expand=True, show_edge=False, padding=(0, 0, 0, 1))
    table.add_column("account\nstage\nsegments", overflow="fold", min_width=min(widths[0], 24))
    table.add_column("next action\nallowed", overflow="fold", min_width=min(widths[1], 24))
    table.add_column("blocked: until · first reason", overflow="fold", ratio=1, min_width=min(widths[2] + 1, 32))
    for row in rows:
        table.add_row(*row)
    # A terminal (or COLUMNS) sets the width; a file gets room for the long reasons.
    width = None if out.isatty() or "COLUMNS" in os.environ else 160
    Console(file=out, highlight=False, width=width).print(table)


_FIXED_LABELS = {"not_allowed": "not allowed here", "forbidden": "forbidden"}


def _blocked_cell(decision: Decision) -> str:
    lifts: list[str] = []
    fixed: dict[str, list[str]] = {}
    for action, entry in first_reasons(decision).items():
        if entry.until is not None:
            lifts.append(f"[bold]{_shown(action)}[/] until {format_instant(entry.until)} · {_shown(entry.reason)}")
        else:
            fixed.setdefault(_FIXED_LABELS.get(entry.kind, f"{entry.kind}, not lifted by time"), []).append(action)
    groups = [f"[dim]{label}: {_shown(', '.join(names))}[/]" for label, names in fixed.items()]
    return "\n".join(lifts + groups)


class _optional_output:
    """`--errors FILE` when given, written atomically like the main output."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.context: Any = None

    def __enter__(self) -> IO[str] | None:
        if self.path is None:
            return None
        self.context = atomic_output(self.path, errors="surrogateescape")  # rejected rows byte for byte
        return self.context.__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: Any) -> None:
        if self.context is not None:
            self.context.__exit__(*exc)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _print_summary(stats: _RunStats, history: HistoryFacts, how: str, elapsed: float, stage_order: list[str],
                   report: list[str]) -> None:
    """The reconciliation first (rows read = decisions + error rows), then
    the contact history and `how` its contacts were found (which says what
    memory the run needed), then what the inputs held that the policy does
    not read (`report`), then where the portfolio stands: accounts by stage
    and by next action."""
    console = _stderr()
    decided = stats.rows - stats.errors
    errors = f"[{'red' if stats.errors else 'green'}]{_plural(stats.errors, 'error row')}[/]"
    speed = f"  ({elapsed:.2f} s, {stats.rows / elapsed:,.0f} rows/s)" if elapsed >= 0.5 else ""
    console.print(f"[bold]{_plural(stats.rows, 'row')} read[/] = [green]{_plural(decided, 'decision')}[/] "
                  f"+ {errors}{speed}")
    if history.rows:
        unreadable = len(history.problems)
        console.print(f"contact history: {_plural(history.rows, 'row')}, "
                      + (f"[red]{unreadable:,} unreadable[/]" if unreadable else "all readable") + f"; {how}")
    for line in report:
        console.print(line)
    if not decided:
        return
    by_stage = Table("stage", Column("accounts", justify="right"), header_style="bold", box=box.SIMPLE)
    ordered = [name for name in stage_order if name in stats.stages]
    for stage in ordered + [name for name in stats.stages if name not in ordered]:
        by_stage.add_row(stage, f"{stats.stages[stage]:,}")
    by_action = Table("next action", Column("accounts", justify="right"), header_style="bold", box=box.SIMPLE)
    for action, count in stats.next_actions.most_common():
        by_action.add_row(action, f"{count:,}")
    console.print(Columns([by_stage, by_action]))


# ------------------------------------------------------------ diff


@main.command("diff")
@click.argument("old_path", metavar="OLD", type=click.Path(dir_okay=False))
@click.argument("new_path", metavar="NEW", type=click.Path(dir_okay=False))
@click.argument("accounts_path", metavar="[ACCOUNTS]", required=False,
                type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--history", "history_path", type=click.Path(dir_okay=False),
              help="Contact history CSV: account_id,action,at,outcome (read once, for both policies).")
@click.option("--now", "now_text", help="Evaluation instant, ISO-8601 with offset (default: the current instant).")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "html"]), default="text",
              show_default=True, help="text: tables for a terminal; json: one object; html: one self-contained page.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the report here (atomically) instead of standard output.")
@click.option("--fail-on", "fail_on", type=click.Choice(["loosened", "any"]),
              help="Exit 1 when an action is newly allowed for any account (loosened) or on any change (any).")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False),
              help="Another directory includes may read from.")
@click.option("--limit", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Changed accounts listed one by one; the rest are counted.")
@click.option("--exhaustive", is_flag=True,
              help="Also compare the two policies over every case (policydsl.equivalence); ACCOUNTS is then "
                   "optional.")
@_stops_on_signals
def diff_command(old_path: str, new_path: str, accounts_path: str | None, history_path: str | None,
                 now_text: str | None, output_format: str, output_path: str | None, fail_on: str | None,
                 include_paths: tuple[str, ...], limit: int, exhaustive: bool) -> None:
    """What changes from OLD to NEW, account by account over ACCOUNTS (CSV or Parquet), and in summary."""
    from . import impact_report
    from .impact import DiffSummary, diff_portfolio

    if accounts_path is None and not exhaustive:
        raise click.UsageError("give ACCOUNTS, or --exhaustive to compare the policies over every case")
    if accounts_path is None and history_path is not None:
        raise click.UsageError("--history needs ACCOUNTS")
    now = _parse_now(now_text)
    old_policy, new_policy = _load(old_path, include_paths), _load(new_path, include_paths)
    report = impact_report.DiffReport(old_path, new_path, old_policy.provenance, new_policy.provenance, now,
                                      fail_on=fail_on)
    inputs = [*old_policy.model.sources, *new_policy.model.sources,
              *([accounts_path] if accounts_path else []), *([history_path] if history_path else [])]
    if exhaustive:
        report.verdict = _exhaustive_verdict(old_policy, new_policy)
    facts: HistoryFacts | None = None
    notes: list[str] = []
    with contextlib.ExitStack() as resources:
        try:
            check_outputs({"-o": output_path}, inputs)
            if accounts_path is not None:
                history = resources.enter_context(_open_diff_history(old_policy, new_policy, history_path,
                                                                     accounts_path))
                facts = history.facts
                rows = read_accounts(accounts_path, old_policy.required_fields() | new_policy.required_fields(),
                                     set(old_policy.model.fields) | set(new_policy.model.fields))
                summary = DiffSummary(limit)
                for _ in diff_portfolio(old_policy, new_policy, rows, history, now, summary):
                    pass  # the summary keeps the examples it shows
                # (unmatched() reads the rest of a joined history, so that its problems are all known)
                notes = _input_report(rows, facts, history.unmatched())
                report.summary = summary
            report.failed = impact_report.fails(report, fail_on)
            with atomic_output(output_path) as out:
                _write_diff(report, output_format, out)
        except InputError as error:
            _stderr().print(f"[red]error:[/] {escape(str(error))}")
            sys.exit(EXIT_UNUSABLE)
    console = _stderr()
    for problem in facts.problems if facts is not None else ():
        console.print(f"[yellow]history:[/] {visible(problem)}")
    for line in notes:
        console.print(line)
    if output_path not in (None, "-") and report.summary is not None:
        summary = report.summary
        console.print(f"{_plural(summary.accounts, 'account')}: {summary.changed:,} changed, "
                      f"{_plural(summary.accounts_newly_allowed, 'account')} with an action newly allowed; "
                      f"report written to {_shown(str(output_path))}")
    if fail_on is not None and (output_path not in (None, "-") or output_format != "text"):  # else in the report
        console.print(f"--fail-on {fail_on}: " + ("[red]fails[/]" if report.failed else "[green]passes[/]"))
    sys.exit(EXIT_PROBLEMS if report.failed else EXIT_OK)


def _open_diff_history(old: Policy, new: Policy, history_path: str | None, accounts_path: str) -> RunHistory:
    """One history for both policies, knowing the names either knows."""
    if history_path is None:
        return RunHistory()
    first, second = Vocabulary.of(old.model), Vocabulary.of(new.model)
    vocabulary = Vocabulary(tuple(dict.fromkeys(first.actions + second.actions)),
                            tuple(dict.fromkeys(first.outcomes + second.outcomes)),
                            first.outcomes_declared and second.outcomes_declared)
    return open_history(history_path, vocabulary, accounts_path)


def _exhaustive_verdict(old: Policy, new: Policy) -> Any:
    """policydsl.equivalence's verdict on the two policies (imported here:
    only `--exhaustive` needs it). A counterexample that does not reproduce
    through both engines is a bug, said in one line, never a traceback."""
    from .equivalence import ReplayError, compare

    try:
        return compare(old, new)
    except ReplayError as failed:
        _stderr().print(f"[red]error:[/] --exhaustive found a difference it could not reproduce through both "
                        f"engines, which is a bug in policydsl; please report it: {escape(str(failed))}")
        sys.exit(EXIT_UNUSABLE)


def _write_diff(report: Any, output_format: str, out: IO[str]) -> None:
    from . import impact_report

    if output_format == "json":
        out.write(impact_report.report_json(report))
    elif output_format == "html":
        out.write(impact_report.report_html(report))
    else:
        # A terminal (or COLUMNS) sets the width; a file gets room for long lines.
        width = None if out.isatty() or "COLUMNS" in os.environ else 160
        impact_report.print_text(report, Console(file=out, highlight=False, width=width))


# ------------------------------------------------------------ check


def _policy_files(paths: tuple[str, ...]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            files.extend(sorted(str(p) for p in Path(path).rglob("*.policy")))
        else:
            files.append(path)
    return files


@main.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True, help="sarif: SARIF 2.1.0 for code scanning; github: workflow annotations.")
@click.option("--strict", is_flag=True, help="Warnings fail the check too.")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False))
@click.option("--show-suppressed", is_flag=True,
              help="Also list the warnings silenced by `# policy: ignore[CODE]` comments.")
@_stops_on_signals
def check_command(paths: tuple[str, ...], output_format: str, strict: bool, include_paths: tuple[str, ...],
                  show_suppressed: bool) -> None:
    """Parse and check policy files (directories: every *.policy inside)."""
    files = _policy_files(paths)
    if not files:
        raise click.UsageError("no .policy files found in " + ", ".join(paths))
    found: list[Diagnostic] = []
    suppressed: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for path in files:
        try:
            model, diagnostics = check(load_file(path, include_paths))
            sources.update(model.sources)
            suppressed.extend(model.suppressed)
            found.extend(d for d in diagnostics if d.span.file == os.path.normpath(path) or d.severity == "error")
        except PolicySyntaxError as error:
            found.append(error.diagnostic)
            sources[error.span.file] = error.source or ""
    found = list(dict.fromkeys(found))
    errors = sum(d.severity == "error" for d in found)
    warnings = len(found) - errors
    renderers = {"json": reports.as_json, "sarif": reports.as_sarif, "github": reports.as_github}
    if output_format in renderers:
        rendered = renderers[output_format](found)
        if rendered:
            click.echo(rendered)
    else:
        _print_diagnostics(found, sources)
        if show_suppressed:
            _print_diagnostics([replace(d, severity="suppressed") for d in sorted(suppressed, key=_position)], sources)
        colour = "red" if errors else ("yellow" if warnings else "green")
        silenced = f", {len(suppressed)} suppressed" if suppressed else ""
        _stderr().print(f"[{colour}]{len(files)} file(s) checked: {errors} error(s), {warnings} warning(s)"
                        f"{silenced}[/]")
    sys.exit(EXIT_PROBLEMS if errors or (strict and warnings) else EXIT_OK)


# ------------------------------------------------------------ fmt


def _diff_lines(text: str) -> list[str]:
    """Lines with their endings, split on newlines only (as the parser counts them)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return [line for line in lines if line]


def _unified_diff(path: str, before: str, after: str) -> str:
    out = []
    for line in difflib.unified_diff(_diff_lines(before), _diff_lines(after), path, path):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _write_formatted(path: str, text: str) -> None:
    """Replace the file atomically, through a symlink, keeping its permissions."""
    target = os.path.realpath(path)
    mode = os.stat(target).st_mode & 0o7777
    with atomic_output(target) as out:
        out.write(text)
    os.chmod(target, mode)


@main.command("fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--check", "check_only", is_flag=True,
              help="Write nothing; exit 1 and name the files that are not formatted.")
@click.option("--diff", "show_diff", is_flag=True, help="Print a unified diff of the changes; write nothing.")
@_stops_on_signals
def fmt_command(paths: tuple[str, ...], check_only: bool, show_diff: bool) -> None:
    """Rewrite policy files in the one canonical layout, comments kept
    (directories: every *.policy inside)."""
    files = _policy_files(paths)
    if not files:
        raise click.UsageError("no .policy files found in " + ", ".join(paths))
    console = _stderr()
    changed, failed = 0, 0
    for path in files:
        try:
            source = read_source(path)
            formatted = format_source(source, path)
        except PolicySyntaxError as error:
            _print_diagnostics([error.diagnostic], {error.span.file: error.source or ""})
            failed += 1
            continue
        except FormatterError as error:
            console.print(f"[red]error:[/] {escape(str(error))}")
            failed += 1
            continue
        if formatted.encode("utf-8") == Path(path).read_bytes():
            continue
        changed += 1
        if show_diff:
            click.echo(_unified_diff(path, source, formatted), nl=False)
        if check_only or show_diff:
            if check_only:
                console.print(f"would reformat {escape(path)}")
            continue
        try:
            _write_formatted(path, formatted)
        except (InputError, OSError) as error:
            console.print(f"[red]error:[/] {escape(path)}: cannot write: {escape(str(error))}")
            failed += 1
            changed -= 1
            continue
        console.print(f"reformatted {escape(path)}")
    verb = "would be reformatted" if check_only or show_diff else "reformatted"
    unchanged = len(files) - changed - failed
    summary = f"{changed} file(s) {verb}, {unchanged} unchanged"
    if failed:
        summary += f", {failed} could not be formatted"
    console.print(f"[{'red' if failed else 'yellow' if changed else 'green'}]{summary}[/]")
    if failed:
        sys.exit(EXIT_UNUSABLE)
    sys.exit(EXIT_PROBLEMS if check_only and changed else EXIT_OK)


# ------------------------------------------------------------ explain


def _account_option(values: tuple[str, ...]) -> dict[str, str]:
    account: dict[str, str] = {}
    for chunk in values:
        for pair in chunk.split(","):
            if not pair.strip():
                continue
            if "=" not in pair:
                raise click.BadParameter(f"{pair!r}: write field=value")
            key, value = pair.split("=", 1)
            account[key.strip()] = value.strip()
    return account


@main.command("compile")
@click.argument("policy_path", metavar="POLICY", type=click.Path(dir_okay=False))
@click.option("--emit-python", is_flag=True, help="Print the Python source the policy compiles to.")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False))
@_stops_on_signals
def compile_command(policy_path: str, emit_python: bool, include_paths: tuple[str, ...]) -> None:
    """Compile a policy; with --emit-python, show the generated evaluator.

    Each generated line that comes from a rule ends with a comment naming the
    policy file and line; a traceback through the evaluator shows the same."""
    policy = _load(policy_path, include_paths)
    if emit_python:
        click.echo(policy.module.source, nl=False)
        return
    stages = len(policy.model.stages) or 1
    _stderr().print(f"{_shown(policy_path)}: compiled {_plural(len(policy.actions), 'action')} in "
                    f"{_plural(stages, 'stage')} to {_plural(policy.module.source.count(chr(10)), 'line')} of Python")


@main.command()
@click.argument("policy_path", metavar="POLICY", type=click.Path(dir_okay=False))
@click.argument("accounts_path", metavar="[ACCOUNTS]", required=False, type=click.Path(dir_okay=False))
@click.option("--account", "account_pairs", multiple=True, help="field=value,field=value (sets use ;).")
@click.option("--id", "account_id", help="Explain this account of ACCOUNTS.")
@click.option("--history", "history_path", type=click.Path(dir_okay=False))
@click.option("--now", "now_text", help="Evaluation instant, ISO-8601 with offset (default: now).")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False))
@click.option("--strict", is_flag=True,
              help="Exit 2 on an accounts column or --account key that is no field, or a defaulted field without "
                   "a column; no explanation on history rows naming an unknown action or outcome.")
@_stops_on_signals
def explain(policy_path: str, accounts_path: str | None, account_pairs: tuple[str, ...], account_id: str | None,
            history_path: str | None, now_text: str | None, include_paths: tuple[str, ...], strict: bool) -> None:
    """Why each action is allowed or blocked for one account."""
    now = _parse_now(now_text)
    policy = _load(policy_path, include_paths)
    try:
        history = read_history(history_path, Vocabulary.of(policy.model)) if history_path else History()
        account, notes = _find_account(policy, accounts_path, account_id, account_pairs)
    except InputError as error:
        _stderr().print(f"[red]error:[/] {escape(str(error))}")
        sys.exit(EXIT_UNUSABLE)
    if strict and notes:
        _refuse_strict(notes)
    for note in notes:
        _stderr().print(f"[yellow]note:[/] {_shown(note)}")
    decision = policy.evaluate(account, history.for_account(account.get("id")), now=now)
    problem = history.broken.get(account.get("id", "")) or (history.refused.get(account.get("id", "")) if strict
                                                             else None)
    if problem is not None:  # as in `run`: never decide on a partial history
        decision = policy.error_decision(account.get("id"), f"contact history: {problem}", now=now)
    console = Console(highlight=False)
    if decision.error:
        console.print(f"[red]account {_shown(str(account.get('id')))} cannot be evaluated:[/] "
                      f"{_shown(decision.error)}")
        sys.exit(EXIT_PROBLEMS)
    console.print(_explanation_tree(policy, decision, now))


def _find_account(policy: Policy, accounts_path: str | None, account_id: str | None,
                  pairs: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """The account to explain, and what its input held that the policy does
    not read (keys or columns that are no field, fields left to defaults)."""
    if pairs:
        account = _account_option(pairs)
        if "id" in account:
            account["id"] = normalise_id(account["id"])
        fields = set(policy.model.fields)
        notes = [f"--account: {_unknown_key(key, fields)}" for key in account if key not in fields]
        return account, notes
    if not accounts_path or not account_id:
        raise click.UsageError("give --account field=value,... or ACCOUNTS with --id ID")
    wanted = normalise_id(account_id)
    rows = read_accounts(accounts_path, set(), set(policy.model.fields))
    for row in rows:
        if row.values is not None and row.account_id == wanted:
            return row.values, rows.notes
    raise InputError(f"{accounts_path}: no account with id {wanted!r}")


def _unknown_key(key: str, fields: set[str]) -> str:
    return f"{key!r} is not a field of the policy and is ignored" + did_you_mean_aside(key, fields)


def _explanation_tree(policy: Policy, decision: Decision, now: dt.datetime) -> Tree:
    tree = Tree(f"[bold]account {_shown(decision.account_id or '?')}[/] at {now.isoformat()}  ·  "
                f"next action: [bold green]{decision.next_action or 'none'}[/]\n"
                f"[dim]decided by {_shown(provenance_text(decision))}[/]")
    for step in overview(decision):
        _add_step(tree, step, "cyan")
    for item in explanation(decision, policy.actions):
        if item.allowed:
            label = f"[green]✔ {item.action}[/] allowed"
        else:
            when = f"until {item.until}" if item.until else "time alone will not lift it"
            label = f"[red]✘ {item.action}[/] blocked ({when})"
        node = tree.add(label)
        for step in item.steps:
            _add_step(node, step, "green" if item.allowed else "red")
    return tree


def _add_step(parent: Tree, step: Step, colour: str) -> None:
    node = parent.add(f"[{colour}]{step.verdict}[/]: {_shown(step.message)}")
    node.add(Text.assemble((visible(f"{step.rule.location} [{step.rule.id}]"), "dim"), "  ",
                           highlight(visible(step.rule.head))))
    if step.values:
        node.add(f"[dim]read:[/] {_shown(step.values)}")


# ------------------------------------------------------------ test


@main.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--coverage", "show_coverage", is_flag=True,
              help="Report the rules, stages, segments and condition operands the cases exercised.")
@click.option("--fail-under", type=click.FloatRange(0, 100), metavar="PERCENT",
              help="Exit 1 when a policy's coverage is below PERCENT (measures coverage; --coverage shows the table).")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False),
              help="Also write the results as JUnit XML to this file (atomically).")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False),
              help="Another directory the policies' includes may read from.")
@_stops_on_signals
def test_command(paths: tuple[str, ...], show_coverage: bool, fail_under: float | None, junit_path: str | None,
                 include_paths: tuple[str, ...]) -> None:
    """Run policy test files (YAML; directories: every *.test.yaml and *.test.yml inside)."""
    from . import testing

    files = testing.find_test_files(paths)
    if not files:
        raise click.UsageError("no *.test.yaml or *.test.yml files found in " + ", ".join(paths))
    runner = testing.Runner(include_paths, coverage=show_coverage or fail_under is not None)
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)
    started = time.perf_counter()
    results = []
    for path in files:
        result = runner.run_path(path)
        results.append(result)
        _print_test_file(console, result)
    elapsed = time.perf_counter() - started
    passed = sum(len(result.results) - len(result.failed) for result in results)
    failed = sum(len(result.failed) for result in results)
    unusable = sum(result.error is not None for result in results)
    under = []
    for coverage in runner.coverage.values():
        if show_coverage:
            _print_coverage_table(console, coverage)
        else:
            console.print(f"coverage of {escape(coverage.model.policy.path)}: {coverage.summary()}")
        if fail_under is not None and not coverage.meets(fail_under):
            under.append(coverage)
    summary = f"{passed} passed, {failed} failed"
    if unusable:
        summary += f", {unusable} test file(s) could not be used"
    colour = "red" if failed or unusable else "green"
    console.print(f"[{colour}]{summary}[/] ({len(files)} test file(s), {elapsed:.2f} s)")
    for coverage in under:
        console.print(f"[red]coverage of {escape(coverage.model.policy.path)} is {coverage.percent:.1f}%, "
                      f"under --fail-under {fail_under:g}%[/]")
    if junit_path is not None:
        try:
            with atomic_output(junit_path) as out:
                out.write(testing.junit_xml(results, runner.coverage))
        except (InputError, OSError) as error:
            _stderr().print(f"[red]error:[/] {escape(str(error))}")
            sys.exit(EXIT_UNUSABLE)
    if unusable:
        sys.exit(EXIT_UNUSABLE)
    sys.exit(EXIT_PROBLEMS if failed or under else EXIT_OK)


def _print_test_file(console: Console, result: Any) -> None:
    """One line per case, under the file; failures with expected against
    actual and the decision's explanation."""
    from .testing import failure_text

    target = f" [dim]→ {escape(result.policy_path)}[/]" if result.policy_path else ""
    console.print(f"[bold]{escape(result.path)}[/]{target}")
    if result.error is not None:
        first, *rest = result.error.splitlines()
        console.print(f"  [red]✘ cannot be used:[/] {escape(first)}")
        for line in rest:
            console.print("      " + escape(line))
        return
    for case_result in result.results:
        if case_result.passed:
            console.print(f"  [green]✔[/] {escape(case_result.case.name)}")
            continue
        console.print(f"  [red]✘ {escape(case_result.case.name)}[/] [dim](case {case_result.case.number})[/]")
        for line in failure_text(case_result).splitlines():
            console.print("      " + escape(line))


def _print_coverage_table(console: Console, coverage: Any) -> None:
    """Rules, stages and segments by line: exercised or not, and the
    outcomes their conditions' operands were seen to take."""
    from .decision import RuleInfo

    root = coverage.model.policy.path
    base = os.path.dirname(root)
    console.print(f"[bold]coverage of {escape(root)}[/]: {escape(coverage.summary())}")
    table = Table(header_style="bold", show_lines=False)
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("rule", overflow="fold", ratio=3)
    table.add_column("exercised", overflow="fold", ratio=1)
    table.add_column("conditions (each seen true and false)", overflow="fold", ratio=2)
    shown_file = root
    for row in coverage.rows:
        item = row.item
        if item.span.file != shown_file:  # rules of an included file, under its name
            shown_file = item.span.file
            table.add_section()
            table.add_row("", "", f"[bold]{escape(os.path.relpath(shown_file, base or '.'))}[/] (included)", "", "")
        line = str(item.span.line)
        mark = "[green]✔[/]" if item.covered else "[red]✘[/]"
        conditions = ""
        if row.conditions:
            done = sum(part.covered for part in row.conditions)
            colour = "green" if done == len(row.conditions) else "red"
            missing = [f"{escape(part.text)}: {part.status()}" for part in row.conditions if not part.covered]
            conditions = f"[{colour}]{done}/{len(row.conditions)}[/]" + "".join(f"\n[red]✘[/] {m}" for m in missing)
        text = RuleInfo(item.span.file, item.span.line, item.text).head if item.category == "rule" else item.text
        table.add_row(line, item.label, escape(text), f"{mark} {escape(item.status())}", conditions)
    console.print(table, soft_wrap=False)


# ------------------------------------------------------------ serve


@main.command("serve")
@click.argument("policy_paths", metavar="POLICY...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(0, 65535), default=8181, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--ledger", "ledger_url", metavar="URL",
              help="Contact ledger: sqlite:///path.db (one file) or postgresql://... (several instances).")
@click.option("--decision-log", "decision_log", metavar="FILE|-", help="Append one JSON line per decision.")
@click.option("--decision-log-max-mb", type=click.IntRange(min=1), default=100, show_default=True,
              help="Rotate the decision log past this size (FILE.1, FILE.2, ...).")
@click.option("--decision-log-backups", type=click.IntRange(min=1), default=5, show_default=True,
              help="Rotated decision-log files kept; the oldest is dropped.")
@click.option("--mask", metavar="FIELDS", help="Account fields kept out of the decision log: name (erased) or "
                                               "name:hash (keyed hash), comma-separated.")
@click.option("--mask-key-file", type=click.Path(dir_okay=False, exists=True), help="Key for --mask name:hash.")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True),
              help="Require Authorization: Bearer <the file's content> (health checks stay open).")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds a request may take, reading its body included.")
@click.option("--max-body-kb", type=click.IntRange(min=1), default=1024, show_default=True,
              help="The largest request body; a larger one is refused with 413.")
@click.option("--reload-interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between checks of the policy files for changes.")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False),
              help="Another directory the policies' includes may read from.")
def serve_command(policy_paths: tuple[str, ...], host: str, port: int, ledger_url: str | None,
                  decision_log: str | None, decision_log_max_mb: int, decision_log_backups: int, mask: str | None,
                  mask_key_file: str | None, token_file: str | None, request_timeout: float, max_body_kb: int,
                  reload_interval: float, include_paths: tuple[str, ...]) -> None:
    """Serve decisions over HTTP (see docs/service.md); SIGTERM drains and stops."""
    try:
        from .service import Service, ServiceConfig, serve
    except ImportError as missing:
        _stderr().print(f"[red]error:[/] policy serve needs the service extra ({missing.name} is missing): "
                        + escape("pip install 'policydsl[serve]'"))
        sys.exit(EXIT_UNUSABLE)
    from .decisionlog import MaskError
    from .ledger import LedgerError

    token = Path(token_file).read_text(encoding="utf-8").strip() if token_file else None
    if token_file and not token:
        raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    config = ServiceConfig(policy_paths, include_paths, ledger_url, decision_log, mask,
                           Path(mask_key_file).read_bytes() if mask_key_file else None, token,
                           max_body_kb * 1024, request_timeout, reload_interval,
                           log_max_bytes=decision_log_max_mb * 2 ** 20, log_backups=decision_log_backups)
    try:
        service = _compiled_or_exit(lambda: Service(config))
    except (LedgerError, MaskError, OSError, ValueError) as error:
        _stderr().print(f"[red]error:[/] {escape(str(error))}")
        sys.exit(EXIT_UNUSABLE)
    try:
        serve(service, host, port, lambda line: _stderr().print(f"policy serve: {escape(line)}"))
    except OSError as error:  # the port is taken, the address is not this machine's
        service.close()
        reason = escape(error.strerror or str(error))
        _stderr().print(f"[red]error:[/] cannot listen on {escape(host)}:{port}: {reason}")
        sys.exit(EXIT_UNUSABLE)


# ------------------------------------------------------------ report


@main.command("report")
@click.argument("policy_path", metavar="POLICY", type=click.Path(dir_okay=False))
@click.argument("accounts_path", metavar="ACCOUNTS", type=click.Path(dir_okay=False))
@click.option("--decisions", "decisions_path", type=click.Path(dir_okay=False),
              help="Decisions JSONL of `policy run` on ACCOUNTS (default: decide ACCOUNTS here at --as-of).")
@click.option("--history", "history_path", required=True, type=click.Path(dir_okay=False),
              help="Contact history CSV: account_id,action,at,outcome.")
@click.option("--payments", "payments_path", required=True, type=click.Path(dir_okay=False),
              help="Payments CSV: account_id,paid_at,amount.")
@click.option("--previous", "previous_path", type=click.Path(dir_okay=False),
              help="An earlier accounts snapshot (same ids): roll rates and the stage transition matrix.")
@click.option("--as-of", "as_of_text", help="The snapshot's instant, ISO-8601 with offset (default: the decisions' "
                                             "now; required without --decisions).")
@click.option("--promise-days", type=click.IntRange(min=0), default=7, show_default=True,
              help="A promise to pay is kept by a payment within this many days.")
@click.option("--no-shift", is_flag=True, help="Audit with today's days_past_due, not shifted back to each contact.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the HTML report here (atomically; default: standard output).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers as JSON here.")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False),
              help="Another directory includes may read from.")
@_stops_on_signals
def report_command(policy_path: str, accounts_path: str, decisions_path: str | None, history_path: str,
                   payments_path: str, previous_path: str | None, as_of_text: str | None, promise_days: int,
                   no_shift: bool, output_path: str | None, json_path: str | None,
                   include_paths: tuple[str, ...]) -> None:
    """Outcomes of a collection cycle and a retro-compliance audit of its past contacts (docs/report.md)."""
    import json

    from . import outcomes, report_html

    if decisions_path is None and as_of_text is None:
        raise click.UsageError("give --decisions D.jsonl, or --as-of ISO to decide ACCOUNTS here")
    policy = _load(policy_path, include_paths)
    groups = outcomes.experiment_groups(policy.model)
    console = _stderr()
    notes: list[str] = []
    try:
        check_outputs({"-o": output_path, "--json": json_path},
                      [*policy.model.sources, accounts_path, history_path, payments_path,
                       *(p for p in (decisions_path, previous_path) if p)])
        history = read_history(history_path, Vocabulary.of(policy.model))
        accounts = _report_accounts(policy, accounts_path, notes)
        with open(payments_path, encoding="utf-8-sig", newline="") as handle:
            payments = outcomes.read_payments(handle, payments_path)
        problems = [*history.problems, *payments.problems]
        if decisions_path is not None:
            with open(decisions_path, encoding="utf-8") as handle:
                rows, decision_problems = outcomes.read_decisions(handle, decisions_path, groups)
            problems += decision_problems
            instants = Counter(row.now for row in rows if row.now is not None)
            as_of = _parse_now(as_of_text) if as_of_text else (instants.most_common(1)[0][0] if instants else None)
            if as_of is None:
                raise click.UsageError(f"{decisions_path} has no decision with a `now`: give --as-of")
            others = Counter(row.digest for row in rows if row.digest and row.digest != policy.digest)
            if others:
                notes.append(f"{decisions_path}: {_plural(sum(others.values()), 'decision')} made by another "
                             f"policy (digest {', '.join(sorted(others))}), not {policy.digest} of {policy_path}")
        else:
            as_of = _parse_now(as_of_text)
            rows = [outcomes.decision_row(policy.evaluate(values, history.for_account(account_id), now=as_of), groups)
                    for account_id, values in accounts.items()]
        previous = None
        if previous_path is not None:
            previous = {account_id: policy.evaluate(values, (), now=as_of).stage
                        for account_id, values in _report_accounts(policy, previous_path, notes).items()}
    except (InputError, OSError, ValueError) as error:
        console.print(f"[red]error:[/] {escape(str(error))}")
        sys.exit(EXIT_UNUSABLE)
    inputs = {"accounts": accounts_path, "decisions": decisions_path, "history": history_path,
              "payments": payments_path, "previous": previous_path}
    numbers = outcomes.build_report(policy, accounts, rows, history.contacts, payments, as_of, previous,
                                    promise_days, None if no_shift else "days_past_due", inputs,
                                    [*notes, *problems[:20]])
    try:
        with atomic_output(output_path) as out:
            out.write(report_html.render(numbers))
        if json_path is not None:
            with atomic_output(json_path) as out:
                out.write(json.dumps(numbers, indent=2, ensure_ascii=False) + "\n")
    except InputError as error:
        console.print(f"[red]error:[/] {escape(str(error))}")
        sys.exit(EXIT_UNUSABLE)
    audit = numbers["audit"]
    console.print(f"report: {numbers['portfolio']['accounts']:,} accounts, {audit['audited']:,} past contacts "
                  f"audited, {audit['violations']:,} the policy would have blocked"
                  + (f" → {escape(output_path)}" if output_path and output_path != "-" else "")
                  + (f", {escape(json_path)}" if json_path else ""))
    for problem in problems:
        console.print(f"[yellow]note:[/] {visible(problem)}")
    sys.exit(EXIT_PROBLEMS if problems else EXIT_OK)


def _report_accounts(policy: Policy, path: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    """An accounts file's readable rows by id (the last row of an id wins);
    rows that cannot be read go to `notes`."""
    accounts: dict[str, dict[str, Any]] = {}
    unread = 0
    for row in read_accounts(path, policy.required_fields(), set(policy.model.fields)):
        if row.values is None or not row.account_id:
            unread += 1
            continue
        accounts[row.account_id] = row.values
    if unread:
        notes.append(f"{path}: {_plural(unread, 'row')} could not be read and are left out")
    return accounts


# ------------------------------------------------------------ lsp


@main.command("lsp")
def lsp_command() -> None:
    """Run the language server on stdin and stdout (for editors; extra `[lsp]`)."""
    try:
        from . import lsp
    except ImportError:
        _stderr().print("[red]error:[/] the language server needs pygls: " + escape("pip install 'policydsl[lsp]'"))
        sys.exit(EXIT_UNUSABLE)
    lsp.main()
