"""Waves: one plan rolled out target by target (regions, clusters, cells).

``[targets.*]``, ``[[waves]]`` and ``[fleet]`` in a plan file make it a fleet
plan (:func:`load_fleet`); :func:`run_fleet`, :func:`rehearse_fleet` and
:func:`fleet_status` are what the command line calls. See ``docs/waves.md``.
"""

from __future__ import annotations

from .commands import fleet_rollback, fleet_status, rehearse_fleet, run_fleet
from .journal import FleetEvent, FleetState, replay_fleet
from .load import fleet_from_mapping, fleet_from_text, is_fleet, load_fleet, load_plan_or_fleet
from .model import Bake, Fleet, FleetOnFail, FleetPolicy, Target, Wave, fleet_name, target_name
from .orchestrate import FleetResult, FleetRun, TargetParts
from .rehearse import fleet_recordings, fleet_rehearsal, rehearse_fleet_plan

__all__ = [
    "Bake",
    "Fleet",
    "FleetEvent",
    "FleetOnFail",
    "FleetPolicy",
    "FleetResult",
    "FleetRun",
    "FleetState",
    "Target",
    "TargetParts",
    "Wave",
    "fleet_from_mapping",
    "fleet_from_text",
    "fleet_name",
    "fleet_recordings",
    "fleet_rehearsal",
    "fleet_rollback",
    "fleet_status",
    "is_fleet",
    "load_fleet",
    "load_plan_or_fleet",
    "rehearse_fleet",
    "rehearse_fleet_plan",
    "replay_fleet",
    "run_fleet",
    "target_name",
]
