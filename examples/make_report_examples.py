"""Regenerate the example inputs of `policy report`: payments and a previous snapshot.

Why this exists
---------------
`policy report` measures what a collection cycle achieved (promises kept,
recovery by stage and next action, roll rates between two snapshots), so the
shipped example needs payments and an earlier accounts snapshot that agree
with ``accounts.csv`` and ``contacts.csv`` (written by make_examples.py).
This script derives them from those two files with a fixed seed, standard
library only:

* ``payments.csv`` (``account_id,paid_at,amount``) -- payments kept after
  about 55% of the promises to pay in the history (within 1..6 days), and
  payments in the 30 days after the snapshot instant ``NOW``, likelier and
  larger in the early stages than in the late ones.
* ``accounts_previous.csv`` -- the same accounts 30 days earlier: days past
  due 30 lower for most, a share that was in arrears and has been cured (or
  rolled back a stage after a part payment), a few accounts that are new
  since then (absent) and a few that have left the book (ids only there).

Byte-for-byte reproducible; re-run after changing this file or the two
inputs, and commit the regenerated CSVs with it::

    python examples/make_report_examples.py
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from make_examples import stage_of  # the examples' stages, as the policy has them (run from examples/)

SEED = 20250605
NOW = datetime(2025, 6, 4, 2, 0, tzinfo=UTC)  # the instant the shipped decisions are made at
PREVIOUS = NOW - timedelta(days=30)
SHANGHAI = timezone(timedelta(hours=8))
OUT_DIR = Path(__file__).resolve().parent

# stage -> (probability of paying in the 30 days after NOW, share of the balance paid: low, high)
PAYING = {"current": (0.70, 0.6, 1.0), "M0": (0.45, 0.3, 1.0), "M1": (0.30, 0.15, 0.6),
          "M2": (0.18, 0.1, 0.4), "M3plus": (0.08, 0.05, 0.3)}


def money(value: float) -> str:
    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main() -> None:
    rng = random.Random(SEED)
    header, accounts = read(OUT_DIR / "accounts.csv")
    _, contacts = read(OUT_DIR / "contacts.csv")
    balance = {row[0]: float(row[2]) for row in accounts}

    payments: list[tuple[str, datetime, str]] = []
    for account_id, _action, at, outcome in contacts:
        if outcome == "promise_to_pay" and rng.random() < 0.55:
            paid_at = datetime.fromisoformat(at) + timedelta(days=rng.randint(1, 6), hours=rng.randint(0, 5))
            payments.append((account_id, paid_at, money(balance[account_id] * rng.uniform(0.1, 0.5))))
    for row in accounts:
        chance, low, high = PAYING[stage_of(int(row[1]))]
        if rng.random() < chance:
            paid_at = NOW + timedelta(days=rng.randint(0, 29), hours=rng.randint(1, 12),
                                      minutes=rng.randrange(0, 60, 5))
            payments.append((row[0], paid_at, money(balance[row[0]] * rng.uniform(low, high))))
    payments.sort(key=lambda p: (p[0], p[1]))
    write(OUT_DIR / "payments.csv", ["account_id", "paid_at", "amount"],
          [[a, t.astimezone(SHANGHAI).isoformat(timespec="seconds"), amount] for a, t, amount in payments])

    previous: list[list[str]] = []
    new = set(rng.sample([row[0] for row in accounts if 1 <= int(row[1]) <= 20], 5))  # opened since
    for row in accounts:
        if row[0] in new:
            continue
        dpd = int(row[1])
        roll = rng.random()
        if dpd <= 0 and roll < 0.3:
            before = rng.randint(1, 45)  # in arrears then, cured since
        elif dpd > 30 and roll < 0.1:
            before = dpd - 30 + rng.randint(31, 45)  # a later stage then; a part payment rolled it back
        elif dpd > 30:
            before = dpd - 30
        elif dpd > 0:
            before = rng.randint(-5, 0)  # current then: fell into arrears since
        else:
            before = rng.randint(-5, 0)
        out = list(row)
        out[1] = str(before)
        out[2] = money(balance[row[0]] * (1 + (rng.uniform(0.02, 0.3) if before > dpd else 0)))
        previous.append(out)
    for number in range(3):  # settled or written off since: in the previous snapshot only
        out = list(accounts[number])
        out[0] = f"A{len(accounts) + number + 1:04d}"
        out[1] = str(rng.randint(95, 200))
        previous.append(out)
    write(OUT_DIR / "accounts_previous.csv", header, previous)
    print(f"wrote payments.csv: {len(payments)} payments; accounts_previous.csv: {len(previous)} accounts "
          f"({PREVIOUS:%Y-%m-%d}; {len(new)} accounts new since, 3 gone)")


if __name__ == "__main__":
    main()
