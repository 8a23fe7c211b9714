"""When a phase may start, or its go/no-go be asked: a time of day in the plan's zone
(``"14:00"``, ``"+1d 16:00"``) or an absolute moment, resolved through the zone's
transitions by :func:`gatekeeper._calendar.resolve_local`."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs

from ._calendar import _aware, _utc, resolve_local

__all__ = ["StartAt", "ask_moment"]


@attrs.frozen(kw_only=True)
class StartAt:
    """When a phase may start (or an approval is asked): a wall-clock ``time_of_day``
    in the plan's zone, ``days_later`` calendar days after the day the phase becomes
    ready, or an absolute ``moment``."""

    time_of_day: time | None = None
    days_later: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    moment: datetime | None = attrs.field(default=None, validator=attrs.validators.optional(_aware))

    def __attrs_post_init__(self) -> None:
        if (self.time_of_day is None) == (self.moment is None):
            raise ValueError("StartAt needs exactly one of time_of_day and moment")
        if self.moment is not None and self.days_later:
            raise ValueError("days_later goes with a time of day, not a moment")

    def _on(self, day: date, tz: ZoneInfo) -> datetime:
        assert self.time_of_day is not None
        return resolve_local(datetime.combine(day, self.time_of_day.replace(tzinfo=None)), tz)

    def next_after(self, at: datetime, tz: ZoneInfo) -> datetime:
        """The start for a phase ready at ``at``: never before ``at`` (a phase ready at
        exactly 14:00 starts at once for ``"14:00"``); an absolute moment already past
        is ``at``. A time of day is its first occurrence on or after the ready day
        (plus ``days_later``) that is not before ``at``."""
        at = _utc(at)
        if self.moment is not None:
            return max(at, _utc(self.moment))
        day = at.astimezone(tz).date() + timedelta(days=self.days_later)
        while True:
            start = self._on(day, tz)
            if start >= at:
                return start
            day += timedelta(days=1)

    def last_at_or_before(self, until: datetime, tz: ZoneInfo) -> datetime:
        """The latest occurrence at or before ``until`` (for ``ask_at``, whose deadline
        is the phase's start); an absolute moment after ``until`` is ``until``. Not
        for ``days_later``: a go/no-go is asked before its start, not days after."""
        until = _utc(until)
        if self.days_later:
            raise ValueError("last_at_or_before has no meaning for a '+Nd' time")
        if self.moment is not None:
            return min(until, _utc(self.moment))
        day = until.astimezone(tz).date()
        while True:
            moment = self._on(day, tz)
            if moment <= until:
                return moment
            day -= timedelta(days=1)

    def __str__(self) -> str:
        if self.moment is not None:
            return self.moment.isoformat()
        assert self.time_of_day is not None
        clock = self.time_of_day.strftime("%H:%M")
        return f"+{self.days_later}d {clock}" if self.days_later else clock


def ask_moment(ask_at: StartAt, *, ready: datetime, start: datetime, tz: ZoneInfo) -> datetime:
    """When to ask a go/no-go whose answer is due at ``start``: the last ``ask_at`` at
    or before ``start``, or at once when the phase became ready after it."""
    ready, start = _utc(ready, "ready"), _utc(start, "start")
    return min(start, max(ready, ask_at.last_at_or_before(start, tz)))
