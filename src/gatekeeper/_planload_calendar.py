"""The loader's calendar keys: ``[plan] timezone``, ``[windows.NAME]``,
``[freezes.NAME]``, a phase's ``start_at`` and ``window``, an approval's ``ask_at``.

The parsing itself lives in :mod:`._calendar_parse` (zoneinfo only); this mixin
gives it the loader's located errors and the plan's calendar to check names against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._calendar import Calendar
from ._calendar_parse import parse_ask_at, parse_calendar, parse_start_at, parse_window_name
from ._calendar_start import StartAt
from ._locate import PathPart
from ._planload import LoaderBase

__all__ = ["CalendarLoader"]


class CalendarLoader(LoaderBase):
    calendar: Calendar = Calendar()

    def load_calendar(self, data: Mapping[str, Any]) -> Calendar:
        """Read the plan's calendar first: windows named later are checked against it."""
        self.calendar = parse_calendar(data, self.error)
        return self.calendar

    def start_at(self, value: Any, key: tuple[PathPart, ...]) -> StartAt | None:
        if value is None:
            return None
        return parse_start_at(value, key, self.error, zone=self.calendar.timezone)

    def ask_at(self, value: Any, key: tuple[PathPart, ...]) -> StartAt | None:
        if value is None:
            return None
        return parse_ask_at(value, key, self.error, zone=self.calendar.timezone)

    def window_name(self, value: Any, key: tuple[PathPart, ...]) -> str:
        return parse_window_name(value, key, self.error, self.calendar)
