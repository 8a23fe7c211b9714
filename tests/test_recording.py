"""Recordings: CSV metric values over time for rehearsals, and their located errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper._recording import Recording
from gatekeeper.exceptions import PlanError

EXAMPLES = Path(__file__).parent.parent / "examples" / "progressive-rollout"

TEXT = """\
at,metric,value,variant
# a comment line
0,error_rate,0.002,canary
15m,error_rate,0.004
90,error_rate,0.003
0,error_rate,0.001,baseline

1h20m,latency,0.2
4h30m,latency,
5h,latency,0.3
30m,approval:ramp,0
2h,approval:ramp,
3h,approval:ramp,1
"""


@pytest.fixture(scope="module")
def recording() -> Recording:
    return Recording.parse(TEXT, name="r.csv")


@pytest.mark.parametrize(
    ("metric", "at", "variant", "expected"),
    [
        ("error_rate", timedelta(0), "canary", (0.002, None)),
        ("error_rate", timedelta(seconds=89), "canary", (0.002, None)),
        ("error_rate", timedelta(seconds=90), "canary", (0.003, None)),  # "90" is seconds
        ("error_rate", timedelta(minutes=15), "canary", (0.004, None)),  # at or before t
        ("error_rate", timedelta(days=3), "canary", (0.004, None)),
        ("error_rate", timedelta(hours=1), "baseline", (0.001, None)),
        ("latency", timedelta(hours=1, minutes=20), "canary", (0.2, None)),
        (
            "latency",
            timedelta(hours=4, minutes=30),
            "canary",
            (None, "no data (empty in the recording)"),
        ),
        (
            "latency",
            timedelta(hours=4, minutes=59),
            "canary",
            (None, "no data (empty in the recording)"),
        ),
        ("latency", timedelta(hours=5), "canary", (0.3, None)),
        (
            "latency",
            timedelta(hours=1),
            "canary",
            (None, "the recording has no canary value for 'latency' yet"),
        ),
        (
            "latency",
            timedelta(hours=9),
            "baseline",
            (None, "the recording has no baseline values for 'latency'"),
        ),
        (
            "nothing",
            timedelta(0),
            "canary",
            (None, "the recording has no canary values for 'nothing'"),
        ),
    ],
)
def test_latest_row_at_or_before(
    recording: Recording,
    metric: str,
    at: timedelta,
    variant: str,
    expected: tuple[float | None, str | None],
) -> None:
    """Durations or seconds in 'at', variant canary by default, an empty value is no data."""
    assert expected == recording.value(metric, at, variant)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (timedelta(minutes=10), True),  # nothing said yet: given
        (timedelta(minutes=30), False),  # 0 refuses
        (timedelta(hours=2), None),  # empty withholds
        (timedelta(hours=3), True),  # 1 gives
    ],
)
def test_approval_rows(recording: Recording, at: timedelta, expected: bool | None) -> None:
    """approval:PHASE rows give (1), refuse (0) or withhold (empty) that phase's go/no-go."""
    assert expected == recording.approval("ramp", at)


def test_approval_given_when_the_recording_is_silent(recording: Recording) -> None:
    """A phase the recording says nothing about is approved."""
    assert recording.approval("rollout", timedelta(hours=1)) is True


def test_metrics_and_window(recording: Recording) -> None:
    """The metrics it holds; a window is the value in force at its start and every row after."""
    assert {"error_rate", "latency", "approval:ramp"} == recording.metrics()
    window = recording.window("error_rate", timedelta(seconds=60), timedelta(hours=1))
    assert [0.002, 0.003, 0.004] == window
    assert [] == recording.window("nothing", timedelta(0), timedelta(hours=1))


def test_indented_comments_and_blank_lines_are_skipped() -> None:
    """'  # note' is a comment wherever it is indented, before or after the header."""
    recording = Recording.parse("  # about\nat,metric,value\n   # later\n\n0,m,1\n")
    assert (1.0, None) == recording.value("m", timedelta(0))


def test_without_a_variant_column() -> None:
    """The variant column is optional: every row is the canary's."""
    recording = Recording.parse("at,metric,value\n0,m,1\n10m,m,2\n")
    assert (2.0, None) == recording.value("m", timedelta(minutes=11))
    assert not recording.has("m", "baseline")


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.floats(-1e6, 1e6)),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=0, max_value=12_000),
)
def test_value_is_the_latest_row_at_or_before(rows: list[tuple[int, float]], t: int) -> None:
    """For any rows in any order, the value at t is the last-written row with the
    greatest offset not after t."""
    text = "at,metric,value\n" + "".join(f"{at},m,{value!r}\n" for at, value in rows)
    recording = Recording.parse(text)
    earlier = [(at, value) for at, value in rows if at <= t]
    expected: tuple[float | None, str | None]
    if earlier:
        latest = max(at for at, _ in earlier)
        expected = ([v for at, v in earlier if at == latest][-1], None)
    else:
        expected = (None, "the recording has no canary value for 'm' yet")
    assert expected == recording.value("m", timedelta(seconds=t))


@pytest.mark.parametrize("name", ["healthy.csv", "bad-canary.csv", "no-data.csv"])
def test_shipped_recordings_load(name: str) -> None:
    """The example recordings parse and hold every metric of the reference plan."""
    recording = Recording.load(EXAMPLES / name)
    expected = {
        "error_rate",
        "availability",
        "latency_p99",
        "critical_incidents",
        "revenue_per_user",
    }
    # 'error_rate.numerator' and the like carry a ratio's counts for the statistical judge.
    assert expected == {name.split(".")[0] for name in recording.metrics()}


def test_shipped_recordings_say_what_they_claim() -> None:
    """bad-canary's error rate jumps to 0.9 % two minutes into the ramp (14h2m on the
    plan's calendar: the ramp starts at 14:00); no-data's p99 is silent."""
    bad = Recording.load(EXAMPLES / "bad-canary.csv")
    silent = Recording.load(EXAMPLES / "no-data.csv")
    assert (0.0008, None) == bad.value("error_rate", timedelta(hours=14, minutes=1))
    assert (0.009, None) == bad.value("error_rate", timedelta(hours=14, minutes=2))
    assert (None, "no data (empty in the recording)") == silent.value(
        "latency_p99", timedelta(hours=14, minutes=30)
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "# notes\ntime,metric,value\n",
            2,
            "the header must be 'at,metric,value' with an optional 'variant' column, "
            "got 'time,metric,value'",
        ),
        (
            "at,metric,value,colour\n",
            1,
            "the header must be 'at,metric,value' with an optional 'variant' column, "
            "got 'at,metric,value,colour'",
        ),
        (
            "at,metric,value,value\n",
            1,
            "the header must be 'at,metric,value' with an optional 'variant' column, "
            "got 'at,metric,value,value'",
        ),
        (
            "at,metric,value\n0,m,1\n5x,m,2\n",
            3,
            "at: expected a duration like '90', '15m', '4h30m' or '1d', got '5x'",
        ),
        (
            "at,metric,value\n-5,m,1\n",
            2,
            "at: a duration must be finite and not negative, got '-5'",
        ),
        (
            "at,metric,value,variant\n0,m,1,canary\n0,m,1,blue\n",
            3,
            "variant: expected canary or baseline, got 'blue'",
        ),
        ("at,metric,value\n0,m,lots\n", 2, "value: expected a number or nothing, got 'lots'"),
        ("at,metric,value\n0,m\n", 2, "expected 3 cells, got 2"),
        ("at,metric,value\n0,m,1,canary\n", 2, "expected 3 cells, got 4"),
        ("at,metric,value,variant\n0,m\n", 2, "expected 4 cells, got 2"),
        ("at,metric,value\n0,,1\n", 2, "metric: empty name"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    """A bad header, at, variant, value or cell count is FILE:LINE: message."""
    path = tmp_path / "rec.csv"
    path.write_text(text)
    with pytest.raises(PlanError) as info:
        Recording.load(path)
    assert f"{path}:{line}: {message}" == str(info.value)


def test_empty_recording(tmp_path: Path) -> None:
    """A recording without even a header says what it needs, at line 1."""
    path = tmp_path / "rec.csv"
    path.write_text("# nothing yet\n\n")
    with pytest.raises(PlanError) as info:
        Recording.load(path)
    assert f"{path}:1: the recording is empty (it needs a header 'at,metric,value')" == str(
        info.value
    )


def test_old_mac_line_endings() -> None:
    """Lines ended by a lone carriage return parse as they do when read from a file."""
    recording = Recording.parse("at,metric,value\r0,m,1\r5,m,2\r")
    assert (2.0, None) == recording.value("m", timedelta(seconds=6))


def test_malformed_csv_is_a_located_error() -> None:
    """A field over the csv module's size limit is a PlanError with its line."""
    with pytest.raises(PlanError) as info:
        Recording.parse("at,metric,value\n0,m," + "1" * 200_000 + "\n", name="r.csv")
    assert "r.csv:2: not valid CSV: field larger than field limit (131072)" == str(info.value)


@given(st.text(alphabet=st.sampled_from(list('at,metricvalu\n"#0159hms-. e\r\x00x:')), max_size=60))
def test_any_text_is_a_recording_or_a_plan_error(text: str) -> None:
    """Whatever follows the header, parsing gives a recording or a PlanError with a line."""
    try:
        Recording.parse("at,metric,value,variant\n" + text, name="r.csv")
    except PlanError as exc:
        error = exc
    else:
        return
    assert error.line is not None


def test_byte_order_mark_is_not_part_of_the_header(tmp_path: Path) -> None:
    """A CSV saved by a spreadsheet with a UTF-8 byte order mark loads."""
    path = tmp_path / "rec.csv"
    path.write_bytes(b"\xef\xbb\xbfat,metric,value\n0,m,1\n")
    assert (1.0, None) == Recording.load(path).value("m", timedelta(0))


def test_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is a PlanError naming the line and the first bad byte."""
    path = tmp_path / "rec.csv"
    path.write_bytes(b"at,metric,value\n0,\xff\xfe,1\n")
    with pytest.raises(PlanError) as info:
        Recording.load(path)
    assert (
        f"{path}:2: the recording is not UTF-8 text: byte 0xff at column 3 (byte offset 18)"
        == str(info.value)
    )


def test_a_line_of_a_million_commas_is_refused_by_its_length() -> None:
    """A line over 1 MiB characters is a PlanError before csv splits it into cells."""
    with pytest.raises(PlanError) as info:
        Recording.parse("at,metric,value\n0,x," + "," * 2_000_000 + "\n", name="r.csv")
    assert "r.csv:2: a line is at most 1048576 characters, got 2000005" == str(info.value)


def test_line_endings_of_every_kind_count_as_lines() -> None:
    """\\n, \\r\\n and a lone \\r each end a line: errors name the same line either way."""
    for ending in ("\n", "\r\n", "\r"):
        text = ending.join(["at,metric,value", "0,m,1", "5m,m,x", ""])
        with pytest.raises(PlanError) as info:
            Recording.parse(text, name="r.csv")
        assert 3 == info.value.line
