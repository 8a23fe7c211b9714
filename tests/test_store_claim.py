"""The atomic claim on the SQLite journal: one driver per run, a finished run is reported.

``claim_run`` finds or makes a plan's run and leases it in one transaction; 200 claims
started at once from separate processes make exactly one run with exactly one driver.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gatekeeper._protocols import Event
from gatekeeper.exceptions import StoreError
from gatekeeper.store import FINISHED_STATUSES, Claim, LeaseHeld, LeaseHolder, LeaseLost
from gatekeeper.store.sqlite import SQLiteStore

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
def journal(tmp_path: Path) -> Path:
    return tmp_path / "plan.journal.sqlite3"


def claim(store: SQLiteStore, **kwargs: object) -> Claim:
    args: dict[str, object] = {"plan": "p", "plan_digest": "d1", "started_at": T0}
    args.update(kwargs)
    return store.claim_run(**args)  # type: ignore[arg-type]


def test_finished_statuses_are_defined_once() -> None:
    """What ends a run: every outcome but held/interrupted, and a replaced run."""
    assert {"advanced", "rolled back", "failed", "error", "restarted"} <= FINISHED_STATUSES
    assert not {"running", "held", "interrupted"} & FINISHED_STATUSES


def test_claim_creates_a_leased_run_when_the_plan_has_none(journal: Path) -> None:
    """No run of the plan: a new run, leased to the caller with token 1, in one step."""
    clock = FakeClock()
    with SQLiteStore(journal, owner="a", clock=clock) as store:
        got = claim(store)
        assert (got.created, got.finished) == (True, False)
        assert (got.run.plan, got.run.plan_digest, got.run.started_at) == ("p", "d1", T0)
        assert got.run == store.run(got.run.run_id)
        assert got.lease is not None
        assert (got.lease.owner, got.lease.token) == ("a", 1)
        assert got.lease.expires_at == T0 + timedelta(seconds=30)
        assert store.append(got.run.run_id, Event(kind="run_started", at=T0)) == 1


def test_claim_resumes_the_unfinished_run_and_takes_its_lease(journal: Path) -> None:
    """A running, held or interrupted latest run is returned to resume, leased to the
    caller (the token moves on from the previous holder's)."""
    clock = FakeClock()
    with SQLiteStore(journal, owner="a", clock=clock) as a:
        first = claim(a)
    for status in ("held", "interrupted", "running"):
        with SQLiteStore(journal, owner="b", clock=clock) as b:
            b.set_status(first.run.run_id, status)
            got = claim(b)
            assert (got.created, got.finished, got.run.run_id) == (False, False, first.run.run_id)
            assert got.run.status == status
            assert got.lease is not None
            assert got.lease.owner == "b"
    assert len(SQLiteStore(journal).runs()) == 1


def test_claim_refuses_while_another_live_runner_drives(journal: Path) -> None:
    """The lease-held error names the driver; nothing is created or changed."""
    clock = FakeClock()
    with (
        SQLiteStore(journal, owner="a", clock=clock) as a,
        SQLiteStore(journal, owner="b", clock=clock) as b,
    ):
        first = claim(a)
        for restart in (False, True):
            with pytest.raises(LeaseHeld, match=f"run {first.run.run_id} is driven by a until"):
                claim(b, restart=restart)
        assert [r.run_id for r in b.runs()] == [first.run.run_id]
        assert b.events(first.run.run_id) == ()
        assert b.lease_holder(first.run.run_id) == LeaseHolder(
            owner="a", token=1, expires_at=T0 + timedelta(seconds=30)
        )


@pytest.mark.parametrize("status", sorted(FINISHED_STATUSES - {"restarted"}))
def test_a_finished_run_is_reported_and_nothing_changes(journal: Path, status: str) -> None:
    """The plan's latest run is over: the claim returns it, finished, with no lease; no
    run is created, no event written, no lease taken (even with another digest)."""
    with SQLiteStore(journal, owner="a") as a:
        first = claim(a)
        a.append(first.run.run_id, Event(kind="run_ended", at=T0))
        a.set_status(first.run.run_id, status)
    with SQLiteStore(journal, owner="b") as b:
        for digest in ("d1", "d2"):
            got = claim(b, plan_digest=digest)
            assert (got.created, got.finished, got.lease) == (False, True, None)
            assert (got.run.run_id, got.run.status) == (first.run.run_id, status)
        assert len(b.runs()) == 1
        assert [e.kind for e in b.events(first.run.run_id)] == ["run_ended"]
        assert b.lease_holder(first.run.run_id) is None


def test_restart_replaces_an_unfinished_run_and_fences_its_old_holder(journal: Path) -> None:
    """restart=True ends the unfinished run as 'restarted' with an 'abandoned' event,
    creates a new leased run, and the old run's (expired) holder can no longer write."""
    clock = FakeClock()
    with (
        SQLiteStore(journal, owner="a", clock=clock) as a,
        SQLiteStore(journal, owner="b", clock=clock) as b,
    ):
        old = claim(a)
        a.append(old.run.run_id, Event(kind="run_started", at=T0))
        clock.advance(timedelta(seconds=31))
        new = claim(b, plan_digest="d2", restart=True)
        assert (new.created, new.finished, new.run.plan_digest) == (True, False, "d2")
        assert new.run.run_id != old.run.run_id
        assert b.run(old.run.run_id).status == "restarted"
        abandoned = b.events(old.run.run_id)[-1]
        assert (abandoned.kind, abandoned.seq) == ("abandoned", 2)
        assert abandoned.data["replaced_by"] == new.run.run_id
        assert old.lease is not None
        with pytest.raises(LeaseLost, match="fenced"):
            old.lease.renew()
        with pytest.raises(LeaseLost, match="fenced"):
            a.append(old.run.run_id, Event(kind="late", at=T0))
        with pytest.raises(LeaseHeld, match=f"run {new.run.run_id} is driven by b"):
            claim(a)  # the restarted run is skipped: the new one is the latest


def test_restart_after_a_finished_run_starts_a_new_one(journal: Path) -> None:
    """A finished run is repeated only when asked: restart=True creates a new run and
    leaves the finished one as it was."""
    with SQLiteStore(journal, owner="a") as a:
        first = claim(a)
        a.set_status(first.run.run_id, "advanced")
        again = claim(a, restart=True)
        assert again.created
        assert a.run(first.run.run_id).status == "advanced"
        assert a.events(first.run.run_id) == ()


def test_claim_waits_for_the_driver_to_let_go(journal: Path) -> None:
    """With ``wait``, a claim polls (bounded) and resumes the run once its lease expires."""
    with (
        SQLiteStore(journal, owner="a", lease=timedelta(milliseconds=300)) as a,
        SQLiteStore(journal, owner="b") as b,
    ):
        first = claim(a)
        with pytest.raises(LeaseHeld, match=r"after waiting 0\.05s"):
            claim(b, wait=timedelta(milliseconds=50))
        got = claim(b, wait=timedelta(seconds=5))
        assert (got.created, got.run.run_id) == (False, first.run.run_id)
        assert got.lease is not None
        assert got.lease.token == 2


def test_lease_check_fails_after_expiry_or_takeover(journal: Path) -> None:
    """``Lease.check`` passes while the lease is ours; LeaseLost (a StoreError) once it
    expired, and once another runner took it over; renewing before expiry keeps it."""
    clock = FakeClock()
    with (
        SQLiteStore(journal, owner="a", clock=clock) as a,
        SQLiteStore(journal, owner="b", clock=clock) as b,
    ):
        lease = claim(a).lease
        assert lease is not None
        lease.check()
        clock.advance(timedelta(seconds=29))
        lease.renew()
        clock.advance(timedelta(seconds=29))
        lease.check()
        clock.advance(timedelta(seconds=2))
        with pytest.raises(LeaseLost, match=r"fenced: the lease on run .* expired"):
            lease.check()
        assert isinstance(LeaseLost("x"), StoreError)
        assert a.lease_holder(lease.run_id) is None
        taken = b.acquire(lease.run_id)
        assert b.lease_holder(lease.run_id) == LeaseHolder(
            owner="b", token=2, expires_at=taken.expires_at
        )
        with pytest.raises(LeaseLost, match=r"is now driven by b \(token 2\)"):
            lease.check()
        taken.check()
        taken.release()
        assert a.lease_holder(lease.run_id) is None
        with pytest.raises(LeaseLost, match="is now released"):
            taken.check()


# -- 200 claims at once ------------------------------------------------------------------

RACER = """
import json, sys, threading, time
from datetime import UTC, datetime, timedelta
from gatekeeper._protocols import Event
from gatekeeper.store import LeaseHeld
from gatekeeper.store.sqlite import SQLiteStore

path, threads, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
stores = [SQLiteStore(path, busy_timeout=timedelta(seconds=60)) for _ in range(threads)]
start = threading.Barrier(threads + 1)
results = []

def race(store):
    start.wait()
    at = datetime.now(UTC)
    try:
        got = store.claim_run(plan="race", plan_digest="d", started_at=at)
    except LeaseHeld as exc:
        results.append({"outcome": "held", "run": exc.run_id, "owner": store.owner})
        return
    except Exception as exc:
        results.append({"outcome": "error", "error": repr(exc), "owner": store.owner})
        return
    run = got.run.run_id
    if got.lease is None:
        results.append({"outcome": "finished", "run": run, "owner": store.owner})
        return
    began = time.time()
    store.append(run, Event(kind="driving", at=at, data={"owner": store.owner}))
    time.sleep(hold)  # drive a moment: later claims meet a live lease, then a finished run
    store.append(run, Event(kind="run_ended", at=at, data={"owner": store.owner}))
    store.set_status(run, "advanced")
    ended = time.time()
    got.lease.release()
    results.append({"outcome": "created" if got.created else "resumed", "run": run,
                    "owner": store.owner, "began": began, "ended": ended})

workers = [threading.Thread(target=race, args=(s,)) for s in stores]
for w in workers:
    w.start()
print("ready", flush=True)
sys.stdin.readline()
start.wait()
for w in workers:
    w.join()
for s in stores:
    s.close()
print(json.dumps(results), flush=True)
"""


def test_200_simultaneous_claims_make_one_run_with_one_driver(journal: Path) -> None:
    """8 processes x 25 threads, each its own store, claim one plan at the same moment:
    exactly one run is created and driven; every other claim is refused because that run
    is driven, or gets the run as finished once it ended. No claim ever resumes it."""
    processes, threads = 8, 25
    SQLiteStore(journal).close()  # the schema exists; the race is about runs
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(journal), str(threads), "0.05"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready"
        began = time.monotonic()
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        results = []
        for racer in racers:
            out, _ = racer.communicate(timeout=60)
            assert racer.returncode == 0
            results.extend(json.loads(out.strip().splitlines()[-1]))
        elapsed = time.monotonic() - began
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    outcomes = [r["outcome"] for r in results]
    drivers = [r for r in results if r["outcome"] in ("created", "resumed")]
    print(
        f"claims={len(results)} created={outcomes.count('created')}"
        f" resumed={outcomes.count('resumed')} held={outcomes.count('held')}"
        f" finished={outcomes.count('finished')} errors={outcomes.count('error')}"
        f" double_drivers={len(drivers) - 1} race={elapsed:.2f}s"
    )
    assert len(results) == processes * threads
    assert [r for r in results if r["outcome"] == "error"] == []
    assert len(drivers) == 1
    assert drivers[0]["outcome"] == "created"
    run = drivers[0]["run"]
    assert {r["run"] for r in results} == {run}
    with SQLiteStore(journal) as store:
        assert [r.run_id for r in store.runs()] == [run]
        assert [e.kind for e in store.events(run)] == ["driving", "run_ended"]
        assert store.run(run).status == "advanced"
