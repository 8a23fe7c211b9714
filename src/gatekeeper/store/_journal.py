"""The journal of runs both SQL stores keep: runs, appends, reads, and the atomic claim.

Every write is one transaction; a fenced write checks the writer's lease inside it
(:meth:`_SqlLeases._check_fence`). :meth:`_SqlJournal.claim_run` finds or makes a
plan's run and leases it in one transaction, so two runners started together never
both drive.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from .._protocols import Event, RunInfo
from ..exceptions import StoreError
from ._lease import _Refusal, _RunLease, _SqlLeases, _wait_for
from ._sql import _decode_data, _encode_data, _utc
from .base import FINISHED_STATUSES, RESTARTED, Claim


class _SqlJournal(_SqlLeases):
    """The journal and lease logic both SQL stores share; subclasses supply the dialect."""

    # -- the Store protocol --------------------------------------------------------
    def create_run(self, *, plan: str, plan_digest: str, started_at: datetime) -> str:
        started = _utc(started_at, "started_at")
        run_id = uuid.uuid4().hex[:12]
        self._check_journal(None)
        with self._transaction(f"create a run of {plan!r}") as cur:
            self._insert_run(cur, run_id, plan, plan_digest, started)
        return run_id

    def append(self, run_id: str, event: Event, *, fenced: bool = True) -> int:
        """Journal ``event`` as the run's next ``seq``; return that ``seq``.

        Fenced (the default), the write is refused with ``LeaseLost`` if this store
        leased the run and lost the lease, and with ``LeaseHeld`` if it holds no lease
        while another live runner does. ``fenced=False`` is the operator channel: a
        request (rollback, hold, approve, ...) written into a run another process drives.
        """
        at = _utc(event.at, "event.at")
        data = _encode_data(event.data)
        self._check_journal(run_id)
        with self._transaction(f"append {event.kind!r} to run {run_id}") as cur:
            self._check_fence(cur, run_id, fenced=fenced)
            return self._append_in(cur, run_id, event.kind, at, event.phase, event.checkpoint, data)

    def _append_in(
        self,
        cur: Any,
        run_id: str,
        kind: str,
        at: datetime,
        phase: str | None,
        checkpoint: str | None,
        data: str,
    ) -> int:
        row = self._execute(
            cur,
            "UPDATE gatekeeper_runs SET last_seq = last_seq + 1 WHERE run_id = ?"
            " RETURNING last_seq",
            (run_id,),
        ).fetchone()
        if row is None:
            raise self._lost_run(run_id) if self._book.get(run_id) else _unknown(run_id)
        seq = int(row[0])
        self._execute(
            cur,
            "INSERT INTO gatekeeper_events (run_id, seq, kind, at, phase, checkpoint, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, seq, kind, self._ts_in(at), phase, checkpoint, data),
        )
        return seq

    def events(self, run_id: str, *, after: int = 0) -> Sequence[Event]:
        """The run's events in ``seq`` order (only those after ``after`` if given).

        An event the journal cannot decode is a ``StoreError`` naming the run and ``seq``.
        """
        with self._read(f"read the journal of run {run_id}") as cur:
            self._require_run(cur, run_id)
            rows = self._execute(
                cur,
                "SELECT seq, kind, at, phase, checkpoint, data FROM gatekeeper_events"
                " WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after),
            ).fetchall()
        return tuple(self._event(run_id, *row) for row in rows)

    def _event(
        self, run_id: str, seq: Any, kind: Any, at: Any, phase: Any, checkpoint: Any, data: Any
    ) -> Event:
        try:
            return Event(
                seq=int(seq),
                kind=str(kind),
                at=self._ts_out(at),
                phase=phase,
                checkpoint=checkpoint,
                data=_decode_data(data),
            )
        except (ValueError, TypeError, StoreError) as exc:
            raise StoreError(
                f"{self._where}: run {run_id}, event {seq} ({kind}) is corrupted and cannot be"
                f" read: {str(exc)[:200]}; the journal was changed outside gatekeeper, restore"
                " it from a backup or start the plan over in a new journal"
            ) from None

    def runs(self) -> Sequence[RunInfo]:
        """Every run, oldest first (in the order they were created)."""
        return self._select_runs("", ())

    def set_status(self, run_id: str, status: str) -> None:
        self._check_journal(run_id)
        with self._transaction(f"set the status of run {run_id}") as cur:
            self._check_fence(cur, run_id, fenced=True)
            changed = self._execute(
                cur, "UPDATE gatekeeper_runs SET status = ? WHERE run_id = ?", (status, run_id)
            ).rowcount
            if changed == 0:
                raise self._lost_run(run_id) if self._book.get(run_id) else _unknown(run_id)

    # -- the claim -----------------------------------------------------------------
    def claim_run(
        self,
        *,
        plan: str,
        plan_digest: str,
        started_at: datetime,
        restart: bool = False,
        wait: timedelta | None = None,
        after: str | None = None,
    ) -> Claim:
        """Find or make the run of ``plan`` this runner drives, in one transaction.

        The plan's latest run (a ``restarted`` one skipped) decides: unfinished, it is
        leased to this runner and returned to resume (``LeaseHeld`` if another live
        runner drives it, after ``wait``); finished, it is returned with
        ``finished=True`` and nothing changes. With no run, or with ``restart``, a new
        run is created and leased; ``restart`` first ends an unfinished latest run as
        ``restarted`` with an ``abandoned`` event (refused while a live runner drives it).
        The caller compares ``claim.run.plan_digest`` with its plan's. ``after`` names
        a finished run the caller has read and wants a new run after (phases it did
        not cover): the new run is made only while that run is still the latest, so
        two runners asking at once never both make one.
        """
        started = _utc(started_at, "started_at")

        def attempt() -> Claim | _Refusal:
            self._check_journal(None)
            with self._claiming(plan, f"claim a run of {plan!r}") as cur:
                got = self._claim_in(cur, plan, plan_digest, started, restart=restart, after=after)
            if isinstance(got, _Refusal):
                return got
            claim, replaced = got
            if replaced is not None:
                self._book.forget(replaced)
            if isinstance(claim.lease, _RunLease):
                self._book.put(claim.lease)  # committed: this store now fences with it
            return claim

        return _wait_for(attempt, wait=wait)

    def _claim_in(
        self,
        cur: Any,
        plan: str,
        plan_digest: str,
        started: datetime,
        *,
        restart: bool,
        after: str | None = None,
    ) -> tuple[Claim, str | None] | _Refusal:
        """The claim's decision, inside its transaction: the claim and the run it replaced.

        The latest run is read again once its lease row is locked: a leased runner
        changes a run's status while holding (``FOR SHARE``) that row, so the status read
        after the lock is the one its last holder left (PostgreSQL reads each statement's
        snapshot). A run never leased has no row to lock and nobody fenced to wait for.
        """
        locked: str | None = None
        latest = self._latest_claimable(cur, plan)
        while latest is not None and latest.run_id != locked:
            locked = latest.run_id
            self._lock_lease(cur, locked)
            latest = self._latest_claimable(cur, plan)
        replaced: str | None = None
        if latest is not None and latest.status not in FINISHED_STATUSES:
            if not restart:
                got = self._take_lease(cur, latest.run_id)
                if isinstance(got, _Refusal):
                    return got
                return Claim(run=latest, created=False, lease=got, finished=False), None
            refused = self._revoke_lease(cur, latest.run_id)
            if refused is not None:
                return refused
            replaced = latest.run_id
        elif latest is not None and not restart and latest.run_id != after:
            return Claim(run=latest, created=False, lease=None, finished=True), None
        run_id = uuid.uuid4().hex[:12]
        if replaced is not None:
            self._abandon(cur, replaced, run_id)
        self._insert_run(cur, run_id, plan, plan_digest, started)
        lease = self._take_lease(cur, run_id)
        if isinstance(lease, _Refusal):  # pragma: no cover - a run made just now is free
            return lease
        run = RunInfo(run_id=run_id, plan=plan, plan_digest=plan_digest, started_at=started)
        return Claim(run=run, created=True, lease=lease, finished=False), replaced

    def _latest_claimable(self, cur: Any, plan: str) -> RunInfo | None:
        row = self._execute(
            cur,
            "SELECT run_id, plan, plan_digest, started_at, status FROM gatekeeper_runs"
            " WHERE plan = ? AND status <> ? ORDER BY ord DESC LIMIT 1",
            (plan, RESTARTED),
        ).fetchone()
        return None if row is None else self._run_info(row)

    def _abandon(self, cur: Any, run_id: str, replaced_by: str) -> None:
        now = self._now(cur)
        data = _encode_data(
            {"reason": f"restarted: run {replaced_by} replaces it", "replaced_by": replaced_by}
        )
        self._append_in(cur, run_id, "abandoned", now, None, None, data)
        self._execute(
            cur, "UPDATE gatekeeper_runs SET status = ? WHERE run_id = ?", (RESTARTED, run_id)
        )

    def _insert_run(
        self, cur: Any, run_id: str, plan: str, plan_digest: str, started: datetime
    ) -> None:
        self._execute(
            cur,
            "INSERT INTO gatekeeper_runs (run_id, plan, plan_digest, started_at, status,"
            " last_seq) VALUES (?, ?, ?, ?, 'running', 0)",
            (run_id, plan, plan_digest, self._ts_in(started)),
        )

    # -- resume helpers ------------------------------------------------------------
    def run(self, run_id: str) -> RunInfo:
        """One run; ``StoreError`` if there is none with that id."""
        found = self._select_runs("WHERE run_id = ?", (run_id,))
        if not found:
            raise _unknown(run_id)
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
        with self._read("list runs") as cur:
            rows = self._execute(
                cur,
                "SELECT run_id, plan, plan_digest, started_at, status FROM gatekeeper_runs "  # noqa: S608 - `where` is a constant of this class, values are parameters
                + where
                + " ORDER BY ord",
                params,
            ).fetchall()
        return tuple(self._run_info(row) for row in rows)

    def _run_info(self, row: Sequence[Any]) -> RunInfo:
        run_id, plan, digest, started, status = row
        return RunInfo(
            run_id=run_id,
            plan=plan,
            plan_digest=digest,
            started_at=self._ts_out(started),
            status=status,
        )

    def _require_run(self, cur: Any, run_id: str) -> None:
        found = self._execute(
            cur, "SELECT 1 FROM gatekeeper_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if found is None:
            raise _unknown(run_id)


def _unknown(run_id: str) -> StoreError:
    return StoreError(f"unknown run {run_id!r}")
