"""The fleet's own journal: its events, and where a fleet run is, read back.

A fleet run is a run of the plan name ``"<plan>@fleet"`` in the same store as the
targets' runs (``"<plan>@<target>"``). Its events say which wave started when,
which target ended how, when a bake started, what a failure decided and which
rollback was confirmed; every one is written before the step it records is
taken as done, so a resumed fleet continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from .._protocols import Event

__all__ = ["FleetEvent", "FleetState", "replay_fleet"]


class FleetEvent:
    """The kinds of event a fleet run journals (plain strings in the store)."""

    STARTED = "fleet_started"
    RESUMED = "fleet_resumed"
    ENTRY_CHECKED = "fleet_entry_checked"
    WAVE_STARTED = "fleet_wave_started"
    TARGET_ENDED = "fleet_target_ended"
    BAKE_STARTED = "fleet_bake_started"
    BAKE_CHECKED = "fleet_bake_checked"
    WAVE_DONE = "fleet_wave_done"
    FAILED = "fleet_failed"
    ROLLBACK_ASKED = "fleet_rollback_asked"
    TARGET_ROLLED_BACK = "fleet_target_rolled_back"
    ENDED = "fleet_ended"


@attrs.define
class FleetState:
    """A fleet run as its journal tells it."""

    waves_started: dict[str, datetime] = attrs.field(factory=dict)
    ended_targets: dict[str, Mapping[str, Any]] = attrs.field(factory=dict)
    bakes: dict[str, datetime] = attrs.field(factory=dict)
    waves_done: set[str] = attrs.field(factory=set)
    failed: Mapping[str, Any] | None = None
    asked: set[str] = attrs.field(factory=set)
    rolled_back: dict[str, float] = attrs.field(factory=dict)
    ended: Mapping[str, Any] | None = None
    last_at: datetime | None = None
    started: bool = False


def replay_fleet(events: Iterable[Event]) -> FleetState:
    state = FleetState()
    for event in events:
        data = event.data
        state.last_at = event.at if state.last_at is None else max(state.last_at, event.at)
        if event.kind == FleetEvent.STARTED:
            state.started = True
        elif event.kind == FleetEvent.RESUMED:
            state.ended = None  # a held or interrupted fleet, run again
        elif event.kind == FleetEvent.WAVE_STARTED:
            state.waves_started[str(data["wave"])] = datetime.fromisoformat(str(data["at"]))
        elif event.kind == FleetEvent.TARGET_ENDED:
            state.ended_targets[str(data["target"])] = data
        elif event.kind == FleetEvent.BAKE_STARTED:
            state.bakes[str(data["wave"])] = datetime.fromisoformat(str(data["at"]))
        elif event.kind == FleetEvent.WAVE_DONE:
            state.waves_done.add(str(data["wave"]))
        elif event.kind == FleetEvent.ROLLBACK_ASKED:
            state.asked.add(str(data["target"]))
        elif event.kind == FleetEvent.FAILED:
            state.failed = data
        elif event.kind == FleetEvent.TARGET_ROLLED_BACK:
            state.rolled_back[str(data["target"])] = float(data["canary"])
        elif event.kind == FleetEvent.ENDED:
            state.ended = data
    return state
