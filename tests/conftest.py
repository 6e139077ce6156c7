"""Tests marked `slow` (large example counts) run only when selected with
`-m slow`, so the default run stays fast. `postgres_url` starts a throwaway
PostgreSQL server for the ledger's tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------- PostgreSQL
# A throwaway server for the tests of the PostgreSQL ledger: started once per
# session on a free port, with fsync off (nothing in it needs to survive).

_NO_POSTGRES = "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package"


def _postgres_bin() -> str | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's place."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(directory, "initdb")) and os.path.exists(os.path.join(directory, "pg_ctl")):
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a running PostgreSQL server (its `postgres` database).
    PostgreSQL refuses to run as root, so as root it runs as `postgres`."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip(_NO_POSTGRES)
    prefix: list[str] = []
    base = tempfile.mkdtemp(prefix="policydsl-pg-")
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        try:
            shutil.chown(base, "postgres", "postgres")
        except LookupError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(base, "data")
    port = _free_port()
    pg_ctl = [*prefix, os.path.join(bin_dir, "pg_ctl"), "-D", data]
    subprocess.run([*prefix, os.path.join(bin_dir, "initdb"), "-D", data, "-A", "trust", "-U", "policydsl"],
                   check=True, capture_output=True)
    subprocess.run([*pg_ctl, "-w", "-l", os.path.join(base, "log"),
                    "-o", f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://policydsl@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database for one test, dropped after it, so
    tests never see each other's rows."""
    psycopg = pytest.importorskip("psycopg")
    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
