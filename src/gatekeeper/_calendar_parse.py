"""The calendar's plan keys → :mod:`gatekeeper._calendar` values, with located errors.

Every function takes ``error(key_path, message)``, a factory the plan loader (or the
CLI) supplies, and raises what it returns: a bad day range, hour range, zone, time or
``from``/``to`` is one message naming its key.

The shape::

    [plan]
    timezone = "Europe/Berlin"      # IANA; default UTC

    [windows.staffed]               # keys: days, hours, timezone
    days = "mon-fri"
    hours = "09:00-18:00"

    [freezes.year-end]              # one-off: from/to are timestamps or local dates
    from = "2026-12-20T00:00:00Z"
    to = "2027-01-05T00:00:00Z"

    [freezes.holidays]              # every year: from/to are month-days
    from = "12-24"
    to = "12-27"

    [freezes.friday-afternoon]      # every week: days/hours as in a window
    days = "fri"
    hours = "15:00-24:00"
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from ._calendar import (
    DAY_NAMES,
    EVERY_DAY,
    UTC_ZONE,
    AnyFreeze,
    Calendar,
    Freeze,
    Hours,
    WeeklyFreeze,
    Window,
    YearlyFreeze,
    format_days,
    resolve_local,
)
from ._calendar_start import StartAt
from ._locate import PathPart

__all__ = [
    "ErrorFactory",
    "calendar_to_mapping",
    "freeze_to_mapping",
    "parse_ask_at",
    "parse_calendar",
    "parse_days",
    "parse_freeze",
    "parse_hours",
    "parse_moment",
    "parse_start_at",
    "parse_timezone",
    "parse_window_name",
]

ErrorFactory = Callable[[tuple[PathPart, ...], str], Exception]
Key = tuple[PathPart, ...]

WINDOW_KEYS = ("days", "hours", "timezone")
FREEZE_KEYS = ("days", "from", "hours", "reason", "timezone", "to")

_DAYS = {name: number for number, name in enumerate(DAY_NAMES)} | {
    full: number
    for number, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_START = re.compile(r"(?:\+(\d+)d\s+)?(\d{1,2}:\d{2})")
_MONTH_DAY = re.compile(r"(\d{2})-(\d{2})")
_TIMES = (
    "a time of day like '14:00', '+1d 16:00' (the next day), "
    "or a timestamp like '2026-11-02T16:00:00Z'"
)


#: Calendar moments a plan may name (start times, freezes): the arithmetic around
#: them (zones, 400-day horizons) stays inside what datetime can hold.
MIN_YEAR = 1971
MAX_YEAR = 9000


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"{value!r}"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


# -- text → values (ValueError) ----------------------------------------------------


def parse_days(text: str) -> tuple[int, ...]:
    """``"mon-fri"``, ``"mon,wed,fri"``, ``"fri-mon"`` (wraps) → weekdays, Monday 0."""
    found: list[int] = []
    for part in text.split(","):
        piece = part.strip().lower()
        if not piece:
            raise ValueError(f"empty day in {text!r}")
        first, dash, last = piece.partition("-")
        names = [first.strip(), last.strip()] if dash else [first]
        for name in names:
            if name not in _DAYS:
                raise ValueError(f"unknown day {name!r} (days are {', '.join(DAY_NAMES)})")
        start = _DAYS[names[0]]
        stop = _DAYS[names[-1]]
        if dash and start == stop:
            raise ValueError(f"{piece!r} is one day; write {DAY_NAMES[start]!r}")
        days = [(start + step) % 7 for step in range((stop - start) % 7 + 1)]
        for day in days:
            if day in found:
                raise ValueError(f"{DAY_NAMES[day]} is named twice in {text!r}")
        found.extend(days)
    return tuple(sorted(found))


def _minutes(clock: str, *, end: bool) -> int:
    match = _CLOCK.fullmatch(clock.strip())
    if match is None:
        raise ValueError(f"{clock.strip()!r} is not a time like '09:00'")
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and (minute or not end)):
        latest = "24:00" if end else "23:59"
        raise ValueError(f"{clock.strip()!r} is not a time of day (00:00 to {latest})")
    return hour * 60 + minute


def parse_hours(text: str) -> Hours:
    """``"09:00-18:00"`` (up to, not including, 18:00), ``"22:00-06:00"`` (overnight),
    ``"00:00-24:00"`` (all day)."""
    first, dash, last = text.partition("-")
    if not dash:
        raise ValueError(f"{text!r} is not an hour range like '09:00-18:00'")
    start, end = _minutes(first, end=False), _minutes(last, end=True)
    if start == end:
        raise ValueError(f"{text!r} is empty; '00:00-24:00' is the whole day")
    return Hours(start=start, end=end or 1440)  # "22:00-00:00" runs to midnight


def _month_day(text: str) -> tuple[int, int] | None:
    match = _MONTH_DAY.fullmatch(text.strip())
    if match is None:
        return None
    month_day = int(match.group(1)), int(match.group(2))
    if month_day == (2, 29):
        raise ValueError("'02-29' is not a day every year; use '02-28' or '03-01'")
    try:
        date(2001, *month_day)
    except ValueError:
        raise ValueError(f"{text!r} is not a month and day like '12-20'") from None
    return month_day


# -- located parsing ---------------------------------------------------------------


def _table(value: Any, key: Key, error: ErrorFactory) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise error(key, f"expected a table, got {_kind(value)}")
    return value


def _unknown(
    table: Mapping[str, Any], allowed: tuple[str, ...], key: Key, error: ErrorFactory
) -> None:
    for name in table:
        if name not in allowed:
            raise error((*key, name), f"unknown key (known: {', '.join(sorted(allowed))})")


def _text(value: Any, key: Key, error: ErrorFactory, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise error(key, f"expected {example}, got {_kind(value)}")
    return value


def parse_timezone(value: Any, key: Key, error: ErrorFactory) -> ZoneInfo:
    """An IANA zone name (``"Europe/Berlin"``, ``"UTC"``)."""
    name = _text(value, key, error, "an IANA time zone like 'Europe/Berlin'")
    if name not in {"localtime", "posixrules", "Factory"}:
        try:
            return ZoneInfo(name)
        except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
            pass
    close = sorted(zone for zone in available_timezones() if zone.lower() == name.lower())
    hint = f"; did you mean {close[0]!r}?" if close else " (an IANA name like 'Europe/Berlin')"
    raise error(key, f"unknown time zone {name!r}{hint}")


def _located(
    parse: Callable[[str], Any], value: Any, key: Key, error: ErrorFactory, example: str
) -> Any:
    text = _text(value, key, error, example)
    try:
        return parse(text)
    except ValueError as exc:
        raise error(key, str(exc)) from None


def _weekly(
    table: Mapping[str, Any], key: Key, error: ErrorFactory
) -> tuple[tuple[int, ...], Hours]:
    days = EVERY_DAY
    if "days" in table:
        days = _located(parse_days, table["days"], (*key, "days"), error, "days like 'mon-fri'")
    hours = Hours(start=0, end=1440)
    if "hours" in table:
        hours = _located(
            parse_hours, table["hours"], (*key, "hours"), error, "hours like '09:00-18:00'"
        )
    return days, hours


def _zone(table: Mapping[str, Any], key: Key, error: ErrorFactory) -> ZoneInfo | None:
    if "timezone" not in table:
        return None
    return parse_timezone(table["timezone"], (*key, "timezone"), error)


def parse_calendar(raw_plan: Mapping[str, Any], error: ErrorFactory) -> Calendar:
    """The calendar of a raw plan mapping: ``[plan] timezone``, ``[windows.NAME]`` and
    ``[freezes.NAME]``. Other keys of ``[plan]`` are the loader's to check."""
    meta = _table(raw_plan.get("plan", {}), ("plan",), error)
    zone = UTC_ZONE
    if "timezone" in meta:
        zone = parse_timezone(meta["timezone"], ("plan", "timezone"), error)
    windows = []
    for name, raw in _table(raw_plan.get("windows", {}), ("windows",), error).items():
        key: Key = ("windows", name)
        table = _table(raw, key, error)
        _unknown(table, WINDOW_KEYS, key, error)
        if "days" not in table and "hours" not in table:
            raise error(key, "a window needs days, hours or both (e.g. days = 'mon-fri')")
        days, hours = _weekly(table, key, error)
        windows.append(Window(name=name, days=days, hours=hours, timezone=_zone(table, key, error)))
    freezes = [
        parse_freeze(name, raw, ("freezes", name), error, zone)
        for name, raw in _table(raw_plan.get("freezes", {}), ("freezes",), error).items()
    ]
    return Calendar(timezone=zone, windows=tuple(windows), freezes=tuple(freezes))


def parse_freeze(name: str, raw: Any, key: Key, error: ErrorFactory, zone: ZoneInfo) -> AnyFreeze:
    """One ``[freezes.NAME]`` table: ``from``/``to`` timestamps or local dates (once),
    ``from``/``to`` month-days like ``"12-20"`` (every year), or ``days``/``hours``
    (every week)."""
    table = _table(raw, key, error)
    _unknown(table, FREEZE_KEYS, key, error)
    reason = ""
    if "reason" in table:
        reason = _text(table["reason"], (*key, "reason"), error, "a string")
    own = _zone(table, key, error)
    dated = [k for k in ("from", "to") if k in table]
    weekly = [k for k in ("days", "hours") if k in table]
    if dated and weekly:
        raise error((*key, weekly[0]), "a freeze has from/to or days/hours, not both")
    if weekly:
        days, hours = _weekly(table, key, error)
        return WeeklyFreeze(name=name, days=days, hours=hours, timezone=own, reason=reason)
    if len(dated) < 2:
        missing = "to" if dated == ["from"] else "from"
        raise error(
            (*key, missing) if dated else key, f"a freeze needs from and to (missing {missing})"
        )
    first, last = table["from"], table["to"]
    if isinstance(first, str) and isinstance(last, str):
        yearly = []
        for side, text in (("from", first), ("to", last)):
            try:
                yearly.append(_month_day(text))
            except ValueError as exc:
                raise error((*key, side), str(exc)) from None
        once, until = yearly
        if once is not None and until is not None:
            if once == until:
                raise error((*key, "to"), "to is the same day as from")
            return YearlyFreeze(name=name, start=once, end=until, timezone=own, reason=reason)
        if (once is None) != (until is None):
            raise error((*key, "to"), "from and to are both month-days ('12-20') or both dates")
    start = parse_moment(first, (*key, "from"), error, own or zone, dates=True)
    end = parse_moment(last, (*key, "to"), error, own or zone, dates=True)
    if end <= start:
        raise error((*key, "to"), f"to ({end.isoformat()}) is not after from ({start.isoformat()})")
    return Freeze(name=name, start=start, end=end, reason=reason)


def parse_moment(
    value: Any, key: Key, error: ErrorFactory, zone: ZoneInfo, *, dates: bool = False
) -> datetime:
    """A timestamp (``"2026-11-02T16:00:00Z"`` or a TOML datetime) → aware UTC; one
    without an offset is wall-clock time in ``zone``; with ``dates``, a date alone is
    its local midnight. For ``--until``, ``rehearse --start`` and freezes."""
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date) and dates:
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
        if moment is not None and not dates and "T" not in value and " " not in value.strip():
            moment = None  # "2026-11-02" alone is a day, not a moment
    if moment is None:
        example = "a timestamp like '2026-11-02T16:00:00Z'"
        raise error(key, f"expected {example}{' or a date' if dates else ''}, got {_kind(value)}")
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise error(key, f"expected a year from {MIN_YEAR} to {MAX_YEAR}, got {moment.year}")
    if moment.tzinfo is None:
        return resolve_local(moment, zone)
    return moment.astimezone(UTC)


def parse_start_at(
    value: Any, key: Key, error: ErrorFactory, *, zone: ZoneInfo | None = None
) -> StartAt:
    """``"14:00"``, ``"+1d 16:00"``, a TOML time, or a timestamp (see
    :func:`parse_moment`; ``zone`` resolves one without an offset, default UTC)."""
    if isinstance(value, time):
        if value.second or value.microsecond:
            raise error(key, "a time of day is whole minutes, like 14:00")
        return StartAt(time_of_day=value.replace(tzinfo=None))
    if isinstance(value, str):
        match = _START.fullmatch(value.strip())
        if match is not None:
            try:
                minutes = _minutes(match.group(2), end=False)
            except ValueError as exc:
                raise error(key, str(exc)) from None
            clock = time(minutes // 60, minutes % 60)
            return StartAt(time_of_day=clock, days_later=int(match.group(1) or 0))
    if not isinstance(value, datetime) and not (isinstance(value, str) and "T" in value):
        raise error(key, f"expected {_TIMES}, got {_kind(value)}")
    return StartAt(moment=parse_moment(value, key, error, zone or UTC_ZONE))


def parse_ask_at(
    value: Any, key: Key, error: ErrorFactory, *, zone: ZoneInfo | None = None
) -> StartAt:
    """Like :func:`parse_start_at` without ``+Nd``: the go/no-go is asked at the last
    such time before the phase's start (see :func:`gatekeeper._calendar_start.ask_moment`)."""
    ask = parse_start_at(value, key, error, zone=zone)
    if ask.days_later:
        raise error(key, "ask_at is a time of day or a timestamp; '+Nd' belongs to start_at")
    return ask


def parse_window_name(value: Any, key: Key, error: ErrorFactory, calendar: Calendar) -> str:
    """``window = "staffed"`` in ``[policy]`` or a phase: a window the plan defines."""
    name = _text(value, key, error, "the name of a [windows.NAME] table")
    if name not in {window.name for window in calendar.windows}:
        known = ", ".join(sorted(window.name for window in calendar.windows)) or "none defined"
        raise error(key, f"unknown window {name!r} (known: {known})")
    return name


# -- values → plan keys (for the plan's digest and the journal) ---------------------


def _weekly_table(rule: Window | WeeklyFreeze) -> dict[str, str]:
    table = {"days": format_days(rule.days), "hours": str(rule.hours)}
    if rule.timezone is not None:
        table["timezone"] = rule.timezone.key
    return table


def freeze_to_mapping(freeze: AnyFreeze) -> dict[str, str]:
    """A freeze as its ``[freezes.NAME]`` table; :func:`parse_freeze` reads it back
    (an operator's freeze in the journal, a plan's in its digest)."""
    table: dict[str, str]
    if isinstance(freeze, Freeze):
        table = {"from": freeze.start.isoformat(), "to": freeze.end.isoformat()}
    elif isinstance(freeze, YearlyFreeze):
        table = {"from": "{:02d}-{:02d}".format(*freeze.start)}
        table["to"] = "{:02d}-{:02d}".format(*freeze.end)
        if freeze.timezone is not None:
            table["timezone"] = freeze.timezone.key
    else:
        table = _weekly_table(freeze)
    if freeze.reason:
        table["reason"] = freeze.reason
    return table


def calendar_to_mapping(calendar: Calendar) -> dict[str, Any]:
    """The calendar's plan keys, for ``plan_to_mapping``: ``{}`` for the default
    calendar, so plans without one keep their digest; :func:`parse_calendar` reads it
    back to an equal calendar."""
    mapping: dict[str, Any] = {}
    if calendar.timezone.key != "UTC":
        mapping["plan"] = {"timezone": calendar.timezone.key}
    if calendar.windows:
        mapping["windows"] = {window.name: _weekly_table(window) for window in calendar.windows}
    if calendar.freezes:
        mapping["freezes"] = {f.name: freeze_to_mapping(f) for f in calendar.freezes}
    return mapping
