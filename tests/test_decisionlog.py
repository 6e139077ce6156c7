"""The decision log's promises: masked fields never in clear (wherever the
service repeats them), one whole JSON line per decision handed to the OS
before `write` returns, lines never interleaved or split, and the disk not
filled (rotation)."""

from __future__ import annotations

import copy
import errno
import json
import os
import stat
import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policydsl.decisionlog import HASH_PREFIX, DecisionLog, MaskError, Masking

KEY = b"k" * 32


def an_entry(**account: Any) -> dict[str, Any]:
    account = {"id": "A1", "phone": "+44 20 7946 0000", "email": "jo@example.org", "balance": 120, **account}
    return {
        "decision_id": "d1", "timestamp": "2025-06-03T10:00:00.123456Z", "endpoint": "/v1/decide",
        "policy": {"name": "collections", "version": "3", "digest": "abc"},
        "input": {"account": account,
                  "history": [{"account_id": account["id"], "action": "call", "at": "2025-06-01T09:00:00Z",
                               "outcome": "no_answer"}],
                  "now": "2025-06-03T10:00:00Z"},
        "decision": {"account_id": account["id"], "stage": "early", "allowed": ["call"], "error": None},
    }


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------ parsing --mask


def test_parse_modes_default_to_erase() -> None:
    masking = Masking.parse(" phone , email:erase,id:hash ", KEY)
    assert masking.erase == {"phone", "email"}
    assert masking.hash == {"id"}


@pytest.mark.parametrize("spec", [None, "", "  "])
def test_parse_nothing(spec: str | None) -> None:
    assert Masking.parse(spec).fields == frozenset()


@pytest.mark.parametrize(("spec", "message"), [
    ("phone,,email", "--mask: item 2 is empty (a stray comma?)"),
    ("phone,", "--mask: item 2 is empty (a stray comma?)"),
    (":hash", "--mask: item 1 (':hash') names no field"),
    ("phone,phone:hash", "--mask: 'phone' is listed twice"),
    ("phone:hide", "--mask: 'phone' has the unknown mode 'hide'; expected :erase or :hash"),
    ("phone:", "--mask: 'phone' has the unknown mode ''; expected :erase or :hash"),
    ("phone email", "--mask: 'phone email' is no field name (a missing comma?)"),
])
def test_parse_refuses(spec: str, message: str) -> None:
    with pytest.raises(MaskError) as raised:
        Masking.parse(spec, KEY)
    assert str(raised.value) == message


@pytest.mark.parametrize("key", [None, b""])
def test_hashing_needs_a_key(key: bytes | None) -> None:
    with pytest.raises(MaskError, match=r"^hashing needs a key: --mask-key-file FILE$"):
        Masking.parse("id:hash", key)


def test_the_key_is_not_in_the_repr() -> None:
    assert "kkkk" not in repr(Masking.parse("id:hash", KEY))


# ------------------------------------------------------------ applying


def test_erase_and_hash() -> None:
    masked = Masking.parse("phone,email:hash", KEY).apply(an_entry())
    account = masked["input"]["account"]
    assert account["phone"] is None
    assert account["email"] == Masking.parse("email:hash", KEY).hashed("jo@example.org")
    assert account["email"].startswith(HASH_PREFIX) and len(account["email"]) == len(HASH_PREFIX) + 64
    assert account["balance"] == 120


@pytest.mark.parametrize("mode", ["erase", "hash"])
def test_id_is_masked_everywhere_it_appears(mode: str) -> None:
    masking = Masking.parse(f"id:{mode}", KEY)
    entry = {**an_entry(), "account_id": "A1"}
    masked = masking.apply(entry)
    expected = masking.hashed("A1") if mode == "hash" else None
    assert masked["input"]["account"]["id"] == expected
    assert masked["input"]["history"][0]["account_id"] == expected
    assert masked["decision"]["account_id"] == expected
    assert masked["account_id"] == expected
    assert "A1" not in json.dumps(masked)


def test_entries_without_history_or_decision() -> None:
    reservation = {"decision_id": "d2", "input": {"account": {"id": "A1"}, "now": "2025-06-03T10:00:00Z"},
                   "granted": True, "reservation_id": "r1"}
    masked = Masking.parse("id:hash", KEY).apply(reservation)
    assert masked["input"]["account"]["id"].startswith(HASH_PREFIX)
    assert masked["granted"] is True and masked["reservation_id"] == "r1"
    assert Masking.parse("id").apply({"decision_id": "d3"}) == {"decision_id": "d3", "masked": []}


def test_id_masked_where_the_account_has_none() -> None:
    entry = an_entry()
    del entry["input"]["account"]["id"]
    entry["decision"]["account_id"] = None
    masked = Masking.parse("id:hash", KEY).apply(entry)
    assert masked["input"]["history"][0]["account_id"].startswith(HASH_PREFIX)
    assert masked["decision"]["account_id"] is None  # null stays null: no fake id that joins id-less accounts
    assert masked["masked"] == ["id"]


def test_a_masked_value_quoted_elsewhere_is_masked_there_too() -> None:
    entry = an_entry(id="A7")
    entry["decision"]["error"] = "account 'A7': phone '+44 20 7946 0000' is not a number (+44 20 7946 0000)"
    masked = Masking.parse("id,phone", KEY).apply(entry)
    assert masked["decision"]["error"] == ("account '[id erased]': phone '[phone erased]' is not a number "
                                           "([phone erased])")


def test_a_short_value_is_replaced_only_where_quoted() -> None:
    entry = an_entry(id="A1")
    entry["decision"]["stage"] = "A1 stage"
    assert Masking.parse("id").apply(entry)["decision"]["stage"] == "A1 stage"


def test_same_value_same_hash_and_keys_differ() -> None:
    one, other = Masking.parse("id:hash", KEY), Masking.parse("id:hash", b"another key")
    assert one.hashed("A1") == one.hashed("A1") != other.hashed("A1")
    assert one.hashed("A1") != one.hashed("A2")
    assert one.hashed({"b": 1, "a": 2}) == one.hashed({"a": 2, "b": 1})
    assert one.hashed(1) != one.hashed("1")


def test_the_argument_is_not_mutated() -> None:
    entry = an_entry()
    entry["decision"]["error"] = "phone '+44 20 7946 0000' refused"
    before = copy.deepcopy(entry)
    Masking.parse("id:hash,phone,email", KEY).apply(entry)
    assert entry == before


def test_masked_lists_only_fields_present() -> None:
    masked = Masking.parse("phone,email:hash,ssn", KEY).apply(an_entry())
    assert masked["masked"] == ["email", "phone"]
    assert "ssn" not in masked["input"]["account"]


# ------------------------------------------------------------ writing


def test_one_valid_json_line_per_write(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    log = DecisionLog(str(path), masking=Masking.parse("phone"))
    log.write(an_entry(name="Zoë"))
    log.write(an_entry())
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") == 2 and text.endswith("\n")
    first = lines_of(path)[0]
    assert text.split("\n")[0] == json.dumps(first, ensure_ascii=False, separators=(",", ":"))  # compact, UTF-8
    assert first["input"]["account"]["phone"] is None and first["masked"] == ["phone"]
    assert log.lines_written == 2


def test_unicode_line_separators_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    DecisionLog(str(path)).write(an_entry(note="a\u2028b\u2029c\x85d"))
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["input"]["account"]["note"] == "a\u2028b\u2029c\x85d"


def test_a_line_is_on_the_os_side_before_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    log = DecisionLog(str(path))
    log.write(an_entry())
    assert os.path.getsize(path) > 0  # read by another file object: nothing held in a buffer
    log.close()


def test_decimal_as_text_and_nan_refused(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    log = DecisionLog(str(path))
    log.write(an_entry(balance=Decimal("120.50")))
    assert lines_of(path)[0]["input"]["account"]["balance"] == "120.50"
    with pytest.raises(ValueError):
        log.write(an_entry(balance=float("nan")))
    assert log.lines_written == 1 and len(lines_of(path)) == 1


def test_threads_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    log = DecisionLog(str(path), masking=Masking.parse("phone,id:hash", KEY))

    def writer(number: int) -> None:
        for line in range(500):
            log.write(an_entry(note=f"{number}-{line}" + "x" * 200))

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    notes = [line["input"]["account"]["note"] for line in lines_of(path)]
    assert len(notes) == 4000 == len(set(notes)) == log.lines_written


def test_rotation_keeps_whole_lines_and_drops_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    line_size = len(json.dumps({**an_entry(n=1000), "masked": []}, separators=(",", ":"))) + 1
    log = DecisionLog(str(path), max_bytes=3 * line_size, backups=2)
    for number in range(1000, 1020):
        log.write(an_entry(n=number))
    files = [path, Path(f"{path}.1"), Path(f"{path}.2")]
    assert all(file.exists() for file in files) and not Path(f"{path}.3").exists()
    kept = [line["input"]["account"]["n"] for file in reversed(files) for line in lines_of(file)]
    # 3 lines a file: 1000-1002 … 1015-1017 rotated, 1018-1019 current; the oldest 4 files dropped
    assert kept == list(range(1012, 1020))
    assert all(os.path.getsize(file) <= 3 * line_size for file in files)
    assert log.rotations == 6 and log.lines_written == 20


def test_no_backups_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    log = DecisionLog(str(path), max_bytes=10, backups=0)
    log.write(an_entry(n=1))
    log.write(an_entry(n=2))
    assert [line["input"]["account"]["n"] for line in lines_of(path)] == [2]
    assert list(tmp_path.iterdir()) == [path]


def test_a_line_larger_than_max_bytes_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    log = DecisionLog(str(path), max_bytes=50, backups=3)
    log.write(an_entry(n=1))
    log.write(an_entry(n=2))
    assert [line["input"]["account"]["n"] for line in lines_of(path)] == [2]
    assert [line["input"]["account"]["n"] for line in lines_of(Path(f"{path}.1"))] == [1]
    assert log.rotations == 1


def test_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    path.write_text('{"earlier":true}\n')
    DecisionLog(str(path)).write(an_entry())
    assert len(lines_of(path)) == 2


def test_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "decisions.log"
    DecisionLog(str(path)).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_write_after_close_raises_and_close_is_idempotent(tmp_path: Path) -> None:
    log = DecisionLog(str(tmp_path / "decisions.log"))
    log.close()
    log.close()
    assert log.closed
    with pytest.raises(ValueError, match="closed"):
        log.write(an_entry())


def test_a_failed_write_reaches_the_caller() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    log = DecisionLog("/dev/full")
    with pytest.raises(OSError):
        log.write(an_entry())
    assert log.lines_written == 0


def test_a_line_half_written_when_the_disk_fills_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "decisions.log"
    log = DecisionLog(str(path))
    log.write(an_entry(n=1))
    real_write = os.write

    def fills_up(fd: int, data: Any) -> int:
        monkeypatch.setattr(os, "write", no_space)
        return real_write(fd, data[:10])

    def no_space(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", fills_up)
    with pytest.raises(OSError, match="No space"):
        log.write(an_entry(n=2))
    monkeypatch.undo()
    log.write(an_entry(n=3))
    assert [line["input"]["account"]["n"] for line in lines_of(path)] == [1, 3]
    assert log.lines_written == 2


def test_dash_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    log = DecisionLog("-", masking=Masking.parse("phone"), max_bytes=10)
    log.write(an_entry())
    log.write(an_entry())
    log.close()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and json.loads(out[0])["input"]["account"]["phone"] is None
    assert log.rotations == 0


@pytest.mark.parametrize(("max_bytes", "backups"), [(0, 5), (10, -1)])
def test_bad_limits_refused(tmp_path: Path, max_bytes: int, backups: int) -> None:
    with pytest.raises(ValueError):
        DecisionLog(str(tmp_path / "decisions.log"), max_bytes=max_bytes, backups=backups)


# ------------------------------------------------------------ the property

_names = st.sampled_from(["id", "phone", "email", "name", "address", "balance", "dob"])
_chars = st.characters(codec="utf-8", exclude_categories=["Cs"])
_texts = st.text(_chars, max_size=16)
_values = st.one_of(st.text(_chars, min_size=6, max_size=16), _texts, st.integers(), st.none(), st.booleans())


@st.composite
def entries_and_masks(draw: st.DrawFn) -> tuple[dict[str, Any], Masking]:
    """An entry whose account's fields are mostly masked, its id repeated
    where the service repeats it, and an error quoting an account value."""
    account = draw(st.dictionaries(_names, _values, min_size=1, max_size=7))
    masked = draw(st.lists(st.sampled_from(sorted(account)), unique=True)) + draw(st.lists(_names, max_size=1))
    modes = draw(st.lists(st.sampled_from(["erase", "hash"]), min_size=len(masked), max_size=len(masked)))
    spec = ",".join(f"{name}:{mode}" for name, mode in dict(zip(masked, modes, strict=True)).items())
    owner = account.get("id", draw(_texts))
    texts = [value for value in account.values() if isinstance(value, str)] or [""]
    error = draw(st.sampled_from(["", "bad value {v!r}", "{v} is not a number"])).format(v=draw(st.sampled_from(texts)))
    entry = {"decision_id": "d", "input": {"account": account, "history": [
        {"account_id": owner, "action": draw(_texts), "outcome": draw(_texts)}]},
        "decision": {"account_id": owner, "stage": draw(_texts), "error": error}}
    return entry, Masking.parse(spec, KEY)


def strings_in(value: Any) -> list[str]:
    """Every text of a parsed line but its keys (the service's vocabulary)."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return [value] if isinstance(value, str) else []


@settings(max_examples=300, deadline=None)
@given(entries_and_masks())
def test_no_masked_text_reaches_the_line(case: tuple[dict[str, Any], Masking]) -> None:
    entry, masking = case
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "decisions.log")
        DecisionLog(str(path), masking=masking).write(entry)
        (line,) = path.read_text(encoding="utf-8").splitlines()
    texts = strings_in(json.loads(line))
    for name in masking.fields:
        value = entry["input"]["account"].get(name)
        if isinstance(value, str) and len(value) >= 6:
            assert not [text for text in texts if value in text], (name, value, line)
