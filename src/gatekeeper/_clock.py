"""Clocks: the real one, and a simulated one that jumps instead of sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

__all__ = ["SimulatedClock", "SystemClock"]


class SystemClock:
    """Wall-clock time (UTC); ``sleep_until`` really waits."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        # Sleep in bounded slices so a changed system clock or a long wait cannot
        # overshoot by more than a minute.
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 60.0))


class SimulatedClock:
    """A clock that moves only when asked: ``sleep_until`` jumps to the moment.

    A four-hour ramp runs in milliseconds. Time never goes backwards.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs an aware datetime (with a timezone)")
        self._now = start

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        self._now = max(self._now, when)
        # Let other tasks run, as a real sleep would.
        await asyncio.sleep(0)

    def advance_to(self, when: datetime) -> None:
        """Jump forward (never back) without awaiting."""
        self._now = max(self._now, when)

    def __repr__(self) -> str:
        return f"SimulatedClock({self._now.isoformat()})"
