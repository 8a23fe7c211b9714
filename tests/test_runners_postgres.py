"""Two runners, one run, a real PostgreSQL journal: exactly one drives it; a dead
runner's run is taken over; a runner that lost its lease can no longer write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gatekeeper
from gatekeeper import RunOutcome, StoreError
from gatekeeper._run.events import EventKind
from gatekeeper.store.postgres import PostgresStore
from gatekeeper.traffic.file import FileBackend
from realservers.postgres import PostgresServer

pytestmark = pytest.mark.servers

START = datetime(2026, 6, 1, tzinfo=UTC)

PLAN = {
    "plan": {"name": "team"},
    "sources": {"s": {"type": "static", "values": {"error_rate": 0.001}}},
    "metrics": {"error_rate": {"source": "s"}},
    "phases": [
        {
            "name": "canary",
            "traffic": 5,
            "checkpoints": ["10m", "20m"],
            "gate": ["error_rate < 1%"],
        },
        {"name": "full", "traffic": 100, "checkpoints": ["10m"], "gate": ["error_rate < 1%"]},
    ],
}


def runner(store: PostgresStore, tmp_path: Path, **kwargs: object) -> gatekeeper.Rollout:
    return gatekeeper.Rollout(
        gatekeeper.Plan.from_mapping(PLAN),
        traffic=FileBackend(tmp_path / "split.json"),
        clock=gatekeeper.SimulatedClock(START),
        store=store,
        plugins=gatekeeper.Plugins(load_entry_points=False),
        **kwargs,  # type: ignore[arg-type]
    )


def test_two_runners_race_for_one_run(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    """While runner A drives the run, runner B is refused with who drives it; once A
    is gone, B takes the run over and finishes it."""
    a = PostgresStore(postgres_url, owner="runner-a", env=postgres_server.env())
    b = PostgresStore(postgres_url, owner="runner-b", env=postgres_server.env())
    try:

        async def a_starts() -> str:
            rollout = runner(a, tmp_path)
            run_id = await rollout.start()
            state = await rollout.begin_phase(rollout.plan.phases[0])
            await rollout.judge_checkpoint(state, rollout.plan.phases[0].checkpoints[0])
            rollout.lease.stop_renewing()
            return run_id

        run_id = asyncio.run(a_starts())
        with pytest.raises(StoreError, match=f"run {run_id} is driven by runner-a"):
            runner(b, tmp_path).run_sync()
        a.close()  # runner A goes away: its lease is released
        result = runner(b, tmp_path).run_sync()
        assert RunOutcome.ADVANCED == result.outcome
        assert run_id == result.run_id
        kinds = [e.kind for e in b.events(run_id)]
        assert 1 == kinds.count("run_started")
        assert 1 == kinds.count("resumed")
    finally:
        a.close()
        b.close()


def test_an_expired_lease_is_taken_over_and_the_old_runner_is_fenced(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    """A runner that stops renewing loses the run when its lease expires; the new
    runner takes it over, and the old one's next write is refused."""
    a = PostgresStore(
        postgres_url, owner="runner-a", env=postgres_server.env(), lease=timedelta(seconds=1)
    )
    b = PostgresStore(postgres_url, owner="runner-b", env=postgres_server.env())
    try:
        stale = runner(a, tmp_path)

        async def a_starts() -> str:
            run_id = await stale.start()
            stale.lease.stop_renewing()
            return run_id

        run_id = asyncio.run(a_starts())
        result = runner(b, tmp_path, lease_wait=timedelta(seconds=10)).run_sync()
        assert RunOutcome.ADVANCED == result.outcome
        assert run_id == result.run_id
        with pytest.raises(StoreError, match="fenced"):
            stale.ctx.journal(EventKind.DECISION, data={"action": "advance"})
    finally:
        a.close()
        b.close()
