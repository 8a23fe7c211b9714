"""The SQLite journal: durable appends, foreign/corrupted/locked/full files, local leases."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gatekeeper._protocols import Event
from gatekeeper._store import MemoryStore
from gatekeeper.exceptions import StoreError
from gatekeeper.store import FINISHED_STATUSES, Lease, LeaseHeld, LeasingStore, open_store
from gatekeeper.store.sqlite import APPLICATION_ID, MIGRATIONS, SQLiteStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand (lease expiry without waiting)."""

    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def event(kind: str = "measurement", n: int = 0, **data: object) -> Event:
    return Event(
        kind=kind,
        at=T0 + timedelta(seconds=n),
        phase="canary",
        checkpoint="15m",
        data={"n": n, **data},
    )


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "plan.gatekeeper.db"


def test_appends_get_gapless_seq_and_survive_reopening(journal: Path) -> None:
    """Events come back in order with seq 1..n, equal to what was appended, after reopening."""
    with SQLiteStore(journal) as store:
        run = store.create_run(plan="seed", plan_digest="sha256:ab", started_at=T0)
        seqs = [store.append(run, event(n=i, value=i / 3, tags=["a", "b"])) for i in range(5)]
        store.set_status(run, "held")
    assert seqs == [1, 2, 3, 4, 5]
    with SQLiteStore(journal) as store:
        events = store.events(run)
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        assert events[2] == Event(
            kind="measurement",
            at=T0 + timedelta(seconds=2),
            phase="canary",
            checkpoint="15m",
            data={"n": 2, "value": 2 / 3, "tags": ["a", "b"]},
            seq=3,
        )
        assert [
            (r.run_id, r.plan, r.plan_digest, r.started_at, r.status) for r in store.runs()
        ] == [(run, "seed", "sha256:ab", T0, "held")]


def test_seq_is_per_run(journal: Path) -> None:
    """Each run numbers its own events from 1."""
    with SQLiteStore(journal) as store:
        a = store.create_run(plan="p", plan_digest="d", started_at=T0)
        b = store.create_run(plan="p", plan_digest="d", started_at=T0)
        assert [store.append(a, event()), store.append(b, event()), store.append(a, event())] == [
            1,
            1,
            2,
        ]


def test_nan_and_infinities_in_measurements_survive(journal: Path) -> None:
    """A NaN measurement is journaled as NaN (it is why a verdict was INCONCLUSIVE)."""
    with SQLiteStore(journal) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        store.append(run, event(value=float("nan"), high=float("inf")))
        data = store.events(run)[0].data
    assert data["value"] != data["value"]
    assert data["high"] == float("inf")


def test_unknown_run_is_a_store_error(journal: Path) -> None:
    """Appending to, reading or updating a run that does not exist names the run."""
    with SQLiteStore(journal) as store:
        with pytest.raises(StoreError, match="unknown run 'nope'"):
            store.append("nope", event())
        with pytest.raises(StoreError, match="unknown run 'nope'"):
            store.events("nope")
        with pytest.raises(StoreError, match="unknown run 'nope'"):
            store.set_status("nope", "advanced")


def test_bad_events_are_refused_and_leave_no_trace(journal: Path) -> None:
    """Naive times and data that is not JSON are refused; the next append still gets seq 1."""
    with SQLiteStore(journal) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        with pytest.raises(StoreError, match="aware datetime"):
            store.append(run, Event(kind="x", at=datetime(2026, 1, 1)))
        with pytest.raises(StoreError, match="not JSON-able"):
            store.append(run, Event(kind="x", at=T0, data={"when": T0}))
        assert store.append(run, event()) == 1


def test_journal_is_append_only_at_the_database_level(journal: Path) -> None:
    """Even a direct UPDATE or DELETE on the events table is refused by triggers."""
    with SQLiteStore(journal) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        store.append(run, event())
    conn = sqlite3.connect(journal)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE gatekeeper_events SET kind = 'forged'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM gatekeeper_events")
    finally:
        conn.close()


def test_schema_is_versioned_and_durable_pragmas_are_set(journal: Path) -> None:
    """A new journal has our application_id, the latest user_version, WAL and synchronous=FULL."""
    with SQLiteStore(journal) as store:
        assert store.schema_version == len(MIGRATIONS)
        conn = store._conn
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    raw = sqlite3.connect(journal)
    try:
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_concurrent_appends_from_threads_stay_gapless(journal: Path) -> None:
    """Worker threads appending at once get distinct seqs 1..n, all journaled."""
    with SQLiteStore(journal) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        got: list[int] = []
        lock = threading.Lock()

        def work(k: int) -> None:
            for i in range(20):
                seq = store.append(run, event(n=k * 100 + i))
                with lock:
                    got.append(seq)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(got) == list(range(1, 81))
        assert [e.seq for e in store.events(run)] == list(range(1, 81))


def test_events_after_returns_only_the_tail(journal: Path) -> None:
    """``events(run, after=n)`` is what a status command tails."""
    with SQLiteStore(journal) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        for i in range(4):
            store.append(run, event(n=i))
        assert [e.seq for e in store.events(run, after=2)] == [3, 4]


def test_resume_helpers_find_the_latest_and_unfinished_runs(journal: Path) -> None:
    """latest_run filters by plan and digest; unfinished_runs skips finished statuses."""
    with SQLiteStore(journal) as store:
        old = store.create_run(plan="seed", plan_digest="d1", started_at=T0)
        new = store.create_run(plan="seed", plan_digest="d2", started_at=T0)
        other = store.create_run(plan="other", plan_digest="d1", started_at=T0)
        store.set_status(old, "advanced")
        assert "advanced" in FINISHED_STATUSES
        latest = store.latest_run("seed")
        assert latest is not None
        assert latest.run_id == new
        by_digest = store.latest_run("seed", "d1")
        assert by_digest is not None
        assert by_digest.run_id == old
        assert store.latest_run("seed", "d3") is None
        assert [r.run_id for r in store.unfinished_runs("seed")] == [new]
        assert {r.run_id for r in store.unfinished_runs()} == {new, other}
        assert store.run(other).plan == "other"


# -- foreign, corrupted, newer, locked, full ----------------------------------------


def test_foreign_sqlite_file_is_refused_untouched(journal: Path) -> None:
    """Another program's database is refused with its name, and not a byte of it changes."""
    conn = sqlite3.connect(journal)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.commit()
    conn.close()
    before = journal.read_bytes()
    with pytest.raises(StoreError, match=r"is not a gatekeeper journal .*tables: invoices") as info:
        SQLiteStore(journal)
    assert str(journal) in str(info.value)
    assert journal.read_bytes() == before
    assert not journal.with_name(journal.name + "-wal").exists()


def test_corrupted_file_is_refused_untouched(journal: Path) -> None:
    """A file that is not SQLite at all gives a clear error naming it; it is not rewritten."""
    journal.write_bytes(b"this is a plan, not a database\n" * 100)
    before = journal.read_bytes()
    with pytest.raises(StoreError, match="not a gatekeeper journal or is corrupted") as info:
        SQLiteStore(journal)
    assert str(journal) in str(info.value)
    assert journal.read_bytes() == before


def test_journal_from_a_newer_gatekeeper_is_refused(journal: Path) -> None:
    """A schema version this code does not know is refused, not downgraded."""
    SQLiteStore(journal).close()
    conn = sqlite3.connect(journal)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this gatekeeper knows"):
        SQLiteStore(journal)


def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    """A journal path in a folder that does not exist fails clearly, naming the path."""
    with pytest.raises(StoreError, match="no such directory"):
        SQLiteStore(tmp_path / "missing" / "j.db")


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO gatekeeper_runs (run_id, plan, plan_digest, started_at) "
             "VALUES ('locker', 'p', 'd', '2026-01-01T00:00:00+00:00')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def locked(journal: Path) -> Iterator[None]:
    """Another process holds the journal's write lock (BEGIN EXCLUSIVE) meanwhile."""
    with subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(journal)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        assert locker.stdout is not None
        assert locker.stdin is not None
        try:
            assert locker.stdout.readline().strip() == "locked"
            yield
        finally:
            locker.stdin.close()
            locker.wait(timeout=10)


def test_locked_journal_is_a_clear_error_and_reads_still_work(journal: Path) -> None:
    """Another process holding the write lock past busy_timeout gives StoreError naming the
    file; reads go on (WAL) and the journal is intact once the lock is gone."""
    with SQLiteStore(journal, busy_timeout=timedelta(milliseconds=200)) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        store.append(run, event())
        with locked(journal):
            with pytest.raises(StoreError, match="locked by another process") as info:
                store.append(run, event(n=1))
            assert str(journal) in str(info.value)
            assert [e.seq for e in store.events(run)] == [1]
        assert store.append(run, event(n=2)) == 2
        assert [e.data["n"] for e in store.events(run)] == [0, 2]


def test_opening_a_locked_journal_works_but_writing_is_a_clear_error(journal: Path) -> None:
    """An up-to-date journal opens while another process writes; a write then fails clearly."""
    SQLiteStore(journal).close()
    with locked(journal), SQLiteStore(journal, busy_timeout=timedelta(milliseconds=100)) as store:
        with pytest.raises(StoreError, match=f"{journal.name}: cannot create a run .*locked"):
            store.create_run(plan="p", plan_digest="d", started_at=T0)
        assert store.runs() == ()


def test_full_disk_keeps_the_journal_consistent(journal: Path) -> None:
    """When the file cannot grow, the append fails with StoreError, the failed event is not
    half-written, earlier events are intact and seq stays gapless."""
    with SQLiteStore(journal, max_pages=40) as store:
        run = store.create_run(plan="p", plan_digest="d", started_at=T0)
        appended = 0
        error: StoreError | None = None
        for i in range(500):
            try:
                store.append(run, event(n=i, blob="x" * 2000))
            except StoreError as exc:
                error = exc
                break
            appended += 1
        assert error is not None
        assert "full" in str(error)
        assert str(journal) in str(error)
        assert appended > 0
        events = store.events(run)
        assert [e.seq for e in events] == list(range(1, appended + 1))
        small = store.append(run, Event(kind="run_ended", at=T0))
        assert small in (appended + 1,)  # a small record may still fit in a free page
    with SQLiteStore(journal) as store:
        events = store.events(run)
        assert [e.seq for e in events] == list(range(1, appended + 2))
        assert all(len(e.data["blob"]) == 2000 for e in events[:-1])
        raw = sqlite3.connect(journal)
        try:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            raw.close()


# -- local leases --------------------------------------------------------------------


def test_one_runner_drives_a_run_the_other_is_refused(journal: Path) -> None:
    """A second store (another runner) cannot acquire a leased run; the message names the owner."""
    clock = FakeClock()
    with (
        SQLiteStore(journal, owner="runner-a", clock=clock) as a,
        SQLiteStore(journal, owner="runner-b", clock=clock) as b,
    ):
        run = a.create_run(plan="p", plan_digest="d", started_at=T0)
        lease = a.acquire(run)
        assert isinstance(lease, Lease)
        assert isinstance(a, LeasingStore)
        assert (lease.owner, lease.token) == ("runner-a", 1)
        with pytest.raises(StoreError, match=f"run {run} is driven by runner-a until 2026-03-01"):
            b.acquire(run)


def test_expired_lease_is_taken_over_and_the_old_runner_is_fenced(journal: Path) -> None:
    """After expiry another runner takes the run with a new token; the old runner's appends,
    status changes and renewals are refused as fenced, and nothing of them is written."""
    clock = FakeClock()
    with (
        SQLiteStore(journal, owner="a", clock=clock, lease=timedelta(seconds=30)) as a,
        SQLiteStore(journal, owner="b", clock=clock) as b,
    ):
        run = a.create_run(plan="p", plan_digest="d", started_at=T0)
        old = a.acquire(run)
        assert a.append(run, event()) == 1
        clock.advance(timedelta(seconds=31))
        with pytest.raises(StoreError, match=r"fenced: the lease on run .* expired"):
            a.append(run, event(n=1))
        new = b.acquire(run)
        assert new.token == old.token + 1
        with pytest.raises(StoreError, match=r"fenced: .*driven by b"):
            a.append(run, event(n=2))
        with pytest.raises(StoreError, match="fenced"):
            a.set_status(run, "advanced")
        with pytest.raises(StoreError, match="fenced"):
            old.renew()
        assert b.append(run, event(n=3)) == 2
        assert [e.data["n"] for e in b.events(run)] == [0, 3]
        assert b.run(run).status == "running"


def test_renew_keeps_the_run_and_release_hands_it_over(journal: Path) -> None:
    """Renewing pushes expiry ahead; releasing lets the next runner in at once (token + 1)."""
    clock = FakeClock()
    with (
        SQLiteStore(journal, owner="a", clock=clock, lease=timedelta(seconds=10)) as a,
        SQLiteStore(journal, owner="b", clock=clock) as b,
    ):
        run = a.create_run(plan="p", plan_digest="d", started_at=T0)
        lease = a.acquire(run)
        clock.advance(timedelta(seconds=8))
        lease.renew()
        assert lease.expires_at == T0 + timedelta(seconds=18)
        clock.advance(timedelta(seconds=8))
        with pytest.raises(StoreError, match="driven by a"):
            b.acquire(run)
        assert a.append(run, event()) == 1
        lease.release()
        assert b.acquire(run).token == 2


def test_closing_a_store_releases_its_leases(journal: Path) -> None:
    """A runner that shuts down cleanly leaves the run free for the next one."""
    with SQLiteStore(journal, owner="a") as a:
        run = a.create_run(plan="p", plan_digest="d", started_at=T0)
        a.acquire(run)
    with SQLiteStore(journal, owner="b") as b:
        assert b.acquire(run).token == 2


def test_acquire_waits_for_a_lease_to_expire(journal: Path) -> None:
    """With ``wait``, a second runner polls (bounded) and gets the run once it expires."""
    with (
        SQLiteStore(journal, owner="a", lease=timedelta(milliseconds=300)) as a,
        SQLiteStore(journal, owner="b") as b,
    ):
        run = a.create_run(plan="p", plan_digest="d", started_at=T0)
        a.acquire(run)
        with pytest.raises(StoreError, match=r"after waiting 0\.05s"):
            b.acquire(run, wait=timedelta(milliseconds=50))
        assert b.acquire(run, wait=timedelta(seconds=5)).token == 2


DYING_RUNNER = """
import os, sys
from gatekeeper.store.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1])
print(store.acquire(sys.argv[2]).owner, flush=True)
os._exit(0)  # dies without closing: no release
"""


def test_a_dead_local_runner_frees_its_run_at_once(journal: Path) -> None:
    """A runner process on this host that died holding a lease does not block the run until
    expiry: the next runner takes it over at once with a new token."""
    with SQLiteStore(journal, owner="setup") as setup:
        run = setup.create_run(plan="p", plan_digest="d", started_at=T0)
    dead = subprocess.run(
        [sys.executable, "-c", DYING_RUNNER, str(journal), run],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    with SQLiteStore(journal, lease=timedelta(hours=1)) as next_runner:
        lease = next_runner.acquire(run)
        assert lease.token == 2
        assert dead.stdout.strip() != lease.owner
        with SQLiteStore(journal) as alive_elsewhere, pytest.raises(StoreError, match="driven by"):
            alive_elsewhere.acquire(run)  # the holder (this process) is alive: no takeover


def test_acquiring_twice_from_one_store_extends_the_same_token(journal: Path) -> None:
    """Re-acquiring a run this store already drives is idempotent (resume in-process)."""
    with SQLiteStore(journal, owner="a") as a:
        run = a.create_run(plan="p", plan_digest="d", started_at=T0)
        assert a.acquire(run).token == a.acquire(run).token == 1


def test_operator_requests_reach_a_driven_run_only_unfenced(journal: Path) -> None:
    """A store that holds no lease (``gatekeeper approve``) journals an operator request
    into a run another runner drives with ``fenced=False``; a fenced write from it is
    refused as fenced, names the driver, and writes nothing."""
    with SQLiteStore(journal, owner="runner") as runner, SQLiteStore(journal, owner="cli") as cli:
        run = runner.create_run(plan="p", plan_digest="d", started_at=T0)
        runner.acquire(run)
        given = Event(kind="approval_given", at=T0, data={"by": "ana"})
        assert cli.append(run, given, fenced=False) == 1
        with pytest.raises(LeaseHeld, match=f"fenced: run {run} is driven by runner"):
            cli.append(run, given)
        with pytest.raises(LeaseHeld, match="fenced"):
            cli.set_status(run, "rolled back")
        assert runner.append(run, event()) == 2
        assert [e.kind for e in runner.events(run)] == ["approval_given", "measurement"]
        assert runner.run(run).status == "running"


def test_unleased_appends_to_a_free_run_are_allowed(journal: Path) -> None:
    """With no live lease on the run (no runner, or its lease expired), a store without a
    lease may write fenced too: it is the only writer."""
    clock = FakeClock()
    with (
        SQLiteStore(journal, owner="runner", clock=clock) as runner,
        SQLiteStore(journal, owner="cli", clock=clock) as cli,
    ):
        run = runner.create_run(plan="p", plan_digest="d", started_at=T0)
        assert cli.append(run, event()) == 1
        runner.acquire(run)
        clock.advance(timedelta(seconds=31))
        assert cli.append(run, event(n=1)) == 2


# -- open_store ------------------------------------------------------------------------


def test_open_store_picks_sqlite_for_paths_and_sqlite_urls(tmp_path: Path) -> None:
    """Paths and sqlite:/// URLs open a SQLite journal, relative ones under base_dir."""
    for target in ("j1.db", "sqlite:///j2.db", tmp_path / "j3.db", f"sqlite:///{tmp_path}/j4.db"):
        store = open_store(target, base_dir=tmp_path)
        assert isinstance(store, SQLiteStore)
        store.close()
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["j1.db", "j2.db", "j3.db", "j4.db"]
    assert isinstance(open_store("memory:"), MemoryStore)


def test_open_store_refuses_unknown_schemes(tmp_path: Path) -> None:
    """A URL scheme that is neither sqlite nor postgresql is an error, not a file name."""
    with pytest.raises(StoreError, match="unknown store scheme 'mysql'"):
        open_store("mysql://u@h/db", base_dir=tmp_path)


def test_sqlite_store_does_not_import_psycopg(tmp_path: Path) -> None:
    """psycopg is imported only for a PostgreSQL URL (startup stays fast)."""
    code = (
        "import sys; from gatekeeper.store import open_store;"
        f"open_store({str(tmp_path / 'j.db')!r}).close();"
        "print(json.dumps('psycopg' in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json;" + code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(out.stdout) is False
