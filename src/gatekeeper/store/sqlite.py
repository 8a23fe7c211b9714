"""``SQLiteStore``: the default journal, one file on one host.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``, so every committed append
has been fsync'd to the write-ahead log before :meth:`SQLiteStore.append` returns,
and a reader (``gatekeeper status``) never blocks the runner that writes. WAL needs
the ``-wal``/``-shm`` files beside the database on a local file system (not NFS);
DELETE mode would work there but blocks readers during writes and costs two fsyncs
per commit instead of one.

The file is ours only if its ``application_id`` says so: a foreign or corrupted file
is refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..exceptions import StoreError
from ._journal import _SqlJournal
from ._sql import _Cursor, _Now, _utc

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SQLiteStore"]

#: ``PRAGMA application_id`` of a gatekeeper journal ("gtkp").
APPLICATION_ID = 0x67746B70

#: Schema migrations, applied in order; version N is ``MIGRATIONS[N - 1]`` and is
#: recorded in ``PRAGMA user_version`` in the same transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"PRAGMA application_id = {APPLICATION_ID}",
        """CREATE TABLE gatekeeper_runs (
            ord INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL UNIQUE,
            plan TEXT NOT NULL,
            plan_digest TEXT NOT NULL,
            started_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'running',
            last_seq INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX gatekeeper_runs_plan ON gatekeeper_runs (plan, ord)",
        """CREATE TABLE gatekeeper_events (
            run_id TEXT NOT NULL REFERENCES gatekeeper_runs (run_id),
            seq INTEGER NOT NULL CHECK (seq > 0),
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            phase TEXT,
            checkpoint TEXT,
            data TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TRIGGER gatekeeper_events_no_update BEFORE UPDATE ON gatekeeper_events
            BEGIN SELECT RAISE(ABORT, 'the gatekeeper journal is append-only'); END""",
        """CREATE TRIGGER gatekeeper_events_no_delete BEFORE DELETE ON gatekeeper_events
            BEGIN SELECT RAISE(ABORT, 'the gatekeeper journal is append-only'); END""",
        """CREATE TABLE gatekeeper_leases (
            run_id TEXT PRIMARY KEY REFERENCES gatekeeper_runs (run_id),
            owner TEXT,
            token INTEGER NOT NULL,
            expires_at TEXT NOT NULL
        )""",
    ),
    (
        # The journal's identity: a store checks it in every write transaction, so a
        # file written over the journal in place is not taken for it.
        "CREATE TABLE gatekeeper_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO gatekeeper_meta (key, value)"
        " VALUES ('journal_id', lower(hex(randomblob(16))))",
    ),
)


def default_owner() -> str:
    """Who a runner is in lease messages: host, pid and a nonce (two stores, two owners)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class SQLiteStore(_SqlJournal):
    """An append-only journal in one SQLite file; thread-safe (one connection, a lock).

    ``busy_timeout`` is how long a write waits for another process's lock before
    ``StoreError``; ``max_pages`` caps the file's size in pages (a quota; tests use it
    to simulate a full disk). Leases work between processes on this host and use
    ``clock`` (default: the system clock, UTC).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: timedelta = timedelta(seconds=5),
        owner: str | None = None,
        lease: timedelta = timedelta(seconds=30),
        clock: _Now | None = None,
        max_pages: int | None = None,
    ) -> None:
        super().__init__(owner=owner or default_owner(), lease=lease, clock=clock)
        self.path = Path(path)
        self._busy = busy_timeout
        self._lock = threading.RLock()
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.path}: cannot create the journal, no such directory")
        self._refuse_empty()
        conn = self._open()
        try:
            self._check_ours(conn)
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            if max_pages is not None:
                conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
            self._migrate(conn)
            self._journal_id = _journal_id(conn)
            self._identity = _identity(os.stat(self.path))
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "open the journal") from exc
        except FileNotFoundError:
            conn.close()
            raise StoreError(f"{self.path} vanished while it was being opened") from None
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, owner={self.owner!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the leases this store holds and close the file (idempotent)."""
        with self._lock:
            if self._conn is None:
                return
            self._release_all()
            self._conn.close()
            self._conn = None

    @property
    def schema_version(self) -> int:
        with self._read("read the schema version") as cur:
            return int(cur.execute("PRAGMA user_version").fetchone()[0])

    # -- opening -------------------------------------------------------------------
    def _refuse_empty(self) -> None:
        """A 0-byte file is a lost journal, not a new one: a journal is never created
        empty (see :meth:`_create`), so something truncated this one."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the journal: {exc}") from None
        if size == 0:
            wal = self.path.with_name(self.path.name + "-wal")
            kept = wal.stat().st_size if wal.exists() else 0
            rescue = (
                f" Its write-ahead log {wal.name} ({kept} bytes) is still there: copy both"
                " files away before anything else."
                if kept
                else ""
            )
            raise StoreError(
                f"{self.path} is empty (0 bytes): it is not a new journal, it may have been"
                " truncated, and the runs it recorded are gone. Restore it from a backup, or"
                " delete it deliberately to start over (a journal is created where none"
                f" exists).{rescue}"
            )

    def _open(self) -> sqlite3.Connection:
        """Connect to the journal, creating it first (whole, atomically) if there is none.

        The connection never creates the file itself (``mode=rw``): a journal that
        vanishes between the check and the connection is an error, not a new journal.
        """
        uri = "file:" + urllib.parse.quote(str(self.path.absolute())) + "?mode=rw"
        for _ in range(2):
            if not self.path.exists():
                self._create()
            try:
                return sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=self._busy.total_seconds(),
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                if self.path.exists():
                    raise self._error(exc, "open the journal") from exc
        raise StoreError(f"{self.path}: cannot open the journal: it vanished as it was created")

    def _create(self) -> None:
        """Make a new journal beside the path, with its schema, then link it into place.

        Another process never sees the journal at 0 bytes (so an empty file is always a
        lost journal), and of two runners creating it at once, the first link wins and
        both use that file.
        """
        temp = self.path.with_name(f"{self.path.name}-creating-{uuid.uuid4().hex[:8]}")
        try:
            conn = sqlite3.connect(temp, isolation_level=None)
            try:
                conn.execute("PRAGMA synchronous = FULL")
                self._migrate(conn)
            finally:
                conn.close()
            try:
                os.link(temp, self.path)
            except FileExistsError:
                pass  # another runner created it a moment ago: use theirs
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(temp, self.path)
            _sync_directory(self.path.parent)
        except sqlite3.Error as exc:
            raise self._error(exc, "create the journal") from exc
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the journal: {exc}") from None
        finally:
            for leftover in (temp, temp.with_name(temp.name + "-journal")):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _check_ours(self, conn: sqlite3.Connection) -> None:
        """Refuse a file that is not a gatekeeper journal, reading only."""
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = sorted(
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        )
        if app_id == 0 and version == 0 and not tables:
            return  # a new, empty file: ours to initialise
        if app_id != APPLICATION_ID or version == 0:
            shown = ", ".join(tables[:5]) or "none"
            raise StoreError(
                f"{self.path} is not a gatekeeper journal (application_id {app_id:#x},"
                f" user_version {version}, tables: {shown}); refusing to touch it:"
                " point the store at another file"
            )
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has journal schema version {version}, newer than this"
                f" gatekeeper knows ({len(MIGRATIONS)}): upgrade gatekeeper"
            )

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch the journal to WAL mode ({mode})")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply the missing migrations, each in its own transaction with its version.

        An up-to-date journal is only read, so opening works while another runner writes.
        """
        while int(conn.execute("PRAGMA user_version").fetchone()[0]) < len(MIGRATIONS):
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if version >= len(MIGRATIONS):  # another process migrated meanwhile
                    conn.execute("COMMIT")
                    return
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    # -- the dialect hooks of _SqlJournal --------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc, what) from exc
            try:
                self._check_identity(conn)
                yield conn.cursor()
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise self._error(exc, what) from exc
            except BaseException:
                _rollback(conn)
                raise

    def _claiming(self, plan: str, what: str) -> contextlib.AbstractContextManager[Any]:
        return self._transaction(what)  # BEGIN IMMEDIATE already serialises every writer

    @property
    def _where(self) -> str:
        return str(self.path)

    def _check_journal(self, run_id: str | None) -> None:
        """One ``stat``: the journal file is still there, the same file, and not empty."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            raise self._lost("vanished", run_id, " (deleted or moved away)") from None
        except OSError as exc:
            raise self._lost(f"cannot be checked ({exc})", run_id) from None
        if _identity(now) != self._identity:
            raise self._lost("was replaced", run_id, " (another file is at its path now)")
        if now.st_size == 0:
            raise self._lost("is empty: it was truncated", run_id)

    def _check_identity(self, conn: sqlite3.Connection) -> None:
        """Inside a transaction: the file still holds this journal (one indexed read)."""
        if _journal_id(conn) != self._journal_id:
            raise self._lost("was overwritten by another journal", None)

    def _lost(self, what: str, run_id: str | None, detail: str = "") -> StoreError:
        during = f"run {run_id} was in progress" if run_id else "this store had it open"
        return StoreError(
            f"journal {self.path} {what} while {during}{detail}: stopping, traffic is left"
            " as it is."
            " Check the balancer by hand; restore the journal to resume the run"
        )

    @contextlib.contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            conn = self._connection()
            try:
                yield conn.cursor()
            except sqlite3.Error as exc:
                raise self._error(exc, what) from exc

    def _execute(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        result: sqlite3.Cursor = cur.execute(sql, tuple(params))
        return result

    def _ts_in(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def _ts_out(self, value: Any) -> datetime:
        return _utc(datetime.fromisoformat(str(value)), "a stored time")

    def _owner_is_dead(self, owner: str) -> bool:
        """A default owner (``host:pid:nonce``) on this host whose process is gone.

        A journal file lives on one host, so a runner killed there (SIGKILL, OOM) frees
        its run at once instead of after the lease expires. A reused pid only delays.
        """
        host, _, rest = owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host != socket.gethostname() or not pid_text.isdigit():
            return False
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, owned by another user
        return False

    def _error(self, exc: sqlite3.Error, what: str) -> StoreError:
        message = str(exc)
        code = getattr(exc, "sqlite_errorname", "")
        if code.startswith("SQLITE_BUSY") or "locked" in message:
            return StoreError(
                f"{self.path}: cannot {what}: the journal is locked by another process"
                f" (waited {self._busy.total_seconds():g}s): {message}"
            )
        if code.startswith("SQLITE_FULL") or "full" in message:
            return StoreError(
                f"{self.path}: cannot {what}: the disk (or the journal's size limit) is full;"
                f" nothing of this write was kept: {message}"
            )
        if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            return StoreError(f"{self.path} is not a gatekeeper journal or is corrupted: {message}")
        return StoreError(f"{self.path}: cannot {what}: {message}")


def _journal_id(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM gatekeeper_meta WHERE key = 'journal_id'").fetchone()
    return None if row is None else str(row[0])


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _sync_directory(directory: Path) -> None:
    """fsync a folder, so a file just linked into it survives a power loss (POSIX)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
