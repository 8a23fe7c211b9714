"""Wall time to rehearse the whole reference plan, and the import time of gatekeeper.

Run: .venv/bin/python benchmarks/rehearsal.py
Targets: issue 12 -- the reference plan, its ramp and rollout watched every 5 s (about
31,000 looks), rehearsed by ``gatekeeper rehearse`` as a whole process in < 3 s,
printing < 2,000 lines, its journal < 5 MB; ``import gatekeeper`` < 100 ms.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gatekeeper
from gatekeeper._rehearsal import REHEARSAL_ORIGIN, rehearsal
from gatekeeper._run import watch
from gatekeeper.store.sqlite import SQLiteStore

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"


def rehearsal_times(rounds: int = 20) -> list[float]:
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    recording = gatekeeper.Recording.load(EXAMPLE / "healthy.csv")
    plugins = gatekeeper.Plugins(load_entry_points=False)
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        result = gatekeeper.rehearse(plan, recording, plugins=plugins)
        times.append(time.perf_counter() - began)
        assert result.ok, result.reason
    return times


def process_times(rounds: int = 5) -> tuple[list[float], int]:
    """``gatekeeper rehearse`` as a whole process: wall times and lines printed."""
    gatekeeper_cli = Path(sys.executable).with_name("gatekeeper")
    times, lines = [], 0
    for _ in range(rounds):
        began = time.perf_counter()
        done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
            [str(gatekeeper_cli), "rehearse", "gates.toml", "--metrics", "healthy.csv"],
            cwd=EXAMPLE,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - began)
        lines = len((done.stdout + done.stderr).splitlines())
    return times, lines


def journal_size() -> tuple[int, int, int]:
    """(watch looks, journal events, SQLite journal bytes) of one rehearsal."""
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    looks = 0
    original = watch.Watcher.look

    async def counted(self: watch.Watcher, at: object) -> object:
        nonlocal looks
        looks += 1
        return await original(self, at)  # type: ignore[arg-type]

    watch.Watcher.look = counted  # type: ignore[assignment, method-assign]
    try:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "journal.sqlite3"
            store = SQLiteStore(path)
            rollout = rehearsal(plan, EXAMPLE / "healthy.csv", store=store)
            result = rollout.run_sync()
            assert result.ok, result.reason
            events = len(store.events(rollout.run_id))
            store.close()
            size = sum(p.stat().st_size for p in Path(directory).iterdir())
    finally:
        watch.Watcher.look = original  # type: ignore[method-assign]
    return looks, events, size


def import_times(rounds: int = 10) -> list[float]:
    """Cumulative import time of ``gatekeeper`` from ``-X importtime`` (microseconds)."""
    out = []
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import gatekeeper"],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| gatekeeper$", line)
            if match:
                out.append(int(match.group(1)) / 1e6)
    return out


def main() -> None:
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    checkpoints = sum(len(p.checkpoints) for p in plan.phases)
    # The schedule as the plan's calendar keeps it, from the rehearsal's own origin.
    last = plan.phases[-1]
    span = plan.phase_offset(last.name, REHEARSAL_ORIGIN) + last.duration
    times = rehearsal_times()
    print(f"rehearsal of the reference plan ({checkpoints} checkpoints, {span} simulated):")
    print(
        f"  median {statistics.median(times) * 1000:.1f} ms, "
        f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {len(times)} runs"
    )
    wall, lines = process_times()
    looks, events, size = journal_size()
    print(f"gatekeeper rehearse gates.toml --metrics healthy.csv ({looks:,} watch looks):")
    print(
        f"  wall median {statistics.median(wall):.2f} s, min {min(wall):.2f} s, "
        f"max {max(wall):.2f} s over {len(wall)} runs; {lines} lines printed"
    )
    print(f"  journal: {events:,} events, {size / 1e6:.2f} MB (SQLite, WAL included)")
    imports = import_times()
    print("import gatekeeper (-X importtime, cumulative):")
    print(
        f"  median {statistics.median(imports) * 1000:.1f} ms, "
        f"min {min(imports) * 1000:.1f} ms over {len(imports)} runs"
    )


if __name__ == "__main__":
    main()
