"""Wall time to rehearse the whole reference plan, and the import time of gatekeeper.

Run: .venv/bin/python benchmarks/rehearsal.py
Targets (issue 2): rehearsal < 0.5 s for every checkpoint of the plan's simulated
schedule (its calendar's waits included); ``import gatekeeper`` < 100 ms.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gatekeeper
from gatekeeper._rehearsal import REHEARSAL_ORIGIN

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
    imports = import_times()
    print("import gatekeeper (-X importtime, cumulative):")
    print(
        f"  median {statistics.median(imports) * 1000:.1f} ms, "
        f"min {min(imports) * 1000:.1f} ms over {len(imports)} runs"
    )


if __name__ == "__main__":
    main()
