"""The journal's write cost per checkpoint, SQLite (synchronous=FULL) and PostgreSQL (fsync on).

One checkpoint journals 10 measurements, 5 verdicts and 1 decision: 16 appends, each its
own committed transaction, as the engine writes them. PostgreSQL runs in a throwaway
cluster with ``fsync=on`` and ``synchronous_commit=on``, and the runner holds a lease,
so every append also checks its fencing token.

    .venv/bin/python benchmarks/journal_write.py [--checkpoints 100] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gatekeeper._protocols import Event
from gatekeeper.store.sqlite import SQLiteStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from realservers.postgres import running_postgres

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def checkpoint_events(n: int) -> list[Event]:
    """What the engine appends at one checkpoint."""
    at = T0 + timedelta(minutes=15 * n)
    measurements = [
        Event(
            kind="measurement",
            at=at,
            phase="ramp",
            checkpoint=f"{15 * n}m",
            data={"metric": f"m{i}", "variant": "canary", "value": 0.001 * i, "samples": 1200},
        )
        for i in range(10)
    ]
    verdicts = [
        Event(
            kind="verdict",
            at=at,
            phase="ramp",
            checkpoint=f"{15 * n}m",
            data={"criterion": f"c{i}", "outcome": "pass", "observed": 0.001 * i, "bound": 0.005},
        )
        for i in range(5)
    ]
    decision = Event(
        kind="decision", at=at, phase="ramp", checkpoint=f"{15 * n}m", data={"action": "continue"}
    )
    return [*measurements, *verdicts, decision]


def measure(append: Callable[[Event], int], checkpoints: int) -> list[float]:
    """Milliseconds per checkpoint (all 16 appends), one sample per checkpoint."""
    samples = []
    for n in range(checkpoints):
        batch = checkpoint_events(n)
        start = time.perf_counter()
        for event in batch:
            append(event)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(
        f"{name:<34} checkpoints={len(samples):<4} mean={statistics.fmean(samples):7.2f} ms"
        f"  p95={p95:7.2f} ms  per append={statistics.fmean(samples) / 16:6.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite file goes")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(dir=args.dir) as tmp,
        SQLiteStore(Path(tmp) / "bench.db") as store,
    ):
        run = store.create_run(plan="bench", plan_digest="d", started_at=T0)
        store.acquire(run)
        report(
            "sqlite (WAL, synchronous=FULL)",
            measure(lambda e: store.append(run, e), args.checkpoints),
        )

    with running_postgres(fsync=True) as server:
        url = server.create_database()
        from gatekeeper.store.postgres import PostgresStore  # noqa: PLC0415 - psycopg lazily

        with PostgresStore(url, env=server.env()) as pg:
            run = pg.create_run(plan="bench", plan_digest="d", started_at=T0)
            pg.acquire(run)
            report(
                "postgresql 15 (fsync=on, leased)",
                measure(lambda e: pg.append(run, e), args.checkpoints),
            )


if __name__ == "__main__":
    main()
