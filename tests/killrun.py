"""Kill the crash-plan process with SIGKILL at random moments, run it again each
time, until it ends; shared by the kill test and benchmarks/kill_resume.py."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import attrs

TARGET = Path(__file__).with_name("crashrun.py")


def _ended(directory: Path) -> int | None:
    """The exit code of the run if its journal says it ended, else ``None``."""
    from gatekeeper.store.sqlite import SQLiteStore  # noqa: PLC0415

    path = directory / "journal.sqlite3"
    if not path.exists():
        return None
    store = SQLiteStore(path)
    try:
        runs = store.runs()
        status = runs[-1].status if runs else ""
    finally:
        store.close()
    return {"advanced": 0, "rolled back": 1}.get(status)


@attrs.frozen
class KillReport:
    kills: int
    resumes: int
    exit_code: int


def kill_until_done(
    directory: Path, *, bad: bool, kills: int, rng: random.Random, delay: float = 0.004
) -> KillReport:
    """Start the run; kill it ``kills`` times at random points; let the last one end."""
    env = dict(os.environ, CRASHRUN_DELAY=str(delay), PYTHONPATH=str(TARGET.parent))
    args = [sys.executable, str(TARGET), str(directory)] + (["--bad"] if bad else [])
    done_kills = 0
    starts = 0
    while True:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        starts += 1
        if done_kills < kills:
            try:
                proc.wait(timeout=rng.uniform(0.15, 0.8))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=10)  # reaps it and closes the pipe
                done_kills += 1
                ended = _ended(directory)
                if ended is not None:  # killed after the run had ended: nothing to resume
                    return KillReport(kills=done_kills, resumes=starts - 1, exit_code=ended)
                continue
        else:
            proc.wait(timeout=120)
        _, err = proc.communicate(timeout=10)
        if proc.returncode not in (0, 1, 3):
            raise RuntimeError(
                f"the run crashed by itself ({proc.returncode}): {err.decode()[-2000:]}"
            )
        if done_kills >= kills or proc.returncode in (0, 1):
            return KillReport(kills=done_kills, resumes=starts - 1, exit_code=proc.returncode)
