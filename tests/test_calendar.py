"""Calendar arithmetic on examples: windows, freezes, start times, DST and year ends."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gatekeeper._calendar import (
    Calendar,
    Freeze,
    Hours,
    WeeklyFreeze,
    Window,
    YearlyFreeze,
    format_days,
    resolve_local,
)
from gatekeeper._calendar_start import StartAt, ask_moment
from gatekeeper._calendar_text import describe_wait

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
UTC_ZONE = ZoneInfo("UTC")
WEEKDAYS = (0, 1, 2, 3, 4)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """Wall-clock time in Berlin (the first occurrence in the fall), as UTC."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN).astimezone(UTC)


def hours(start: str, end: str) -> Hours:
    def minutes(clock: str) -> int:
        hour, minute = clock.split(":")
        return int(hour) * 60 + int(minute)

    return Hours(start=minutes(start), end=minutes(end))


STAFFED = Window(name="staffed", days=WEEKDAYS, hours=hours("09:00", "18:00"))
YEAR_END = Freeze(name="year-end", start=utc(2026, 12, 20), end=utc(2027, 1, 5))
PLAN = Calendar(timezone=BERLIN, windows=(STAFFED,), freezes=(YEAR_END,))


# -- the examples --------------------------------------------------------


def test_friday_evening_waits_for_monday_morning() -> None:
    """A phase ready on Friday at 19:00 in Berlin may advance on Monday at 09:00."""
    friday_evening = berlin(2026, 11, 27, 19, 0)
    assert not PLAN.may_advance(friday_evening, "staffed")
    assert berlin(2026, 11, 30, 9, 0) == PLAN.next_open(friday_evening, "staffed")


def test_inside_the_year_end_freeze_waits_for_its_end() -> None:
    """Inside the year-end freeze nothing advances until 2027-01-05, window or not."""
    christmas = berlin(2026, 12, 24, 11, 0)
    assert not PLAN.may_advance(christmas, "staffed")
    assert not PLAN.may_advance(christmas)
    assert utc(2027, 1, 5) == PLAN.next_open(christmas)
    # 2027-01-05 is a Tuesday: the window is open from 09:00 Berlin time.
    assert berlin(2027, 1, 5, 9, 0) == PLAN.next_open(christmas, "staffed")


def test_a_window_closes_at_its_end_not_including_it() -> None:
    """09:00-18:00 is open at 17:59:59 and closed at 18:00."""
    monday = berlin(2026, 11, 30, 10, 0)
    assert PLAN.may_advance(berlin(2026, 11, 30, 17, 59, 59), "staffed")
    assert not PLAN.may_advance(berlin(2026, 11, 30, 18, 0), "staffed")
    assert berlin(2026, 11, 30, 18, 0) == PLAN.closes_at(monday, "staffed")


def test_a_freeze_closes_a_window_when_it_begins() -> None:
    """A freeze that starts mid-window is where the window closes."""
    friday = berlin(2026, 12, 18, 10, 0)
    early = Calendar(timezone=BERLIN, windows=(STAFFED,), freezes=(YEAR_END,))
    assert berlin(2026, 12, 18, 18, 0) == early.closes_at(friday, "staffed")
    incident = Freeze(name="incident", start=berlin(2026, 12, 18, 12, 0), end=utc(2026, 12, 19))
    assert berlin(2026, 12, 18, 12, 0) == early.with_freeze(incident).closes_at(friday, "staffed")


def test_closed_now_closes_at_now_and_open_now_opens_now() -> None:
    """closes_at of a closed moment and next_open of an open one are the moment itself."""
    saturday = berlin(2026, 11, 28, 12, 0)
    monday = berlin(2026, 11, 30, 12, 0, 30)
    assert saturday == PLAN.closes_at(saturday, "staffed")
    assert monday == PLAN.next_open(monday, "staffed")


def test_no_window_means_only_freezes_count() -> None:
    """Without a window a Saturday night is open; without freezes nothing ever closes."""
    saturday_night = berlin(2026, 11, 28, 3, 0)
    assert PLAN.may_advance(saturday_night)
    assert Calendar().closes_at(saturday_night) is None


def test_never_open_within_the_horizon_is_none() -> None:
    """A freeze longer than the horizon leaves no moment to advance."""
    long = Freeze(name="moratorium", start=utc(2026, 1, 1), end=utc(2028, 1, 1))
    calendar = Calendar(freezes=(long,))
    assert calendar.next_open(utc(2026, 6, 1)) is None
    assert utc(2028, 1, 1) == calendar.next_open(utc(2026, 6, 1), horizon=timedelta(days=600))


def test_an_unknown_window_is_a_key_error() -> None:
    """Asking about a window the calendar lacks names the known ones."""
    with pytest.raises(KeyError, match="staffed"):
        PLAN.may_advance(utc(2026, 1, 1), "weekend")


def test_naive_moments_are_refused() -> None:
    """A naive datetime has no place in time: the calendar refuses it."""
    with pytest.raises(ValueError, match="aware"):
        PLAN.may_advance(datetime(2026, 1, 1), "staffed")


def test_names_are_unique() -> None:
    """Two freezes of one name (an operator's second) are refused."""
    with pytest.raises(ValueError, match="twice"):
        PLAN.with_freeze(YEAR_END)


# -- overnight and whole days ----------------------------------------------------


def test_an_overnight_window_belongs_to_the_day_it_opens_on() -> None:
    """fri 22:00-06:00 runs into Saturday morning; Monday 05:00 needs Sunday listed."""
    night = Window(name="night", days=(4,), hours=hours("22:00", "06:00"))
    calendar = Calendar(timezone=UTC_ZONE, windows=(night,))
    assert calendar.may_advance(utc(2026, 11, 27, 23, 0), "night")
    assert calendar.may_advance(utc(2026, 11, 28, 5, 59), "night")
    assert not calendar.may_advance(utc(2026, 11, 28, 6, 0), "night")
    assert not calendar.may_advance(utc(2026, 11, 27, 5, 0), "night")  # Thursday's night
    assert utc(2026, 11, 28, 6, 0) == calendar.closes_at(utc(2026, 11, 27, 22, 0), "night")


def test_all_day_windows_close_only_between_days() -> None:
    """sat-sun 00:00-24:00 is open all weekend and closes at Monday midnight."""
    weekend = Window(name="weekend", days=(5, 6), hours=Hours(start=0, end=1440))
    calendar = Calendar(timezone=BERLIN, windows=(weekend,))
    assert berlin(2026, 11, 30, 0, 0) == calendar.closes_at(berlin(2026, 11, 28, 0, 0), "weekend")


def test_a_window_in_its_own_zone() -> None:
    """A window with its own zone follows that zone's clock, not the plan's."""
    office = Window(name="ny", days=WEEKDAYS, hours=hours("09:00", "17:00"), timezone=NEW_YORK)
    calendar = Calendar(timezone=BERLIN, windows=(office,))
    assert utc(2026, 11, 30, 14, 0) == calendar.next_open(utc(2026, 11, 30, 9, 0), "ny")


def test_weekly_and_yearly_freezes() -> None:
    """A weekly freeze repeats each week; a yearly one wraps over New Year."""
    friday = WeeklyFreeze(name="friday", days=(4,), hours=hours("15:00", "24:00"))
    holidays = YearlyFreeze(name="holidays", start=(12, 24), end=(1, 2))
    calendar = Calendar(timezone=BERLIN, windows=(STAFFED,), freezes=(friday, holidays))
    assert berlin(2026, 11, 27, 15, 0) == calendar.closes_at(berlin(2026, 11, 27, 10), "staffed")
    assert not calendar.may_advance(berlin(2027, 1, 1, 12, 0))
    assert berlin(2027, 1, 4, 9, 0) == calendar.next_open(berlin(2026, 12, 28, 12), "staffed")
    assert berlin(2027, 12, 24, 0, 0) == calendar.closes_at(berlin(2027, 12, 23, 12))


def test_blockers_say_what_keeps_the_plan_closed() -> None:
    """Outside the window and inside a freeze: both are named, for the console."""
    blockers = PLAN.blockers(berlin(2026, 12, 26, 12, 0), "staffed")
    assert (
        "outside window staffed (mon-fri 09:00-18:00 Europe/Berlin)",
        "freeze year-end (2026-12-20 01:00 CET to 2027-01-05 01:00 CET)",
    ) == blockers
    assert () == PLAN.blockers(berlin(2026, 11, 30, 12, 0), "staffed")
    incident = Freeze(
        name="incident", start=utc(2026, 11, 30), end=utc(2026, 12, 1), reason="INC-42"
    )
    assert (
        "freeze incident (2026-11-30 01:00 CET to 2026-12-01 01:00 CET): INC-42",
    ) == PLAN.with_freeze(incident).blockers(berlin(2026, 11, 30, 12, 0), "staffed")


# -- daylight saving time --------------------------------------------------------


def test_a_window_in_the_spring_gap_opens_when_the_clock_jumps() -> None:
    """02:30-04:00 on the night Berlin skips 02:00-03:00 opens at 03:00 CEST."""
    early = Window(name="early", hours=hours("02:30", "04:00"))
    calendar = Calendar(timezone=BERLIN, windows=(early,))
    assert utc(2026, 3, 29, 1, 0) == calendar.next_open(utc(2026, 3, 28, 12, 0), "early")
    assert utc(2026, 3, 29, 2, 0) == calendar.closes_at(utc(2026, 3, 29, 1, 0), "early")


def test_a_window_inside_the_spring_gap_is_skipped_that_day() -> None:
    """02:00-03:00 does not happen in Berlin on 2026-03-29: it opens a day later."""
    gap = Window(name="gap", hours=hours("02:00", "03:00"))
    calendar = Calendar(timezone=BERLIN, windows=(gap,))
    assert berlin(2026, 3, 30, 2, 0) == calendar.next_open(utc(2026, 3, 28, 12, 0), "gap")


def test_a_window_in_the_fall_overlap_is_open_both_times() -> None:
    """02:00-03:00 happens twice on 2026-10-25 in Berlin: two hours open in a row."""
    overlap = Window(name="overlap", hours=hours("02:00", "03:00"))
    calendar = Calendar(timezone=BERLIN, windows=(overlap,))
    assert utc(2026, 10, 25, 0, 0) == calendar.next_open(utc(2026, 10, 24, 12, 0), "overlap")
    assert utc(2026, 10, 25, 2, 0) == calendar.closes_at(utc(2026, 10, 25, 0, 0), "overlap")


def test_a_window_in_the_fall_overlap_opens_again_at_its_second_start() -> None:
    """02:15-02:45 in Berlin on 2026-10-25 is open in CEST, then again in CET."""
    short = Window(name="short", hours=hours("02:15", "02:45"))
    calendar = Calendar(timezone=BERLIN, windows=(short,))
    after_first = utc(2026, 10, 25, 0, 50)  # 02:50 CEST
    assert utc(2026, 10, 25, 1, 15) == calendar.next_open(after_first, "short")  # 02:15 CET
    assert utc(2026, 10, 25, 1, 45) == calendar.closes_at(utc(2026, 10, 25, 1, 15), "short")


def test_a_window_across_the_fall_overlap_is_open_whenever_the_clock_reads_inside() -> None:
    """02:30-04:00 on 2026-10-25 in Berlin: 02:30-03:00 CEST, closed while the clock
    repeats 02:00-02:30, open again from 02:30 CET to 04:00 CET."""
    late = Window(name="late", hours=hours("02:30", "04:00"))
    calendar = Calendar(timezone=BERLIN, windows=(late,))
    assert utc(2026, 10, 25, 0, 30) == calendar.next_open(utc(2026, 10, 24, 12), "late")
    assert utc(2026, 10, 25, 1, 0) == calendar.closes_at(utc(2026, 10, 25, 0, 30), "late")
    assert utc(2026, 10, 25, 1, 30) == calendar.next_open(utc(2026, 10, 25, 1, 0), "late")
    assert utc(2026, 10, 25, 3, 0) == calendar.closes_at(utc(2026, 10, 25, 1, 30), "late")


def test_lord_howe_shifts_by_half_an_hour() -> None:
    """Lord Howe skips 02:00-02:30 on 2026-10-04: a window inside it waits a day."""
    gap = Window(name="gap", hours=hours("02:00", "02:30"))
    calendar = Calendar(timezone=LORD_HOWE, windows=(gap,))
    opened = calendar.next_open(utc(2026, 10, 3, 12, 0), "gap")
    assert opened is not None
    assert datetime(2026, 10, 5, 2, 0) == opened.astimezone(LORD_HOWE).replace(tzinfo=None)


def test_resolve_local_gap_moves_forward_and_overlap_takes_the_first() -> None:
    """02:30 in the spring gap is 03:00 CEST; 02:30 in the fall is the CEST one."""
    assert utc(2026, 3, 29, 1, 0) == resolve_local(datetime(2026, 3, 29, 2, 30), BERLIN)
    assert utc(2026, 10, 25, 0, 30) == resolve_local(datetime(2026, 10, 25, 2, 30), BERLIN)
    assert utc(2026, 3, 8, 7, 0) == resolve_local(datetime(2026, 3, 8, 2, 15), NEW_YORK)


# -- start times -----------------------------------------------------------------


def test_start_at_a_time_of_day() -> None:
    """14:00 is today's when ready before it, at once when ready at it, else tomorrow's."""
    ramp = StartAt(time_of_day=time(14, 0))
    assert utc(2026, 11, 2, 14) == ramp.next_after(utc(2026, 11, 2, 9), UTC_ZONE)
    assert utc(2026, 11, 2, 14) == ramp.next_after(utc(2026, 11, 2, 14), UTC_ZONE)
    assert utc(2026, 11, 3, 14) == ramp.next_after(utc(2026, 11, 2, 14, 0, 1), UTC_ZONE)


def test_start_at_the_next_day() -> None:
    """+1d 16:00 is 16:00 on the day after the phase became ready, even if ready early."""
    rollout = StartAt(time_of_day=time(16, 0), days_later=1)
    assert utc(2026, 11, 3, 16) == rollout.next_after(utc(2026, 11, 2, 9), UTC_ZONE)
    assert berlin(2026, 11, 3, 16) == rollout.next_after(berlin(2026, 11, 2, 23, 30), BERLIN)


def test_start_at_a_moment() -> None:
    """An absolute start waits for its moment; one already past starts at once."""
    fixed = StartAt(moment=utc(2026, 11, 2, 16))
    assert utc(2026, 11, 2, 16) == fixed.next_after(utc(2026, 11, 1), BERLIN)
    assert utc(2026, 11, 5) == fixed.next_after(utc(2026, 11, 5), BERLIN)


def test_start_at_across_daylight_saving_changes() -> None:
    """02:30 in the spring gap starts at 03:00 CEST; in the fall at the first 02:30."""
    night = StartAt(time_of_day=time(2, 30))
    assert utc(2026, 3, 29, 1, 0) == night.next_after(utc(2026, 3, 28, 12), BERLIN)
    assert utc(2026, 10, 25, 0, 30) == night.next_after(utc(2026, 10, 24, 12), BERLIN)
    # Ready between the two 02:30s of the fall night: the day's 02:30 has passed.
    assert berlin(2026, 10, 26, 2, 30) == night.next_after(utc(2026, 10, 25, 0, 45), BERLIN)


def test_ask_moment_is_before_the_start_or_at_once() -> None:
    """go/no-go at 13:00 for a 14:00 start; a phase ready at 13:30 asks at once."""
    ask = StartAt(time_of_day=time(13, 0))
    start = utc(2026, 11, 2, 14)
    assert utc(2026, 11, 2, 13) == ask_moment(
        ask, ready=utc(2026, 11, 2, 9), start=start, tz=UTC_ZONE
    )
    assert utc(2026, 11, 2, 13, 30) == ask_moment(
        ask, ready=utc(2026, 11, 2, 13, 30), start=start, tz=UTC_ZONE
    )
    late = StartAt(moment=utc(2026, 11, 2, 15))
    assert start == ask_moment(late, ready=utc(2026, 11, 2, 9), start=start, tz=UTC_ZONE)


def test_a_day_offset_has_no_last_occurrence() -> None:
    """'+1d 16:00' is for starts; asking "the last one before" of it is an error."""
    with pytest.raises(ValueError, match="no meaning"):
        StartAt(time_of_day=time(16), days_later=1).last_at_or_before(utc(2026, 1, 1), BERLIN)


def test_start_at_needs_exactly_one_form() -> None:
    """Neither or both of time_of_day and moment is a programming error."""
    with pytest.raises(ValueError, match="exactly one"):
        StartAt()
    with pytest.raises(ValueError, match="exactly one"):
        StartAt(time_of_day=time(14), moment=utc(2026, 1, 1))


def test_str_of_start_at_is_the_plan_spelling() -> None:
    """A start time prints as the plan spells it."""
    assert "14:00" == str(StartAt(time_of_day=time(14)))
    assert "+1d 16:00" == str(StartAt(time_of_day=time(16), days_later=1))


# -- for people ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        (utc(2026, 11, 2, 14, 0), "ramp starts at 14:00 UTC, in 47m"),
        (utc(2026, 11, 2, 13, 13, 30), "ramp starts at 13:13 UTC, in 30s"),
        (utc(2026, 11, 3, 16, 0), "ramp starts tomorrow at 16:00 UTC, in 1d2h"),
        (utc(2026, 11, 6, 9, 0), "ramp starts on Fri at 09:00 UTC, in 3d19h"),
        (utc(2026, 12, 1, 9, 0), "ramp starts on Tue 1 Dec at 09:00 UTC, in 28d19h"),
        (utc(2027, 1, 5, 0, 0), "ramp starts on Tue 5 Jan 2027 at 00:00 UTC, in 63d10h"),
        (utc(2026, 11, 2, 13, 0), "ramp starts now"),
    ],
)
def test_describe_wait(until: datetime, expected: str) -> None:
    """The console's wait line: when, in the plan's zone, and how long from now."""
    assert expected == describe_wait(utc(2026, 11, 2, 13, 13), until, UTC_ZONE, "ramp starts")


def test_describe_wait_in_the_plans_zone() -> None:
    """Times show in the plan's zone with its abbreviation; no lead without ``what``."""
    assert "at 14:00 CET, in 1h" == describe_wait(
        berlin(2026, 11, 2, 13), berlin(2026, 11, 2, 14), BERLIN
    )


def test_format_days() -> None:
    """Runs of three or more days print as ranges."""
    assert "mon-fri" == format_days(WEEKDAYS)
    assert "mon,wed,fri" == format_days((0, 2, 4))
    assert "mon,tue,fri-sun" == format_days((0, 1, 4, 5, 6))


# -- the reference plan's calendar -----------------------------------------------

TWO_HOURS = timedelta(hours=2)
RAMP = StartAt(time_of_day=time(14, 0))
GO_NO_GO = StartAt(time_of_day=time(13, 0))
ROLLOUT = StartAt(time_of_day=time(16, 0), days_later=1)


def timeline(run_starts: datetime) -> list[tuple[str, datetime]]:
    """canary (2h) → go/no-go and ramp at 14:00 (2h) → rollout at 16:00 the next day,
    advancing only in the staffed window, outside the year-end freeze."""
    events = []
    canary = PLAN.phase_start(run_starts, None, "staffed")
    assert canary is not None
    events.append(("canary", canary))
    ramp = PLAN.phase_start(canary + TWO_HOURS, RAMP, "staffed")
    assert ramp is not None
    asked = ask_moment(GO_NO_GO, ready=canary + TWO_HOURS, start=ramp, tz=BERLIN)
    events += [("go/no-go", asked), ("ramp", ramp)]
    rollout = PLAN.phase_start(ramp + TWO_HOURS, ROLLOUT, "staffed")
    assert rollout is not None
    events.append(("rollout", rollout))
    return events


@pytest.mark.parametrize(
    ("run_starts", "expected"),
    [
        (  # Monday morning: everything on schedule.
            berlin(2026, 11, 2, 9, 0),
            [
                ("canary", berlin(2026, 11, 2, 9, 0)),
                ("go/no-go", berlin(2026, 11, 2, 13, 0)),
                ("ramp", berlin(2026, 11, 2, 14, 0)),
                ("rollout", berlin(2026, 11, 3, 16, 0)),
            ],
        ),
        (  # Friday evening: nothing moves before Monday 09:00.
            berlin(2026, 11, 27, 19, 0),
            [
                ("canary", berlin(2026, 11, 30, 9, 0)),
                ("go/no-go", berlin(2026, 11, 30, 13, 0)),
                ("ramp", berlin(2026, 11, 30, 14, 0)),
                ("rollout", berlin(2026, 12, 1, 16, 0)),
            ],
        ),
        (  # Thursday noon: the canary ends after 14:00, the ramp waits for Friday,
            # and the rollout's "next day" is a Saturday: it starts at Monday's 16:00.
            berlin(2026, 11, 26, 12, 30),
            [
                ("canary", berlin(2026, 11, 26, 12, 30)),
                ("go/no-go", berlin(2026, 11, 27, 13, 0)),
                ("ramp", berlin(2026, 11, 27, 14, 0)),
                ("rollout", berlin(2026, 11, 30, 16, 0)),
            ],
        ),
        (  # Inside the year-end freeze: the canary waits for Tuesday 2027-01-05.
            berlin(2026, 12, 22, 10, 0),
            [
                ("canary", berlin(2027, 1, 5, 9, 0)),
                ("go/no-go", berlin(2027, 1, 5, 13, 0)),
                ("ramp", berlin(2027, 1, 5, 14, 0)),
                ("rollout", berlin(2027, 1, 6, 16, 0)),
            ],
        ),
        (  # Ready at 13:30: the go/no-go is asked at once, due at 14:00.
            berlin(2026, 11, 2, 11, 30),
            [
                ("canary", berlin(2026, 11, 2, 11, 30)),
                ("go/no-go", berlin(2026, 11, 2, 13, 30)),
                ("ramp", berlin(2026, 11, 2, 14, 0)),
                ("rollout", berlin(2026, 11, 3, 16, 0)),
            ],
        ),
    ],
)
def test_reference_timeline(run_starts: datetime, expected: list[tuple[str, datetime]]) -> None:
    """The reference plan's calendar from several start moments, phase by phase."""
    assert expected == timeline(run_starts)
