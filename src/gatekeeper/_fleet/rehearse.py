"""Rehearsing a fleet: every target on its own simulated clock, against its part
of a recording, bakes included.

A fleet recording is the usual CSV with one more column, ``target``: a row names
the target it belongs to, and a row with an empty ``target`` belongs to every
target. ``at`` counts from the start of the *fleet* run, so one file tells the
whole timeline (a region of the third wave reads its rows from hours in). One
recording per target (a mapping target -> file) works as well.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from .._approval import RecordingApprover
from .._clock import SimulatedClock
from .._limits import MAX_RECORDING_BYTES, decode_utf8, read_bounded
from .._plugins import Plugins
from .._protocols import Store
from .._recording import Recording
from .._rehearsal import REHEARSAL_ORIGIN, _check_recording
from .._store import MemoryStore
from ..exceptions import PlanError
from ..sources.replay import ReplaySource
from ..traffic.memory import MemoryBackend
from .model import Fleet
from .orchestrate import FleetResult, FleetRun, TargetParts

__all__ = ["fleet_recordings", "fleet_rehearsal", "rehearse_fleet_plan"]


def fleet_recordings(
    fleet: Fleet, recording: str | Path | Mapping[str, str | Path]
) -> dict[str, Recording]:
    """Each target's recording: from one file with a ``target`` column, or one file each."""
    if isinstance(recording, Mapping):
        missing = [t for t in fleet.targets if t not in recording]
        if missing:
            raise PlanError(f"no recording for target(s) {', '.join(missing)}")
        return {t: Recording.load(recording[t]) for t in fleet.targets}
    name = str(recording)
    text = decode_utf8(
        read_bounded(Path(recording), MAX_RECORDING_BYTES, "recording"), file=name, what="recording"
    )
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or "target" not in rows[0]:
        shared = Recording.parse(text, name=name)
        return dict.fromkeys(fleet.targets, shared)
    header = rows[0]
    column = header.index("target")
    rest = [c for i, c in enumerate(header) if i != column]
    parts: dict[str, list[list[str]]] = {t: [rest] for t in fleet.targets}
    for line, cells in enumerate(rows[1:], start=2):
        if not cells or not any(cells) or cells[0].lstrip().startswith("#"):
            continue
        owner = cells[column] if column < len(cells) else ""
        if owner and owner not in fleet.targets:
            raise PlanError(
                f"target: unknown target {owner!r} (known: {', '.join(fleet.targets)})",
                file=name,
                line=line,
            )
        kept = [c for i, c in enumerate(cells) if i != column]
        for target in [owner] if owner else list(fleet.targets):
            parts[target].append(kept)
    out: dict[str, Recording] = {}
    for target, lines in parts.items():
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(lines)
        out[target] = Recording.parse(buffer.getvalue(), name=f"{name}[{target}]")
    return out


def fleet_rehearsal(
    fleet: Fleet,
    recording: str | Path | Mapping[str, str | Path],
    *,
    store: Store | None = None,
    plugins: Plugins | None = None,
    origin: datetime = REHEARSAL_ORIGIN,
    restart: bool = False,
) -> tuple[FleetRun, dict[str, MemoryBackend]]:
    """A :class:`FleetRun` over simulated clocks, replayed sources and memory
    balancers (returned too, so a caller can read where each target ended)."""
    recordings = fleet_recordings(fleet, recording)
    for target, found in recordings.items():
        _check_recording(fleet.target_plan(target), found)
    plugins = plugins or Plugins(load_entry_points=False)
    backends = {t: MemoryBackend(0.0) for t in fleet.targets}

    def parts(target: str) -> TargetParts:
        found = recordings[target]
        sources = {name: ReplaySource(name, found, origin) for name in fleet.plan.sources}
        return TargetParts(
            traffic=backends[target],
            sources=sources,
            options={
                "approver": RecordingApprover(found),
                "rehearsal": True,
                "origin": origin,
                "plugins": plugins,
            },
        )

    run = FleetRun(
        fleet,
        store=store or MemoryStore(),
        parts=parts,
        clock=SimulatedClock(origin),
        clock_at=SimulatedClock,
        restart=restart,
        options={"plugins": plugins},
    )
    return run, backends


async def rehearse_fleet_plan(
    fleet: Fleet,
    recording: str | Path | Mapping[str, str | Path],
    *,
    store: Store | None = None,
    plugins: Plugins | None = None,
) -> FleetResult:
    """Rehearse the whole fleet against a recording (in-memory journal by default)."""
    run, _ = fleet_rehearsal(fleet, recording, store=store, plugins=plugins)
    return await run.run()
