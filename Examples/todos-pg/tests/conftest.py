"""A real PostgreSQL for the todos-pg tests: Debian's server (`postgresql`, test.sh installs it
when missing), a cluster of the test session's own (initdb + pg_ctl as the postgres user when
run as root), listening only on a unix socket in the cluster's directory (no TCP port). Stopped
at the end, pass or fail."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

import pytest


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"{name} not found: install Debian's postgresql (test.sh does)"
    return found[-1]


def as_owner(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Postgres:
    """A cluster in `root`: socket directory `root/sock`, superuser `todos`, database `todos`."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="todos-pg-")
        self.data = os.path.join(self.root, "data")
        self.sock = os.path.join(self.root, "sock")
        os.mkdir(self.sock)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
        self.started = False

    def start(self):
        subprocess.run(as_owner([pg_bin("initdb"), "-D", self.data, "-U", "todos", "--auth=trust", "-E", "UTF8",
                                 "--no-sync"]), check=True, capture_output=True, timeout=120)
        # listen_addresses='': the unix socket only; fsync off: a throw-away cluster.
        options = f"-c listen_addresses='' -c unix_socket_directories={self.sock} -c fsync=off -c max_connections=100"
        subprocess.run(as_owner([pg_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.root, "server.log"),
                                 "-o", options, "-w", "-t", "60", "start"]), check=True, capture_output=True, timeout=90)
        self.started = True
        self.psql("postgres", "CREATE DATABASE todos")
        self.psql("todos", "CREATE TABLE todos (id bigserial PRIMARY KEY, title text NOT NULL, done boolean NOT NULL DEFAULT false)")

    def psql(self, database: str, sql: str) -> str:
        out = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-U", "todos",
                              "-d", database, "-c", sql], check=True, capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def stop(self):
        if self.started:
            subprocess.run(as_owner([pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self) -> dict[str, str]:
        return {"TODOS_PG_HOST": self.sock, "TODOS_PG_USER": "todos", "TODOS_PG_DATABASE": "todos",
                "TODOS_PG_POOL": "8"}


@pytest.fixture(scope="session")
def postgres():
    pg = Postgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
