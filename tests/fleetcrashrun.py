"""A three-target fleet that can be killed at any moment and run again: the fleet
kill test's target.

``python tests/fleetcrashrun.py DIR [--bad]`` runs (or resumes) the fleet whose
journal is ``DIR/journal.sqlite3`` and whose balancers are the files
``DIR/split-<target>.json`` (each keeps the history of every change really made),
on simulated clocks, against metrics that depend only on time. Three waves of one
target each, a 30m bake on requests; ``--bad``: the second wave's target fails in
its canary and ``on_fail = "rollback-all"`` takes the first one back. Exits 0/1/3.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import crashrun
import gatekeeper
from gatekeeper._fleet import Fleet, FleetResult, FleetRun, TargetParts, fleet_from_mapping
from gatekeeper.store.sqlite import SQLiteStore

TARGETS = ("a", "b", "c")


def fleet(directory: Path | None = None) -> Fleet:
    """The fleet; with ``directory``, each target's backend is its balancer file there
    (as ``gatekeeper rollback --target`` builds it), else ``memory`` (given at run)."""
    data: dict[str, Any] = dict(crashrun.PLAN)
    data["targets"] = {
        t: {
            "traffic": (
                {"type": "memory"}
                if directory is None
                else {"type": "file", "path": str(directory / f"split-{t}.json")}
            ),
            "args": {"region": t},
        }
        for t in TARGETS
    }
    data["waves"] = [
        {"name": f"w{i}", "targets": [t], "bake": {"for": "30m", "requests": 1000}}
        for i, t in enumerate(TARGETS, start=1)
    ]
    data["fleet"] = {"on_fail": "rollback-all", "requests": "error_rate"}
    return fleet_from_mapping(data)


def fleet_run(directory: Path, store: gatekeeper.Store, *, bad: bool, delay: float) -> FleetRun:
    def parts(target: str) -> TargetParts:
        return TargetParts(
            traffic=crashrun.LoggedFile(directory / f"split-{target}.json"),
            sources={"s": crashrun.Metrics(bad and target == "b", delay)},
        )

    return FleetRun(
        fleet(),
        store=store,
        parts=parts,
        clock=gatekeeper.SimulatedClock(crashrun.START),
        clock_at=gatekeeper.SimulatedClock,
        options={
            "plugins": gatekeeper.Plugins(load_entry_points=False),
            "env": {"GATEKEEPER_APPROVE": "ramp=ci"},
        },
    )


def run(directory: Path, *, bad: bool = False, delay: float = 0.0) -> FleetResult:
    store = SQLiteStore(directory / "journal.sqlite3", lease=timedelta(seconds=2))
    try:
        return asyncio.run(fleet_run(directory, store, bad=bad, delay=delay).run())
    finally:
        store.close()


if __name__ == "__main__":
    target = Path(sys.argv[1])
    result = run(
        target, bad="--bad" in sys.argv, delay=float(os.environ.get("CRASHRUN_DELAY", "0.002"))
    )
    sys.exit(result.exit_code)
