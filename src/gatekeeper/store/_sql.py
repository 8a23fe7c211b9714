"""What both SQL stores share below the journal: the dialect hooks and the encodings.

SQL is written with ``?`` placeholders (each dialect's ``_execute`` adapts it); every
write runs in one transaction from ``_transaction``, which serialises writers to a run
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: row locks, ``FOR UPDATE`` / ``FOR SHARE``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..exceptions import StoreError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Now(Protocol):
    def now(self) -> datetime: ...


class _Cursor(Protocol):
    """What the journal needs of a DB-API cursor (sqlite3's and psycopg's both fit)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


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
    """An event's data back from its JSON text; ``ValueError`` if it is not an object."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {str(text)[:80]!r}")
    return value


class _SqlBase:
    """The dialect hooks a SQL store supplies, and the clock leases are measured by."""

    _FOR_UPDATE = ""
    _FOR_SHARE = ""

    def __init__(self, *, owner: str, lease: timedelta, clock: _Now | None) -> None:
        if lease <= timedelta(0):
            raise StoreError(f"the lease duration must be positive, got {lease}")
        self.owner = owner
        self.lease_duration = lease
        self._clock = clock

    @property
    def _where(self) -> str:
        """The journal's name in messages: a path or a URL without its password."""
        raise NotImplementedError

    def _transaction(self, what: str) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _claiming(self, plan: str, what: str) -> contextlib.AbstractContextManager[Any]:
        """A transaction in which no other claim of ``plan`` runs (a plan-wide lock)."""
        raise NotImplementedError

    def _read(self, what: str) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _peek(self, what: str) -> contextlib.AbstractContextManager[Any]:
        """A cursor for one read statement, as cheap as the dialect allows."""
        return self._read(what)

    def _execute(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        raise NotImplementedError

    def _check_journal(self, run_id: str | None) -> None:
        """Before a write or a lease check: ``StoreError`` if the journal itself was lost
        (SQLite: its file vanished, was replaced or emptied); PostgreSQL has no file."""

    def _db_now(self, cur: Any) -> datetime:
        return datetime.now(UTC)

    def _ts_in(self, value: datetime) -> Any:
        return value

    def _ts_out(self, value: Any) -> datetime:
        return _utc(value, "a stored time")

    def _owner_is_dead(self, owner: str) -> bool:
        """Whether a lease's holder is known to be gone (then it needs no expiry)."""
        return False

    def _now(self, cur: Any) -> datetime:
        if self._clock is not None:
            return _utc(self._clock.now(), "clock.now()")
        return self._db_now(cur)

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

    def _lease_and_now(self, cur: Any, run_id: str) -> tuple[str | None, int, datetime, datetime]:
        """The lease row and the lease clock's time (PostgreSQL: in one statement)."""
        owner, token, expires = self._lease_row(cur, run_id, "")
        return owner, token, expires, self._now(cur)

    def _lost_run(self, run_id: str) -> StoreError:
        """The error for a leased run whose rows are gone from the journal."""
        return StoreError(
            f"{self._where}: run {run_id} vanished from the journal while it was in progress"
            " (its rows were deleted): stopping; traffic is left as it is, check it by hand"
        )
