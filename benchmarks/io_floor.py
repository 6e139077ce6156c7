"""The I/O floor of `policy run`: the same input read, the same output written, no evaluation.

    python benchmarks/io_floor.py ACCOUNTS.csv CONTACTS.csv REFERENCE.jsonl OUT.jsonl

Reads CONTACTS.csv and then ACCOUNTS.csv with the csv module, opened as `policy run` opens them
(UTF-8 with optional BOM, surrogateescape, newline=""), and for each account row writes the next
line of REFERENCE.jsonl (the decisions `policy run` wrote for the same input) to OUT.jsonl, which
is written as `policy run -o` writes (temporary file in the same directory, fsync, rename). So
the floor reads and writes exactly the bytes `policy run` does, plus REFERENCE.jsonl from the page
cache (bench_run.py measures that read on its own and prints it). Imports nothing but the
standard library.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile

csv.field_size_limit(16 * 1024 * 1024)


def _open(path: str):
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def main(accounts: str, contacts: str, reference: str, output: str) -> int:
    with _open(contacts) as handle:
        for _row in csv.reader(handle):
            pass
    directory = os.path.dirname(os.path.abspath(output))
    fd, temporary = tempfile.mkstemp(prefix=".floor-", suffix=".tmp", dir=directory)
    rows = 0
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out, _open(accounts) as handle, \
            open(reference, encoding="utf-8", newline="") as decisions:
        reader = csv.reader(handle)
        next(reader, None)  # header
        write, readline = out.write, decisions.readline
        for _row in reader:
            write(readline())
            rows += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, output)
    return 0 if rows else 1


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
