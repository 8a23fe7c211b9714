"""The claim, the operator channel, Lease.check and journal loss on a real PostgreSQL.

200 runners on their own connections claim one plan at the same moment: one run, one
driver. Lease expiry is measured by the server's clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from gatekeeper._protocols import Event
from gatekeeper.exceptions import StoreError
from gatekeeper.store import LeaseHeld, LeaseHolder, LeaseLost
from gatekeeper.store.postgres import PostgresStore
from realservers.postgres import PostgresServer

pytestmark = pytest.mark.servers

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand (lease expiry without waiting)."""

    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@pytest.fixture
def env(postgres_server: PostgresServer) -> dict[str, str]:
    return postgres_server.env()


@pytest.fixture
def admin(postgres_server: PostgresServer, postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A superuser session on the test's database: what an operator's psql could do."""
    with psycopg.connect(postgres_url, password=postgres_server.password, autocommit=True) as conn:
        yield conn


def test_claim_finds_resumes_reports_and_restarts(postgres_url: str, env: dict[str, str]) -> None:
    """The claim's four answers on PostgreSQL: create, refuse (driven), resume (after
    expiry, token + 1), report a finished run unchanged, and restart it on request."""
    clock = FakeClock()
    with (
        PostgresStore(postgres_url, env=env, owner="a", clock=clock) as a,
        PostgresStore(postgres_url, env=env, owner="b", clock=clock) as b,
    ):
        first = a.claim_run(plan="p", plan_digest="d", started_at=T0)
        assert (first.created, first.finished) == (True, False)
        assert first.lease is not None
        assert first.lease.token == 1
        with pytest.raises(LeaseHeld, match=f"run {first.run.run_id} is driven by a"):
            b.claim_run(plan="p", plan_digest="d", started_at=T0)
        clock.advance(timedelta(seconds=31))
        resumed = b.claim_run(plan="p", plan_digest="d", started_at=T0)
        assert (resumed.created, resumed.run.run_id) == (False, first.run.run_id)
        assert resumed.lease is not None
        assert resumed.lease.token == 2
        with pytest.raises(LeaseLost, match="fenced"):
            a.append(first.run.run_id, Event(kind="late", at=T0))
        b.set_status(first.run.run_id, "rolled back")
        reported = a.claim_run(plan="p", plan_digest="d2", started_at=T0)
        assert (reported.finished, reported.lease, reported.run.status) == (
            True,
            None,
            "rolled back",
        )
        again = a.claim_run(plan="p", plan_digest="d2", started_at=T0, restart=True)
        assert again.created
        assert [r.run_id for r in a.runs()] == [first.run.run_id, again.run.run_id]


def test_200_simultaneous_claims_make_one_run_with_one_driver(
    postgres_url: str, env: dict[str, str]
) -> None:
    """200 runners, each on its own connection, claim one plan at the same moment:
    exactly one run is created and driven; the others are refused because it is driven
    or get it as finished. No claim resumes it, no run is created twice."""
    count = 200
    with ThreadPoolExecutor(16) as pool:
        stores = list(
            pool.map(
                lambda i: PostgresStore(
                    postgres_url, env=env, owner=f"r{i}", lock_timeout=timedelta(seconds=30)
                ),
                range(count),
            )
        )
    start = threading.Barrier(count)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def race(store: PostgresStore) -> None:
        start.wait(timeout=60)
        outcome: dict[str, Any]
        try:
            got = store.claim_run(plan="race", plan_digest="d", started_at=datetime.now(UTC))
        except LeaseHeld as exc:
            outcome = {"outcome": "held", "run": exc.run_id}
        except Exception as exc:  # noqa: BLE001 - every outcome is collected and asserted
            outcome = {"outcome": "error", "error": repr(exc)}
        else:
            run = got.run.run_id
            if got.lease is None:
                outcome = {"outcome": "finished", "run": run}
            else:
                began = time.monotonic()
                store.append(run, Event(kind="driving", at=T0, data={"owner": store.owner}))
                time.sleep(0.3)  # drive a moment: later claims meet a live lease, then the end
                store.append(run, Event(kind="run_ended", at=T0))
                store.set_status(run, "advanced")
                got.lease.release()
                kind = "created" if got.created else "resumed"
                outcome = {"outcome": kind, "run": run, "span": (began, time.monotonic())}
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    began = time.monotonic()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        elapsed = time.monotonic() - began
    finally:
        for s in stores:
            s.close()
    outcomes = [r["outcome"] for r in results]
    drivers = [r for r in results if r["outcome"] in ("created", "resumed")]
    print(
        f"claims={len(results)} created={outcomes.count('created')}"
        f" resumed={outcomes.count('resumed')} held={outcomes.count('held')}"
        f" finished={outcomes.count('finished')} errors={outcomes.count('error')}"
        f" double_drivers={len(drivers) - 1} race={elapsed:.2f}s"
    )
    assert len(results) == count
    assert [r for r in results if r["outcome"] == "error"] == []
    assert len(drivers) == 1
    assert drivers[0]["outcome"] == "created"
    run = drivers[0]["run"]
    assert {r["run"] for r in results} == {run}
    with PostgresStore(postgres_url, env=env) as reader:
        assert [r.run_id for r in reader.runs()] == [run]
        assert [e.kind for e in reader.events(run)] == ["driving", "run_ended"]


def test_operator_requests_reach_a_driven_run_only_unfenced(
    postgres_url: str, env: dict[str, str]
) -> None:
    """The CLI (no lease) writes a rollback request into a live run with fenced=False; a
    fenced write from it is refused and names the driver."""
    with (
        PostgresStore(postgres_url, env=env, owner="runner") as runner,
        PostgresStore(postgres_url, env=env, owner="cli") as cli,
    ):
        run = runner.claim_run(plan="p", plan_digest="d", started_at=T0).run.run_id
        request = Event(kind="rollback_requested", at=T0, data={"by": "ana"})
        assert cli.append(run, request, fenced=False) == 1
        with pytest.raises(LeaseHeld, match=f"fenced: run {run} is driven by runner"):
            cli.append(run, request)
        assert runner.append(run, Event(kind="rollback_seen", at=T0)) == 2
        holder = cli.lease_holder(run)
        assert holder is not None
        assert (holder.owner, holder.token) == ("runner", 1)


def test_lease_check_uses_the_server_clock(postgres_url: str, env: dict[str, str]) -> None:
    """Without an injected clock, Lease.check and lease_holder measure expiry by the
    server's clock: a lease left unrenewed fails its check once the server says so, and
    a takeover is seen at once."""
    with (
        PostgresStore(postgres_url, env=env, owner="a", lease=timedelta(milliseconds=400)) as a,
        PostgresStore(postgres_url, env=env, owner="b") as b,
    ):
        lease = a.claim_run(plan="p", plan_digest="d", started_at=T0).lease
        assert lease is not None
        lease.check()
        assert b.lease_holder(lease.run_id) == LeaseHolder(
            owner="a", token=1, expires_at=lease.expires_at
        )
        deadline = time.monotonic() + 10
        while b.lease_holder(lease.run_id) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LeaseLost, match="expired"):
            lease.check()
        taken = b.acquire(lease.run_id)
        with pytest.raises(LeaseLost, match=r"is now driven by b \(token 2\)"):
            lease.check()
        taken.check()


def test_run_rows_deleted_mid_run_stop_the_runner(
    postgres_url: str, env: dict[str, str], admin: psycopg.Connection[Any]
) -> None:
    """Someone deletes a live run's rows: the runner's next append is a StoreError saying
    the run vanished from the journal, not a silent new start."""
    with PostgresStore(postgres_url, env=env, owner="runner") as store:
        run = store.claim_run(plan="p", plan_digest="d", started_at=T0).run.run_id
        store.append(run, Event(kind="run_started", at=T0))
        admin.execute("SET session_replication_role = replica")  # past the append-only trigger
        for table in ("gatekeeper_events", "gatekeeper_leases", "gatekeeper_runs"):
            admin.execute(f"DELETE FROM {table} WHERE run_id = %s", (run,))
        with pytest.raises(StoreError, match=f"run {run} vanished from the journal"):
            store.append(run, Event(kind="measurement", at=T0))
        with pytest.raises(StoreError, match=f"run {run} vanished from the journal"):
            store.set_status(run, "advanced")


def test_corrupted_event_json_is_a_clean_store_error(
    postgres_url: str, env: dict[str, str], admin: psycopg.Connection[Any]
) -> None:
    """An event whose data is not a JSON object is one StoreError naming run and seq."""
    with PostgresStore(postgres_url, env=env) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        admin.execute(
            "INSERT INTO gatekeeper_events (run_id, seq, kind, at, data)"
            " VALUES (%s, 1, 'verdict', now(), '{\"cut')",
            (run,),
        )
        with pytest.raises(StoreError, match=f"run {run}, event 1 \\(verdict\\) is corrupted") as e:
            store.events(run)
        assert e.value.__cause__ is None
        assert "postgresql://" in str(e.value)
