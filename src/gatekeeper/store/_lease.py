"""Leases on runs: one runner drives a run, and a runner that lost its run is fenced.

A lease is a row of ``gatekeeper_leases`` (``owner``, ``token``, ``expires_at``). The
store remembers the leases it holds (:class:`_LeaseBook`) and checks them inside every
fenced write; :meth:`_RunLease.check` lets a runner check before an effect outside the
journal (a balancer write).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import attrs

from ..exceptions import StoreError
from ._sql import _EPOCH, _Now, _SqlBase
from .base import LeaseHeld, LeaseHolder, LeaseLost

T = TypeVar("T")


class _LeaseKeeper(Protocol):
    def _renew_lease(self, lease: _RunLease) -> datetime: ...

    def _release_lease(self, lease: _RunLease) -> None: ...

    def _check_lease(self, lease: _RunLease) -> None: ...


@attrs.define(kw_only=True)
class _RunLease:
    """The :class:`~gatekeeper.store.Lease` both stores hand out; it acts through its store."""

    run_id: str
    owner: str
    token: int
    expires_at: datetime
    _keeper: _LeaseKeeper = attrs.field(repr=False, eq=False, alias="keeper")

    def renew(self) -> None:
        self.expires_at = self._keeper._renew_lease(self)

    def release(self) -> None:
        self._keeper._release_lease(self)

    def check(self) -> None:
        self._keeper._check_lease(self)

    def __enter__(self) -> _RunLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@attrs.frozen
class _Refusal:
    """Why a lease could not be had now: another live runner holds it."""

    run_id: str
    owner: str
    expires_at: datetime


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

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._held.pop(run_id, None)

    def all(self) -> list[_RunLease]:
        with self._lock:
            return list(self._held.values())


def _wait_for(
    attempt: Callable[[], T | _Refusal], *, wait: timedelta | None, poll: float = 0.1
) -> T:
    """Retry ``attempt`` while another runner holds the lease, until ``wait`` has passed
    (real time); then :class:`LeaseHeld`."""
    deadline = time.monotonic() + (wait.total_seconds() if wait else 0.0)
    delay = min(poll, 0.02)
    while True:
        got = attempt()
        if not isinstance(got, _Refusal):
            return got
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            waited = f" after waiting {wait.total_seconds():g}s" if wait else ""
            raise LeaseHeld(
                f"run {got.run_id} is driven by {got.owner} until {_show(got.expires_at)}"
                f"{waited}; retry later or wait for the lease to expire",
                run_id=got.run_id,
                owner=got.owner,
                expires_at=got.expires_at,
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, poll)


def _show(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _taken(lease: _RunLease, owner: str | None, token: int) -> LeaseLost:
    now_held = f"driven by {owner}" if owner else "released"
    return LeaseLost(
        f"fenced: run {lease.run_id} is now {now_held} (token {token}); this runner's lease"
        f" (token {lease.token}) was lost, so it may no longer write"
    )


def _expired(lease: _RunLease, expires: datetime) -> LeaseLost:
    return LeaseLost(
        f"fenced: the lease on run {lease.run_id} (token {lease.token}) expired at"
        f" {_show(expires)}; renew it before writing"
    )


class _SqlLeases(_SqlBase):
    """Acquire, renew, release and check leases; fence writes (both SQL stores)."""

    def __init__(self, *, owner: str, lease: timedelta, clock: _Now | None) -> None:
        super().__init__(owner=owner, lease=lease, clock=clock)
        self._book = _LeaseBook()

    def _require_run(self, cur: Any, run_id: str) -> None:
        raise NotImplementedError

    def acquire(self, run_id: str, *, wait: timedelta | None = None) -> _RunLease:
        """Take the right to drive ``run_id``; wait up to ``wait`` if another runner has it.

        Acquiring a run this store already holds extends it (same token). A lease that
        expired, or was released, goes to the next runner with the token plus one.
        ``LeaseHeld`` if another live runner keeps it past ``wait``.
        """

        def attempt() -> _RunLease | _Refusal:
            self._check_journal(run_id)
            with self._transaction(f"acquire run {run_id}") as cur:
                self._require_run(cur, run_id)
                got = self._take_lease(cur, run_id)
            if isinstance(got, _RunLease):
                self._book.put(got)
            return got

        return _wait_for(attempt, wait=wait)

    def _lock_lease(self, cur: Any, run_id: str) -> None:
        """Inside a transaction: lock ``run_id``'s lease row, if it has one (no write)."""
        self._lease_row(cur, run_id, self._FOR_UPDATE)

    def _take_lease(self, cur: Any, run_id: str) -> _RunLease | _Refusal:
        """Inside a transaction: the lease on ``run_id`` for this store, unless another
        live runner holds it. The caller puts it in the book once committed."""
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
        if self._alive(owner, expires, now) and not ours:
            assert owner is not None  # _alive says so; for the type checker
            return _Refusal(run_id, owner, expires)
        if not ours:
            token += 1
        until = now + self.lease_duration
        self._execute(
            cur,
            "UPDATE gatekeeper_leases SET owner = ?, token = ?, expires_at = ? WHERE run_id = ?",
            (self.owner, token, self._ts_in(until), run_id),
        )
        return _RunLease(
            run_id=run_id, owner=self.owner, token=token, expires_at=until, keeper=self
        )

    def _revoke_lease(self, cur: Any, run_id: str) -> _Refusal | None:
        """Inside a transaction: free ``run_id`` for good (token plus one, no owner), so
        whoever held it is fenced; refused while another live runner holds it."""
        now = self._now(cur)
        owner, _, expires = self._lease_row(cur, run_id, self._FOR_UPDATE)
        if self._alive(owner, expires, now) and owner != self.owner:
            assert owner is not None  # _alive says so; for the type checker
            return _Refusal(run_id, owner, expires)
        self._execute(
            cur,
            "INSERT INTO gatekeeper_leases (run_id, owner, token, expires_at)"
            " VALUES (?, NULL, 1, ?) ON CONFLICT (run_id) DO UPDATE"
            " SET owner = NULL, token = gatekeeper_leases.token + 1,"
            " expires_at = excluded.expires_at",
            (run_id, self._ts_in(now)),
        )
        return None

    def _alive(self, owner: str | None, expires: datetime, now: datetime) -> bool:
        return owner is not None and expires > now and not self._owner_is_dead(owner)

    def _renew_lease(self, lease: _RunLease) -> datetime:
        self._check_journal(lease.run_id)
        with self._transaction(f"renew the lease on run {lease.run_id}") as cur:
            now = self._now(cur)
            owner, token, _ = self._lease_row(cur, lease.run_id, self._FOR_UPDATE)
            if owner != lease.owner or token != lease.token:
                raise _taken(lease, owner, token)
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

    def _check_lease(self, lease: _RunLease) -> None:
        """``Lease.check``: one read; ``LeaseLost`` unless the lease is still ours."""
        self._check_journal(lease.run_id)
        with self._peek(f"check the lease on run {lease.run_id}") as cur:
            owner, token, expires, now = self._lease_and_now(cur, lease.run_id)
        if owner != lease.owner or token != lease.token:
            raise _taken(lease, owner, token)
        if expires <= now:
            raise _expired(lease, expires)

    def lease_holder(self, run_id: str) -> LeaseHolder | None:
        """Who drives ``run_id`` now; ``None`` if its lease is free, expired or its holder
        is known to be dead (one read)."""
        with self._peek(f"read the lease on run {run_id}") as cur:
            owner, token, expires, now = self._lease_and_now(cur, run_id)
        if owner is None or not self._alive(owner, expires, now):
            return None
        return LeaseHolder(owner=owner, token=token, expires_at=expires)

    def _check_fence(self, cur: Any, run_id: str, *, fenced: bool) -> None:
        """Inside a fenced write: refuse it if this store leased the run and lost the
        lease, or holds no lease while another live runner does. Unfenced: no check."""
        if not fenced:
            return
        lease = self._book.get(run_id)
        owner, token, expires = self._lease_row(cur, run_id, self._FOR_SHARE)
        if lease is None:
            if owner != self.owner and self._alive(owner, expires, self._now(cur)):
                raise LeaseHeld(
                    f"fenced: run {run_id} is driven by {owner} (token {token}) until"
                    f" {_show(expires)} and this store holds no lease on it: acquire it"
                    " first, or write an operator request with fenced=False",
                    run_id=run_id,
                    owner=str(owner),
                    expires_at=expires,
                )
            return
        if owner is None and token == 0:
            raise self._lost_run(run_id)  # the lease row is gone with the run
        if owner != lease.owner or token != lease.token:
            raise _taken(lease, owner, token)
        if expires <= self._now(cur):
            raise _expired(lease, expires)
