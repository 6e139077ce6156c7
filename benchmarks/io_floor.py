"""The I/O floor of `policy run`: the same input read, no evaluation, the output written.

    python benchmarks/io_floor.py ACCOUNTS.csv [--history CONTACTS.csv] --reference REFERENCE.jsonl OUT.jsonl
    python benchmarks/io_floor.py ACCOUNTS.csv [--history CONTACTS.csv] --minimal OUT.jsonl

Reads CONTACTS.csv (when given) and then ACCOUNTS.csv with the csv module, opened as `policy run`
opens them (UTF-8 with optional BOM, surrogateescape, newline=""), and writes one line per account
row to OUT.jsonl, as `policy run -o` writes (temporary file in the same directory, fsync, rename):

* `--reference`: the next line of REFERENCE.jsonl (the decisions `policy run` wrote for the same
  input). So the floor reads and writes exactly the bytes `policy run` does, plus REFERENCE.jsonl
  from the page cache (bench_run.py measures that read on its own and prints it).
* `--minimal`: `{"account_id":"<id>"}` with the row's `id` cell JSON-escaped as `policy run`
  escapes it: the least a decision file can hold, so the ratio to it also charges `policy run`
  for the size of what it writes (issue 12's second floor).

Imports nothing but the standard library, and parses its arguments by hand (no argparse import
in the measured time, nor typing).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile

csv.field_size_limit(16 * 1024 * 1024)


def _open(path: str) -> io.TextIOWrapper:
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def main(accounts: str, contacts: str | None, reference: str | None, output: str) -> int:
    """Write OUT; reference None means the minimal line. Exit 1 when no account row was read."""
    if contacts is not None:
        with _open(contacts) as handle:
            for _row in csv.reader(handle):
                pass
    directory = os.path.dirname(os.path.abspath(output))
    fd, temporary = tempfile.mkstemp(prefix=".floor-", suffix=".tmp", dir=directory)
    rows = 0
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as out, \
            _open(accounts) as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        write = out.write
        if reference is None:
            id_at = [name.strip() for name in header].index("id")
            dumps = json.JSONEncoder(ensure_ascii=False).encode
            for row in reader:
                write('{"account_id":' + dumps(row[id_at]) + "}\n")
                rows += 1
        else:
            with open(reference, encoding="utf-8", errors="surrogateescape", newline="") as decisions:
                readline = decisions.readline
                for _row in reader:
                    write(readline())
                    rows += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, output)
    return 0 if rows else 1


def parse(argv: list[str]) -> tuple[str, str | None, str | None, str]:
    """(accounts, contacts or None, reference or None for --minimal, output); SystemExit on misuse."""
    contacts = reference = None
    minimal = False
    positional: list[str] = []
    arguments = iter(argv)
    for argument in arguments:
        if argument in ("--history", "--reference"):
            value = next(arguments, None)
            if value is None:
                sys.exit(__doc__)
            if argument == "--history":
                contacts = value
            else:
                reference = value
        elif argument == "--minimal":
            minimal = True
        else:
            positional.append(argument)
    if len(positional) != 2 or minimal == (reference is not None):
        sys.exit(__doc__)
    return positional[0], contacts, reference, positional[1]


if __name__ == "__main__":
    sys.exit(main(*parse(sys.argv[1:])))
