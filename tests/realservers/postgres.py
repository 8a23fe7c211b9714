"""A real PostgreSQL 15 on 127.0.0.1: one throwaway cluster per session, a database per test.

The cluster is made by ``initdb`` and run by ``pg_ctl`` as the ``postgres`` user (they
refuse to run as root) in a temp dir owned by that user. TCP connections need a password
(scram-sha-256), so tests can check that it never leaks; the unix socket lives inside the
data dir and is never shared with a system cluster.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from . import binary, free_port, wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"


@attrs.frozen(kw_only=True)
class PostgresServer:
    """A running cluster. ``url`` has no password: it comes from ``password`` / PGPASSWORD."""

    host: str
    port: int
    user: str
    password: str = attrs.field(repr=False)
    data_dir: Path

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        """What a runner's environment would hold: the password for libpq."""
        return {"PGPASSWORD": self.password}

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL (without the password)."""
        import psycopg  # noqa: PLC0415 - only the tests that need a server import it
        from psycopg import sql  # noqa: PLC0415 - same

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, password=self.password, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        import psycopg  # noqa: PLC0415 - see create_database
        from psycopg import sql  # noqa: PLC0415 - same

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, password=self.password, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("runuser"), "-u", SUPERUSER, "--", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextlib.contextmanager
def running_postgres(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """Start a throwaway cluster; stop it and remove its files afterwards.

    ``fsync=False`` keeps the test suite fast; the benchmark asks for ``fsync=True``.
    """
    initdb = binary("initdb", str(PG_BIN / "initdb"))
    pg_ctl = binary("pg_ctl", str(PG_BIN / "pg_ctl"))
    pg_isready = binary("pg_isready", str(PG_BIN / "pg_isready"))
    root = Path(tempfile.mkdtemp(prefix="gk-pg-"))
    data_dir = root / "data"
    password = secrets.token_urlsafe(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    shutil.chown(root, SUPERUSER, SUPERUSER)
    shutil.chown(pwfile, SUPERUSER, SUPERUSER)
    os.chmod(root, 0o700)
    port = free_port()
    started = False
    try:
        _as_postgres(
            initdb,
            "-D",
            str(data_dir),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
        )
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data_dir}"
            f" -c fsync={'on' if fsync else 'off'} -c max_connections=250"
        )
        _as_postgres(
            pg_ctl, "-D", str(data_dir), "-l", str(root / "log"), "-o", options, "-w", "start"
        )
        started = True
        ready = [pg_isready, "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER]
        wait_until(
            lambda: (
                subprocess.run(ready, capture_output=True, timeout=5, check=False).returncode == 0
            ),
            timeout=30,
            interval=0.1,
            what=f"postgres on 127.0.0.1:{port}",
        )
        yield PostgresServer(
            host="127.0.0.1", port=port, user=SUPERUSER, password=password, data_dir=data_dir
        )
    finally:
        if started:
            _as_postgres(pg_ctl, "-D", str(data_dir), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session (startup costs about a second)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
