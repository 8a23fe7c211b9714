"""Time as the plan says it: windows, freezes and start times in IANA time zones.

Pure arithmetic on aware datetimes: no I/O, no clock, no asyncio. The engine asks
"may I advance now?", "when may I next?" and "when does that stop?"; the answers come
from ``zoneinfo`` (with ``tzdata`` where the system has no zone data), never from
hand-made offset rules.

Wall-clock rules, the same everywhere in this module:

* A moment is *inside* a daily span when its wall-clock time in the span's zone is
  inside it. Across a spring-forward gap the span opens (or closes) at the first
  moment the clock reads a later time; across a fall-back overlap a wall-clock time
  happens twice and is inside both times.
* A wall-clock time that does not exist (in the spring gap) resolves to the end of the
  gap, the first moment the clock reads a later time; one that happens twice (in the
  fall overlap) resolves to its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import attrs

if TYPE_CHECKING:
    from ._calendar_start import StartAt

__all__ = [
    "ALL_DAY",
    "DAY_NAMES",
    "EVERY_DAY",
    "HORIZON",
    "UTC_ZONE",
    "AnyFreeze",
    "Calendar",
    "Freeze",
    "Hours",
    "WeeklyFreeze",
    "Window",
    "YearlyFreeze",
    "format_days",
    "resolve_local",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON = timedelta(days=400)
"""How far ahead :meth:`Calendar.next_open` and :meth:`Calendar.closes_at` look."""

_CHUNK = timedelta(days=7)
_STEP = timedelta(hours=3)  # no zone changes its offset twice within three hours
_SECOND = timedelta(seconds=1)
UTC_ZONE = ZoneInfo("UTC")


def _utc(at: datetime, what: str = "at") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime (with a time zone), got {at!r}")
    return at.astimezone(UTC)


def _aware(instance: object, attribute: attrs.Attribute[datetime], value: datetime) -> None:
    _utc(value, attribute.name)


# -- zones -------------------------------------------------------------------------


def _offset(tz: ZoneInfo, seconds: int) -> timedelta | None:
    return datetime.fromtimestamp(seconds, UTC).astimezone(tz).utcoffset()


def _first_with_new_offset(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The moment in (before, after] where ``tz``'s offset changes (zone data has whole
    seconds): ``before`` has the old offset, ``after`` the new one."""
    low = int(before.timestamp() // 1)
    high = -int(-after.timestamp() // 1)
    old = _offset(tz, low)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(tz, middle) == old:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every moment in [start, end) at which ``tz``'s wall clock jumps."""
    found: list[datetime] = []
    moment = start - _SECOND
    offset = moment.astimezone(tz).utcoffset()
    while moment < end:
        following = min(moment + _STEP, end)
        new = following.astimezone(tz).utcoffset()
        if new != offset:
            change = _first_with_new_offset(tz, moment, following)
            if start <= change < end:
                found.append(change)
        moment, offset = following, new
    return found


def resolve_local(wall: datetime, tz: ZoneInfo) -> datetime:
    """The moment (UTC) a naive wall-clock time happens in ``tz``.

    A time in the spring gap resolves to the end of the gap; a time in the fall
    overlap to its first occurrence.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    other = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _first_with_new_offset(tz, min(first, other), max(first, other))


def _both_folds(wall: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    # Candidates only: a time in a gap yields moments that are not edges, which the
    # callers filter by asking the predicate; the gap's real edge is a transition.
    return (
        wall.replace(tzinfo=tz, fold=0).astimezone(UTC),
        wall.replace(tzinfo=tz, fold=1).astimezone(UTC),
    )


def _dates(start: datetime, end: datetime, tz: ZoneInfo) -> Iterable[date]:
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


# -- days and hours ----------------------------------------------------------------


def format_days(days: Iterable[int]) -> str:
    """``(0, 1, 2, 3, 4)`` → ``"mon-fri"``, ``(0, 2, 4)`` → ``"mon,wed,fri"``."""
    parts: list[str] = []
    # Consecutive days share (day - position): one group per run.
    for _, run in groupby(enumerate(sorted(set(days))), key=lambda pair: pair[1] - pair[0]):
        names = [DAY_NAMES[day] for _, day in run]
        parts.extend([f"{names[0]}-{names[-1]}"] if len(names) >= 3 else names)
    return ",".join(parts)


def _check_days(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        not isinstance(value, tuple)
        or not value
        or list(value) != sorted(set(value))
        or not all(isinstance(day, int) and 0 <= day <= 6 for day in value)
    ):
        raise ValueError(f"{attribute.name} must be sorted distinct weekdays 0-6, got {value!r}")


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@attrs.frozen(kw_only=True)
class Hours:
    """A daily span of wall-clock time, in minutes after midnight: from ``start`` up
    to, not including, ``end``. ``end`` before ``start`` runs overnight into the next
    day; ``start=0, end=1440`` is the whole day."""

    start: int = attrs.field(validator=[attrs.validators.ge(0), attrs.validators.lt(1440)])
    end: int = attrs.field(validator=[attrs.validators.gt(0), attrs.validators.le(1440)])

    def __attrs_post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"hours {self} are empty; 00:00-24:00 is the whole day")

    @property
    def overnight(self) -> bool:
        return self.end < self.start

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


ALL_DAY = Hours(start=0, end=1440)
EVERY_DAY = tuple(range(7))


@attrs.frozen(kw_only=True)
class _Weekly:
    name: str
    days: tuple[int, ...] = attrs.field(default=EVERY_DAY, validator=_check_days)
    hours: Hours = ALL_DAY
    timezone: ZoneInfo | None = None

    def contains(self, at: datetime, tz: ZoneInfo) -> bool:
        local = at.astimezone(self.timezone or tz)
        # Boundaries are whole minutes, so the minute the clock shows decides.
        minute, weekday = local.hour * 60 + local.minute, local.weekday()
        start, end = self.hours.start, self.hours.end
        if not self.hours.overnight:
            return weekday in self.days and start <= minute < end
        # An overnight span belongs to the day it opens on: "fri 22:00-06:00" runs into
        # Saturday morning, and Monday 00:00-06:00 only follows a Sunday in `days`.
        return (weekday in self.days and minute >= start) or (
            (weekday - 1) % 7 in self.days and minute < end
        )

    def edges(self, start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
        zone = self.timezone or tz
        found: list[datetime] = []
        for day in _dates(start, end, zone):
            midnight = datetime.combine(day, time())
            for minutes in (self.hours.start, self.hours.end):
                found.extend(_both_folds(midnight + timedelta(minutes=minutes), zone))
        return found

    def describe(self, tz: ZoneInfo) -> str:
        when = "every day" if self.days == EVERY_DAY else format_days(self.days)
        noun = "window" if isinstance(self, Window) else "freeze"
        return f"{noun} {self.name} ({when} {self.hours} {(self.timezone or tz).key})"


@attrs.frozen(kw_only=True)
class Window(_Weekly):
    """Named hours in which a run may advance and raise traffic: ``days`` (Monday is
    0), daily ``hours``, and ``timezone`` (None: the calendar's). An overnight
    ``hours`` belongs to the day it opens on."""


@attrs.frozen(kw_only=True)
class WeeklyFreeze(_Weekly):
    """A freeze every week: the same ``days`` and ``hours`` shape as a :class:`Window`."""

    reason: str = ""


@attrs.frozen(kw_only=True)
class Freeze:
    """A one-off freeze: nothing advances from ``start`` up to, not including, ``end``."""

    name: str
    start: datetime = attrs.field(validator=_aware)
    end: datetime = attrs.field(validator=_aware)
    reason: str = ""

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"freeze {self.name}: end {self.end} is not after start {self.start}")

    def contains(self, at: datetime, tz: ZoneInfo) -> bool:
        return self.start <= at < self.end

    def edges(self, start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
        return [_utc(self.start), _utc(self.end)]

    def describe(self, tz: ZoneInfo) -> str:
        def show(moment: datetime) -> str:
            return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")

        return f"freeze {self.name} ({show(self.start)} to {show(self.end)})"


def _check_month_day(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or len(value) != 2:
        raise ValueError(f"{attribute.name} must be (month, day), got {value!r}")
    month, day = value
    if (month, day) == (2, 29):
        raise ValueError("02-29 is not a date every year; use 02-28 or 03-01")
    date(2001, month, day)  # ValueError for a day the month does not have


@attrs.frozen(kw_only=True)
class YearlyFreeze:
    """A freeze every year from local midnight of ``start`` (month, day) up to, not
    including, local midnight of ``end``; ``end`` before ``start`` wraps over New Year."""

    name: str
    start: tuple[int, int] = attrs.field(validator=_check_month_day)
    end: tuple[int, int] = attrs.field(validator=_check_month_day)
    timezone: ZoneInfo | None = None
    reason: str = ""

    def __attrs_post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"freeze {self.name}: from and to are the same day")

    def contains(self, at: datetime, tz: ZoneInfo) -> bool:
        local = at.astimezone(self.timezone or tz)
        today = (local.month, local.day)
        if self.start < self.end:
            return self.start <= today < self.end
        return today >= self.start or today < self.end

    def edges(self, start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
        zone = self.timezone or tz
        found: list[datetime] = []
        for year in range(start.astimezone(zone).year - 1, end.astimezone(zone).year + 2):
            for month, day in (self.start, self.end):
                found.extend(_both_folds(datetime(year, month, day), zone))
        return found

    def describe(self, tz: ZoneInfo) -> str:
        (m1, d1), (m2, d2) = self.start, self.end
        zone = (self.timezone or tz).key
        return f"freeze {self.name} (every year {m1:02d}-{d1:02d} to {m2:02d}-{d2:02d} {zone})"


AnyFreeze = Freeze | WeeklyFreeze | YearlyFreeze
_Rule = Window | Freeze | WeeklyFreeze | YearlyFreeze


def _unique_names(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    names = [item.name for item in value]
    if len(names) != len(set(names)):
        raise ValueError(f"{attribute.name}: a name is used twice in {names}")


@attrs.frozen(kw_only=True)
class Calendar:
    """When a plan may advance: its zone, named windows and freezes.

    ``window=None`` in the queries means "no window": only the freezes count.
    """

    timezone: ZoneInfo = attrs.field(factory=lambda: UTC_ZONE)
    windows: tuple[Window, ...] = attrs.field(default=(), validator=_unique_names)
    freezes: tuple[AnyFreeze, ...] = attrs.field(default=(), validator=_unique_names)

    def window(self, name: str) -> Window:
        for window in self.windows:
            if window.name == name:
                return window
        known = ", ".join(sorted(w.name for w in self.windows)) or "none"
        raise KeyError(f"unknown window {name!r} (known: {known})")

    def with_freeze(self, freeze: AnyFreeze) -> Calendar:
        """This calendar and one more freeze (an operator's, during an incident)."""
        return attrs.evolve(self, freezes=(*self.freezes, freeze))

    def _find(self, window: str | None) -> Window | None:
        return None if window is None else self.window(window)

    def _allowed(self, at: datetime, window: Window | None) -> bool:
        if window is not None and not window.contains(at, self.timezone):
            return False
        return not any(freeze.contains(at, self.timezone) for freeze in self.freezes)

    def _edges(self, window: Window | None, start: datetime, end: datetime) -> list[datetime]:
        rules: list[_Rule] = [*self.freezes] if window is None else [window, *self.freezes]
        zones = {self.timezone.key: self.timezone}
        for rule in rules:
            if not isinstance(rule, Freeze) and rule.timezone is not None:
                zones[rule.timezone.key] = rule.timezone
        found: set[datetime] = set()
        for zone in zones.values():
            found.update(_transitions(zone, start, end))
        for rule in rules:
            found.update(e for e in rule.edges(start, end, self.timezone) if start <= e < end)
        return sorted(found)

    def _first(
        self, at: datetime, window: str | None, *, allowed: bool, horizon: timedelta
    ) -> datetime | None:
        at = _utc(at)
        rule = self._find(window)
        if self._allowed(at, rule) == allowed:
            return at
        start, limit = at, at + horizon
        while start < limit:
            end = min(start + _CHUNK, limit)
            for edge in self._edges(rule, start, end):
                if edge > at and self._allowed(edge, rule) == allowed:
                    return edge
            start = end
        return None

    def may_advance(self, at: datetime, window: str | None = None) -> bool:
        """Inside the named window (if any) and outside every freeze."""
        return self._allowed(_utc(at), self._find(window))

    def next_open(
        self, at: datetime, window: str | None = None, *, horizon: timedelta = HORIZON
    ) -> datetime | None:
        """The earliest moment ≥ ``at`` (in UTC) at which advancing is allowed: ``at``
        itself when it is; None when it is not within ``horizon``."""
        return self._first(at, window, allowed=True, horizon=horizon)

    def closes_at(
        self, at: datetime, window: str | None = None, *, horizon: timedelta = HORIZON
    ) -> datetime | None:
        """The earliest moment ≥ ``at`` (in UTC) at which advancing is not allowed
        (a window ends or a freeze begins): ``at`` itself when it is closed already;
        None when it stays open through ``horizon``."""
        return self._first(at, window, allowed=False, horizon=horizon)

    def phase_start(
        self, ready: datetime, start_at: StartAt | None = None, window: str | None = None
    ) -> datetime | None:
        """When a phase ready at ``ready`` begins (None: not within the horizon).

        Without ``start_at``: the window's next opening outside every freeze. With a
        time of day: the first such time at which advancing is allowed — a 14:00 start
        on a Friday evening is Monday's 14:00, not Monday's 09:00 opening (``+Nd``
        counts from ``ready`` only). With a fixed moment: that moment, or the first
        opening after it."""
        at = _utc(ready)
        if start_at is None:
            return self.next_open(at, window)
        rule = self._find(window)
        limit = at + HORIZON
        step = start_at
        while at <= limit:
            candidate = step.next_after(at, self.timezone)
            if self._allowed(candidate, rule):
                return candidate
            opens = self.next_open(candidate, window)
            if opens is None or start_at.moment is not None:
                return opens
            at, step = opens, attrs.evolve(start_at, days_later=0)
        return None

    def blockers(self, at: datetime, window: str | None = None) -> tuple[str, ...]:
        """What keeps advancing closed at ``at``, for people: ``("outside window
        staffed (mon-fri 09:00-18:00 Europe/Berlin)", "freeze year-end (...)")``."""
        at = _utc(at)
        rule = self._find(window)
        found: list[str] = []
        if rule is not None and not rule.contains(at, self.timezone):
            found.append("outside " + rule.describe(self.timezone))
        for freeze in self.freezes:
            if freeze.contains(at, self.timezone):
                why = f": {freeze.reason}" if freeze.reason else ""
                found.append(freeze.describe(self.timezone) + why)
        return tuple(found)
