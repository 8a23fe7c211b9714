"""A rollout that can be killed at any moment and run again: the kill test's target.

``python tests/crashrun.py DIR`` runs (or resumes) the rollout whose journal is
``DIR/journal.sqlite3`` and whose balancer is the file ``DIR/split.json``, on a
simulated clock, against metrics that depend only on time. It exits 0/1/3 like the
CLI once the run ends. Every real traffic change is recorded in the balancer file itself
(``history``), so a kill test can check from the outside that no change was
applied twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gatekeeper
from gatekeeper import Measurement, Query
from gatekeeper.store.sqlite import SQLiteStore
from gatekeeper.traffic.file import FileBackend

START = datetime(2026, 5, 1, tzinfo=UTC)

PLAN = {
    "plan": {"name": "crash"},
    "sources": {"s": {"type": "static"}},
    "metrics": {
        "error_rate": {"source": "s", "numerator": "errors", "denominator": "requests"},
        "latency": {"source": "s", "unit": "s"},
    },
    "policy": {"recheck_interval": "2m"},
    "phases": [
        {"name": "canary", "traffic": 1, "checkpoints": ["5m", "10m"], "gate": ["error_rate < 1%"]},
        {
            "name": "ramp",
            "steps": [
                {"traffic": 5, "checkpoints": ["5m"]},
                {"traffic": 10, "checkpoints": ["5m", "10m", "20m"]},
            ],
            "approval": "go/no-go",
            "gate": [
                "error_rate < 1%",
                "latency < 200ms",
                "error_rate canary <= baseline * 2",
            ],
        },
        {
            "name": "full",
            "traffic": 100,
            "checkpoints": ["10m", "20m"],
            "gate": ["latency < 200ms"],
        },
    ],
}


class Metrics:
    """Cumulative counts and a latency that depend only on the query's moment; the
    latency goes missing for a while in the ramp (holds) and the canary's errors
    climb in the 'bad' variant."""

    def __init__(self, bad: bool, delay: float) -> None:
        self.bad = bad
        self.delay = delay

    def query(self, query: Query) -> Measurement:
        time.sleep(self.delay)  # a real source takes time: room for a kill
        minutes = (query.at - START).total_seconds() / 60
        window = query.window.total_seconds() / 60
        if query.metric == "latency":
            value = None if 24 <= minutes < 28 else 0.05
            return Measurement(metric="latency", at=query.at, value=value, variant=query.variant)
        share = 0.1 if query.variant == "canary" else 0.9
        requests = 30000.0 * share * window
        rate = 0.002
        if self.bad and query.variant == "canary" and minutes > 30:
            rate = 0.03
        value = requests if query.text == "requests" else round(requests * rate)
        return Measurement(metric=query.metric, at=query.at, value=value, variant=query.variant)


class LoggedFile(FileBackend):
    """The file balancer, keeping every change it really made inside the same file,
    written by the same atomic rename: a kill can never separate a change from its
    record (a log beside it could miss or double an entry)."""

    def _write(self, canary: float) -> None:
        history = history_of(self.path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump({"canary": canary, "history": [*history, canary]}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(self.path)


def history_of(path: Path) -> list[float]:
    """Every change the balancer file went through, in order."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    return [float(x) for x in data.get("history", [])]


def rollout(
    directory: Path,
    store: gatekeeper.Store,
    *,
    bad: bool = False,
    delay: float = 0.0,
    plan: gatekeeper.Plan | None = None,
    **options: Any,
) -> gatekeeper.Rollout:
    """The crash plan's rollout over ``directory``'s balancer file and ``store``."""
    return gatekeeper.Rollout(
        plan or gatekeeper.Plan.from_mapping(PLAN),
        sources={"s": Metrics(bad, delay)},
        traffic=LoggedFile(directory / "split.json"),
        clock=gatekeeper.SimulatedClock(START),
        store=store,
        plugins=gatekeeper.Plugins(load_entry_points=False),
        env={"GATEKEEPER_APPROVE": "ramp=ci"},
        **options,
    )


def run(directory: Path, *, bad: bool = False, delay: float = 0.0) -> gatekeeper.RunResult:
    store = SQLiteStore(directory / "journal.sqlite3", lease=timedelta(seconds=2))
    try:
        return asyncio.run(rollout(directory, store, bad=bad, delay=delay).run())
    finally:
        store.close()


if __name__ == "__main__":
    target = Path(sys.argv[1])
    result = run(
        target, bad="--bad" in sys.argv, delay=float(os.environ.get("CRASHRUN_DELAY", "0.002"))
    )
    sys.exit(result.exit_code)
