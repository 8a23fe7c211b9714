"""Kill the fleet crash process with SIGKILL at random moments, run it again each
time, until it ends; then compare it with a fleet run never killed. Shared by the
fleet kill test and benchmarks/fleet_kill_resume.py."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs

TARGET = Path(__file__).with_name("fleetcrashrun.py")
_REFERENCE: dict[bool, dict[str, Any]] = {}


def _fleet_status(directory: Path) -> str | None:
    from gatekeeper.store.sqlite import SQLiteStore  # noqa: PLC0415

    path = directory / "journal.sqlite3"
    if not path.exists():
        return None
    store = SQLiteStore(path)
    try:
        runs = [r for r in store.runs() if r.plan.endswith("@fleet")]
        return runs[-1].status if runs else None
    finally:
        store.close()


@attrs.frozen
class KillReport:
    kills: int
    resumes: int
    exit_code: int


def kill_until_done(
    directory: Path, *, bad: bool, kills: int, rng: random.Random, delay: float = 0.004
) -> KillReport:
    """Start the fleet; kill it ``kills`` times at random points; let the last one end."""
    env = dict(os.environ, CRASHRUN_DELAY=str(delay), PYTHONPATH=str(TARGET.parent))
    args = [sys.executable, str(TARGET), str(directory)] + (["--bad"] if bad else [])
    done_kills = starts = 0
    while True:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        starts += 1
        if done_kills < kills:
            try:
                proc.wait(timeout=rng.uniform(0.1, 1.2))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=10)
                done_kills += 1
                status = _fleet_status(directory)
                if status in ("advanced", "rolled back"):
                    return KillReport(done_kills, starts - 1, 0 if status == "advanced" else 1)
                continue
        else:
            proc.wait(timeout=120)
        _, err = proc.communicate(timeout=10)
        if proc.returncode not in (0, 1, 3):
            raise RuntimeError(f"the fleet crashed by itself ({proc.returncode}): {err.decode()}")
        if done_kills >= kills or proc.returncode in (0, 1):
            return KillReport(done_kills, starts - 1, proc.returncode)


def outcome(directory: Path) -> dict[str, Any]:
    """What a fleet run left: each balancer's history, each target's runs and
    decisions, and the fleet journal's steps (kinds and their wave/target)."""
    from gatekeeper.store.sqlite import SQLiteStore  # noqa: PLC0415

    store = SQLiteStore(directory / "journal.sqlite3")
    try:
        runs = list(store.runs())
        targets: dict[str, Any] = {}
        fleet_steps: list[tuple[str, str]] = []
        for info in runs:
            events = store.events(info.run_id)
            if info.plan.endswith("@fleet"):
                fleet_steps = [
                    (e.kind, str(e.data.get("wave", e.data.get("target", ""))))
                    for e in events
                    if e.kind != "fleet_bake_checked"
                ]
                continue
            decisions = [
                (e.phase, e.checkpoint, str(e.data.get("action")))
                for e in events
                if e.kind == "decision"
            ]
            targets.setdefault(info.plan, []).append((info.status, decisions))
        histories = {}
        for path in sorted(directory.glob("split-*.json")):
            histories[path.stem] = json.loads(path.read_text())["history"]
        return {"targets": targets, "histories": histories, "fleet": fleet_steps}
    finally:
        store.close()


def reference(bad: bool) -> dict[str, Any]:
    """The fleet run never killed (computed once per variant)."""
    if bad not in _REFERENCE:
        sys.path.insert(0, str(TARGET.parent))
        import fleetcrashrun  # noqa: PLC0415

        directory = Path(tempfile.mkdtemp())
        result = fleetcrashrun.run(directory, bad=bad)
        assert (1 if bad else 0) == result.exit_code, result
        _REFERENCE[bad] = outcome(directory)
        asyncio.set_event_loop(None)
    return _REFERENCE[bad]
