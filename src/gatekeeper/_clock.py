"""Clocks: the real one, and a simulated one that jumps instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["SimulatedClock", "SystemClock"]


class SystemClock:
    """Real time (UTC), monotonic within a process; ``sleep_until`` really waits.

    The wall clock is read once, at construction; from then on time advances with
    the monotonic clock, so a wall-clock step (NTP, a VM resume, a hand ``date -s``)
    never compresses or skips a checkpoint: a phase's 30m checkpoint is 30 minutes
    of elapsed time after the phase began. Journal timestamps therefore drift from
    the wall clock by however much it was stepped during the run.
    """

    def __init__(
        self,
        *,
        wall: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._origin = (wall or _utcnow)()
        self._mono0 = monotonic()

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=self._monotonic() - self._mono0)

    async def sleep_until(self, when: datetime) -> None:
        # Bounded slices: a long wait re-reads the clock at least every minute.
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 60.0))


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
