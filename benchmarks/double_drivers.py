"""How many runs do N ``gatekeeper run`` processes started at once drive?

    .venv/bin/python benchmarks/double_drivers.py [--runners 200] [--rounds 1] [--store URL]

Each round writes a three-phase plan (file backend, static metrics, 1-second
checkpoints) into a fresh folder, starts ``--runners`` processes of
``gatekeeper run gates.toml`` at once against one journal (SQLite next to the plan,
or ``--store`` such as a PostgreSQL URL), waits for all, and counts: runs in the
journal, ``run_started`` events, and whether the traffic changes are exactly one
run's (5 → 25 → 100). A double driver is a round with more than one run or any
other sequence. Prints each round and the total. Run by hand, not in tests.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gatekeeper.store import open_store

PLAN = """
[plan]
name = "drivers"
[sources.s]
type = "static"
values = { error_rate = 0.001 }
[metrics.error_rate]
source = "s"
[traffic]
type = "file"
path = "split.json"
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
[[phases]]
name = "ramp"
traffic = 25
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""


def one_round(
    directory: Path, runners: int, store: str | None
) -> tuple[int, int, list[float], dict[int, int]]:
    (directory / "gates.toml").write_text(PLAN)
    extra = ["--store", store] if store else []
    processes = [
        subprocess.Popen(  # noqa: S603 - our own command
            [sys.executable, "-m", "gatekeeper", "run", "gates.toml", *extra],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(runners)
    ]
    codes = collections.Counter(p.wait(timeout=600) for p in processes)
    journal = open_store(store or directory / "gates.journal.sqlite3")
    try:
        runs = [r for r in journal.runs() if r.plan == "drivers"]
        started = 0
        intents: list[float] = []
        for run in runs:
            events = journal.events(run.run_id)
            started += sum(1 for e in events if e.kind == "run_started")
            intents += [float(e.data["canary"]) for e in events if e.kind == "traffic_intent"]
    finally:
        journal.close()
    return len(runs), started, intents, dict(codes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runners", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--store", help="a shared journal URL (default: SQLite per round)")
    args = parser.parse_args()
    doubles = 0
    for index in range(args.rounds):
        directory = Path(tempfile.mkdtemp(prefix="drivers-"))
        started_at = time.monotonic()
        runs, started, intents, codes = one_round(directory, args.runners, args.store)
        double = runs != 1 or started != 1 or intents != [5.0, 25.0, 100.0]
        doubles += double
        print(
            f"round {index + 1}: {args.runners} runners in {time.monotonic() - started_at:.1f} s: "
            f"{runs} run(s), {started} run_started, intents {intents}, exit codes {codes}"
            + (" DOUBLE DRIVER" if double else "")
        )
    print(f"{args.rounds} round(s) of {args.runners} simultaneous starts: {doubles} double drivers")


if __name__ == "__main__":
    main()
