"""``PostgresStore``: the journal in PostgreSQL, for runners on several machines.

The same journal as :class:`~gatekeeper.store.sqlite.SQLiteStore` (tables
``gatekeeper_runs``, ``gatekeeper_events``, ``gatekeeper_leases``, versioned in
``gatekeeper_schema``), plus leases that matter here: exactly one runner drives a run
at a time, a lease expires so a dead runner's run can be taken over, and every append
checks the writer's fencing token in its own transaction (``FOR SHARE`` on the lease
row against the taker's ``FOR UPDATE``), so a runner that lost its lease cannot write.

Lease times come from the database server's clock (``clock_timestamp()``), the one
clock all runners share, unless a ``clock`` is injected (tests, simulations).
Credentials come from the environment (``PGPASSWORD``, ``~/.pgpass``, or the variable
named by ``password_env``); the URL is shown without its password everywhere.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import psycopg.conninfo

from ..exceptions import StoreError
from ._journal import _SqlJournal
from ._sql import _EPOCH, _Cursor, _Now
from .sqlite import default_owner

__all__ = ["MIGRATIONS", "PostgresStore"]

#: Schema migrations, applied in order under an advisory lock in one transaction;
#: the version reached is recorded in ``gatekeeper_schema``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE gatekeeper_runs (
            ord BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id TEXT NOT NULL UNIQUE,
            plan TEXT NOT NULL,
            plan_digest TEXT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            status TEXT NOT NULL DEFAULT 'running',
            last_seq BIGINT NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX gatekeeper_runs_plan ON gatekeeper_runs (plan, ord)",
        """CREATE TABLE gatekeeper_events (
            run_id TEXT NOT NULL REFERENCES gatekeeper_runs (run_id),
            seq BIGINT NOT NULL CHECK (seq > 0),
            kind TEXT NOT NULL,
            at TIMESTAMPTZ NOT NULL,
            phase TEXT,
            checkpoint TEXT,
            data TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE FUNCTION gatekeeper_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'the gatekeeper journal is append-only'; END $$""",
        """CREATE TRIGGER gatekeeper_events_append_only
            BEFORE UPDATE OR DELETE ON gatekeeper_events
            FOR EACH ROW EXECUTE FUNCTION gatekeeper_append_only()""",
        """CREATE TABLE gatekeeper_leases (
            run_id TEXT PRIMARY KEY REFERENCES gatekeeper_runs (run_id),
            owner TEXT,
            token BIGINT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        )""",
    ),
)

_MIGRATION_LOCK = 0x67746B70  # pg_advisory_xact_lock key: two runners never both migrate
#: The first key of ``pg_advisory_xact_lock(int, int)`` for claims; the second is the
#: plan name's hash (the two-key space never overlaps the one-key migration lock).
_CLAIM_LOCK = 0x67746B70


class PostgresStore(_SqlJournal):
    """A journal in PostgreSQL; thread-safe (one connection, a lock; reconnects if broken).

    ``url`` is a libpq URL (``postgresql://user@host:port/db``). The password comes
    from ``env`` (default ``os.environ``): the variable ``password_env`` names, else
    ``PGPASSWORD``; libpq's own ``~/.pgpass`` works too. A password inside the URL is
    accepted but masked like the others. ``lock_timeout`` bounds how long a statement
    waits for another runner's row lock.
    """

    _FOR_UPDATE = " FOR UPDATE"
    _FOR_SHARE = " FOR SHARE"

    def __init__(
        self,
        url: str,
        *,
        owner: str | None = None,
        lease: timedelta = timedelta(seconds=30),
        clock: _Now | None = None,
        env: Mapping[str, str] | None = None,
        password_env: str | None = None,
        connect_timeout: timedelta = timedelta(seconds=10),
        lock_timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        super().__init__(owner=owner or default_owner(), lease=lease, clock=clock)
        try:
            params = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error:
            raise StoreError(
                "invalid PostgreSQL URL (expected postgresql://user@host:port/db)"
            ) from None
        source = os.environ if env is None else env
        password = source.get(password_env or "PGPASSWORD")
        if password_env and password is None:
            raise StoreError(f"{password_env} (the database password) is not set")
        self._url = url
        self._password = password
        self._secrets = tuple(
            s for s in (str(params.get("password") or ""), password or "") if len(s) >= 3
        )
        self.display_url = _display(params)
        self._connect_timeout = max(1, round(connect_timeout.total_seconds()))
        self._lock_timeout_ms = max(1, round(lock_timeout.total_seconds() * 1000))
        self._lock = threading.RLock()
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        try:
            self._migrate(self._connection())
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.display_url!r}, owner={self.owner!r})"

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the leases this store holds and close the connection (idempotent)."""
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(StoreError):
                self._release_all()
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def schema_version(self) -> int:
        with self._read("read the schema version") as cur:
            row = cur.execute("SELECT version FROM gatekeeper_schema").fetchone()
        return int(row[0]) if row else 0

    # -- connecting ----------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(f"{self.display_url}: the store is closed")
        if self._conn is None or self._conn.closed:
            extra: dict[str, Any] = {}
            if self._password is not None:
                extra["password"] = self._password
            try:
                self._conn = psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=self._connect_timeout,
                    application_name="gatekeeper",
                    options=f"-c synchronous_commit=on -c lock_timeout={self._lock_timeout_ms}",
                    **extra,
                )
            except psycopg.Error as exc:
                raise StoreError(
                    f"cannot connect to {self.display_url}: {self._scrub(exc)}"
                ) from None
        return self._conn

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                marker = conn.execute("SELECT to_regclass('gatekeeper_schema')").fetchone()
                if marker is None or marker[0] is None:
                    runs = conn.execute("SELECT to_regclass('gatekeeper_runs')").fetchone()
                    if runs is not None and runs[0] is not None:
                        raise StoreError(
                            f"{self.display_url} has a gatekeeper_runs table without a"
                            " gatekeeper_schema version: not a gatekeeper journal, refusing"
                            " to touch it"
                        )
                    conn.execute("CREATE TABLE gatekeeper_schema (version INTEGER NOT NULL)")
                    conn.execute("INSERT INTO gatekeeper_schema (version) VALUES (0)")
                row = conn.execute("SELECT version FROM gatekeeper_schema").fetchone()
                version = int(row[0]) if row else 0
                if version > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.display_url} has journal schema version {version}, newer than"
                        f" this gatekeeper knows ({len(MIGRATIONS)}): upgrade gatekeeper"
                    )
                for number in range(version, len(MIGRATIONS)):
                    for statement in MIGRATIONS[number]:
                        conn.execute(statement)
                    conn.execute("UPDATE gatekeeper_schema SET version = %s", (number + 1,))
        except psycopg.Error as exc:
            raise self._error(exc, "prepare the journal schema") from None

    # -- the dialect hooks of _SqlJournal --------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[psycopg.Cursor[Any]]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise self._error(exc, what) from None

    _read = _transaction

    @contextlib.contextmanager
    def _claiming(self, plan: str, what: str) -> Iterator[psycopg.Cursor[Any]]:
        """A transaction holding the plan's advisory lock: claims of a plan queue up."""
        with self._transaction(what) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_CLAIM_LOCK, plan))
            yield cur

    @contextlib.contextmanager
    def _peek(self, what: str) -> Iterator[psycopg.Cursor[Any]]:
        """One statement in autocommit: a single round trip (``Lease.check``)."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise self._error(exc, what) from None

    def _lease_and_now(self, cur: Any, run_id: str) -> tuple[str | None, int, datetime, datetime]:
        if self._clock is not None:
            return super()._lease_and_now(cur, run_id)
        row = cur.execute(
            "SELECT l.owner, l.token, l.expires_at, now.at FROM (SELECT clock_timestamp() AS at)"
            " AS now LEFT JOIN gatekeeper_leases AS l ON l.run_id = %s",
            (run_id,),
        ).fetchone()
        now: datetime = row[3]
        if row[1] is None:
            return None, 0, _EPOCH, now.astimezone(UTC)
        return row[0], int(row[1]), self._ts_out(row[2]), now.astimezone(UTC)

    @property
    def _where(self) -> str:
        return self.display_url

    def _execute(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        result: psycopg.Cursor[Any] = cur.execute(sql.replace("?", "%s"), tuple(params))
        return result

    def _db_now(self, cur: Any) -> datetime:
        row = cur.execute("SELECT clock_timestamp()").fetchone()
        now: datetime = row[0]
        return now.astimezone(UTC)

    def _ts_out(self, value: Any) -> datetime:
        when: datetime = value
        return when.astimezone(UTC)

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, exc: psycopg.Error, what: str) -> StoreError:
        state = exc.sqlstate or ""
        if state == "55P03":
            return StoreError(
                f"{self.display_url}: cannot {what}: another runner holds a lock on it past"
                f" lock_timeout ({self._lock_timeout_ms} ms): {self._scrub(exc)}"
            )
        suffix = f" [{state}]" if state else ""
        return StoreError(f"{self.display_url}: cannot {what}: {self._scrub(exc)}{suffix}")


def _display(params: Mapping[str, Any]) -> str:
    """The URL without its password (or any query option), for messages and repr."""
    user = f"{params['user']}@" if params.get("user") else ""
    host = str(params.get("host") or "")
    port = f":{params['port']}" if params.get("port") else ""
    database = str(params.get("dbname") or "")
    return f"postgresql://{user}{host}{port}/{database}"
