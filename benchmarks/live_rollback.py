"""Time from ``gatekeeper rollback RUN`` to the canary at weight 0, with a live runner.

    .venv/bin/python benchmarks/live_rollback.py [--tries 20]

Starts a real HAProxy in front of two tiny upstreams on 127.0.0.1 (the test
fixtures' code). Each try starts ``gatekeeper run`` on a plan whose canary phase
waits 10 minutes for its checkpoint, waits until the canary has weight, then runs
``gatekeeper rollback RUN`` and polls HAProxy's runtime API every 10 ms until the
canary's weight is 0. Prints each try and the median / max in seconds. The runner
reads the journal about once a second, so the figure is bounded by that poll plus
one balancer write. Run by hand, not in tests.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gatekeeper.store.sqlite import SQLiteStore
from realservers import wait_until
from realservers.haproxy import HAProxyLauncher, HAProxyServer, start_upstreams

PLAN = """
[plan]
name = "live-rollback"
[sources.s]
type = "static"
values = {{ error_rate = 0.001 }}
[metrics.error_rate]
source = "s"
[traffic]
type = "haproxy"
socket = "{socket}"
backend = "app"
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["10m"]
gate = ["error_rate < 1%"]
"""


def one_try(server: HAProxyServer, directory: Path) -> float:
    (directory / "gates.toml").write_text(PLAN.format(socket=server.socket_path))
    runner = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "run", "gates.toml"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: server.weight() > 0, timeout=30, interval=0.01)
        store = SQLiteStore(directory / "gates.journal.sqlite3")
        try:
            run_id = store.runs()[-1].run_id
        finally:
            store.close()
        started = time.monotonic()
        rollback = subprocess.Popen(  # noqa: S603 - our own command, a run id we read
            [sys.executable, "-m", "gatekeeper", "rollback", run_id, "--by", "bench"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: server.weight() == 0, timeout=30, interval=0.01)
        elapsed = time.monotonic() - started
        rollback.wait(timeout=60)
        runner.wait(timeout=60)
        return elapsed
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tries", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="live-rollback-"))
    upstreams = start_upstreams()
    launcher = HAProxyLauncher(root)
    try:
        server = launcher.start(upstreams)
        times = []
        for index in range(args.tries):
            directory = root / f"try-{index}"
            directory.mkdir()
            elapsed = one_try(server, directory)
            times.append(elapsed)
            print(f"try {index + 1:>2}: {elapsed:.2f} s")
        print(
            f"rollback → canary weight 0 with a live runner, {len(times)} tries: "
            f"median {statistics.median(times):.2f} s, max {max(times):.2f} s"
        )
    finally:
        launcher.stop_all()
        upstreams.stop()


if __name__ == "__main__":
    main()
