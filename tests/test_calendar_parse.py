"""The calendar's plan keys: what parses, and one located message for what does not."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gatekeeper._calendar import Calendar, Freeze, Hours, WeeklyFreeze, Window, YearlyFreeze
from gatekeeper._calendar_parse import (
    parse_ask_at,
    parse_calendar,
    parse_days,
    parse_hours,
    parse_moment,
    parse_start_at,
    parse_timezone,
    parse_window_name,
)
from gatekeeper._calendar_start import StartAt
from gatekeeper._locate import PathPart, format_path, locate
from gatekeeper.exceptions import PlanError

BERLIN = ZoneInfo("Europe/Berlin")


class LocatedError(Exception):
    def __init__(self, key: tuple[PathPart, ...], message: str) -> None:
        super().__init__(f"{format_path(key)}: {message}")
        self.key = key
        self.message = message


def calendar(text: str) -> Calendar:
    return parse_calendar(tomllib.loads(text), LocatedError)


def refused(text: str) -> LocatedError:
    with pytest.raises(LocatedError) as caught:
        calendar(text)
    return caught.value


REFERENCE = """
[plan]
timezone = "Europe/Berlin"

[windows.staffed]
days = "mon-fri"
hours = "09:00-18:00"

[freezes.year-end]
from = "2026-12-20T00:00:00Z"
to = "2027-01-05T00:00:00Z"
"""


def test_the_reference_calendar() -> None:
    """The issue's plan: a Berlin calendar, a staffed window and a year-end freeze."""
    expected = Calendar(
        timezone=BERLIN,
        windows=(Window(name="staffed", days=(0, 1, 2, 3, 4), hours=Hours(start=540, end=1080)),),
        freezes=(
            Freeze(
                name="year-end",
                start=datetime(2026, 12, 20, tzinfo=UTC),
                end=datetime(2027, 1, 5, tzinfo=UTC),
            ),
        ),
    )
    assert expected == calendar(REFERENCE)


def test_no_calendar_keys_is_an_empty_utc_calendar() -> None:
    """A plan without any calendar key advances at any time, in UTC."""
    assert Calendar(timezone=ZoneInfo("UTC")) == calendar("[plan]\nname = 'x'\n")


def test_the_three_freeze_shapes() -> None:
    """from/to timestamps or local dates (once), month-days (yearly), days/hours (weekly)."""
    parsed = calendar(
        """
        [plan]
        timezone = "Europe/Berlin"
        [freezes.local]
        from = 2026-12-20
        to = "2026-12-21T12:00"
        reason = "code freeze"
        [freezes.holidays]
        from = "12-24"
        to = "01-02"
        timezone = "America/New_York"
        [freezes.friday]
        days = "fri"
        hours = "15:00-24:00"
        """
    )
    assert (
        Freeze(
            name="local",
            start=datetime(2026, 12, 19, 23, tzinfo=UTC),
            end=datetime(2026, 12, 21, 11, tzinfo=UTC),
            reason="code freeze",
        ),
        YearlyFreeze(
            name="holidays", start=(12, 24), end=(1, 2), timezone=ZoneInfo("America/New_York")
        ),
        WeeklyFreeze(name="friday", days=(4,), hours=Hours(start=900, end=1440)),
    ) == parsed.freezes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mon-fri", (0, 1, 2, 3, 4)),
        ("mon,wed,fri", (0, 2, 4)),
        ("sat-sun", (5, 6)),
        ("fri-mon", (0, 4, 5, 6)),
        ("Monday, Tue", (0, 1)),
        ("mon-wed,sat", (0, 1, 2, 5)),
    ],
)
def test_days(text: str, expected: tuple[int, ...]) -> None:
    """Day ranges and lists, case-insensitive; a range may wrap over the weekend."""
    assert expected == parse_days(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-18:00", Hours(start=540, end=1080)),
        ("22:00-06:00", Hours(start=1320, end=360)),
        ("00:00-24:00", Hours(start=0, end=1440)),
        ("22:00-00:00", Hours(start=1320, end=1440)),
        ("9:30 - 17:15", Hours(start=570, end=1035)),
    ],
)
def test_hours(text: str, expected: Hours) -> None:
    """Hour ranges up to, not including, their end; overnight; the whole day."""
    assert expected == parse_hours(text)


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("[plan]\ntimezone = 'Mars/Olympus'", ("plan", "timezone"), "unknown time zone"),
        ("[plan]\ntimezone = 'europe/berlin'", ("plan", "timezone"), "'Europe/Berlin'"),
        ("[plan]\ntimezone = 1", ("plan", "timezone"), "IANA"),
        ("[windows.w]\ndays = 'mon-fry'", ("windows", "w", "days"), "unknown day 'fry'"),
        ("[windows.w]\ndays = 'mon,,fri'", ("windows", "w", "days"), "empty day"),
        ("[windows.w]\ndays = 'mon-fri,tue'", ("windows", "w", "days"), "tue is named twice"),
        ("[windows.w]\ndays = 'mon-mon'", ("windows", "w", "days"), "one day"),
        ("[windows.w]\nhours = '9-17'", ("windows", "w", "hours"), "not a time"),
        ("[windows.w]\nhours = '09:00'", ("windows", "w", "hours"), "not an hour range"),
        ("[windows.w]\nhours = '09:00-25:00'", ("windows", "w", "hours"), "not a time of day"),
        ("[windows.w]\nhours = '24:00-06:00'", ("windows", "w", "hours"), "not a time of day"),
        ("[windows.w]\nhours = '09:60-10:00'", ("windows", "w", "hours"), "not a time of day"),
        ("[windows.w]\nhours = '09:00-09:00'", ("windows", "w", "hours"), "empty"),
        ("[windows.w]\nhours = 9", ("windows", "w", "hours"), "hours like"),
        ("[windows.w]\nday = 'mon'", ("windows", "w", "day"), "unknown key"),
        ("[windows.w]\ntimezone = 'UTC'", ("windows", "w"), "needs days, hours"),
        ("[windows.w]\ndays = 'mon'\ntimezone = 'Nowhere'", ("windows", "w", "timezone"), "zone"),
        ("windows = 1", ("windows",), "expected a table"),
        ("[windows]\nw = 'mon-fri'", ("windows", "w"), "expected a table"),
        ("[freezes.f]\nfrom = '2026-12-20'", ("freezes", "f", "to"), "missing to"),
        ("[freezes.f]\nto = '2026-12-20'", ("freezes", "f", "from"), "missing from"),
        ("[freezes.f]\nreason = 'x'", ("freezes", "f"), "needs from and to"),
        (
            "[freezes.f]\nfrom = '2026-12-20'\nto = '2026-12-20'",
            ("freezes", "f", "to"),
            "not after from",
        ),
        (
            "[freezes.f]\nfrom = 2027-01-05T00:00:00Z\nto = 2026-12-20T00:00:00Z",
            ("freezes", "f", "to"),
            "not after from",
        ),
        ("[freezes.f]\nfrom = '12-20'\nto = '2027-01-05'", ("freezes", "f", "to"), "both"),
        ("[freezes.f]\nfrom = '12-20'\nto = '12-20'", ("freezes", "f", "to"), "same day"),
        ("[freezes.f]\nfrom = '02-29'\nto = '03-02'", ("freezes", "f", "from"), "every year"),
        ("[freezes.f]\nfrom = '12-20'\nto = '13-01'", ("freezes", "f", "to"), "month and day"),
        ("[freezes.f]\nfrom = 'soon'\nto = '2027-01-05'", ("freezes", "f", "from"), "timestamp"),
        (
            "[freezes.f]\nfrom = '12-20'\nto = '01-05'\ndays = 'fri'",
            ("freezes", "f", "days"),
            "not both",
        ),
        ("[freezes.f]\ndays = 'fri'\nuntil = 'x'", ("freezes", "f", "until"), "unknown key"),
        ("[freezes.f]\ndays = 'fri'\nreason = ''", ("freezes", "f", "reason"), "a string"),
    ],
)
def test_bad_calendar_keys_are_one_located_message(
    text: str, key: tuple[PathPart, ...], message: str
) -> None:
    """Each mistake names its key and says what is wrong."""
    error = refused(text)
    assert key == error.key
    assert message in error.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("14:00", StartAt(time_of_day=time(14, 0))),
        ("9:05", StartAt(time_of_day=time(9, 5))),
        (time(14, 0), StartAt(time_of_day=time(14, 0))),
        ("+1d 16:00", StartAt(time_of_day=time(16, 0), days_later=1)),
        ("2026-11-02T16:00:00Z", StartAt(moment=datetime(2026, 11, 2, 16, tzinfo=UTC))),
        ("2026-11-02T16:00:00+01:00", StartAt(moment=datetime(2026, 11, 2, 15, tzinfo=UTC))),
        # Without an offset: wall-clock time in the plan's zone.
        ("2026-11-02T16:00", StartAt(moment=datetime(2026, 11, 2, 15, tzinfo=UTC))),
        (
            datetime(2026, 11, 2, 16, tzinfo=UTC),
            StartAt(moment=datetime(2026, 11, 2, 16, tzinfo=UTC)),
        ),
    ],
)
def test_start_at(value: Any, expected: StartAt) -> None:
    """start_at is a time of day, a day offset and a time, or a timestamp."""
    assert expected == parse_start_at(value, ("phases", 0, "start_at"), LocatedError, zone=BERLIN)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("25:00", "not a time of day (00:00 to 23:59)"),
        ("24:00", "not a time of day"),
        ("soon", "expected a time of day"),
        ("2026-11-02", "expected a time of day"),
        ("2026-13-02T10:00", "expected a timestamp"),
        (14, "expected a time of day"),
        (True, "a boolean"),
        (time(14, 0, 30), "whole minutes"),
    ],
)
def test_bad_start_at(value: Any, message: str) -> None:
    """A start time that is not one is a located message."""
    with pytest.raises(LocatedError) as caught:
        parse_start_at(value, ("phases", 0, "start_at"), LocatedError)
    assert ("phases", 0, "start_at") == caught.value.key
    assert message in caught.value.message


def test_ask_at_has_no_day_offset() -> None:
    """ask_at is asked before the start: '+1d' makes no sense there."""
    key: tuple[PathPart, ...] = ("phases", 1, "approval", "ask_at")
    assert StartAt(time_of_day=time(13, 0)) == parse_ask_at("13:00", key, LocatedError)
    with pytest.raises(LocatedError, match="belongs to start_at"):
        parse_ask_at("+1d 13:00", key, LocatedError)


def test_window_names_must_be_defined() -> None:
    """policy.window and a phase's window name a [windows.NAME] table."""
    parsed = calendar(REFERENCE)
    key: tuple[PathPart, ...] = ("policy", "window")
    assert "staffed" == parse_window_name("staffed", key, LocatedError, parsed)
    with pytest.raises(LocatedError, match=r"unknown window 'staffd' \(known: staffed\)"):
        parse_window_name("staffd", key, LocatedError, parsed)
    with pytest.raises(LocatedError, match="name of a"):
        parse_window_name(3, key, LocatedError, parsed)


def test_moments_for_the_command_line() -> None:
    """--until and rehearse --start: a timestamp; without an offset, in the given zone."""
    key: tuple[PathPart, ...] = ("--until",)
    assert datetime(2026, 11, 2, 15, tzinfo=UTC) == parse_moment(
        "2026-11-02 16:00", key, LocatedError, BERLIN
    )
    with pytest.raises(LocatedError, match="timestamp"):
        parse_moment("2026-11-02", key, LocatedError, BERLIN)


def test_timezone_names() -> None:
    """IANA names only: not the machine's 'localtime'."""
    key: tuple[PathPart, ...] = ("plan", "timezone")
    assert ZoneInfo("Australia/Lord_Howe") == parse_timezone(
        "Australia/Lord_Howe", key, LocatedError
    )
    for bad in ("localtime", "", "../etc/passwd", "Europe"):
        with pytest.raises(LocatedError, match="time zone"):
            parse_timezone(bad, key, LocatedError)


def test_with_the_plan_loaders_located_errors() -> None:
    """With a PlanError factory, the message carries file, line and key path."""
    text = REFERENCE + "\n[windows.night]\nhours = '22:00-6'\n"

    def error(key: tuple[PathPart, ...], message: str) -> PlanError:
        return PlanError(message, file="gates.toml", key=format_path(key), line=locate(text, key))

    with pytest.raises(PlanError) as caught:
        parse_calendar(tomllib.loads(text), error)
    assert "gates.toml:14: windows.night.hours: '6' is not a time like '09:00'" == str(caught.value)
