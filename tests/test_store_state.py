"""A hypothesis state machine over the journal stores against a plain model.

Runs, appends from two runners (fenced, and unfenced operator requests), status
changes, refused writes, leases (acquire, claim, restart, check, release, a clock that
moves) and reopening: nothing is lost, ``seq`` is gapless and ordered, events read back
equal to what was appended, a runner that lost its lease never writes, a plan has at most
one unfinished run that a claim would resume, and ``lease_holder`` names who drives.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gatekeeper._protocols import Event
from gatekeeper._store import MemoryStore
from gatekeeper.exceptions import StoreError
from gatekeeper.store import FINISHED_STATUSES, LeaseHeld, LeaseHolder, LeaseLost
from gatekeeper.store.postgres import PostgresStore
from gatekeeper.store.sqlite import SQLiteStore
from realservers.postgres import PostgresServer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
RUNNERS = ("main", "other")
KINDS = (
    "run_started",
    "approval_requested",
    "approval_given",
    "traffic_intent",
    "traffic_confirmed",
    "measurement",
    "verdict",
    "decision",
    "phase_started",
    "run_ended",
    "judge_state",
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
events = st.builds(
    Event,
    kind=st.sampled_from(KINDS),
    at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    phase=st.none() | names,
    checkpoint=st.none() | st.sampled_from(("15m", "30m", "1h", "4h")),
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)


class Clock:
    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        return self.current


@attrs.define
class LeaseRow:
    owner: str | None
    token: int
    expires: datetime


Opener = Callable[[str, Clock], Any]


class JournalMachine(RuleBasedStateMachine):
    """Two runners (``main``, ``other``) sharing one journal, checked against a model."""

    opener: Opener
    leasing: bool = True
    reopenable: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.stores: dict[str, Any] = {}
        self.journal: dict[str, list[Event]] = {}
        self.status: dict[str, str] = {}
        self.plans: dict[str, str] = {}
        self.rows: dict[str, LeaseRow] = {}
        self.books: dict[str, dict[str, int]] = {who: {} for who in RUNNERS}

    runs = Bundle("runs")

    @initialize()
    def open_stores(self) -> None:
        for who in RUNNERS:
            self.stores[who] = self.opener(who, self.clock)

    def teardown(self) -> None:
        for store in self.stores.values():
            close = getattr(store, "close", None)
            if close is not None:
                close()

    # -- the model of leases ------------------------------------------------------------
    def may_write(self, who: str, run: str) -> bool:
        """A fenced write: with a lease, only while it is ours and unexpired; without
        one, only while no other runner holds a live lease."""
        token = self.books[who].get(run)
        row = self.rows.get(run)
        if token is None:
            return row is None or row.owner in (None, who) or row.expires <= self.clock.current
        assert row is not None
        return row.owner == who and row.token == token and row.expires > self.clock.current

    def live_other(self, who: str, run: str) -> bool:
        """Another runner holds a live lease on ``run`` that is not ``who``'s."""
        row = self.rows.get(run)
        if row is None or row.owner is None or row.expires <= self.clock.current:
            return False
        return not (row.owner == who and self.books[who].get(run) == row.token)

    def model_release(self, who: str, run: str) -> None:
        token = self.books[who].pop(run)
        row = self.rows[run]
        if row.owner == who and row.token == token:
            row.owner, row.expires = None, self.clock.current

    # -- rules --------------------------------------------------------------------------
    @rule(target=runs, plan=st.sampled_from(("seed", "other-plan")), digest=names)
    def create_run(self, plan: str, digest: str) -> str:
        run: str = self.stores["main"].create_run(plan=plan, plan_digest=digest, started_at=T0)
        assert run not in self.journal
        self.journal[run] = []
        self.status[run] = "running"
        self.plans[run] = plan
        return run

    @rule(run=runs, who=st.sampled_from(RUNNERS), event=events)
    def append(self, run: str, who: str, event: Event) -> None:
        if self.may_write(who, run):
            seq = self.stores[who].append(run, event)
            self.journal[run].append(attrs.evolve(event, seq=seq))
            assert seq == len(self.journal[run])
        else:
            with pytest.raises((LeaseLost, LeaseHeld), match="fenced"):
                self.stores[who].append(run, event)

    @rule(run=runs, who=st.sampled_from(RUNNERS), status=st.sampled_from(("held", "advanced")))
    def set_status(self, run: str, who: str, status: str) -> None:
        if self.may_write(who, run):
            self.stores[who].set_status(run, status)
            self.status[run] = status
        else:
            with pytest.raises(StoreError, match="fenced"):
                self.stores[who].set_status(run, status)

    @precondition(lambda self: self.leasing)
    @rule(run=runs, who=st.sampled_from(RUNNERS), event=events)
    def operator_request(self, run: str, who: str, event: Event) -> None:
        """``fenced=False`` (the CLI's rollback/hold/approve) writes whoever drives."""
        seq = self.stores[who].append(run, event, fenced=False)
        self.journal[run].append(attrs.evolve(event, seq=seq))
        assert seq == len(self.journal[run])

    @rule(event=events)
    def append_to_unknown_run(self, event: Event) -> None:
        with pytest.raises(StoreError, match="unknown run"):
            self.stores["main"].append("no-such-run", event)

    @precondition(lambda self: self.reopenable)  # durable stores check JSON; memory keeps objects
    @rule(run=runs, event=events)
    def append_unserialisable(self, run: str, event: Event) -> None:
        bad = attrs.evolve(event, data={"when": T0})
        with pytest.raises(StoreError):
            self.stores["main"].append(run, bad)

    @precondition(lambda self: self.reopenable)
    @rule(who=st.sampled_from(RUNNERS))
    def reopen(self, who: str) -> None:
        self.stores[who].close()
        for run in list(self.books[who]):
            self.model_release(who, run)
        self.stores[who] = self.opener(who, self.clock)

    @precondition(lambda self: self.leasing)
    @rule(run=runs, who=st.sampled_from(RUNNERS))
    def acquire(self, run: str, who: str) -> None:
        row = self.rows.setdefault(run, LeaseRow(None, 0, datetime(1970, 1, 1, tzinfo=UTC)))
        ours = self.books[who].get(run) == row.token and row.owner == who
        if row.owner is not None and row.expires > self.clock.current and not ours:
            with pytest.raises(StoreError, match=f"is driven by {row.owner}"):
                self.stores[who].acquire(run)
            return
        lease = self.stores[who].acquire(run)
        if not ours:
            row.token += 1
        row.owner, row.expires = who, self.clock.current + LEASE
        self.books[who][run] = row.token
        assert (lease.owner, lease.token, lease.expires_at) == (who, row.token, row.expires)

    @precondition(lambda self: self.leasing)
    @rule(who=st.sampled_from(RUNNERS), data=st.data())
    def renew(self, who: str, data: st.DataObject) -> None:
        if not self.books[who]:
            return
        run = data.draw(st.sampled_from(sorted(self.books[who])))
        lease = self.stores[who]._book.get(run)
        row = self.rows[run]
        if row.owner == who and row.token == self.books[who][run]:
            lease.renew()
            row.expires = self.clock.current + LEASE
        else:
            with pytest.raises(StoreError, match="fenced"):
                lease.renew()

    @precondition(lambda self: self.leasing)
    @rule(
        target=runs,
        who=st.sampled_from(RUNNERS),
        plan=st.sampled_from(("seed", "other-plan")),
        digest=names,
        restart=st.booleans(),
    )
    def claim(self, who: str, plan: str, digest: str, restart: bool) -> MultipleResults[str]:
        """The plan's latest run (restarted ones skipped) is resumed if unfinished,
        reported if finished, replaced if ``restart``; else a new run is made."""
        store = self.stores[who]
        mine = [r for r in self.journal if self.plans[r] == plan and self.status[r] != "restarted"]
        latest = mine[-1] if mine else None
        if latest is not None and self.status[latest] not in FINISHED_STATUSES:
            if self.live_other(who, latest):
                with pytest.raises(LeaseHeld, match=f"run {latest} is driven by"):
                    store.claim_run(plan=plan, plan_digest=digest, started_at=T0, restart=restart)
                return multiple()
            row = self.rows.setdefault(latest, LeaseRow(None, 0, EPOCH))
            if not restart:
                claim = store.claim_run(plan=plan, plan_digest=digest, started_at=T0)
                if not (row.owner == who and self.books[who].get(latest) == row.token):
                    row.token += 1
                row.owner, row.expires = who, self.clock.current + LEASE
                self.books[who][latest] = row.token
                assert (claim.created, claim.finished, claim.run.run_id) == (False, False, latest)
                assert claim.lease is not None
                assert (claim.lease.owner, claim.lease.token) == (who, row.token)
                return multiple()
            claim = store.claim_run(plan=plan, plan_digest=digest, started_at=T0, restart=True)
            row.owner, row.token, row.expires = None, row.token + 1, self.clock.current
            self.books[who].pop(latest, None)
            self.status[latest] = "restarted"
            abandoned = store.events(latest)[-1]
            assert (abandoned.kind, abandoned.seq) == ("abandoned", len(self.journal[latest]) + 1)
            assert abandoned.data["replaced_by"] == claim.run.run_id
            self.journal[latest].append(abandoned)
        elif latest is not None and not restart:
            claim = store.claim_run(plan=plan, plan_digest=digest, started_at=T0)
            assert (claim.created, claim.finished, claim.lease) == (False, True, None)
            assert (claim.run.run_id, claim.run.status) == (latest, self.status[latest])
            return multiple()
        else:
            claim = store.claim_run(plan=plan, plan_digest=digest, started_at=T0, restart=restart)
        run = claim.run.run_id
        assert claim.created
        assert not claim.finished
        assert run not in self.journal
        assert claim.lease is not None
        assert (claim.lease.owner, claim.lease.token) == (who, 1)
        self.journal[run], self.status[run], self.plans[run] = [], "running", plan
        self.rows[run] = LeaseRow(who, 1, self.clock.current + LEASE)
        self.books[who][run] = 1
        return multiple(run)

    @precondition(lambda self: self.leasing)
    @rule(who=st.sampled_from(RUNNERS), data=st.data())
    def check(self, who: str, data: st.DataObject) -> None:
        """``Lease.check`` passes exactly while the lease is ours and unexpired."""
        if not self.books[who]:
            return
        run = data.draw(st.sampled_from(sorted(self.books[who])))
        lease = self.stores[who]._book.get(run)
        row = self.rows[run]
        ours = row.owner == who and row.token == self.books[who][run]
        if ours and row.expires > self.clock.current:
            lease.check()
        else:
            with pytest.raises(LeaseLost, match="fenced"):
                lease.check()

    @precondition(lambda self: self.leasing)
    @rule(who=st.sampled_from(RUNNERS), data=st.data())
    def release(self, who: str, data: st.DataObject) -> None:
        if not self.books[who]:
            return
        run = data.draw(st.sampled_from(sorted(self.books[who])))
        self.stores[who]._book.get(run).release()
        self.model_release(who, run)

    @precondition(lambda self: self.leasing)
    @rule(seconds=st.integers(1, 40))
    def time_passes(self, seconds: int) -> None:
        self.clock.current += timedelta(seconds=seconds)

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def journal_matches_the_model(self) -> None:
        for who in RUNNERS:
            store = self.stores.get(who)
            if store is None:
                continue
            for run, expected in self.journal.items():
                got = tuple(store.events(run))
                assert [e.seq for e in got] == list(range(1, len(expected) + 1))
                assert got == tuple(expected)
            listed = [r for r in store.runs() if r.run_id in self.journal]
            assert [r.run_id for r in listed] == list(self.journal)
            assert {r.run_id: r.status for r in listed} == self.status

    @precondition(lambda self: self.leasing)
    @invariant()
    def lease_holder_names_who_drives(self) -> None:
        store = self.stores.get("main")
        if store is None:
            return
        for run in self.journal:
            row = self.rows.get(run)
            expected = None
            if row is not None and row.owner is not None and row.expires > self.clock.current:
                expected = LeaseHolder(owner=row.owner, token=row.token, expires_at=row.expires)
            assert store.lease_holder(run) == expected


def check(machine: type[JournalMachine], examples: int) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_memory_store_behaves_like_the_model() -> None:
    """The reference store: gapless seq, nothing lost, events read back equal."""

    class Machine(JournalMachine):
        leasing = False
        reopenable = False

        def __init__(self) -> None:
            super().__init__()
            shared = MemoryStore()
            self.opener = lambda _who, _clock: shared

    check(Machine, 40)


def test_sqlite_store_behaves_like_the_model() -> None:
    """SQLite: the model's journal survives reopening; leases and fencing as modelled."""

    class Machine(JournalMachine):
        def __init__(self) -> None:
            super().__init__()
            self.dir = Path(tempfile.mkdtemp(prefix="gk-state-"))
            path = self.dir / "journal.db"
            self.opener = lambda who, clock: SQLiteStore(path, owner=who, clock=clock, lease=LEASE)

        def teardown(self) -> None:
            super().teardown()
            shutil.rmtree(self.dir, ignore_errors=True)

    check(Machine, 30)


@pytest.mark.servers
def test_postgres_store_behaves_like_the_model(postgres_server: PostgresServer) -> None:
    """PostgreSQL: the same machine, each example in a fresh database."""

    class Machine(JournalMachine):
        def __init__(self) -> None:
            super().__init__()
            self.url = postgres_server.create_database()
            env = postgres_server.env()
            self.opener = lambda who, clock: PostgresStore(
                self.url, owner=who, clock=clock, lease=LEASE, env=env
            )

        def teardown(self) -> None:
            super().teardown()
            postgres_server.drop_database(self.url)

    check(Machine, 8)
