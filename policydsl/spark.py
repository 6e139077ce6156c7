"""A policy run on PySpark DataFrames: one decision per account row, the
same decision `policy run` gives for the same row of a CSV.

    from policydsl.spark import decide
    decisions = decide(accounts_df, "policies/ecommerce_consumer_loan.policy", contacts_df,
                       now=datetime.datetime(2025, 6, 4, 2, tzinfo=datetime.UTC))

Why Arrow, and why not a row UDF: a Python UDF is called once per row, each
row pickled across the JVM/Python boundary. Here each Spark partition
reaches Python as Arrow record batches (`mapInArrow`, and `applyInArrow`
for an account together with its history), read into account rows and
contacts by `policydsl.arrow`, the same code that reads Parquet, so a
DataFrame decides as the files do.

Why the policy is compiled once per worker process: compiling is far
slower than deciding one account. The driver broadcasts the checked model
(`PolicySpec`: every source text, and their digest); each Python worker
compiles it on its first batch and keeps it in a module-level dict keyed
by the digest. The functions Spark ships are module-level functions bound
with `functools.partial`, so cloudpickle sends them by reference and the
worker's dict is this module's, kept for as long as Spark reuses the worker
(`spark.python.worker.reuse`, on by default), not a copy per task.

Why the history is joined by a cogroup on a normalised id: an id is
compared as `policydsl.inputs.normalise_id` gives it in the CSV path (an
int id becomes its text; surrounding whitespace, no-break spaces and
byte-order marks go), on both sides, or an account would silently get an
empty history. `decide` adds that key to each side with an Arrow pass and
cogroups the two sides by a hash of it into a fixed number of groups (not
one group per account: each group is a Python call and an Arrow stream of
its own, which made a group per account several times slower than the
decisions themselves); in each group the contacts are matched to their
accounts by the key, and read as `policy run` reads a history file: an unreadable row (an `at` without an offset, a
TimestampNTZ value) gives its account an error decision, never a decision
on part of its history. `history_problems` lists those rows, so nothing is
ignored silently here either.

Order: a DataFrame has no row order, so errors name no row, and an
account's contacts are sorted by `at` (stable: contacts at the same instant
keep the order Spark delivered them in, which may differ between runs;
`policy run` keeps the file's order). No rule reads that order.

Instants: `now` and each `until` come out as the JSONL's exact ISO UTC
text, never as Spark timestamps, which Spark shows in the session's time
zone. Input instants may be ISO text with an offset or TimestampType;
a TimestampNTZ value has no zone and is refused, as is text without an
offset. Python workers must run the same interpreter, with policydsl
installed (`PYSPARK_PYTHON`; see docs/scale.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

try:
    import pyarrow as pa
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import StringType, StructField, StructType
except ImportError as missing:  # pragma: no cover - depends on the installation
    raise ImportError(f"policydsl.spark needs PySpark and PyArrow ({missing}): pip install 'policydsl[spark]'"
                      ) from missing

from . import load_policy
from .arrow import account_rows, contacts, decision_schema, decisions_batch
from .batch import Engine, PolicySpec, WorkerError, decide_row, sources_digest
from .compiler import Policy
from .decision import Contact
from .inputs import check_now, id_text
from .io import HISTORY_COLUMNS, HistoryFacts, InputError, Vocabulary
from .reference import ReferencePolicy

__all__ = ["decide", "decision_struct", "history_problems"]

# The normalised id both sides of the history join are grouped by (a column name no input should have).
JOIN_KEY = "__policydsl_join_id"
BUCKET = "__policydsl_join_group"
BUCKETS_PER_PARTITION = 64
PROBLEM = "problem"

# ------------------------------------------------------------ worker state

# The compiled policies of this Python worker process, by (digest, engine) (see the module docstring); a
# long-lived worker that decides under many policies keeps the latest few.
_POLICIES: dict[tuple[str, str], Engine] = {}
_KEPT_POLICIES = 8
# How many times this process compiled each digest: for the tests, which check it is once.
compilations: Counter[str] = Counter()


@dataclass(frozen=True)
class _Shipped:
    """How the policy reaches the workers: a broadcast of its `PolicySpec`
    (classic Spark), or the spec itself inside the function (Spark Connect,
    which has no SparkContext to broadcast with). Either way the workers
    compile it once per process, by digest."""

    digest: str
    engine: str  # "compiled" or "reference": the same sources, two engines
    broadcast: Any = None  # pyspark.Broadcast[PolicySpec]
    spec: PolicySpec | None = None

    def policy(self) -> Engine:
        """This process's compiled policy, compiled on the first call. The
        broadcast is read only then: Spark loads its value in each worker
        process that asks, once."""
        found = _POLICIES.get((self.digest, self.engine))
        if found is not None:
            return found
        spec: PolicySpec | None = self.broadcast.value if self.broadcast is not None else self.spec
        if spec is None or spec.digest != self.digest or sources_digest(spec.model.sources) != self.digest:
            raise WorkerError("the policy sources a Spark worker received do not match their digest")
        compiled: Engine = ReferencePolicy(spec.model) if spec.engine == "reference" else Policy(spec.model)
        compilations[self.digest] += 1
        while len(_POLICIES) >= _KEPT_POLICIES:
            del _POLICIES[next(iter(_POLICIES))]
        _POLICIES[(self.digest, self.engine)] = compiled
        return compiled


def _ship(accounts: DataFrame, policy: Engine) -> _Shipped:
    spec = PolicySpec.of(policy)
    try:
        context = accounts.sparkSession.sparkContext
    except Exception:  # Spark Connect: no SparkContext (PySparkNotImplementedError or the like)
        return _Shipped(spec.digest, spec.engine, spec=spec)
    return _Shipped(spec.digest, spec.engine, broadcast=context.broadcast(spec))


# ------------------------------------------------------------ schemas


def decision_struct() -> StructType:
    """The decision columns as Spark types: `policydsl.arrow.decision_schema("text")`
    (lists as arrays, `blocked` entries and `policy` as structs, `now` and
    `until` as ISO UTC text)."""
    return from_arrow_schema(decision_schema("text"))


def _keys(key: str | Sequence[str]) -> list[str]:
    return [key] if isinstance(key, str) else list(key)


def _output_schema(accounts: DataFrame, keys: list[str]) -> StructType:
    decision = decision_struct()
    fields = {field.name: field for field in accounts.schema.fields}
    missing = [name for name in keys if name not in fields]
    if missing:
        raise InputError(f"accounts: no key column(s) {', '.join(missing)}; the DataFrame has "
                         f"{', '.join(fields) or 'no columns'}")
    clashing = [name for name in keys if name in decision.names]
    if clashing:
        raise InputError(f"accounts: key column(s) {', '.join(clashing)} would have a decision column's name; "
                         "rename them (withColumnRenamed)")
    if not keys:
        raise InputError("accounts: give at least one key column, to match each decision to its row")
    return StructType([*(fields[name] for name in keys), *decision.fields])


def _check_columns(accounts: DataFrame, history: DataFrame | None, policy: Engine) -> None:
    """InputError for a column every row would miss, as `policy run` refuses such a file."""
    missing = sorted(policy.required_fields() - set(accounts.columns))
    if missing:
        raise InputError(f"accounts: missing column(s) {', '.join(missing)} (the policy has no default for them)")
    for reserved in (JOIN_KEY, BUCKET):
        if reserved in accounts.columns:
            raise InputError(f"accounts: the column name {reserved} is reserved for decide's history join")
    if history is not None:
        _check_history_columns(history)


def _load(policy: Engine | str | os.PathLike[str]) -> Engine:
    if isinstance(policy, Policy | ReferencePolicy):
        return policy
    return load_policy(policy)  # a PolicyError here, on the driver, before any job


# ------------------------------------------------------------ decide


def decide(accounts: DataFrame, policy: Policy | ReferencePolicy | str | os.PathLike[str],
           history: DataFrame | None = None, *, now: dt.datetime, key: str | Sequence[str] = "id") -> DataFrame:
    """One decision per row of `accounts` (never fewer: a row that cannot be
    read gets an error decision, never a failed job): the `key` column(s)
    as they were, then the decision columns (`decision_struct()`).

    `policy`: a compiled policy or the path of one (compiled here; one that
    does not compile raises PolicyError before any job). `history`: columns
    account_id, action, at and optionally outcome, `at` as ISO text with an
    offset or TimestampType. `now`: a timezone-aware datetime.

    Lazy, like any DataFrame: nothing runs until it is written or collected.
    """
    now = check_now(now)
    engine = _load(policy)
    keys = _keys(key)
    schema = _output_schema(accounts, keys)
    _check_columns(accounts, history, engine)
    shipped = _ship(accounts, engine)
    if history is None:
        return accounts.mapInArrow(functools.partial(_decide_batches, shipped, now, keys), schema)
    history_columns = [name for name in HISTORY_COLUMNS if name in history.columns]
    left = _with_join_key(accounts, "id")
    right = _with_join_key(history.select(*history_columns), "account_id")
    right = right.where(right[JOIN_KEY].isNotNull())  # no account: an unreadable row (history_problems lists it)
    buckets = _buckets(accounts)
    left, right = (side.withColumn(BUCKET, F.pmod(F.xxhash64(JOIN_KEY), F.lit(buckets))) for side in (left, right))
    return left.groupBy(BUCKET).cogroup(right.groupBy(BUCKET)).applyInArrow(
        functools.partial(_decide_bucket, shipped, now, keys), schema)


def _buckets(accounts: DataFrame) -> int:
    """How many groups the history join makes: `BUCKETS_PER_PARTITION` per
    shuffle partition, so a group holds some hundreds of accounts or more
    (each group costs a Python call and an Arrow stream of its own, some
    0.4 ms: a group per account made the join 3 times slower than deciding)
    and grows only as the data outgrows the partitions."""
    try:
        partitions = int(accounts.sparkSession.conf.get("spark.sql.shuffle.partitions") or 200)
    except (TypeError, ValueError):
        partitions = 200
    return max(1, partitions) * BUCKETS_PER_PARTITION


def _decide_batches(shipped: _Shipped, now: dt.datetime, keys: list[str],
                    batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow without history: each batch's rows decided with no contacts."""
    policy = shipped.policy()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        decisions = [decide_row(policy, row, [], None, now) for row in account_rows(batch, 0, batch.schema.names)]
        yield decisions_batch(decisions, "text", before={name: batch.column(name) for name in keys})


def _decide_bucket(shipped: _Shipped, now: dt.datetime, keys: list[str], left: pa.Table, right: pa.Table) -> pa.Table:
    """One group of the join: some accounts (`left`) and the history rows
    of the same ids (`right`), matched here by the normalised id (an account
    with no history finds none)."""
    policy = shipped.policy()
    by_id: dict[str, list[Contact]] = {}
    facts = HistoryFacts(row_label="")  # a DataFrame row has no location
    if right.num_rows:
        vocabulary = Vocabulary.of(policy.model)
        for batch in right.drop_columns([JOIN_KEY, BUCKET]).to_batches():
            for contact in contacts(batch, facts, 0, vocabulary):
                by_id.setdefault(contact.account_id, []).append(contact)
        for found in by_id.values():
            found.sort(key=attrgetter("at"))  # stable: ties keep the order Spark delivered them in
    account = left.drop_columns([JOIN_KEY, BUCKET])
    ids = left.column(JOIN_KEY).to_pylist()
    outputs, start = [], 0
    for batch in account.to_batches():
        if batch.num_rows == 0:
            continue
        decisions = []
        for row, key in zip(account_rows(batch, 0, batch.schema.names), ids[start:start + batch.num_rows],
                            strict=True):
            found = by_id.get(key, []) if key is not None else []
            decisions.append(decide_row(policy, row, found, facts.broken.get(key) if key else None, now))
        start += batch.num_rows
        outputs.append(decisions_batch(decisions, "text", before={name: batch.column(name) for name in keys}))
    if not outputs:
        return _empty(account, keys)
    return pa.Table.from_batches(outputs)


def _empty(account: pa.Table, keys: list[str]) -> pa.Table:
    """No rows, with the output's columns (a history id no account has)."""
    fields = [account.schema.field(name) for name in keys] if all(n in account.schema.names for n in keys) \
        else [pa.field(name, pa.null()) for name in keys]
    return pa.schema([*fields, *decision_schema("text")]).empty_table()


# ------------------------------------------------------------ the join key


def join_key(value: Any) -> str | None:
    """An id as both sides of the history join compare it: the id as
    `policydsl.arrow` reads it (text normalised by `normalise_id`, an int
    as its text), None for a null, an empty id or a value that is no id
    (such a row gets no history: the account's own id check reports it)."""
    text = id_text(value)
    return text if isinstance(text, str) and text else None


def _with_join_key(frame: DataFrame, column: str) -> DataFrame:
    schema = StructType([*frame.schema.fields, StructField(JOIN_KEY, StringType())])
    present = column in frame.columns
    return frame.mapInArrow(functools.partial(_add_join_key, column if present else None), schema)


def _add_join_key(column: str | None, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        values = batch.column(column).to_pylist() if column is not None else [None] * batch.num_rows
        key = pa.array([join_key(value) for value in values], type=pa.string())
        yield pa.RecordBatch.from_arrays([*batch.columns, key], names=[*batch.schema.names, JOIN_KEY])


# ------------------------------------------------------------ history problems


def history_problems(history: DataFrame, policy: Policy | ReferencePolicy | str | os.PathLike[str]) -> DataFrame:
    """The history rows `decide` cannot use, each with its columns and a
    `problem` text: unreadable rows (an `at` without an offset or not a
    date, an empty account_id, a value of the wrong type), which give their
    account an error decision, and rows naming an action the policy does
    not know, or an outcome outside its declared outcomes (or a misspelling
    of a known one), which `policy run --strict` refuses. Free-text outcomes
    of a policy that declares none are no problem."""
    engine = _load(policy)
    _check_history_columns(history)
    schema = StructType([*history.schema.fields, StructField(PROBLEM, StringType())])
    vocabulary = Vocabulary.of(engine.model)
    return history.mapInArrow(functools.partial(_problem_rows, vocabulary), schema)


def _check_history_columns(history: DataFrame) -> None:
    absent = [name for name in HISTORY_COLUMNS[:3] if name not in history.columns]
    if absent:
        raise InputError(f"history: contact history needs columns {', '.join(HISTORY_COLUMNS)}; "
                         f"missing {', '.join(absent)}")
    if PROBLEM in history.columns:
        raise InputError(f"history: a column is named {PROBLEM!r}, which history_problems adds")


def _problem_rows(vocabulary: Vocabulary, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each batch read as `decide` reads it, its rows numbered so that a
    problem names its row (`row_label`), then the rows with a problem."""
    for batch in batches:
        facts = HistoryFacts(row_label="{line}")
        problems: dict[int, str] = {}
        readable = list(contacts(batch, facts, 0, vocabulary))
        for located in facts.problems:
            line, problem = located.split(": ", 1)
            problems[int(line)] = problem
        unread = iter(i for i in range(batch.num_rows) if i not in problems)
        for contact, row in zip(readable, unread, strict=False):
            unknown = vocabulary.unknown(contact.action, contact.outcome)
            if unknown is not None and unknown[3]:
                what, value, meant, _ = unknown
                hint = f" (did you mean {meant!r}?)" if meant is not None else ""
                problems[row] = f"names {what} {value!r}, which the policy does not know{hint}"
        if not problems:
            continue
        rows = sorted(problems)
        taken = batch.take(pa.array(rows, type=pa.int64()))
        yield pa.RecordBatch.from_arrays([*taken.columns, pa.array([problems[i] for i in rows], type=pa.string())],
                                         names=[*batch.schema.names, PROBLEM])

