"""The criterion grammar: every form parses to what it says, errors point at a column."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper._grammar import GrammarError, Parsed, Quantity, parse_criterion
from gatekeeper._model import Reference
from strategies import criteria


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "error_rate < 0.5%",
            Parsed(
                text="error_rate < 0.5%",
                metric="error_rate",
                op="<",
                bound=Quantity(value=0.5, unit="%"),
            ),
        ),
        (
            "latency_p99 < 200ms",
            Parsed(
                text="latency_p99 < 200ms",
                metric="latency_p99",
                op="<",
                bound=Quantity(value=200, unit="ms"),
            ),
        ),
        (
            "latency_p99<=1.5s",
            Parsed(
                text="latency_p99<=1.5s",
                metric="latency_p99",
                op="<=",
                bound=Quantity(value=1.5, unit="s"),
            ),
        ),
        (
            "critical_incidents == 0",
            Parsed(
                text="critical_incidents == 0",
                metric="critical_incidents",
                op="==",
                bound=Quantity(value=0),
            ),
        ),
        (
            "availability > 99.95 %",
            Parsed(
                text="availability > 99.95 %",
                metric="availability",
                op=">",
                bound=Quantity(value=99.95, unit="%"),
            ),
        ),
        (
            "x != 1e-3",
            Parsed(text="x != 1e-3", metric="x", op="!=", bound=Quantity(value=0.001)),
        ),
        (
            "revenue_per_user >= baseline * 1.058",
            Parsed(
                text="revenue_per_user >= baseline * 1.058",
                metric="revenue_per_user",
                op=">=",
                reference=Reference.BASELINE,
                factor=1.058,
            ),
        ),
        (
            "revenue_per_user >= prerun * 1.058",
            Parsed(
                text="revenue_per_user >= prerun * 1.058",
                metric="revenue_per_user",
                op=">=",
                reference=Reference.PRERUN,
                factor=1.058,
            ),
        ),
        (
            "latency <= baseline / 2 + 20ms",
            Parsed(
                text="latency <= baseline / 2 + 20ms",
                metric="latency",
                op="<=",
                reference=Reference.BASELINE,
                factor=0.5,
                offset=Quantity(value=20, unit="ms"),
            ),
        ),
        (
            "error_rate < prerun - 0.1%",
            Parsed(
                text="error_rate < prerun - 0.1%",
                metric="error_rate",
                op="<",
                reference=Reference.PRERUN,
                offset=Quantity(value=-0.1, unit="%"),
            ),
        ),
        (
            "error_rate canary <= baseline * 1.2",
            Parsed(
                text="error_rate canary <= baseline * 1.2",
                metric="error_rate",
                op="<=",
                reference=Reference.BASELINE,
                factor=1.2,
                canary=True,
            ),
        ),
        (
            "error_rate canary < 0.5%",
            Parsed(
                text="error_rate canary < 0.5%",
                metric="error_rate",
                op="<",
                bound=Quantity(value=0.5, unit="%"),
                canary=True,
            ),
        ),
        (
            "latency_p99 stable within 10%",
            Parsed(
                text="latency_p99 stable within 10%",
                metric="latency_p99",
                stable_within=Quantity(value=10, unit="%"),
            ),
        ),
        (
            "latency_p99 stable within 10% over 2h30m",
            Parsed(
                text="latency_p99 stable within 10% over 2h30m",
                metric="latency_p99",
                stable_within=Quantity(value=10, unit="%"),
                window=timedelta(hours=2, minutes=30),
            ),
        ),
        (
            "  x < 1  ",
            Parsed(text="x < 1", metric="x", op="<", bound=Quantity(value=1)),
        ),
    ],
)
def test_every_form_parses(text: str, expected: Parsed) -> None:
    """Threshold, count, relative (baseline/prerun, factor, offset), compare and stable."""
    assert expected == parse_criterion(text)


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("eror_rate <", "expected a number, got the end", 12),
        ("x < 5 kb", "unexpected 'kb'", 7),
        ("latency < 200 ms", "write the unit next to the number: '200ms'", 15),
        ("x < 5kb", "unknown unit 'kb' (known: %, ms, s)", 6),
        ("x << 3", "expected a number, got '<'", 4),
        ("baseline < 3", "expected a metric name, got the keyword 'baseline'", 1),
        ("stable < 3", "expected a metric name, got the keyword 'stable'", 1),
        ("x", "expected a comparison (<, <=, >, >=, ==, !=), got the end", 2),
        ("x = 3", "unexpected character '='", 3),
        ("x < 3 4", "unexpected '4'", 7),
        ("x < -1", "expected a number, got '-'", 5),
        ("x >= baseline / 0", "division by zero", 17),
        ("x < 1e999", "number out of range: 1e999", 5),
        ("x >= baseline * 2e400", "number out of range: 2e400", 17),
        ("x stable within 1e999%", "number out of range: 1e999", 17),
        ("x >= baseline * y", "expected a factor, got 'y'", 17),
        ("x canary <= prerun", "'canary' compares against the concurrent 'baseline' only", 13),
        (
            "x stable 5%",
            "expected 'within' after 'stable' (e.g. 'latency_p99 stable within 10%')",
            10,
        ),
        (
            "x stable within 5% over 2x",
            "expected a duration like '90', '15m', '4h30m' or '1d', got '2x'",
            25,
        ),
        ("", "empty criterion", 1),
        ("   ", "empty criterion", 1),
    ],
)
def test_errors_carry_the_column(text: str, message: str, column: int) -> None:
    """A GrammarError says what went wrong and where (1-based column in the text)."""
    with pytest.raises(GrammarError) as info:
        parse_criterion(text)
    assert (message, column) == (info.value.message, info.value.column)


@pytest.mark.parametrize(
    ("text", "column"),
    [("x stable within 5", 17), ("x stable within 5ms over 1h", 17)],
)
def test_stable_tolerance_must_be_a_percentage(text: str, column: int) -> None:
    """'within 5' without % is refused at the tolerance: a drift tolerance is relative."""
    with pytest.raises(GrammarError) as info:
        parse_criterion(text)
    assert ("a stability tolerance is a percentage (e.g. 'within 10%')", column) == (
        info.value.message,
        info.value.column,
    )


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('x') < 1",
        "x < __import__('os').system('x')",
        "x < (1)",
        "x < 1; import os",
        "x < [1]",
        "x < 1 or True",
        "x.__class__ < 1 if True else 2",
        "x < 1\n< 2",
        "lambda: 1 < 2",
    ],
)
def test_code_is_never_evaluated(text: str) -> None:
    """Python expressions are a GrammarError, never evaluated."""
    with pytest.raises(GrammarError):
        parse_criterion(text)


def test_message_shows_column_and_text() -> None:
    """str() of the error is one line naming the column and the criterion."""
    with pytest.raises(GrammarError) as info:
        parse_criterion("x << 3")
    assert str(info.value) == "expected a number, got '<' at column 4 in 'x << 3'"


@given(criteria())
def test_any_generated_criterion_parses(pair: tuple[str, Parsed]) -> None:
    """Any criterion in any form of the grammar parses to what was written."""
    text, expected = pair
    assert expected == parse_criterion(text)


@given(criteria())
def test_parse_is_whitespace_insensitive_at_the_ends(pair: tuple[str, Parsed]) -> None:
    """Surrounding whitespace (a TOML multi-line string) changes nothing."""
    text, expected = pair
    assert expected == parse_criterion(f"\n  {text}\t ")


@given(st.text(alphabet=st.sampled_from(list("abx_.:0123456789e%*/+- <>=!")), max_size=30))
def test_any_text_parses_or_is_a_grammar_error(text: str) -> None:
    """Whatever the text, the parser answers with a Parsed or a GrammarError, and a
    parsed bound, factor or offset is always a finite number."""
    error: GrammarError | None = None
    try:
        parsed = parse_criterion(text)
    except GrammarError as exc:
        error = exc
    if error is not None:
        assert 1 <= error.column <= len(text.strip()) + 1
        return
    numbers = [parsed.factor]
    numbers += [q.value for q in (parsed.bound, parsed.offset, parsed.stable_within) if q]
    assert all(math.isfinite(n) for n in numbers)
