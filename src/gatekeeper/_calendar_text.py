"""The calendar said for people: "ramp starts at 14:00 UTC, in 47m"."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ._calendar import DAY_NAMES, UTC_ZONE, _utc

__all__ = ["describe_wait"]


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _span(delta: timedelta) -> str:
    seconds = int(-(-delta.total_seconds() // 1))
    if seconds < 60:
        return f"{seconds}s"
    minutes = -(-seconds // 60)  # up: "in 1m" for 30 seconds left, never "in 0m"
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def describe_wait(now: datetime, until: datetime, tz: ZoneInfo = UTC_ZONE, what: str = "") -> str:
    """``"ramp starts at 14:00 UTC, in 47m"``: when ``until`` is, seen from ``now``,
    in ``tz``; ``what`` (optional) leads. Past or present: ``"ramp starts now"``."""
    now, until = _utc(now, "now"), _utc(until, "until")
    lead = f"{what} " if what else ""
    if until <= now:
        return f"{lead}now"
    here, there = now.astimezone(tz), until.astimezone(tz)
    clock = f"{there:%H:%M} {there.tzname()}"
    # Names of our own, not strftime's %a/%b: those follow the process's locale.
    weekday = DAY_NAMES[there.weekday()].capitalize()
    day = f"{weekday} {there.day} {_MONTHS[there.month - 1]}"
    days = (there.date() - here.date()).days
    if days == 0:
        when = f"at {clock}"
    elif days == 1:
        when = f"tomorrow at {clock}"
    elif days < 7:
        when = f"on {weekday} at {clock}"
    elif there.year == here.year:
        when = f"on {day} at {clock}"
    else:
        when = f"on {day} {there.year} at {clock}"
    return f"{lead}{when}, in {_span(until - now)}"
