"""Durations and quantities as plans write them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper._units import format_duration, format_number, format_quantity, parse_duration
from strategies import duration_texts, durations


@given(durations)
def test_format_then_parse_is_identity(delta: timedelta) -> None:
    """Any whole-millisecond duration survives format_duration → parse_duration."""
    assert delta == parse_duration(format_duration(delta))


@given(duration_texts())
def test_written_durations_parse_to_their_value(pair: tuple[str, timedelta]) -> None:
    """Every spelling a plan may use ("90", "4h30m", "1d2h3m4s5ms") means what it says."""
    text, expected = pair
    assert expected == parse_duration(text)


@given(durations)
def test_format_is_canonical(delta: timedelta) -> None:
    """Formatting is a fixed point: the formatted text formats back to itself."""
    text = format_duration(delta)
    assert text == format_duration(parse_duration(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("4h30m", timedelta(hours=4, minutes=30)),
        ("1d", timedelta(days=1)),
        ("90", timedelta(seconds=90)),
        (" 90 ", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("0", timedelta(0)),
        (90, timedelta(seconds=90)),
        (0.5, timedelta(milliseconds=500)),
    ],
)
def test_accepted_forms(text: str | float, expected: timedelta) -> None:
    """Seconds as a number or text, unit-suffixed parts, fractions of a unit."""
    assert expected == parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a duration like '15m', got an empty string"),
        ("1x", "expected a duration like '90', '15m', '4h30m' or '1d', got '1x'"),
        ("1h 30m", "expected a duration like '90', '15m', '4h30m' or '1d', got '1h 30m'"),
        ("15M", "expected a duration like '90', '15m', '4h30m' or '1d', got '15M'"),
        ("m15", "expected a duration like '90', '15m', '4h30m' or '1d', got 'm15'"),
        ("-5", "a duration must be finite and not negative, got '-5'"),
        (-5, "a duration must be finite and not negative, got -5"),
        ("nan", "a duration must be finite and not negative, got 'nan'"),
        ("inf", "a duration must be finite and not negative, got 'inf'"),
        (True, "expected a duration like '15m', got a boolean (true)"),
    ],
)
def test_refused_forms(text: str | float, message: str) -> None:
    """Anything else is a ValueError whose message shows the accepted forms."""
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parse_duration(text)
    assert message == str(info.value)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=4, minutes=30), "4h30m"),
        (timedelta(hours=36), "1d12h"),
        (timedelta(seconds=-90), "-1m30s"),
        (timedelta(milliseconds=1500), "1s500ms"),
        (timedelta(microseconds=400), "1ms"),
        (timedelta(minutes=15, microseconds=123_456), "15m123ms"),
    ],
)
def test_format_duration_spellings(delta: timedelta, expected: str) -> None:
    """The shortest spelling, whole milliseconds, never empty for a positive duration."""
    assert expected == format_duration(delta)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0.0042, "%", "0.42%"),
        (0.005, "%", "0.5%"),
        (0.2, "ms", "200ms"),
        (0.2, "s", "0.2s"),
        (3.0, "", "3"),
        (float("nan"), "", "NaN"),
        (float("inf"), "", "+Inf"),
        (float("-inf"), "", "-Inf"),
    ],
)
def test_format_quantity(value: float, unit: str, expected: str) -> None:
    """A base value shown in the unit a criterion was written with, without float noise."""
    assert expected == format_quantity(value, unit)


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300).filter(bool)
)
def test_format_number_keeps_the_value(value: float) -> None:
    """A non-zero number never reads as 0 and reads back within six significant digits."""
    text = format_number(value)
    assert text not in ("0", "-0")
    assert float(text) == pytest.approx(value, rel=1e-5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e-9, "0.000000001"),
        (1.234567e-5, "0.0000123457"),
        (-2.5e-7, "-0.00000025"),
        (1e-25, "1e-25"),
        (1e308, "1e+308"),
        (1234567.5, "1234567.5"),
    ],
)
def test_extreme_numbers_keep_their_digits(value: float, expected: str) -> None:
    """Tiny values (an error rate of 1e-9) keep six digits without an exponent; values
    beyond any everyday range (1e308) use one rather than hundreds of digits."""
    assert expected == format_number(value)


def test_format_number_has_no_float_noise() -> None:
    """0.1 + 0.2 reads as 0.3, a tiny value has no exponent."""
    assert (format_number(0.1 + 0.2), format_number(1e-6)) == ("0.3", "0.000001")
