"""Durable journals of runs: SQLite (the default, one host) and PostgreSQL (teams).

Both implement :class:`gatekeeper.Store` with the same schema and the same meaning:
an append-only journal of :class:`~gatekeeper.Event` per run, every append its own
committed (fsync'd) transaction, ``seq`` 1, 2, 3 ... per run without gaps. Both also
hand out a :class:`Lease` per run, so exactly one runner drives a run at a time: the
store remembers the lease it holds for a run and checks its fencing token inside every
append's transaction, so a runner that lost its lease can no longer write.

:func:`open_store` picks the store from a path or URL; ``psycopg`` is imported only
for a PostgreSQL URL. See ``docs/stores.md``.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from ..exceptions import StoreError

if TYPE_CHECKING:
    from .._protocols import Event, RunInfo, Store
    from .postgres import PostgresStore
    from .sqlite import SQLiteStore

__all__ = [
    "FINISHED_STATUSES",
    "Lease",
    "LeasingStore",
    "PostgresStore",
    "SQLiteStore",
    "open_store",
]


def __getattr__(name: str) -> Any:
    """``SQLiteStore`` and ``PostgresStore`` load on first use (psycopg only then)."""
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore  # noqa: PLC0415 - lazy by design

        return SQLiteStore
    if name == "PostgresStore":
        from .postgres import PostgresStore  # noqa: PLC0415 - lazy by design

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Run statuses after which a run is not resumed (:meth:`unfinished_runs` skips them).
FINISHED_STATUSES = frozenset({"advanced", "rolled back", "abandoned", "restarted"})


@runtime_checkable
class Lease(Protocol):
    """The right to drive one run, until ``expires_at`` unless renewed.

    ``token`` grows by one every time the run changes hands (a fencing token): the
    store refuses an append carrying an older token with ``StoreError("fenced: ...")``.
    """

    @property
    def run_id(self) -> str: ...

    @property
    def owner(self) -> str: ...

    @property
    def token(self) -> int: ...

    @property
    def expires_at(self) -> datetime: ...

    def renew(self) -> None:
        """Push ``expires_at`` one lease duration ahead; ``StoreError`` if it was lost."""

    def release(self) -> None:
        """Give the run up now (another runner may take it at once)."""


@runtime_checkable
class LeasingStore(Protocol):
    """A store that also leases runs (SQLite and PostgreSQL; not the memory store)."""

    def acquire(self, run_id: str, *, wait: timedelta | None = None) -> Lease: ...

    def create_run(self, *, plan: str, plan_digest: str, started_at: datetime) -> str: ...

    def append(self, run_id: str, event: Event) -> int: ...

    def events(self, run_id: str, *, after: int = 0) -> Sequence[Event]: ...

    def runs(self) -> Sequence[RunInfo]: ...

    def set_status(self, run_id: str, status: str) -> None: ...

    def close(self) -> None: ...


class _Now(Protocol):
    def now(self) -> datetime: ...


class _LeaseKeeper(Protocol):
    def _renew_lease(self, lease: _RunLease) -> datetime: ...

    def _release_lease(self, lease: _RunLease) -> None: ...


@attrs.define(kw_only=True)
class _RunLease:
    """The :class:`Lease` both stores hand out; renewing goes through its store."""

    run_id: str
    owner: str
    token: int
    expires_at: datetime
    _keeper: _LeaseKeeper = attrs.field(repr=False, eq=False, alias="keeper")

    def renew(self) -> None:
        self.expires_at = self._keeper._renew_lease(self)

    def release(self) -> None:
        self._keeper._release_lease(self)

    def __enter__(self) -> _RunLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _LeaseBook:
    """The leases one store instance holds, by run id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, _RunLease] = {}

    def get(self, run_id: str) -> _RunLease | None:
        with self._lock:
            return self._held.get(run_id)

    def put(self, lease: _RunLease) -> None:
        with self._lock:
            self._held[lease.run_id] = lease

    def drop(self, lease: _RunLease) -> None:
        with self._lock:
            if self._held.get(lease.run_id) is lease:
                del self._held[lease.run_id]

    def all(self) -> list[_RunLease]:
        with self._lock:
            return list(self._held.values())


def _wait_for(
    attempt: Callable[[], _RunLease | str], *, wait: timedelta | None, poll: float = 0.1
) -> _RunLease:
    """Retry ``attempt`` (a lease, or why not) until ``wait`` has passed (real time)."""
    deadline = time.monotonic() + (wait.total_seconds() if wait else 0.0)
    delay = min(poll, 0.02)
    while True:
        got = attempt()
        if not isinstance(got, str):
            return got
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            waited = f" after waiting {wait.total_seconds():g}s" if wait else ""
            raise StoreError(f"{got}{waited}; retry later or wait for the lease to expire")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, poll)


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"{what} must be an aware datetime (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _encode_data(data: Mapping[str, Any]) -> str:
    """JSON text of an event's data; NaN and infinities survive (measurements have them)."""
    try:
        return json.dumps(dict(data), allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"event data is not JSON-able: {exc}") from None


def _decode_data(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise StoreError(f"journal holds non-object event data: {text[:80]!r}")
    return value


def _same_json(a: Any, b: Any) -> bool:
    """Equality as the journal sees it (NaN equals NaN, tuples equal lists)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    return bool(a == b)


class _Cursor(Protocol):
    """What the journal needs of a DB-API cursor (sqlite3's and psycopg's both fit)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _SqlJournal:
    """The journal and lease logic both SQL stores share; subclasses supply the dialect.

    SQL is written with ``?`` placeholders (``_sql`` adapts it); every write runs in one
    transaction from :meth:`_transaction`, which serialises writers to a run (SQLite:
    ``BEGIN IMMEDIATE``; PostgreSQL: row locks, ``FOR UPDATE`` / ``FOR SHARE``).
    """

    _FOR_UPDATE = ""
    _FOR_SHARE = ""

    def __init__(self, *, owner: str, lease: timedelta, clock: _Now | None) -> None:
        if lease <= timedelta(0):
            raise StoreError(f"the lease duration must be positive, got {lease}")
        self.owner = owner
        self.lease_duration = lease
        self._clock = clock
        self._book = _LeaseBook()

    # -- dialect hooks -------------------------------------------------------------
    def _transaction(self, what: str) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _read(self, what: str) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _execute(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        raise NotImplementedError

    def _db_now(self, cur: Any) -> datetime:
        return datetime.now(UTC)

    def _ts_in(self, value: datetime) -> Any:
        return value

    def _owner_is_dead(self, owner: str) -> bool:
        """Whether a lease's holder is known to be gone (then it needs no expiry)."""
        return False

    def _ts_out(self, value: Any) -> datetime:
        return _utc(value, "a stored time")

    # -- the Store protocol --------------------------------------------------------
    def create_run(self, *, plan: str, plan_digest: str, started_at: datetime) -> str:
        started = _utc(started_at, "started_at")
        run_id = uuid.uuid4().hex[:12]
        with self._transaction(f"create a run of {plan!r}") as cur:
            self._execute(
                cur,
                "INSERT INTO gatekeeper_runs (run_id, plan, plan_digest, started_at, status,"
                " last_seq) VALUES (?, ?, ?, ?, 'running', 0)",
                (run_id, plan, plan_digest, self._ts_in(started)),
            )
        return run_id

    def append(self, run_id: str, event: Event) -> int:
        at = _utc(event.at, "event.at")
        data = _encode_data(event.data)
        with self._transaction(f"append {event.kind!r} to run {run_id}") as cur:
            self._check_fence(cur, run_id)
            row = self._execute(
                cur,
                "UPDATE gatekeeper_runs SET last_seq = last_seq + 1 WHERE run_id = ?"
                " RETURNING last_seq",
                (run_id,),
            ).fetchone()
            if row is None:
                raise StoreError(f"unknown run {run_id!r}")
            seq = int(row[0])
            self._execute(
                cur,
                "INSERT INTO gatekeeper_events (run_id, seq, kind, at, phase, checkpoint, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, event.kind, self._ts_in(at), event.phase, event.checkpoint, data),
            )
        return seq

    def events(self, run_id: str, *, after: int = 0) -> Sequence[Event]:
        """The run's events in ``seq`` order (only those after ``after`` if given)."""
        from .._protocols import Event  # noqa: PLC0415 - keep import cycles out

        with self._read(f"read the journal of run {run_id}") as cur:
            self._require_run(cur, run_id)
            rows = self._execute(
                cur,
                "SELECT seq, kind, at, phase, checkpoint, data FROM gatekeeper_events"
                " WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after),
            ).fetchall()
        return tuple(
            Event(
                seq=int(seq),
                kind=kind,
                at=self._ts_out(at),
                phase=phase,
                checkpoint=checkpoint,
                data=_decode_data(data),
            )
            for seq, kind, at, phase, checkpoint, data in rows
        )

    def runs(self) -> Sequence[RunInfo]:
        """Every run, oldest first (in the order they were created)."""
        return self._select_runs("", ())

    def set_status(self, run_id: str, status: str) -> None:
        with self._transaction(f"set the status of run {run_id}") as cur:
            self._check_fence(cur, run_id)
            changed = self._execute(
                cur, "UPDATE gatekeeper_runs SET status = ? WHERE run_id = ?", (status, run_id)
            ).rowcount
            if changed == 0:
                raise StoreError(f"unknown run {run_id!r}")

    # -- resume helpers ------------------------------------------------------------
    def run(self, run_id: str) -> RunInfo:
        """One run; ``StoreError`` if there is none with that id."""
        found = self._select_runs("WHERE run_id = ?", (run_id,))
        if not found:
            raise StoreError(f"unknown run {run_id!r}")
        return found[0]

    def latest_run(self, plan: str, plan_digest: str | None = None) -> RunInfo | None:
        """The most recently created run of ``plan`` (with that digest, if given)."""
        if plan_digest is None:
            found = self._select_runs("WHERE plan = ?", (plan,))
        else:
            found = self._select_runs("WHERE plan = ? AND plan_digest = ?", (plan, plan_digest))
        return found[-1] if found else None

    def unfinished_runs(self, plan: str | None = None) -> Sequence[RunInfo]:
        """Runs (of ``plan``, or all) whose status is not in :data:`FINISHED_STATUSES`."""
        found = self._select_runs("WHERE plan = ?", (plan,)) if plan else self.runs()
        return tuple(run for run in found if run.status not in FINISHED_STATUSES)

    def _select_runs(self, where: str, params: Sequence[Any]) -> tuple[RunInfo, ...]:
        from .._protocols import RunInfo  # noqa: PLC0415 - keep import cycles out

        with self._read("list runs") as cur:
            rows = self._execute(
                cur,
                "SELECT run_id, plan, plan_digest, started_at, status FROM gatekeeper_runs "  # noqa: S608 - `where` is a constant of this class, values are parameters
                + where
                + " ORDER BY ord",
                params,
            ).fetchall()
        return tuple(
            RunInfo(
                run_id=run_id,
                plan=plan,
                plan_digest=digest,
                started_at=self._ts_out(started),
                status=status,
            )
            for run_id, plan, digest, started, status in rows
        )

    def _require_run(self, cur: Any, run_id: str) -> None:
        found = self._execute(
            cur, "SELECT 1 FROM gatekeeper_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if found is None:
            raise StoreError(f"unknown run {run_id!r}")

    # -- leases --------------------------------------------------------------------
    def acquire(self, run_id: str, *, wait: timedelta | None = None) -> Lease:
        """Take the right to drive ``run_id``; wait up to ``wait`` if another runner has it.

        Acquiring a run this store already holds extends it (same token). A lease that
        expired, or was released, goes to the next runner with the token plus one.
        """

        def attempt() -> _RunLease | str:
            with self._transaction(f"acquire run {run_id}") as cur:
                self._require_run(cur, run_id)
                now = self._now(cur)
                self._execute(
                    cur,
                    "INSERT INTO gatekeeper_leases (run_id, owner, token, expires_at)"
                    " VALUES (?, NULL, 0, ?) ON CONFLICT (run_id) DO NOTHING",
                    (run_id, self._ts_in(_EPOCH)),
                )
                owner, token, expires = self._lease_row(cur, run_id, self._FOR_UPDATE)
                held = self._book.get(run_id)
                ours = held is not None and owner == self.owner and token == held.token
                alive = owner is not None and expires > now and not self._owner_is_dead(owner)
                if alive and not ours:
                    return f"run {run_id} is driven by {owner} until {_show(expires)}"
                if not ours:
                    token += 1
                until = now + self.lease_duration
                self._execute(
                    cur,
                    "UPDATE gatekeeper_leases SET owner = ?, token = ?, expires_at = ?"
                    " WHERE run_id = ?",
                    (self.owner, token, self._ts_in(until), run_id),
                )
            lease = _RunLease(
                run_id=run_id, owner=self.owner, token=token, expires_at=until, keeper=self
            )
            self._book.put(lease)
            return lease

        return _wait_for(attempt, wait=wait)

    def _renew_lease(self, lease: _RunLease) -> datetime:
        with self._transaction(f"renew the lease on run {lease.run_id}") as cur:
            now = self._now(cur)
            owner, token, _ = self._lease_row(cur, lease.run_id, self._FOR_UPDATE)
            if owner != lease.owner or token != lease.token:
                raise StoreError(_taken(lease, owner, token))
            until = now + self.lease_duration
            self._execute(
                cur,
                "UPDATE gatekeeper_leases SET expires_at = ? WHERE run_id = ?",
                (self._ts_in(until), lease.run_id),
            )
        return until

    def _release_lease(self, lease: _RunLease) -> None:
        with self._transaction(f"release the lease on run {lease.run_id}") as cur:
            now = self._now(cur)
            self._execute(
                cur,
                "UPDATE gatekeeper_leases SET owner = NULL, expires_at = ?"
                " WHERE run_id = ? AND owner = ? AND token = ?",
                (self._ts_in(now), lease.run_id, lease.owner, lease.token),
            )
        self._book.drop(lease)

    def _release_all(self) -> None:
        for lease in self._book.all():
            with contextlib.suppress(StoreError):
                self._release_lease(lease)

    def _check_fence(self, cur: Any, run_id: str) -> None:
        """Inside a write: refuse it if this store leased the run and lost the lease."""
        lease = self._book.get(run_id)
        if lease is None:
            return
        owner, token, expires = self._lease_row(cur, run_id, self._FOR_SHARE)
        if owner != lease.owner or token != lease.token:
            raise StoreError(_taken(lease, owner, token))
        if expires <= self._now(cur):
            raise StoreError(
                f"fenced: the lease on run {run_id} (token {lease.token}) expired at"
                f" {_show(expires)}; renew it before writing"
            )

    def _lease_row(self, cur: Any, run_id: str, lock: str) -> tuple[str | None, int, datetime]:
        row = self._execute(
            cur,
            "SELECT owner, token, expires_at FROM gatekeeper_leases WHERE run_id = ?"  # noqa: S608 - `lock` is a constant locking clause
            + lock,
            (run_id,),
        ).fetchone()
        if row is None:
            return None, 0, _EPOCH
        return row[0], int(row[1]), self._ts_out(row[2])

    def _now(self, cur: Any) -> datetime:
        if self._clock is not None:
            return _utc(self._clock.now(), "clock.now()")
        return self._db_now(cur)


def _show(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _taken(lease: _RunLease, owner: str | None, token: int) -> str:
    now_held = f"driven by {owner}" if owner else "released"
    return (
        f"fenced: run {lease.run_id} is now {now_held} (token {token}); this runner's lease"
        f" (token {lease.token}) was lost, so it may no longer write"
    )


def open_store(
    target: str | Path,
    *,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Store:
    """The store a plan or a command line names.

    * ``postgresql://user@host:port/db`` or ``postgres://...``: :class:`PostgresStore`
      (credentials from ``env``, default ``os.environ``: PGPASSWORD and friends);
    * ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or a plain path:
      :class:`SQLiteStore`, relative paths anchored at ``base_dir`` (the plan's folder);
    * ``memory:``: a :class:`MemoryStore` (rehearsals, tests).
    """
    text = str(target)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in {"postgresql", "postgres"}:
        from .postgres import PostgresStore  # noqa: PLC0415 - psycopg only when asked for

        return PostgresStore(text, env=env)
    if text in {"memory:", ":memory:"}:
        from .._store import MemoryStore  # noqa: PLC0415 - keep imports lazy

        return MemoryStore()
    if scheme == "sqlite":
        text = text[len("sqlite:///") :] if text.lower().startswith("sqlite:///") else ""
        if not text:
            raise StoreError("a sqlite URL is sqlite:///relative/path.db or sqlite:////abs.db")
    elif scheme:
        raise StoreError(
            f"unknown store scheme {scheme!r}: use a path, sqlite:///..., or postgresql://..."
        )
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    from .sqlite import SQLiteStore  # noqa: PLC0415 - keep imports lazy

    return SQLiteStore(path)
