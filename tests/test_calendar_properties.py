"""Property tests for the calendar: window arithmetic across DST changes and year ends.

Moments are drawn within days of a zone's clock change or a New Year, in Berlin,
New York, Lord Howe (a half-hour shift), Santiago (clocks change at midnight) and UTC;
every claim is checked against :meth:`Calendar.may_advance` on a minute grid.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper._calendar import (
    AnyFreeze,
    Calendar,
    Freeze,
    Hours,
    WeeklyFreeze,
    Window,
    YearlyFreeze,
    resolve_local,
)
from gatekeeper._calendar_parse import (
    calendar_to_mapping,
    freeze_to_mapping,
    parse_calendar,
    parse_freeze,
)
from gatekeeper._calendar_start import StartAt
from gatekeeper._calendar_text import describe_wait
from gatekeeper._locate import PathPart

HORIZON = timedelta(days=8)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)

# Each zone's 2026 clock changes (gap and overlap) and a New Year, in UTC. Scenes draw a
# zone with moments within two days of one of its own changes, so the window edges
# drawn below land in gaps and overlaps often enough to matter.
CHANGES = {
    "Europe/Berlin": ("2026-03-29T01:00", "2026-10-25T01:00", "2026-12-31T23:00"),
    "America/New_York": ("2026-03-08T07:00", "2026-11-01T06:00", "2027-01-01T05:00"),
    # Half-hour shifts: 02:00 → 02:30 in October, 02:00 → 01:30 in April.
    "Australia/Lord_Howe": ("2026-04-04T15:00", "2026-10-03T15:30", "2027-12-31T13:00"),
    # Clocks change at midnight: 00:00 → 01:00 in September, 00:00 → 23:00 in April.
    "America/Santiago": ("2026-04-05T03:00", "2026-09-06T04:00", "2026-12-31T03:00"),
    "UTC": ("2026-12-31T12:00", "2027-12-31T12:00"),
}
ZONES = tuple(ZoneInfo(name) for name in CHANGES)


def near(anchor: str) -> st.SearchStrategy[datetime]:
    base = datetime.fromisoformat(anchor).replace(tzinfo=UTC)
    return st.builds(
        lambda seconds, micros: base + timedelta(seconds=seconds, microseconds=micros),
        st.integers(-2 * 86400, 2 * 86400),
        st.sampled_from((0, 0, 0, 1, 999_999)),
    )


@st.composite
def zoned_moments(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """A zone and a moment near one of its clock changes or a New Year."""
    name = draw(st.sampled_from(sorted(CHANGES)))
    return ZoneInfo(name), draw(near(draw(st.sampled_from(CHANGES[name]))))


# Boundaries in the zones' gaps and overlaps, at midnight and office hours — or anywhere.
clock_minutes = st.one_of(
    st.sampled_from((0, 30, 60, 90, 105, 120, 135, 150, 165, 180, 540, 1080, 1380, 1410, 1439)),
    st.integers(0, 1439),
)
days = st.one_of(
    st.just(tuple(range(7))),
    st.sets(st.integers(0, 6), min_size=1).map(lambda found: tuple(sorted(found))),
)
# Mostly the calendar's zone (None), sometimes a window's own.
optional_zones = st.one_of(st.none(), st.none(), st.none(), st.sampled_from(ZONES))


@st.composite
def hour_ranges(draw: st.DrawFn) -> Hours:
    start = draw(clock_minutes)
    # 0 as an end is midnight, spelled 1440 ("22:00-24:00"); an end equal to start is empty.
    end = draw(clock_minutes.filter(lambda end: end != start)) or 1440
    return Hours(start=start, end=end)


@st.composite
def one_off_freezes(draw: st.DrawFn, around: datetime) -> Freeze:
    start = (around + timedelta(seconds=draw(st.integers(-86400, 86400)))).replace(microsecond=0)
    length = draw(st.integers(60, 2 * 86400))
    return Freeze(name="once", start=start, end=start + timedelta(seconds=length))


month_days = st.sampled_from(
    ((12, 31), (1, 1), (1, 2), (3, 29), (10, 25), (4, 5), (9, 6), (12, 20))
)
yearly_freezes = (
    st.tuples(month_days, month_days)
    .filter(lambda pair: pair[0] != pair[1])
    .map(lambda pair: YearlyFreeze(name="yearly", start=pair[0], end=pair[1]))
)
weekly_freezes = st.builds(
    WeeklyFreeze, name=st.just("weekly"), days=days, hours=hour_ranges(), timezone=optional_zones
)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[Calendar, datetime, str | None]:
    """A calendar in a zone, a moment near one of its clock changes, and a window
    name (None: freezes only)."""
    zone, at = draw(zoned_moments())
    window = Window(
        name="w", days=draw(days), hours=draw(hour_ranges()), timezone=draw(optional_zones)
    )
    freezes: list[AnyFreeze] = []
    if draw(st.integers(0, 2)) == 0:
        freezes.append(draw(one_off_freezes(at)))
    if draw(st.integers(0, 4)) == 0:
        freezes.append(draw(yearly_freezes))
    if draw(st.integers(0, 4)) == 0:
        freezes.append(draw(weekly_freezes))
    calendar = Calendar(timezone=zone, windows=(window,), freezes=tuple(freezes))
    return calendar, at, draw(st.sampled_from(("w", "w", "w", None)))


def minute_grid(start: datetime, end: datetime) -> list[datetime]:
    """Whole minutes in [start, end): window edges fall on them in every zone used."""
    first = start.replace(second=0, microsecond=0)
    if first < start:
        first += MINUTE
    count = max(0, -(-(end - first) // MINUTE))
    return [first + MINUTE * step for step in range(count)]


@settings(max_examples=300, deadline=None)
@given(scene=scenes())
def test_next_open_is_the_earliest_allowed_moment(
    scene: tuple[Calendar, datetime, str | None],
) -> None:
    """next_open(t) is ≥ t, allowed, and no allowed minute (nor the second before it)
    lies between t and it; None means no allowed minute within the horizon."""
    calendar, at, window = scene
    opened = calendar.next_open(at, window, horizon=HORIZON)
    if opened is None:
        for moment in minute_grid(at, at + HORIZON):
            assert not calendar.may_advance(moment, window), moment
        return
    assert opened >= at
    assert calendar.may_advance(opened, window)
    if opened > at:
        assert not calendar.may_advance(at, window)
        assert not calendar.may_advance(max(at, opened - SECOND), window)
    for moment in minute_grid(at, opened):
        assert not calendar.may_advance(moment, window), moment


@settings(max_examples=300, deadline=None)
@given(scene=scenes())
def test_closes_at_ends_the_open_stretch(scene: tuple[Calendar, datetime, str | None]) -> None:
    """From an allowed t, every minute before closes_at(t) is allowed and closes_at is
    not; from a closed t, closes_at(t) is t and next_open(t) is later."""
    calendar, at, window = scene
    closes = calendar.closes_at(at, window, horizon=HORIZON)
    if not calendar.may_advance(at, window):
        assert at == closes
        later = calendar.next_open(at, window, horizon=HORIZON)
        assert later is None or later > at
        return
    assert at == calendar.next_open(at, window)
    end = at + HORIZON if closes is None else closes
    if closes is not None:
        assert closes > at
        assert not calendar.may_advance(closes, window)
        assert calendar.may_advance(max(at, closes - SECOND), window)
    for moment in minute_grid(at, end):
        assert calendar.may_advance(moment, window), moment


@settings(max_examples=200, deadline=None)
@given(scene=scenes(), data=st.data())
def test_freezes_override_windows(
    scene: tuple[Calendar, datetime, str | None], data: st.DataObject
) -> None:
    """A freeze never opens anything: inside it nothing advances, in any window, and
    the next opening is not before it ends."""
    calendar, at, window = scene
    freeze = data.draw(one_off_freezes(at))
    frozen = calendar.with_freeze(Freeze(name="added", start=freeze.start, end=freeze.end))
    if frozen.may_advance(at, window):
        assert calendar.may_advance(at, window)
    if calendar.may_advance(at, "w"):  # a window only ever narrows "freezes only"
        assert calendar.may_advance(at)
    if freeze.start <= at < freeze.end:
        assert not frozen.may_advance(at, window)
        assert not frozen.may_advance(at)
        opened = frozen.next_open(at, window, horizon=HORIZON)
        assert opened is None or opened >= freeze.end


def is_transition(moment: datetime, zone: ZoneInfo) -> bool:
    before = (moment - SECOND).astimezone(zone).utcoffset()
    return before != moment.astimezone(zone).utcoffset()


def exists(wall: datetime, zone: ZoneInfo) -> bool:
    back = wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
    return back.replace(tzinfo=None) == wall


@settings(max_examples=300, deadline=None)
@given(scene=zoned_moments(), minutes=clock_minutes, days_later=st.integers(0, 2))
def test_start_at_lands_on_the_wall_clock_time_asked(
    scene: tuple[ZoneInfo, datetime], minutes: int, days_later: int
) -> None:
    """next_after(t) ≥ t, on the asked day or later, at the asked wall-clock time (its
    first occurrence) — or, where that time does not exist, at the end of the gap; the
    day before would have been too early."""
    zone, at = scene
    asked = time(minutes // 60, minutes % 60)
    start = StartAt(time_of_day=asked, days_later=days_later).next_after(at, zone)
    assert start >= at
    local = start.astimezone(zone)
    ready_day = at.astimezone(zone).date()
    assert local.date() >= ready_day + timedelta(days=days_later)
    wall = datetime.combine(local.date(), asked)
    if local.time() == asked:
        assert 0 == local.fold
    else:
        assert not exists(wall, zone)
        assert is_transition(start, zone)
        assert local.replace(tzinfo=None) > wall
    if local.date() > ready_day + timedelta(days=days_later):
        day_before = datetime.combine(local.date() - timedelta(days=1), asked)
        assert resolve_local(day_before, zone) < at


@settings(max_examples=200, deadline=None)
@given(scene=zoned_moments(), minutes=clock_minutes)
def test_last_at_or_before_is_the_latest_occurrence(
    scene: tuple[ZoneInfo, datetime], minutes: int
) -> None:
    """The ask time before a deadline is an occurrence ≤ the deadline with no other
    occurrence between them."""
    zone, until = scene
    ask = StartAt(time_of_day=time(minutes // 60, minutes % 60))
    last = ask.last_at_or_before(until, zone)
    assert last <= until
    assert last == ask.next_after(last, zone)
    assert ask.next_after(last + timedelta(microseconds=1), zone) > until


@given(scene=zoned_moments(), wait=st.integers(0, 500 * 86400))
def test_describe_wait_always_says_when_and_how_long(
    scene: tuple[ZoneInfo, datetime], wait: int
) -> None:
    """Every wait prints: "now" when over, else a wall-clock time and "in …"."""
    zone, now = scene
    text = describe_wait(now, now + timedelta(seconds=wait), zone, "ramp starts")
    assert text.startswith("ramp starts ")
    assert (wait == 0) == text.endswith(" now")
    if wait:
        assert ", in " in text


class MappingError(Exception):
    pass


def no_error(key: tuple[PathPart, ...], message: str) -> MappingError:
    return MappingError(f"{key}: {message}")


@settings(max_examples=200, deadline=None)
@given(scene=scenes())
def test_calendar_to_mapping_reads_back_equal(scene: tuple[Calendar, datetime, str | None]) -> None:
    """calendar_to_mapping is what parse_calendar reads back to the same calendar (the
    plan's digest and an operator's journaled freeze depend on it)."""
    calendar = scene[0]
    mapping = calendar_to_mapping(calendar)
    assert calendar == parse_calendar(mapping, no_error)
    for freeze in calendar.freezes:
        table = freeze_to_mapping(freeze)
        key = ("freezes", freeze.name)
        assert freeze == parse_freeze(freeze.name, table, key, no_error, calendar.timezone)


def test_the_default_calendar_has_no_keys() -> None:
    """A plan without calendar keys maps to nothing, so its digest does not change."""
    assert {} == calendar_to_mapping(Calendar())
