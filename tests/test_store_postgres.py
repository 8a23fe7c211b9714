"""The PostgreSQL journal against a real server: leases, racing runners, expiry, fencing,
migrations and secrets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from gatekeeper._protocols import Event
from gatekeeper.exceptions import StoreError
from gatekeeper.store import open_store
from gatekeeper.store.postgres import MIGRATIONS, PostgresStore
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


def event(n: int = 0, kind: str = "verdict") -> Event:
    return Event(kind=kind, at=T0 + timedelta(seconds=n), phase="ramp", data={"n": n})


@pytest.fixture
def env(postgres_server: PostgresServer) -> dict[str, str]:
    return postgres_server.env()


@pytest.fixture
def store(postgres_url: str, env: dict[str, str]) -> Iterator[PostgresStore]:
    with PostgresStore(postgres_url, env=env, owner="runner-a") as opened:
        yield opened


def test_journal_round_trip_matches_sqlite_semantics(
    store: PostgresStore, postgres_url: str, env: dict[str, str]
) -> None:
    """Appends get seq 1..n per run; events, runs and status read back equal from a new
    connection (another machine)."""
    run = store.create_run(plan="seed", plan_digest="sha256:1", started_at=T0)
    other = store.create_run(plan="seed", plan_digest="sha256:1", started_at=T0)
    assert [store.append(run, event(i)) for i in range(3)] == [1, 2, 3]
    assert store.append(other, event(9)) == 1
    store.append(run, Event(kind="measurement", at=T0, data={"value": float("nan")}))
    store.set_status(run, "held")
    with PostgresStore(postgres_url, env=env) as reader:
        events = reader.events(run)
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert events[1] == Event(
            kind="verdict", at=T0 + timedelta(seconds=1), phase="ramp", data={"n": 1}, seq=2
        )
        assert events[3].data["value"] != events[3].data["value"]  # NaN kept
        assert [(r.run_id, r.status) for r in reader.runs()] == [(run, "held"), (other, "running")]
        assert [r.run_id for r in reader.unfinished_runs("seed")] == [run, other]  # held resumes
        latest = reader.latest_run("seed", "sha256:1")
        assert latest is not None
        assert latest.run_id == other
        assert [e.seq for e in reader.events(run, after=3)] == [4]
    with pytest.raises(StoreError, match="unknown run 'nope'"):
        store.append("nope", event())


def test_two_runners_racing_for_one_run_exactly_one_wins(
    postgres_url: str, env: dict[str, str]
) -> None:
    """Six runners on their own connections acquire the same run at once: one gets it, the
    others are refused with a message naming the winner."""
    with PostgresStore(postgres_url, env=env) as setup:
        run = setup.create_run(plan="p", plan_digest="d", started_at=T0)
    stores = [PostgresStore(postgres_url, env=env, owner=f"runner-{i}") for i in range(6)]
    barrier = threading.Barrier(len(stores))
    won: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def race(runner: PostgresStore) -> None:
        barrier.wait(timeout=10)
        try:
            lease = runner.acquire(run)
        except StoreError as exc:
            with lock:
                refused.append(str(exc))
        else:
            with lock:
                won.append(lease.owner)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        for s in stores:
            s.close()
    assert len(won) == 1
    assert len(refused) == 5
    assert all(f"is driven by {won[0]} until" in message for message in refused)


def test_second_runner_waits_then_takes_over_an_expired_lease(
    postgres_url: str, env: dict[str, str]
) -> None:
    """A runner that dies (stops renewing) loses the run when its lease expires on the server
    clock; a waiting runner takes it over with a higher token and the dead one is fenced."""
    with (
        PostgresStore(postgres_url, env=env, owner="a", lease=timedelta(milliseconds=400)) as a,
        PostgresStore(postgres_url, env=env, owner="b") as b,
    ):
        run = a.create_run(plan="p", plan_digest="d", started_at=T0)
        first = a.acquire(run)
        assert a.append(run, event(0)) == 1
        second = b.acquire(run, wait=timedelta(seconds=10))
        assert (second.owner, second.token) == ("b", first.token + 1)
        with pytest.raises(StoreError, match=r"fenced: run .* is now driven by b \(token 2\)"):
            a.append(run, event(1))
        with pytest.raises(StoreError, match="fenced"):
            first.renew()
        assert b.append(run, event(2)) == 2
        assert [e.data["n"] for e in a.events(run)] == [0, 2]


def test_fenced_writer_is_refused_even_mid_transaction_race(
    postgres_url: str, env: dict[str, str]
) -> None:
    """With an injected clock: after expiry and takeover every write of the old runner is
    refused (append, status), and nothing of them lands in the journal."""
    clock = FakeClock()
    with (
        PostgresStore(postgres_url, env=env, owner="old", clock=clock) as old,
        PostgresStore(postgres_url, env=env, owner="new", clock=clock) as new,
    ):
        run = old.create_run(plan="p", plan_digest="d", started_at=T0)
        old.acquire(run)
        with pytest.raises(StoreError, match="driven by old"):
            new.acquire(run)
        clock.advance(timedelta(seconds=31))
        with pytest.raises(StoreError, match=r"fenced: the lease on run .* expired"):
            old.append(run, event(1))
        lease = new.acquire(run)
        assert lease.token == 2
        for write in (lambda: old.append(run, event(2)), lambda: old.set_status(run, "advanced")):
            with pytest.raises(StoreError, match="fenced"):
                write()
        assert new.events(run) == ()
        assert new.run(run).status == "running"


def test_renewal_keeps_the_run_and_release_frees_it(postgres_url: str, env: dict[str, str]) -> None:
    """Renewing on time keeps other runners out; a released run goes to the next one."""
    clock = FakeClock()
    with (
        PostgresStore(postgres_url, env=env, owner="a", clock=clock) as a,
        PostgresStore(postgres_url, env=env, owner="b", clock=clock) as b,
    ):
        run = a.create_run(plan="p", plan_digest="d", started_at=T0)
        lease = a.acquire(run)
        clock.advance(timedelta(seconds=25))
        lease.renew()
        clock.advance(timedelta(seconds=25))
        with pytest.raises(StoreError, match="driven by a"):
            b.acquire(run)
        assert a.append(run, event()) == 1
        lease.release()
        assert b.acquire(run).token == 2


def test_concurrent_appends_from_two_machines_stay_gapless(
    postgres_url: str, env: dict[str, str]
) -> None:
    """Two connections appending to one run at once never collide or leave gaps in seq."""
    stores = [PostgresStore(postgres_url, env=env) for _ in range(2)]
    run = stores[0].create_run(plan="p", plan_digest="d", started_at=T0)
    got: list[int] = []
    lock = threading.Lock()

    def work(store: PostgresStore) -> None:
        for i in range(15):
            seq = store.append(run, event(i))
            with lock:
                got.append(seq)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(got) == list(range(1, 31))
        assert [e.seq for e in stores[1].events(run)] == list(range(1, 31))
    finally:
        for s in stores:
            s.close()


def test_schema_is_migrated_once_even_when_runners_start_together(
    postgres_url: str, env: dict[str, str]
) -> None:
    """Several stores opening a fresh database at once end with one schema at the latest
    version (the migration runs under an advisory lock)."""
    errors: list[BaseException] = []
    opened: list[PostgresStore] = []
    lock = threading.Lock()

    def open_one() -> None:
        try:
            store = PostgresStore(postgres_url, env=env)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(exc)
        else:
            with lock:
                opened.append(store)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert errors == []
        assert {s.schema_version for s in opened} == {len(MIGRATIONS)}
    finally:
        for s in opened:
            s.close()


def test_foreign_or_newer_schema_is_refused(
    postgres_server: PostgresServer, env: dict[str, str]
) -> None:
    """A database whose gatekeeper_runs is not ours, or whose schema is newer, is refused."""
    foreign = postgres_server.create_database()
    try:
        with psycopg.connect(foreign, password=postgres_server.password, autocommit=True) as conn:
            conn.execute("CREATE TABLE gatekeeper_runs (id int)")
        with pytest.raises(StoreError, match="not a gatekeeper journal"):
            PostgresStore(foreign, env=env)
    finally:
        postgres_server.drop_database(foreign)
    newer = postgres_server.create_database()
    try:
        PostgresStore(newer, env=env).close()
        with psycopg.connect(newer, password=postgres_server.password, autocommit=True) as conn:
            conn.execute("UPDATE gatekeeper_schema SET version = version + 1")
        with pytest.raises(StoreError, match="newer than this gatekeeper knows"):
            PostgresStore(newer, env=env)
    finally:
        postgres_server.drop_database(newer)


def test_journal_is_append_only_in_the_database(store: PostgresStore) -> None:
    """A direct UPDATE of a journaled event is refused by a trigger."""
    run = store.create_run(plan="p", plan_digest="d", started_at=T0)
    store.append(run, event())
    with (
        pytest.raises(StoreError, match="append-only"),
        store._transaction("forge an event") as cur,
    ):
        cur.execute("UPDATE gatekeeper_events SET kind = 'forged'")


def test_password_never_shows_in_repr_or_errors(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The password (from the environment or inside the URL) is in no repr and no error."""
    password = postgres_server.password
    with PostgresStore(
        postgres_url, env={"GK_DB_PASSWORD": password}, password_env="GK_DB_PASSWORD"
    ) as ok:
        assert password not in repr(ok)
        with pytest.raises(StoreError) as unknown:
            ok.events("nope")
        assert password not in str(unknown.value)
    with_password = postgres_url.replace("postgres@", f"postgres:{password}@")
    with PostgresStore(with_password, env={}) as inline:
        assert password not in repr(inline)
        assert inline.display_url == postgres_url
    wrong = "wrong-" + password
    bad_url = postgres_url.replace("postgres@", f"postgres:{wrong}@")
    with pytest.raises(StoreError, match="password authentication failed") as refused:
        PostgresStore(bad_url, env={})
    assert wrong not in str(refused.value)
    assert wrong not in repr(refused.value)
    assert postgres_url in str(refused.value)
    with pytest.raises(StoreError, match=r"GK_MISSING .* is not set"):
        PostgresStore(postgres_url, env={}, password_env="GK_MISSING")


def test_open_store_picks_postgres_for_postgres_urls(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """``postgresql://`` and ``postgres://`` URLs open a PostgresStore."""
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://")):
        store = open_store(url, env=postgres_server.env())
        assert isinstance(store, PostgresStore)
        with store:
            assert store.runs() == ()


def test_unreachable_server_is_a_clear_error(env: dict[str, str]) -> None:
    """A server that does not answer fails fast with the masked URL in the message."""
    with pytest.raises(StoreError, match=r"cannot connect to postgresql://gk@127\.0\.0\.1:1/x"):
        PostgresStore(
            "postgresql://gk:secret-pw@127.0.0.1:1/x", env=env, connect_timeout=timedelta(seconds=2)
        )


def test_lock_held_past_lock_timeout_is_a_clear_error(
    store: PostgresStore, postgres_server: PostgresServer, postgres_url: str, env: dict[str, str]
) -> None:
    """A write blocked by another session's lock fails after lock_timeout, naming the cause,
    and leaves the journal as it was."""
    run = store.create_run(plan="p", plan_digest="d", started_at=T0)
    store.append(run, event(0))
    with (
        PostgresStore(postgres_url, env=env, lock_timeout=timedelta(milliseconds=200)) as blocked,
        psycopg.connect(postgres_url, password=postgres_server.password) as holder,
    ):
        holder.execute("SELECT * FROM gatekeeper_runs WHERE run_id = %s FOR UPDATE", (run,))
        with pytest.raises(StoreError, match="another runner holds a lock on it past lock_timeout"):
            blocked.append(run, event(1))
        holder.rollback()
        assert blocked.append(run, event(2)) == 2
    assert [e.data["n"] for e in store.events(run)] == [0, 2]


def test_a_dropped_connection_fails_the_call_in_flight_then_reconnects(
    store: PostgresStore, postgres_server: PostgresServer, postgres_url: str
) -> None:
    """When the server drops the session (restart, failover), the call in flight raises
    StoreError (it is not retried blindly: its commit may have happened) and the next call
    reconnects."""
    run = store.create_run(plan="p", plan_digest="d", started_at=T0)
    with psycopg.connect(postgres_url, password=postgres_server.password, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'gatekeeper' AND datname = current_database()"
        )
    with pytest.raises(StoreError, match=r"cannot append 'verdict' to run"):
        store.append(run, event(1))
    assert store.append(run, event(2)) == 1
    assert [e.data["n"] for e in store.events(run)] == [2]
