"""Latency from histogram buckets, judged distribution-free: the share of requests
slower than a bucket bound, canary against baseline, by the exact counts test."""

from __future__ import annotations

import math
import random
import re

import pytest

from gatekeeper import _judge
from gatekeeper._model import Outcome

EDGES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, math.inf)


def _histogram(values: list[float]) -> list[tuple[float, float]]:
    return [(edge, float(sum(v <= edge for v in values))) for edge in EDGES]


def test_tail_counts_read_the_requests_above_a_bucket_bound() -> None:
    """(slower than 0.2 s, all) from cumulative buckets; the +Inf bucket is the total."""
    buckets = [(0.1, 5.0), (0.2, 8.0), (math.inf, 10.0)]
    assert (2.0, 10.0) == _judge.tail_counts(buckets, 0.2)
    assert (5.0, 10.0) == _judge.tail_counts(buckets, 0.1)


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ([(0.1, 5.0), (0.2, 8.0), (math.inf, 10.0)], "not a bucket bound"),
        ([(0.1, 5.0), (0.3, 8.0)], "+Inf"),
        ([(0.1, 5.0), (0.3, 4.0), (math.inf, 10.0)], "cumulative"),
    ],
)
def test_tail_counts_refuse_what_buckets_cannot_say(
    buckets: list[tuple[float, float]], message: str
) -> None:
    """A bound inside a bucket, a histogram without +Inf or non-cumulative counts."""
    with pytest.raises(ValueError, match=re.escape(message)):
        _judge.tail_counts(buckets, 0.25 if message == "not a bucket bound" else 0.1)


def test_tail_edge_is_the_first_bound_at_the_quantile() -> None:
    """The baseline's p90 falls in the (0.2, 0.4] bucket: the bound is 0.4."""
    buckets = [(0.1, 50.0), (0.2, 85.0), (0.4, 97.0), (math.inf, 100.0)]
    assert 0.4 == _judge.tail_edge(buckets, 0.9)
    assert 0.1 == _judge.tail_edge(buckets, 0.5)


def _run(scale: float, draw: str, seed: int) -> _judge.JudgeResult:
    rng = random.Random(seed)

    def value() -> float:
        if draw == "lomax":
            return 0.1 * (math.pow(rng.random(), -1 / 1.5) - 1.0)
        return rng.lognormvariate(math.log(0.1), 0.6)

    canary: list[float] = []
    baseline: list[float] = []
    state: _judge.CountsState | None = None
    result = None
    for _look in range(30):
        canary += [value() * scale for _ in range(40)]
        baseline += [value() for _ in range(360)]
        state, result = _judge.judge_tail(
            state, _histogram(canary), _histogram(baseline), above=0.2, alpha=0.01
        )
    assert result is not None
    return result


def test_a_slower_canary_fails_on_its_tail() -> None:
    """+50 % latency (lognormal): more of the canary's requests are slower than 0.2 s."""
    result = _run(1.5, "lognormal", 1)
    assert Outcome.FAIL == result.outcome
    assert "share slower than 0.2s" in result.explanation


@pytest.mark.parametrize("draw", ["lognormal", "lomax"])
def test_a_healthy_canary_with_a_heavy_tail_does_not_fail(draw: str) -> None:
    """Identical arms, whatever the tail (Lomax, shape 1.5: infinite variance): the
    canary's share of slow requests is its share of requests, and nothing fails."""
    assert Outcome.FAIL != _run(1.0, draw, 2).outcome
