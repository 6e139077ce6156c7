"""The decision service: `policy serve`, an HTTP API over compiled policies.

Dialers and CRMs in other languages ask "may I call this account now?"
(`/v1/decide`), record what they did (`/v1/contacts`) and, where a cap must
hold across several callers, reserve a contact (`/v1/reserve`): the check and
the record happen in one ledger transaction, so two dialers asking at the
same instant cannot both take the last slot.

The pieces: `wire` reads requests (every mistake a 4xx naming the field),
`reload` keeps each policy current, `ledger` stores contacts, `decisionlog`
keeps one line per decision. This module joins them into a Starlette app
and serves it with uvicorn. Evaluation is CPU work of tens of microseconds,
so it runs on the event loop; ledger calls block on I/O and run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import signal
import socket
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import __version__
from .compiler import Policy
from .decision import Contact, Decision
from .decisionlog import DecisionLog, Masking
from .explain import Step, explanation, overview
from .inputs import normalise_id
from .io import Vocabulary
from .ledger import IdempotencyConflict, Ledger, LedgerError, ReservationClosed, UnknownReservation, open_ledger
from .library import decision_schema
from .reload import PolicySlot, Watcher
from .suggest import did_you_mean_aside
from .wire import (
    Problem,
    a_history,
    a_list,
    an_account,
    an_action,
    an_instant,
    an_object,
    an_outcome,
    contact_document,
    invalid,
    merged,
    parse_json,
)

MiB = 2 ** 20


class JSONAnswer(Response):
    """A JSON answer serialised by orjson: a decision of a 16-action policy
    is about 6 KB of JSON, which the standard library takes some 35 µs to
    write, as long as deciding takes; orjson writes the same bytes in 2 µs."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)

RECORD_LIMIT = 1_000  # contacts per POST /v1/contacts
INLINE_BATCH = 20  # accounts a batch may have to be decided on the event loop


@dataclass(frozen=True)
class ServiceConfig:
    """How `policy serve` was started (its command-line options)."""

    policy_paths: tuple[str, ...]
    include_roots: tuple[str, ...] = ()
    ledger_url: str | None = None
    decision_log: str | None = None
    mask: str | None = None
    mask_key: bytes | None = None
    token: str | None = None
    max_body_bytes: int = MiB
    request_timeout: float = 10.0
    reload_interval: float = 1.0
    max_items: int = 10_000  # accounts in a batch, contacts in a history
    log_max_bytes: int = 100 * MiB
    log_backups: int = 5


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (never an
    account id as a label: that would be one time series per debtor)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Histogram("policydsl_request_duration_seconds", "Time to answer a request",
                                  ["endpoint", "status"], registry=r,
                                  buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10))
        self.decisions = Counter("policydsl_decisions_total", "Decisions made, by their result",
                                 ["policy", "result"], registry=r)
        self.blocks = Counter("policydsl_blocked_total", "Reasons an action was blocked, by kind",
                              ["policy", "kind"], registry=r)
        self.reservations = Counter("policydsl_reservations_total", "Reservations answered",
                                    ["policy", "granted"], registry=r)
        self.reloads = Counter("policydsl_reloads_total", "Policy reload attempts", ["policy", "outcome"], registry=r)
        self.reload_error = Gauge("policydsl_policy_reload_error", "1 while the last reload of a policy failed",
                                  ["policy"], registry=r)
        self.info = Gauge("policydsl_policy_info", "The policy version being served", ["policy", "version", "digest"],
                          registry=r)
        self.ledger = Histogram("policydsl_ledger_duration_seconds", "Time of ledger operations", ["operation"],
                                registry=r, buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5))
        self.log_lines = Counter("policydsl_decision_log_lines_total", "Lines written to the decision log", registry=r)
        self._decisions = _Children(self.decisions)
        self._blocks = _Children(self.blocks)

    def count(self, name: str, decision: Decision) -> None:
        """Count a decision and its reasons: once per kind, through cached
        label children (`labels()` per blocked entry cost as much as deciding)."""
        result = "error" if decision.error else ("allowed" if decision.allowed else "none_allowed")
        self._decisions(name, result).inc()
        kinds: dict[str, int] = {}
        for entry in decision.blocked:
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
        for kind, number in kinds.items():
            self._blocks(name, kind).inc(number)

    def serving(self, slot: PolicySlot, previous: Policy | None = None) -> None:
        if previous is not None:
            self.info.remove(previous.name, previous.version, previous.digest)
        self.info.labels(slot.policy.name, slot.policy.version, slot.policy.digest).set(1)
        self.reload_error.labels(slot.policy.name).set(1 if slot.last_error else 0)


class _Children:
    """A labelled counter's children by their labels, looked up in a dict
    (`Counter.labels` checks and copies its arguments on every call)."""

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Counter] = {}

    def __call__(self, *labels: str) -> Counter:
        child = self.children.get(labels)
        if child is None:
            child = self.children.setdefault(labels, self.metric.labels(*labels))
        return child


class Service:
    """What a running server holds: the served policies, the ledger, the
    decision log, the metrics. Built before the server listens, so a bad
    policy or an unreachable ledger stops `policy serve` with its message."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.started_at = dt.datetime.now(dt.UTC)
        self.slots = [PolicySlot(path, config.include_roots) for path in config.policy_paths]
        names = [slot.policy.name for slot in self.slots]
        if len(set(names)) != len(names):
            raise ValueError("two served policies have the same name: " + ", ".join(sorted(names)))
        self.masking = Masking.parse(config.mask, config.mask_key)
        self._check_masked_fields()
        self.metrics = Metrics()
        for slot in self.slots:
            self.metrics.serving(slot)
        self.ledger: Ledger | None = open_ledger(config.ledger_url) if config.ledger_url else None
        self.log = DecisionLog(config.decision_log, masking=self.masking, max_bytes=config.log_max_bytes,
                               backups=config.log_backups) if config.decision_log else None
        self.watcher = Watcher(self.slots, config.reload_interval, self._reloaded)
        self._previous = {id(slot): slot.policy for slot in self.slots}

    def _check_masked_fields(self) -> None:
        """A masked name that is no field of any served policy would mask
        nothing, silently (accounts cannot carry other keys): refused."""
        fields = sorted({name for slot in self.slots for name in slot.policy.field_names})
        for name in sorted(self.masking.fields):
            if name not in fields:
                raise ValueError(f"--mask: {name!r} is not a field of the served policies"
                                 + did_you_mean_aside(name, fields) + f"; fields: {', '.join(fields)}")

    def _reloaded(self, slot: PolicySlot, swapped: bool) -> None:
        outcome = "failure" if slot.last_error else ("swapped" if swapped else "unchanged")
        self.metrics.reloads.labels(slot.policy.name, outcome).inc()
        previous = self._previous[id(slot)]
        self.metrics.serving(slot, previous if swapped else None)
        self._previous[id(slot)] = slot.policy

    def close(self) -> None:
        self.watcher.stop()
        if self.log is not None:
            self.log.close()
        if self.ledger is not None:
            self.ledger.close()

    # ------------------------------------------------------------ reading requests

    def slot_named(self, body: dict[str, Any]) -> PolicySlot:
        """The policy a request names (`"policy": NAME`), or the only one served."""
        name = body.get("policy")
        if name is None:
            if len(self.slots) == 1:
                return self.slots[0]
            raise invalid("policy", "required when several policies are served: one of "
                          + ", ".join(slot.policy.name for slot in self.slots))
        for slot in self.slots:
            if slot.policy.name == name:
                return slot
        served = [slot.policy.name for slot in self.slots]
        raise invalid("policy", f"{name!r} is not served here" + did_you_mean_aside(str(name), served)
                      + f"; served: {', '.join(served)}")

    def now_of(self, body: dict[str, Any]) -> dt.datetime:
        """The request's `now`, or the server's clock when it gives none."""
        return an_instant(body["now"], "now") if "now" in body else dt.datetime.now(dt.UTC)

    async def history_of(self, account_id: str | None, sent: list[Contact]) -> list[Contact]:
        """The account's history: the ledger's, with what the request sent added."""
        if self.ledger is None or account_id is None:
            return sent
        return await anyio.to_thread.run_sync(self.stored_history, account_id, sent)

    def stored_history(self, account_id: str | None, sent: list[Contact]) -> list[Contact]:
        """`history_of` for a caller already in a worker thread."""
        if self.ledger is None or account_id is None:
            return sent
        return merged(self.in_store("history", self.ledger.history, account_id), sent)

    async def in_ledger(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A ledger call in a worker thread (it blocks on I/O)."""
        return await anyio.to_thread.run_sync(lambda: self.in_store(operation, call, *args, **kwargs))

    def in_store(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A ledger call, timed; an unreachable store is a 503."""
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except (IdempotencyConflict, UnknownReservation, ReservationClosed):
            raise
        except LedgerError as error:
            raise Problem(503, "Ledger unavailable", str(error)) from None
        finally:
            self.metrics.ledger.labels(operation).observe(time.perf_counter() - started)

    # ------------------------------------------------------------ answering

    def answer(self, endpoint: str, policy: Policy, decision: Decision, account: Any,
               history: list[Contact], now: dt.datetime, **extra: Any) -> dict[str, Any]:
        """The decision as the data contract's object plus its `decision_id`,
        logged (flushed) before it is returned, and counted."""
        document = decision_document(decision)
        self.logged(endpoint, policy, document, decision, account, history, now, **extra)
        return document

    def logged(self, endpoint: str, policy: Policy, document: dict[str, Any], decision: Decision, account: Any,
               history: list[Contact], now: dt.datetime, **extra: Any) -> None:
        """Count a decision and write its decision-log line (when logging)."""
        self.metrics.count(policy.name, decision)
        if self.log is None:
            return
        self.log.write({
            "decision_id": document["decision_id"], "timestamp": _instant_text(dt.datetime.now(dt.UTC)),
            "endpoint": endpoint, "policy": policy.provenance.to_dict(),
            "input": {"account": account, "history": [contact_document(c) for c in history],
                      "now": _instant_text(now)},
            "decision": document, **extra})
        self.metrics.log_lines.inc()

    # ------------------------------------------------------------ endpoints

    async def decide(self, body: dict[str, Any]) -> Response:
        an_object(body, "", ("account", "history", "now", "policy"), ("account",))
        slot = self.slot_named(body)
        policy = slot.policy  # this request finishes on this version, whatever a reload does meanwhile
        account = an_account(body["account"], "account", policy)
        now = self.now_of(body)
        history = await self.history_of(account.get("id"), self._sent_history(body, policy, account.get("id")))
        decision = policy.evaluate(account, history, now=now, strict=True)
        return JSONAnswer(self.answer("/v1/decide", policy, decision, account, history, now))

    async def decide_batch(self, body: dict[str, Any]) -> Response:
        """Decisions in the order of the accounts. An account that cannot be
        evaluated gets an error decision in its place (as a row does in
        `policy run`), so one bad account never costs the others theirs."""
        an_object(body, "", ("accounts", "history", "now", "policy"), ("accounts",))
        slot = self.slot_named(body)
        policy = slot.policy
        accounts = a_list(body["accounts"], "accounts", self.config.max_items)
        now = self.now_of(body)
        sent = a_history(body.get("history", []), "history", vocabulary(policy), None, self.config.max_items)
        ids = {_batch_id(account) for account in accounts}
        by_account: dict[str, list[Contact]] = {}
        for number, contact in enumerate(sent):
            if contact.account_id not in ids:
                raise invalid(f"history[{number}].account_id", f"no account of this batch has the id "
                              f"{contact.account_id!r}")
            by_account.setdefault(contact.account_id, []).append(contact)

        def decide_all() -> list[dict[str, Any]]:
            answers = []
            for number, account in enumerate(accounts):
                account_id = _batch_id(account)
                history = self.stored_history(account_id, by_account.get(account_id or "", []))
                if isinstance(account, dict):
                    decision = policy.evaluate(account, history, now=now, strict=True)
                else:
                    decision = policy.error_decision(None, f"accounts[{number}]: expected a JSON object", now=now)
                answers.append(self.answer("/v1/decide/batch", policy, decision, account, history, now))
            return answers

        # In a worker thread: a batch of thousands must not hold the event loop (and the health checks) for
        # the half second it takes; a small one is decided in place, where a thread hop would cost more.
        small = len(accounts) <= INLINE_BATCH and self.ledger is None
        answers = decide_all() if small else await anyio.to_thread.run_sync(decide_all)
        return JSONAnswer({"decisions": answers})

    async def explain(self, body: dict[str, Any]) -> Response:
        an_object(body, "", ("account", "history", "now", "policy"), ("account",))
        policy = self.slot_named(body).policy
        account = an_account(body["account"], "account", policy)
        now = self.now_of(body)
        history = await self.history_of(account.get("id"), self._sent_history(body, policy, account.get("id")))
        decision = policy.evaluate(account, history, now=now, strict=True)
        document = self.answer("/v1/explain", policy, decision, account, history, now)
        return JSONAnswer({"decision": document, "explanation": _explanation(policy, decision)})

    async def record_contacts(self, request: Request, body: dict[str, Any]) -> Response:
        ledger = self._ledger()
        an_object(body, "", ("contacts", "policy"), ("contacts",))
        policy = self.slot_named(body).policy
        # One transaction locks every account it records for: bounded, so that a
        # PostgreSQL ledger's lock table (max_locks_per_transaction) holds them.
        contacts = a_history(body["contacts"], "contacts", vocabulary(policy), None, RECORD_LIMIT)
        key, fingerprint = _idempotency(request, body)
        try:
            ids = await self.in_ledger("record", ledger.record, contacts, idempotency_key=key,
                                       fingerprint=fingerprint)
        except IdempotencyConflict as error:
            raise _conflict(error) from None
        return JSONAnswer({"ids": ids}, status_code=201)

    async def reserve(self, request: Request, body: dict[str, Any]) -> Response:
        """Check and record in one ledger transaction: the decision is made
        on the history read inside the transaction that inserts the contact,
        which holds the account's lock, so concurrent reservations queue."""
        ledger = self._ledger()
        an_object(body, "", ("account", "action", "history", "now", "policy"), ("account", "action"))
        policy = self.slot_named(body).policy
        account = an_account(body["account"], "account", policy)
        action = an_action(body["action"], "action", policy)
        account_id = account.get("id")
        if account_id is None:
            raise invalid("account.id", "required to reserve a contact")
        now = self.now_of(body)
        sent = self._sent_history(body, policy, account_id)
        key, fingerprint = _idempotency(request, body)
        decided: list[tuple[Decision, list[Contact], dict[str, Any]]] = []

        def decide(stored: list[Contact]) -> tuple[bool, dict[str, Any]]:
            history = merged(stored, sent)
            decision = policy.evaluate(account, history, now=now, strict=True)
            document = decision_document(decision)
            decided.append((decision, history, document))
            return decision.error is None and decision.is_allowed(action), {"decision": document}

        try:
            reserved = await self.in_ledger("reserve", ledger.reserve, account_id, action, now, decide,
                                            idempotency_key=key, fingerprint=fingerprint)
        except IdempotencyConflict as error:
            raise _conflict(error) from None
        if not reserved.replayed:  # a replay was logged and counted the first time
            decision, history, document = decided[-1]
            self.metrics.reservations.labels(policy.name, str(reserved.granted).lower()).inc()
            self.logged("/v1/reserve", policy, document, decision, account, history, now,
                        granted=reserved.granted, reservation_id=reserved.reservation_id)
        return JSONAnswer({"granted": reserved.granted, "reservation_id": reserved.reservation_id,
                             "decision": reserved.body["decision"], "replayed": reserved.replayed})

    async def complete(self, request: Request, body: dict[str, Any]) -> Response:
        ledger = self._ledger()
        reservation_id = request.path_params["reservation_id"]
        an_object(body, "", ("outcome", "at", "policy"), ("outcome",))
        policy = self.slot_named(body).policy
        outcome = an_outcome(body["outcome"], "outcome", vocabulary(policy))
        at = an_instant(body["at"], "at") if "at" in body else None
        try:
            contact = await self.in_ledger("complete", ledger.complete, reservation_id, outcome, at=at)
        except UnknownReservation:
            raise Problem(404, "Unknown reservation", f"no reservation {reservation_id!r} in the ledger",
                          "reservation_id") from None
        except ReservationClosed as error:
            raise Problem(409, "Reservation closed", str(error), "outcome") from None
        return JSONAnswer({"reservation_id": reservation_id, "contact": contact_document(contact)})

    def _sent_history(self, body: dict[str, Any], policy: Policy, account_id: str | None) -> list[Contact]:
        return a_history(body.get("history", []), "history", vocabulary(policy), account_id,
                         self.config.max_items)

    def _ledger(self) -> Ledger:
        if self.ledger is None:
            raise Problem(501, "No ledger", "this server keeps no contact ledger: start it with --ledger URL")
        return self.ledger

    # ------------------------------------------------------------ operations

    def status(self) -> dict[str, Any]:
        return {
            "policydsl": __version__,
            "started_at": _instant_text(self.started_at),
            "ledger": self.ledger.url_for_display if self.ledger else None,
            "decision_log": self.config.decision_log,
            "masked_fields": sorted(self.masking.fields),
            "policies": [{
                "name": slot.policy.name, "version": slot.policy.version, "digest": slot.policy.digest,
                "path": slot.path, "loaded_at": _instant_text(slot.current.loaded_at), "reloads": slot.reloads,
                "last_reload_error": slot.last_error,
                "last_reload_error_at": _instant_text(slot.last_error_at) if slot.last_error_at else None,
            } for slot in self.slots],
        }

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether every part a request needs answers: the ledger, the log."""
        checks: dict[str, str] = {"policies": "ok"}
        if self.ledger is not None:
            try:
                self.ledger.ping()
                checks["ledger"] = "ok"
            except LedgerError as error:
                checks["ledger"] = str(error)
        if self.log is not None:
            checks["decision_log"] = "ok" if not self.log.closed else "closed"
        return all(value == "ok" for value in checks.values()), checks


@functools.lru_cache(maxsize=16)
def vocabulary(policy: Policy) -> Vocabulary:
    """The history names a policy knows, built once per policy version
    (its sets and spelling suggestions are cached on it)."""
    return Vocabulary.of(policy.model)


def decision_document(decision: Decision) -> dict[str, Any]:
    """The data contract's decision object with the id that names it in
    the decision log."""
    return {**decision.to_dict(), "decision_id": uuid.uuid4().hex}


def _batch_id(account: Any) -> str | None:
    value = account.get("id") if isinstance(account, dict) else None
    return normalise_id(value) if isinstance(value, str) else None


def _idempotency(request: Request, body: dict[str, Any]) -> tuple[str | None, str]:
    """The request's `Idempotency-Key` header and the digest of its body: a
    retry with the same key and body is answered as the first time; the same
    key with another body is a client bug and refused."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(400, "Bad idempotency key", "Idempotency-Key must be 1 to 200 characters", "Idempotency-Key")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return key, hashlib.sha256(f"{request.url.path}\n{canonical}".encode()).hexdigest()


def _conflict(error: IdempotencyConflict) -> Problem:
    return Problem(422, "Idempotency key reused", f"{error}: this key was used for a different request",
                   "Idempotency-Key")


def _instant_text(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def _explanation(policy: Policy, decision: Decision) -> dict[str, Any]:
    """`policy explain` as JSON: the stage and segments, then each action
    with the rules that decided it."""
    return {"overview": [_step(step) for step in overview(decision)],
            "actions": [{"action": item.action, "allowed": item.allowed, "until": item.until,
                         "steps": [_step(step) for step in item.steps]}
                        for item in explanation(decision, policy.actions)]}


def _step(step: Step) -> dict[str, Any]:
    return {"verdict": step.verdict, "message": step.message, "rule": step.rule.location, "rule_id": step.rule.id,
            "text": step.rule.head, "because": step.rule.because, "cite": step.rule.cite, "read": step.values}


# ------------------------------------------------------------ the app

Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]
OPEN_PATHS = frozenset({"/health", "/health/ready"})


def _problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return JSONAnswer(problem.document(), status_code=problem.status, media_type="application/problem+json",
                        headers=headers)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes whether or not the
    client announced its length."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Body too large", f"the body is {int(declared):,} bytes; the limit is {limit:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "Body too large", f"the body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(service: Service) -> Starlette:
    """The ASGI app over a built `Service` (tests and embedders may serve it
    with any ASGI server; `serve` below runs it with uvicorn)."""
    config = service.config
    metrics = service.metrics

    def endpoint(path: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A JSON POST endpoint: auth, size and time limits, parsing, and a
        problem document for every refusal (a 500 never carries a traceback)."""
        async def run(request: Request) -> Response:
            started = time.perf_counter()
            response = await _guarded(request, handler)
            metrics.requests.labels(path, str(response.status_code)).observe(time.perf_counter() - started)
            return response
        return run

    async def _guarded(request: Request, handler: Handler) -> Response:
        try:
            media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if media not in ("application/json", "") and not media.endswith("+json"):
                raise Problem(415, "Unsupported media type", f"send Content-Type: application/json, not {media} "
                              "(with curl: --json BODY)")
            async with asyncio.timeout(config.request_timeout):  # uvicorn runs asyncio; anyio's costs 7% of a request
                body = parse_json(await _body(request, config.max_body_bytes))
                if not isinstance(body, dict):
                    raise invalid("body", "expected a JSON object")
                return await handler(request, body)
        except Problem as problem:
            return _problem_response(problem)
        except TimeoutError:
            return _problem_response(Problem(503, "Request timeout",
                                             f"the request took over {config.request_timeout:g} s"))
        except OSError as error:  # the decision log could not be written: never answer unlogged
            print(f"policy serve: {error}", file=sys.stderr)
            return _problem_response(Problem(503, "Decision log unavailable", str(error)))
        except Exception:  # the answer names the incident; the traceback goes to the server's log
            incident = uuid.uuid4().hex
            print(f"policy serve: incident {incident}\n{traceback.format_exc()}", file=sys.stderr)
            return _problem_response(Problem(500, "Internal error", f"incident {incident}; see the server's log"))

    def body_only(method: Callable[[dict[str, Any]], Awaitable[Response]]) -> Handler:
        async def handler(request: Request, body: dict[str, Any]) -> Response:
            return await method(body)
        return handler

    async def health(request: Request) -> Response:
        return JSONAnswer({"status": "ok", "policies": [slot.policy.name for slot in service.slots]})

    async def health_ready(request: Request) -> Response:
        ok, checks = await anyio.to_thread.run_sync(service.ready)
        return JSONAnswer({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    async def status(request: Request) -> Response:
        return JSONAnswer(service.status())

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONAnswer(openapi_document(service))

    routes = [
        Route("/v1/decide", endpoint("/v1/decide", body_only(service.decide)), methods=["POST"]),
        Route("/v1/decide/batch", endpoint("/v1/decide/batch", body_only(service.decide_batch)), methods=["POST"]),
        Route("/v1/explain", endpoint("/v1/explain", body_only(service.explain)), methods=["POST"]),
        Route("/v1/contacts", endpoint("/v1/contacts", service.record_contacts), methods=["POST"]),
        Route("/v1/reserve", endpoint("/v1/reserve", service.reserve), methods=["POST"]),
        Route("/v1/contacts/{reservation_id}/outcome", endpoint("/v1/contacts/{id}/outcome", service.complete),
              methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", health_ready, methods=["GET"]),
        Route("/v1/status", status, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.watcher.start()
        try:
            yield
        finally:
            service.close()  # after uvicorn has drained the requests in flight: every line is flushed

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: _not_found, 405: _not_allowed})
    return _Authenticated(app, config.token) if config.token else app  # type: ignore[return-value]


async def _not_found(request: Request, exc: Exception) -> Response:
    return _problem_response(Problem(404, "Not found", f"no endpoint {request.url.path}; see /openapi.json"))


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _problem_response(Problem(405, "Method not allowed", f"{request.method} is not allowed on "
                                     f"{request.url.path}; see /openapi.json"))


class _Authenticated:
    """Bearer-token auth in front of the app, the health checks left open
    (load balancers probe them without credentials)."""

    def __init__(self, app: Starlette, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = _problem_response(Problem(401, "Unauthorized", "send Authorization: Bearer <token>"),
                                             headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def openapi_document(service: Service) -> dict[str, Any]:
    """OpenAPI 3.1, its decision schema the shipped JSON Schema itself."""
    from .openapi import document

    return document(decision_schema(), [slot.policy for slot in service.slots], service.config)


def serve(service: Service, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Listen on host:port (0: any free port) and serve until SIGINT or
    SIGTERM; then stop accepting, finish the requests in flight, flush the
    decision log and close the ledger."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    bound = listener.getsockname()[1]
    config = uvicorn.Config(create_app(service), log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=30, limit_concurrency=2048, server_header=False)
    shown_host = f"[{host}]" if ":" in host else host
    for slot in service.slots:
        announce(f"serving {slot.policy.name} {slot.policy.version} ({slot.policy.digest[:19]}) from {slot.path}")
    announce(f"listening on http://{shown_host}:{bound}")
    stopped_by: list[int] = []
    for number in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises the signal it drained on, once
        signal.signal(number, lambda received, _frame: stopped_by.append(received))  # its own handlers are off
    uvicorn.Server(config).run(sockets=[listener])
    reason = f" on {signal.Signals(stopped_by[0]).name}" if stopped_by else ""
    announce(f"stopped{reason}: requests in flight answered, decision log flushed")
