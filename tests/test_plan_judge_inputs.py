"""What the plan says about a compare criterion's data: ``bursts`` is read and located
like every key, and a compare on a metric the judge cannot judge (a gauge, a mean of
unbounded values) is refused when the plan is loaded, with what the metric needs."""

from __future__ import annotations

from datetime import timedelta

import pytest

import gatekeeper
from gatekeeper._planfile import plan_from_mapping, plan_to_mapping
from gatekeeper.exceptions import PlanError

PLAN = """\
[plan]
name = "judge-inputs"
[sources.prom]
type = "static"
[metrics.error_rate]
source = "prom"
numerator = "errors"
denominator = "requests"
{EXTRA}
[metrics.p99]
source = "prom"
query = "p99"
unit = "s"
[metrics.crashes]
source = "prom"
query = "crashes"
count = true
[metrics.revenue]
source = "prom"
query = "revenue"
bounds = [0, 100]
[[phases]]
name = "canary"
traffic = 1
checkpoints = ["15m"]
gate = [
    {GATE}
]
"""


def _plan(gate: str, extra: str = "") -> gatekeeper.Plan:
    text = PLAN.replace("{GATE}", gate).replace("{EXTRA}", extra)
    return gatekeeper.plan_from_text(text, path="gates.toml")


def _error(gate: str, extra: str = "") -> PlanError:
    with pytest.raises(PlanError) as caught:
        _plan(gate, extra)
    return caught.value


@pytest.mark.parametrize(
    ("written", "size"), [('"30%"', 0.3), ("0.3", 0.3), ('"150%"', 1.5), ('" 5 %"', 0.05)]
)
def test_bursts_are_read_as_a_share_and_a_duration(written: str, size: float) -> None:
    plan = _plan(
        '"error_rate canary <= baseline"', f'bursts = {{ size = {written}, lasting = "15m" }}'
    )
    bursts = plan.metrics["error_rate"].bursts
    assert bursts is not None
    assert bursts[0] == pytest.approx(size)
    assert bursts[1] == timedelta(minutes=15)
    again = plan_from_mapping(plan_to_mapping(plan))
    assert again.metrics["error_rate"].bursts == plan.metrics["error_rate"].bursts


@pytest.mark.parametrize(
    ("bursts", "key", "says"),
    [
        ('{ size = "abc", lasting = "15m" }', "bursts.size", "above 0% and at most 300%"),
        ('{ size = 0, lasting = "15m" }', "bursts.size", "above 0%"),
        ('{ size = "400%", lasting = "15m" }', "bursts.size", "at most 300%"),
        ('{ size = true, lasting = "15m" }', "bursts.size", "a boolean"),
        ('{ size = "30%" }', "bursts.lasting", 'a duration such as "15m"'),
        ('{ size = "30%", lasting = "500ms" }', "bursts.lasting", "at least 1s"),
        ('{ size = "30%", lasting = "9d" }', "bursts.lasting", ""),
        ('{ size = "30%", lasting = "15m", for = "1h" }', "bursts.for", "unknown key"),
        ('"30% for 15m"', "bursts", "expected a table"),
    ],
)
def test_a_bad_bursts_is_one_located_message(bursts: str, key: str, says: str) -> None:
    error = _error('"error_rate canary <= baseline"', f"bursts = {bursts}")
    assert error.key == f"metrics.error_rate.{key}"
    assert error.line == 9
    assert says in str(error)


def test_a_compare_on_a_gauge_is_refused_with_what_the_metric_needs() -> None:
    """``p99 canary <= baseline`` would judge seconds as event counts: refused at load,
    located at the criterion, naming the three kinds of data the judge can compare."""
    error = _error('"p99 canary <= baseline * 1.1"')
    assert error.key == "phases[0].gate[0]"
    message = str(error)
    assert "numerator and a denominator" in message
    assert "count = true" in message
    assert "bounds = [low, high]" in message
    assert "unbounded values cannot be judged with error control" in message


def test_a_statistical_bound_needs_a_rate() -> None:
    error = _error('"crashes canary < 0.5%"')
    assert error.key == "phases[0].gate[0]"
    assert "numerator and a denominator" in str(error)


@pytest.mark.parametrize(
    "criterion",
    [
        '"error_rate canary <= baseline * 1.2"',
        '"error_rate canary < 0.5%"',
        '"crashes canary <= baseline"',
        '"revenue canary >= baseline * 1.05"',
        '"p99 <= baseline * 1.1"',  # the plain relative comparison needs no counts
    ],
)
def test_data_the_judge_can_compare_load(criterion: str) -> None:
    assert _plan(criterion).phases[0].gate.criteria[0].text == criterion.strip('"')
