"""Kept for imports by path: the engine lives in :mod:`gatekeeper._run`."""

from ._run import (
    PhaseState,
    Rollout,
    build_sources,
    build_traffic,
    call,
    default_approver,
    plugin_context,
)
from ._run.events import measurement_data, verdict_data
from ._run.judging import summarize

__all__ = [
    "PhaseState",
    "Rollout",
    "build_sources",
    "build_traffic",
    "call",
    "default_approver",
    "measurement_data",
    "plugin_context",
    "summarize",
    "verdict_data",
]
