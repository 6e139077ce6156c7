"""`policy serve` end to end: the real server in a subprocess on 127.0.0.1,
spoken to over HTTP as a dialer would.

Every test starts its own server (port 0, the port read from the server's
startup line) in a temporary directory, and stops it with SIGTERM, the way
a process manager does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the service tests need httpx: pip install -e '.[test]'")
pytest.importorskip("starlette", reason="policy serve needs its extra: pip install -e '.[serve]'")

from policydsl import Contact, load_policy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ECOMMERCE = ROOT / "policies" / "ecommerce_consumer_loan.policy"
REG_F = ROOT / "policies" / "us_reg_f.policy"
NOW = "2025-06-04T02:00:00Z"  # a Wednesday, 10:00 in Shanghai
US_AFTERNOON = "2025-06-03T19:00:00Z"  # a Tuesday: 09:00 in Honolulu, 15:00 in New York
ACCOUNT = {"id": "A0002", "days_past_due": 45, "balance": "17596.69", "timezone": "Asia/Shanghai",
           "risk_score": "0.50"}
PROBLEM = "application/problem+json"


class Server:
    """A running `policy serve`: its URL, its process, what it printed."""

    def __init__(self, process: subprocess.Popen[str], url: str, output: list[str]) -> None:
        self.process = process
        self.url = url
        self.output = output

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the server did not stop within 40 s of SIGTERM:\n" + "".join(self.output)) from None


def _drain(stream: Any, lines: list[str], listening: threading.Event) -> None:
    for line in stream:
        lines.append(line)
        if "listening on" in line:
            listening.set()
    listening.set()


@contextmanager
def serving(*args: str | Path, cwd: Path) -> Iterator[Server]:
    """`policy serve ARGS --port 0` in `cwd`, once it listens; SIGTERM at the end."""
    command = [sys.executable, "-m", "policydsl", "serve", *map(str, args), "--port", "0",
               "--reload-interval", "0.1"]
    process = subprocess.Popen(command, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    output: list[str] = []
    listening = threading.Event()
    threading.Thread(target=_drain, args=(process.stderr, output, listening), daemon=True).start()
    if not listening.wait(60) or process.poll() is not None:
        process.kill()
        raise AssertionError("the server did not start:\n" + "".join(output))
    url = re.search(r"listening on (http://\S+)", "".join(output))
    assert url, output
    server = Server(process, url.group(1), output)
    try:
        yield server
    finally:
        server.stop()


def _run_serve(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`policy serve` expected to refuse to start."""
    return subprocess.run([sys.executable, "-m", "policydsl", "serve", *map(str, args), "--port", "0"], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture()
def ecommerce(tmp_path: Path) -> Iterator[Server]:
    with serving(ECOMMERCE, cwd=tmp_path) as server:
        yield server


def _without_id(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "decision_id"}


def _is_problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    if field is not None:
        assert body.get("field") == field, body
    return body


# ------------------------------------------------------------ deciding


def test_a_decision_over_http_is_the_in_process_decision(ecommerce: Server) -> None:
    history = [{"action": "agent_call", "at": "2025-06-03T03:00:00Z", "outcome": "conversation"}]
    with ecommerce.client() as client:
        answer = client.post("/v1/decide", json={"account": ACCOUNT, "history": history, "now": NOW})
    assert answer.status_code == 200, answer.text
    policy = load_policy(ECOMMERCE)
    expected = policy.evaluate(ACCOUNT, [Contact("A0002", "agent_call", dt.datetime(2025, 6, 3, 3, tzinfo=dt.UTC),
                                                 "conversation")], now=dt.datetime(2025, 6, 4, 2, tzinfo=dt.UTC))
    assert _without_id(answer.json()) == expected.to_dict()
    assert re.fullmatch(r"[0-9a-f]{32}", answer.json()["decision_id"])


def test_without_now_the_server_decides_at_its_own_clock(ecommerce: Server) -> None:
    before = dt.datetime.now(dt.UTC)
    with ecommerce.client() as client:
        decided = client.post("/v1/decide", json={"account": ACCOUNT}).json()
    at = dt.datetime.fromisoformat(decided["now"])
    assert before <= at <= dt.datetime.now(dt.UTC)


def test_a_batch_answers_in_order_and_a_bad_account_only_costs_its_own_decision(ecommerce: Server) -> None:
    accounts = [{**ACCOUNT, "id": f"B{number}", "days_past_due": number * 10}
                for number in range(25)]  # more than INLINE_BATCH: decided in a worker thread
    accounts[5] = {**accounts[5], "days_past_due": "forty"}
    accounts[7] = {**accounts[7], "days_past_dew": 3}
    history = [{"account_id": "B3", "action": "sms", "at": "2025-06-04T01:00:00Z"}]
    with ecommerce.client() as client:
        answer = client.post("/v1/decide/batch", json={"accounts": accounts, "history": history, "now": NOW})
    decisions = answer.json()["decisions"]
    assert [d["account_id"] for d in decisions] == [a["id"] for a in accounts]
    assert "days_past_due" in decisions[5]["error"] and "days_past_dew" in decisions[7]["error"]
    assert [d["error"] is None for d in decisions].count(False) == 2
    policy = load_policy(ECOMMERCE)
    now = dt.datetime(2025, 6, 4, 2, tzinfo=dt.UTC)
    sms = [Contact("B3", "sms", dt.datetime(2025, 6, 4, 1, tzinfo=dt.UTC))]
    assert _without_id(decisions[3]) == policy.evaluate(accounts[3], sms, now=now).to_dict()
    assert len({d["decision_id"] for d in decisions}) == len(accounts)


def test_explain_names_the_rules_that_decided(ecommerce: Server) -> None:
    with ecommerce.client() as client:
        answer = client.post("/v1/explain", json={"account": {**ACCOUNT, "flags": ["deceased"]}, "now": NOW}).json()
    assert answer["decision"]["allowed"] == []
    forbidden = [step for item in answer["explanation"]["actions"] for step in item["steps"]
                 if step["verdict"] == "forbidden"]
    assert forbidden and all(step["rule_id"] and re.search(r"\.policy:\d+$", step["rule"]) for step in forbidden)
    assert any(step["because"] for step in forbidden)


# ------------------------------------------------------------ operations


def test_health_status_metrics_and_openapi(ecommerce: Server) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    with ecommerce.client() as client:
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/health/ready").status_code == 200
        status = client.get("/v1/status").json()
        decided = client.post("/v1/decide", json={"account": ACCOUNT, "now": NOW}).json()
        metrics = client.get("/metrics").text
        spec = client.get("/openapi.json").json()
    policy = load_policy(ECOMMERCE)
    [served] = status["policies"]
    assert (served["name"], served["version"], served["digest"]) == (policy.name, policy.version, policy.digest)
    assert served["last_reload_error"] is None
    assert 'policydsl_decisions_total{policy="ecommerce-consumer-loan",result="allowed"} 1.0' in metrics
    assert "policydsl_request_duration_seconds_bucket" in metrics and "policydsl_policy_info" in metrics
    assert "A0002" not in metrics  # never an account id as a label
    for kind in {entry["kind"] for entry in decided["blocked"]}:
        number = sum(entry["kind"] == kind for entry in decided["blocked"])
        assert f'policydsl_blocked_total{{kind="{kind}",policy="ecommerce-consumer-loan"}} {number}.0' in metrics
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]
    jsonschema.validate(decided, {**schemas["Decision"], "$defs": schemas["Decision"].get("$defs", {})})
    account_schema = next(schema for name, schema in schemas.items() if name.startswith("Account_"))
    jsonschema.validate(ACCOUNT, account_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**ACCOUNT, "days_past_dew": 1}, account_schema)
    assert set(spec["paths"]) >= {"/v1/decide", "/v1/decide/batch", "/v1/explain", "/v1/contacts", "/v1/reserve",
                                  "/v1/contacts/{reservation_id}/outcome", "/health", "/metrics"}


# ------------------------------------------------------------ bad input


BAD_BODIES = [
    ("malformed JSON", b'{"account": {', 400, None),
    ("not an object", b"[1, 2]", 422, "body"),
    ("a number too clever", b'{"account": {"id": "A1", "days_past_due": NaN}}', 400, None),
    ("unknown field", json.dumps({"acount": ACCOUNT}).encode(), 422, "acount"),
    ("missing account", json.dumps({"now": NOW}).encode(), 422, "account"),
    ("an account key that is no field", json.dumps({"account": {**ACCOUNT, "days_past_dew": 3}}).encode(), 422,
     "account.days_past_dew"),
    ("a wrong type", json.dumps({"account": {**ACCOUNT, "days_past_due": [45]}}).encode(), 422,
     "account.days_past_due"),
    ("a required field missing", json.dumps({"account": {"id": "A1"}}).encode(), 422, "account.days_past_due"),
    ("no id", json.dumps({"account": {"days_past_due": 3, "balance": 1}}).encode(), 422, "account.id"),
    ("now without offset", json.dumps({"account": ACCOUNT, "now": "2025-06-04T10:00:00"}).encode(), 422, "now"),
    ("now not a date", json.dumps({"account": ACCOUNT, "now": "tomorrow"}).encode(), 422, "now"),
    ("history of another account", json.dumps({"account": ACCOUNT, "history": [
        {"account_id": "A0003", "action": "sms", "at": NOW}]}).encode(), 422, "history[0].account_id"),
    ("history not a list", json.dumps({"account": ACCOUNT, "history": {"action": "sms"}}).encode(), 422, "history"),
    ("an unknown action in history", json.dumps({"account": ACCOUNT, "history": [
        {"action": "agent_cal", "at": NOW}]}).encode(), 422, "history[0].action"),
    ("a history item without time", json.dumps({"account": ACCOUNT, "history": [{"action": "sms"}]}).encode(), 422,
     "history[0].at"),
    ("unknown policy", json.dumps({"account": ACCOUNT, "policy": "ecommerce"}).encode(), 422, "policy"),
]


@pytest.mark.parametrize(("case", "body", "status", "field"), BAD_BODIES, ids=[case[0] for case in BAD_BODIES])
def test_bad_input_gets_a_problem_naming_the_field(ecommerce: Server, case: str, body: bytes, status: int,
                                                    field: str | None) -> None:
    with ecommerce.client() as client:
        answer = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    _is_problem(answer, status, field)


def test_limits_media_types_and_unknown_routes(ecommerce: Server) -> None:
    with ecommerce.client() as client:
        _is_problem(client.post("/v1/decide", content=b" " * (1024 * 1024 + 1),
                                headers={"content-type": "application/json"}), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
            for _ in range(2048):
                yield b" " * 1024
        _is_problem(client.post("/v1/decide", content=chunks(), headers={"content-type": "application/json"}), 413)
        _is_problem(client.post("/v1/decide", content=b"account=1",
                                headers={"content-type": "application/x-www-form-urlencoded"}), 415)
        _is_problem(client.get("/v1/decide"), 405)
        _is_problem(client.get("/v2/decide"), 404)
        too_many = {"accounts": [ACCOUNT] * 10_001}
        _is_problem(client.post("/v1/decide/batch", json=too_many), 422, "accounts")
        _is_problem(client.post("/v1/reserve", json={"account": ACCOUNT, "action": "sms"}), 501)
        message = _is_problem(client.post("/v1/decide", json={"account": {**ACCOUNT, "days_past_dew": 1}}), 422)
        assert "did you mean 'days_past_due'" in message["detail"]


def test_a_slow_body_is_cut_off_at_the_request_timeout(tmp_path: Path) -> None:
    with serving(ECOMMERCE, "--request-timeout", "0.5", cwd=tmp_path) as server, server.client() as client:
        def trickle() -> Iterator[bytes]:
            yield b'{"account": '
            time.sleep(2)
            yield json.dumps(ACCOUNT).encode() + b"}"
        _is_problem(client.post("/v1/decide", content=trickle(), headers={"content-type": "application/json"}), 503)


def test_a_bearer_token_is_required_except_for_health(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    with serving(ECOMMERCE, "--token-file", tmp_path / "token", cwd=tmp_path) as server:
        with server.client() as client:
            assert client.get("/health").status_code == 200
            assert client.get("/health/ready").status_code == 200
            _is_problem(client.post("/v1/decide", json={"account": ACCOUNT}), 401)
            _is_problem(client.get("/metrics"), 401)
        with server.client(authorization="Bearer wrong") as client:
            _is_problem(client.post("/v1/decide", json={"account": ACCOUNT}), 401)
        with server.client(authorization="Bearer s3cret-token") as client:
            assert client.post("/v1/decide", json={"account": ACCOUNT}).status_code == 200


def test_a_server_that_cannot_start_says_why_and_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.policy"
    broken.write_text('policy "p" version "1"\naccount { id : text }\nactions { call }\nstage X { allow cal }\n')
    result = _run_serve(broken, cwd=tmp_path)
    assert result.returncode == 2 and "broken.policy:4:" in result.stderr and "Traceback" not in result.stderr
    result = _run_serve(ECOMMERCE, "--ledger", "mysql://db", cwd=tmp_path)
    assert result.returncode == 2 and "sqlite" in result.stderr and "Traceback" not in result.stderr
    result = _run_serve(ECOMMERCE, "--mask", "id:hash", cwd=tmp_path)
    assert result.returncode == 2 and "key" in result.stderr and "Traceback" not in result.stderr
    result = _run_serve(ECOMMERCE, "--mask", "balanse", cwd=tmp_path)  # it would mask nothing
    assert result.returncode == 2 and "did you mean 'balance'" in result.stderr and "Traceback" not in result.stderr
    with serving(ECOMMERCE, cwd=tmp_path) as server:
        port = server.url.rsplit(":", 1)[1]
        taken = subprocess.run([sys.executable, "-m", "policydsl", "serve", str(ECOMMERCE), "--port", port],
                               cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert taken.returncode == 2 and "cannot listen" in taken.stderr and "Traceback" not in taken.stderr


# ------------------------------------------------------------ the ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'contacts.db'}"
    return str(request.getfixturevalue("postgres_database"))  # a real server: tests/conftest.py


def _reserve(server: Server, account: dict[str, Any], action: str, now: str, key: str | None = None
             ) -> httpx.Response:
    headers = {"idempotency-key": key} if key else {}
    with server.client(**headers) as client:
        return client.post("/v1/reserve", json={"account": account, "action": action, "now": now})


def test_64_dialers_reserving_one_account_get_exactly_the_reg_f_cap(tmp_path: Path, ledger_url: str) -> None:
    """12 CFR 1006.14(b)(2)(i): more than seven calls within seven days is
    presumed harassment. 64 callers racing for the same account at once get
    seven grants between them, never eight."""
    account = {"id": "R1", "timezone": "America/New_York"}
    with serving(REG_F, "--ledger", ledger_url, cwd=tmp_path) as server:
        with ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(lambda _: _reserve(server, account, "call", US_AFTERNOON), range(64)))
        assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200]
        granted = [answer.json() for answer in answers if answer.json()["granted"]]
        assert len(granted) == 7
        assert len({answer["reservation_id"] for answer in granted}) == 7
        refused = next(answer.json() for answer in answers if not answer.json()["granted"])
        assert refused["reservation_id"] is None
        assert {entry["kind"] for entry in refused["decision"]["blocked"] if entry["action"] == "call"} == {"limit"}
        with server.client() as client:  # the ledger's history is what later decisions read
            later = client.post("/v1/decide", json={"account": account, "now": US_AFTERNOON}).json()
        assert "call" not in later["allowed"]


def test_reservations_are_idempotent_and_complete_with_their_outcome(tmp_path: Path, ledger_url: str) -> None:
    account = {"id": "R2", "timezone": "America/New_York"}
    with serving(REG_F, "--ledger", ledger_url, cwd=tmp_path) as server:
        first = _reserve(server, account, "call", US_AFTERNOON, key="retry-1").json()
        again = _reserve(server, account, "call", US_AFTERNOON, key="retry-1").json()
        assert first["granted"] and again["replayed"] and not first["replayed"]
        assert again["reservation_id"] == first["reservation_id"]
        assert again["decision"]["decision_id"] == first["decision"]["decision_id"]
        _is_problem(_reserve(server, account, "sms", US_AFTERNOON, key="retry-1"), 422, "Idempotency-Key")
        reservation = first["reservation_id"]
        with server.client() as client:
            done = client.post(f"/v1/contacts/{reservation}/outcome", json={"outcome": "not_connected"})
            assert done.status_code == 200 and done.json()["contact"]["outcome"] == "not_connected"
            assert client.post(f"/v1/contacts/{reservation}/outcome", json={"outcome": "not_connected"}
                               ).status_code == 200
            _is_problem(client.post(f"/v1/contacts/{reservation}/outcome", json={"outcome": "conversation"}), 409)
            _is_problem(client.post("/v1/contacts/nope/outcome", json={"outcome": "conversation"}), 404)
            _is_problem(client.post(f"/v1/contacts/{reservation}/outcome", json={"outcome": 3}), 422, "outcome")
            _is_problem(client.post("/v1/reserve", json={"account": account, "action": "cal"}), 422, "action")


def test_recorded_contacts_are_the_history_decisions_read(tmp_path: Path, ledger_url: str) -> None:
    account = {"id": "R3", "timezone": "America/New_York"}
    talk = {"account_id": "R3", "action": "call", "at": "2025-06-02T15:00:00Z", "outcome": "conversation"}
    with serving(REG_F, "--ledger", ledger_url, cwd=tmp_path) as server, server.client() as client:
        assert "call" in client.post("/v1/decide", json={"account": account, "now": US_AFTERNOON}).json()["allowed"]
        recorded = client.post("/v1/contacts", json={"contacts": [talk]}, headers={"idempotency-key": "k1"})
        assert recorded.status_code == 201 and len(recorded.json()["ids"]) == 1
        replay = client.post("/v1/contacts", json={"contacts": [talk]}, headers={"idempotency-key": "k1"})
        assert replay.json()["ids"] == recorded.json()["ids"]
        decided = client.post("/v1/decide", json={"account": account, "now": US_AFTERNOON}).json()
        assert "call" not in decided["allowed"]  # a week's quiet after a conversation (1006.14(b)(2)(ii))
        echoed = client.post("/v1/decide", json={"account": account, "now": US_AFTERNOON, "history": [talk]}).json()
        assert _without_id(echoed) == _without_id(decided)  # a contact sent that the ledger holds counts once
        _is_problem(client.post("/v1/contacts", json={"contacts": [{**talk, "action": "cal"}]}), 422,
                    "contacts[0].action")
        _is_problem(client.post("/v1/contacts", json={"contacts": [{**talk, "account_id": None}]}), 422,
                    "contacts[0].account_id")


# ------------------------------------------------------------ reload, logs and shutdown


def _copy_policy(tmp_path: Path) -> Path:
    for name in ("ecommerce_consumer_loan.policy", "cn_collection_baseline.policy"):
        shutil.copy(ROOT / "policies" / name, tmp_path / name)
    return tmp_path / "ecommerce_consumer_loan.policy"


def _rewrite(path: Path, *changes: tuple[str, str]) -> None:
    text = path.read_text()
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    replaced = path.with_suffix(".tmp")
    replaced.write_text(text)
    os.replace(replaced, path)  # as an editor saves: the file is whole whenever it is read


def _wait_for(condition: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_reload_under_load_serves_every_request_and_switches_the_digest(tmp_path: Path) -> None:
    policy_path = _copy_policy(tmp_path)
    log = tmp_path / "decisions.jsonl"
    with serving(policy_path, "--decision-log", log, cwd=tmp_path) as server:
        with server.client() as client:
            old = client.get("/v1/status").json()["policies"][0]["digest"]
        stop = threading.Event()
        answers: list[httpx.Response] = []
        day_33 = {**ACCOUNT, "days_past_due": 33}

        def load() -> None:
            with server.client() as client:
                while not stop.is_set():
                    answers.append(client.post("/v1/decide", json={"account": day_33, "now": NOW}))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(0.5)
            _rewrite(policy_path, ("M0       1 .. 30", "M0       1 .. 34"), ("M1      31 .. 60", "M1      35 .. 60"))
            with server.client() as client:
                _wait_for(lambda: client.get("/v1/status").json()["policies"][0]["digest"] != old, "the new digest")
                new = client.get("/v1/status").json()["policies"][0]["digest"]
            time.sleep(0.5)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
    assert answers and all(answer.status_code == 200 for answer in answers)
    digests = [answer.json()["policy"]["digest"] for answer in answers]
    assert digests[0] == old and digests[-1] == new and set(digests) == {old, new}
    stages = {(answer.json()["policy"]["digest"], answer.json()["stage"]) for answer in answers}
    assert stages == {(old, "M1"), (new, "M0")}  # each request decided wholly by one version
    lines = _log_lines(log)  # each line names the policy that decided it
    by_id = {line["decision_id"]: line for line in lines}
    assert len(lines) == len(answers)
    assert all(by_id[a.json()["decision_id"]]["policy"]["digest"] == a.json()["policy"]["digest"] for a in answers)


def test_a_policy_that_stops_compiling_keeps_the_last_good_one_serving(tmp_path: Path) -> None:
    policy_path = _copy_policy(tmp_path)
    baseline = tmp_path / "cn_collection_baseline.policy"
    with serving(policy_path, cwd=tmp_path) as server, server.client() as client:
        good = client.get("/v1/status").json()["policies"][0]
        _rewrite(baseline, ("forbid", "forbidd"))  # an include breaks: the includer is reloaded too
        _wait_for(lambda: client.get("/v1/status").json()["policies"][0]["last_reload_error"], "the reload error")
        status = client.get("/v1/status").json()["policies"][0]
        assert status["digest"] == good["digest"]
        assert re.search(r"cn_collection_baseline\.policy:\d+:\d+: error\[E\d+\]", status["last_reload_error"])
        assert client.post("/v1/decide", json={"account": ACCOUNT, "now": NOW}).json()["policy"]["digest"] == \
            good["digest"]
        assert 'policydsl_policy_reload_error{policy="ecommerce-consumer-loan"} 1.0' in client.get("/metrics").text
        _rewrite(baseline, ("forbidd", "forbid"))
        _wait_for(lambda: client.get("/v1/status").json()["policies"][0]["last_reload_error"] is None, "recovery")
        assert 'policydsl_policy_reload_error{policy="ecommerce-consumer-loan"} 0.0' in client.get("/metrics").text


def test_sigterm_during_load_loses_no_decision_log_line(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    with serving(ECOMMERCE, "--decision-log", log, cwd=tmp_path) as server:
        answered: list[str] = []
        failures: list[str] = []

        def load() -> None:
            with server.client() as client:
                while True:
                    try:
                        answer = client.post("/v1/decide/batch", json={"accounts": [ACCOUNT] * 20, "now": NOW})
                    except httpx.TransportError as error:  # the server stopped accepting
                        failures.append(type(error).__name__)
                        return
                    if answer.status_code != 200:
                        failures.append(answer.text)
                        return
                    answered.extend(d["decision_id"] for d in answer.json()["decisions"])

        workers = [threading.Thread(target=load) for _ in range(8)]
        for worker in workers:
            worker.start()
        _wait_for(lambda: len(answered) > 400, "some load")
        assert server.stop() == 0
        for worker in workers:
            worker.join(timeout=30)
    logged = {line["decision_id"] for line in _log_lines(log)}  # every line whole: json.loads would fail on a torn one
    assert set(answered) <= logged
    assert "policy serve" in "".join(server.output)


def test_masked_fields_never_reach_the_decision_log(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    (tmp_path / "key").write_bytes(os.urandom(32))
    account = {**ACCOUNT, "id": "SECRET-ACCOUNT-77"}
    history = [{"action": "sms", "at": "2025-06-03T01:00:00Z"}]
    with serving(ECOMMERCE, "--decision-log", log, "--mask", "id:hash,balance", "--mask-key-file", tmp_path / "key",
                 cwd=tmp_path) as server, server.client() as client:
        answer = client.post("/v1/decide", json={"account": account, "history": history, "now": NOW}).json()
        second = client.post("/v1/decide", json={"account": account, "now": NOW}).json()
        assert answer["account_id"] == "SECRET-ACCOUNT-77"  # the caller gets its answer in clear
    text = log.read_text()
    assert "SECRET-ACCOUNT-77" not in text and "17596.69" not in text
    first, again = _log_lines(log)
    assert first["masked"] == ["balance", "id"]
    assert first["input"]["account"]["balance"] is None
    assert first["input"]["account"]["id"] == again["input"]["account"]["id"]  # hashed alike: still joinable
    assert first["decision_id"] == answer["decision_id"] and again["decision_id"] == second["decision_id"]
    assert first["policy"]["digest"] == answer["policy"]["digest"]


def test_without_the_serve_extra_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['anyio'] = None; from policydsl.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", blocked, "serve", str(ECOMMERCE)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "pip install 'policydsl[serve]'" in result.stderr
    assert "Traceback" not in result.stderr
