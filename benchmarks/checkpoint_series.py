"""Rehearsal time of a long checkpoint series: finding the next checkpoint is O(1).

Issue 12 measured a series of 2,160 checkpoints at 1.1 s and 4,320 at 2.4 s (the next
checkpoint was found with ``tuple.index``: quadratic). Every checkpoint is judged and
journaled whole, so time should grow linearly with the count; a watch (not a series)
is the way to look every few seconds.

    .venv/bin/python benchmarks/checkpoint_series.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import gatekeeper
from gatekeeper._rehearsal import rehearsal

PLAN = """
[plan]
name = "series"
[sources.s]
type = "static"
[metrics.m]
source = "s"
[traffic]
type = "memory"
[[phases]]
name = "full"
traffic = 100
checkpoints = {{ every = "5s", until = "{until}" }}
gate = ["m < 1"]
"""


def timed(count: int, rounds: int = 3) -> list[float]:
    plan = gatekeeper.plan_from_text(PLAN.format(until=f"{count * 5}s"))
    with tempfile.TemporaryDirectory() as directory:
        recording = Path(directory) / "m.csv"
        recording.write_text("at,metric,value\n0,m,0.5\n")
        times = []
        for _ in range(rounds):
            began = time.perf_counter()
            result = rehearsal(plan, recording).run_sync()
            times.append(time.perf_counter() - began)
            assert result.ok, result.reason
    return times


def main() -> None:
    print("checkpoints  median s  per checkpoint")
    for count in (1_080, 2_160, 4_320, 8_640):
        times = timed(count)
        median = statistics.median(times)
        print(f"{count:>11,}  {median:8.2f}  {median / count * 1e6:8.0f} µs")


if __name__ == "__main__":
    main()
