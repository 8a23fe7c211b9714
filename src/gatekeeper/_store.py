"""The in-memory journal; durable stores implement the same :class:`Store` protocol."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import datetime

import attrs

from ._protocols import Event, RunInfo
from .exceptions import StoreError

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps every run's journal in memory: for tests, rehearsals and embedding."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunInfo] = {}
        self._events: dict[str, list[Event]] = {}

    def create_run(self, *, plan: str, plan_digest: str, started_at: datetime) -> str:
        run_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._runs[run_id] = RunInfo(
                run_id=run_id, plan=plan, plan_digest=plan_digest, started_at=started_at
            )
            self._events[run_id] = []
        return run_id

    def append(self, run_id: str, event: Event, *, fenced: bool = True) -> int:
        """Append ``event``; ``fenced`` is accepted for the operator channel (one
        process, no leases: nothing to fence)."""
        with self._lock:
            if run_id not in self._events:
                raise StoreError(f"unknown run {run_id!r}")
            journal = self._events[run_id]
            seq = len(journal) + 1
            journal.append(attrs.evolve(event, seq=seq))
            return seq

    def events(self, run_id: str, *, after: int = 0) -> Sequence[Event]:
        """The run's events in order; only those with ``seq > after`` when given."""
        with self._lock:
            if run_id not in self._events:
                raise StoreError(f"unknown run {run_id!r}")
            return tuple(self._events[run_id][after:])

    def runs(self) -> Sequence[RunInfo]:
        with self._lock:
            return tuple(self._runs.values())

    def set_status(self, run_id: str, status: str) -> None:
        with self._lock:
            if run_id not in self._runs:
                raise StoreError(f"unknown run {run_id!r}")
            self._runs[run_id] = attrs.evolve(self._runs[run_id], status=status)

    def close(self) -> None:
        """Nothing to release; here so every store can be closed the same way."""
