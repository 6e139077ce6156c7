"""Accounts, contacts and decisions as Apache Arrow data, for Parquet files
(`policydsl.parquet`) and Spark (`policydsl.spark`) alike.

Why one module for both: a Parquet file and a Spark partition reach Python
as the same thing, Arrow record batches, and a decision must come out of
either with the same columns and the same values as `policy run` gives in
JSONL. So the reading of a batch into account rows and contacts, and the
writing of decisions into a batch, are written once, here.

Arrow values go to the policy's readers as the typed values they are (an
int64 to an int field, a decimal128 to a decimal field, a timestamp with a
zone to a datetime field), never through text: the readers accept each
type the way they accept its text in a CSV. A timestamp *without* a zone is
refused, as a CSV instant without an offset is: the evaluator never guesses
a zone. Instants are kept in UTC throughout; nanosecond timestamps are cut
to the microsecond, which is what Python's datetime holds.

A decision's columns: the JSONL object's keys, in its order, with lists as
Arrow lists and `blocked` and `policy` as structs. `now` and each `until`
are timestamps in UTC (`instants="timestamp"`, for Parquet) or the JSONL's
exact ISO text (`instants="text"`, for Spark, where a timestamp column is
shown and collected in the session's time zone).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa

from .decision import Decision, format_exact_instant, format_instant, second_allowed
from .inputs import id_text
from .io import AccountRow, HistoryFacts, Vocabulary, read_contact, shown_cell

INSTANT = pa.timestamp("us", tz="UTC")
_PROVENANCE = pa.struct([("name", pa.string()), ("version", pa.string()), ("digest", pa.string())])
_TEXT_LIST = pa.list_(pa.string())


def decision_schema(instants: str = "timestamp") -> pa.Schema:
    """The decision columns (`instants`: "timestamp" or "text", see the module docstring)."""
    instant = INSTANT if instants == "timestamp" else pa.string()
    blocked = pa.struct([("action", pa.string()), ("kind", pa.string()), ("reason", pa.string()),
                         ("rule", pa.string()), ("rule_id", pa.string()), ("until", instant)])
    return pa.schema([("account_id", pa.string()), ("stage", pa.string()), ("segments", _TEXT_LIST),
                      ("allowed", _TEXT_LIST), ("next_action", pa.string()), ("blocked", pa.list_(blocked)),
                      ("error", pa.string()), ("now", instant), ("policy", _PROVENANCE)])


def decisions_batch(decisions: Sequence[Decision], instants: str = "timestamp",
                    before: Mapping[str, pa.Array] | None = None) -> pa.RecordBatch:
    """The decisions as one record batch; `before`: columns to put first
    (a Spark row's key), as long as `decisions`."""
    schema = decision_schema(instants)
    if instants == "timestamp":
        rows = [_timestamped(decision) for decision in decisions]
    else:
        rows = [decision.to_dict() for decision in decisions]
    columns = {name: pa.array([row[name] for row in rows], type=schema.field(name).type) for name in schema.names}
    if before:
        columns = {**before, **columns}
    return pa.RecordBatch.from_pydict(columns)


def _timestamped(decision: Decision) -> dict[str, Any]:
    """`to_dict` with datetimes for the instants: `until` rounded up to the
    second, as the JSONL shows it (the action is allowed at that instant)."""
    row = decision.to_dict()
    row["now"] = None if decision.now is None else decision.now.astimezone(dt.UTC)
    for entry, blocked in zip(row["blocked"], decision.blocked, strict=True):
        entry["until"] = None if blocked.until is None else second_allowed(blocked.until)
    return row


def decision_dicts(data: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """Decisions read back from their columns as `Decision.to_dict()` gives
    them (instants as ISO text, whichever way they were stored); columns
    other than the decision's (a key) are left out."""
    names = decision_schema().names
    found = []
    for row in data.select(names).to_pylist():
        if isinstance(row["now"], dt.datetime):
            row["now"] = format_exact_instant(row["now"])
        for entry in row["blocked"]:
            if isinstance(entry["until"], dt.datetime):
                entry["until"] = format_instant(entry["until"])
        found.append(row)
    return found


# Where an error says a row is, in each container: `row 3 (line 4): ` (CSV) or `row 3: ` (Parquet) at its
# start, `unreadable row contacts.csv:12: ` or `unreadable row contacts.parquet: row 12: ` for a history row.
_ROW_PREFIX = re.compile(r"^row [0-9]+(?: \(line [0-9]+\))?: ")
_HISTORY_ROW = re.compile(r"unreadable row (?:.*?: row [0-9]+|.*?:[0-9]+): ")


def canonical(decision: Mapping[str, Any]) -> str:
    """A decision's JSON object as text that is the same for the same
    decision from any container: keys sorted, and the row locations taken
    out of its error (a Spark row has no number and a history row in a
    DataFrame no line; what the error says about the value stays)."""
    error = decision.get("error")
    if error:
        decision = {**decision, "error": _HISTORY_ROW.sub("unreadable row: ", _ROW_PREFIX.sub("", error), count=1)}
    return json.dumps(decision, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------ reading


def plain_columns(data: pa.RecordBatch) -> pa.RecordBatch:
    """Nanosecond timestamps cut to microseconds (what a datetime holds)
    and dictionary-encoded columns decoded, so `to_pylist` gives the plain
    Python values the readers take."""
    columns, changed = [], False
    for column in data.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind, changed = column.dictionary_decode(), column.type.value_type, True
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            column, changed = column.cast(pa.timestamp("us", tz=kind.tz), safe=False), True
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=data.schema.names) if changed else data


def account_rows(data: pa.RecordBatch, first_number: int, header: list[str]) -> Iterator[AccountRow]:
    """Account rows from a batch whose columns are `header`; numbered from
    `first_number` (0: a source with no row order, whose errors name no
    row). The id is text however it was stored (an int64 id column is
    common in a data lake)."""
    for offset, values in enumerate(plain_columns(data).to_pylist()):
        number = first_number + offset if first_number > 0 else 0
        raw = [_cell_text(value) for value in values.values()]
        if "id" in values:
            values["id"] = id_text(values["id"])
        yield AccountRow(number, None, values, None, raw, header)


def _cell_text(value: Any) -> str:
    """A value as a rejected-rows CSV shows it."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def contacts(data: pa.RecordBatch, facts: HistoryFacts, first_line: int,
             vocabulary: Vocabulary | None = None) -> Iterator[Any]:
    """The readable contacts of a history batch (columns account_id,
    action, at and optionally outcome), in batch order; the unreadable rows
    go into `facts` (numbered from `first_line`), as a CSV's do."""
    data = plain_columns(data)
    names = data.schema.names
    ids = data.column(names.index("account_id")).to_pylist()
    actions = data.column(names.index("action")).to_pylist()
    ats = data.column(names.index("at")).to_pylist()
    outcomes: Iterable[Any] = data.column(names.index("outcome")).to_pylist() if "outcome" in names \
        else [""] * data.num_rows
    for offset, (account_id, action, at, outcome) in enumerate(zip(ids, actions, ats, outcomes, strict=True)):
        facts.rows += 1
        line = first_line + offset
        account = id_text(account_id) or ""
        if not isinstance(account, str):
            facts.unreadable(line, "", f"field 'account_id': {shown_cell(account_id)}; expected text")
            continue
        contact = read_contact(facts, line, account, action, at, outcome)
        if contact is None:
            continue
        if vocabulary is not None and not vocabulary.knows(contact.action, contact.outcome):
            facts.note_unknown(contact.account_id, line, vocabulary, contact)
        yield contact
