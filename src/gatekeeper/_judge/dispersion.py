"""Overdispersion: what the counts test assumes about bursts, and what the data show.

The counts test's likelihood is binomial: given a look's events, each is the canary's
independently. Bursts that hit one arm break that, and a metric declares them:

* ``dispersion = phi`` -- short, per-look noise: each look's split varies ``phi`` times
  a binomial. The test divides each look's log-likelihood by ``phi``.
* ``bursts = {size, lasting}`` -- each arm's rate wanders *on its own*, by ``size`` (the
  standard deviation of its log) for about ``lasting`` (the correlation time ``tau``).
  Over a phase the canary's events then vary ``1 + 4 tau K(size) lambda`` times a
  binomial, ``lambda = lc lb / (lc + lb)`` from the arms' event rates per second and
  ``K(s) = sum s^2k / (k k!)`` (about ``exp(s^2) - 1``). The test divides by that,
  worked out at every look from the baseline's rate: one declaration fits a 1 % canary
  (few events, little inflation) and a 10 % one.

Neither is estimated from the data *for the test*: an estimate made before a burst
cannot see it before it is counted as evidence, and one that includes it grows with real
harm. The data's own dispersion is measured (:class:`ScaleSums`, at several block
lengths) and reported; when it is clearly above what the test assumes, the verdict says
so and what to declare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

import attrs

from .._units import format_duration

#: Block lengths (seconds) at which the dispersion seen is measured; 0: every look.
SCALES_S = (0.0, 20.0, 80.0, 320.0, 1280.0, 5120.0)
#: Blocks a scale needs before its estimate is reported: fewer make the standard error
#: of a ratio of heavy-tailed sums (a rare canary event is a huge residual) unreliable.
MIN_BLOCKS = 8
#: The dispersion seen must exceed what the test assumes by this factor, at its lower
#: bound (``STANDARD_ERRORS`` below the estimate), before a verdict says the data are
#: burstier: a warning is a claim too.
WARN_FACTOR = 1.25
STANDARD_ERRORS = 2.5


@attrs.frozen(kw_only=True)
class Bursts:
    """Each arm's rate wandering on its own: ``size`` the standard deviation of its log,
    ``lasting_s`` its correlation time in seconds."""

    size: float
    lasting_s: float

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.size) and 0.0 < self.size <= 3.0):
            raise ValueError(f"a burst size must be in (0, 3], got {self.size!r}")
        if not (math.isfinite(self.lasting_s) and self.lasting_s > 0.0):
            raise ValueError(f"bursts must last a positive time, got {self.lasting_s!r}")

    @property
    def strength(self) -> float:
        """``K(size)``: the integrated covariance of a lognormal factor whose log is an
        Ornstein-Uhlenbeck process, per unit of correlation time (``sum s^2k/(k k!)``)."""
        s2 = self.size * self.size
        total, term = 0.0, 1.0
        for k in range(1, 40):
            term *= s2 / k
            total += term / k
            if term < 1e-12:
                break
        return total

    def inflation(self, canary_rate: float, baseline_rate: float, horizon_s: float | None) -> float:
        """The variance inflation of the canary's share of the events accumulated over
        ``horizon_s`` seconds (``None``: the long-run limit), the arms' event rates per
        second given."""
        if canary_rate <= 0.0 or baseline_rate <= 0.0:
            return 1.0
        harmonic = canary_rate * baseline_rate / (canary_rate + baseline_rate)
        tau = self.lasting_s
        if horizon_s is None:
            covered = 2.0 * tau
        elif horizon_s <= 0.0:
            return 1.0
        else:  # ∫∫ exp(-|u - v| / tau) du dv / horizon: ballistic below tau, 2 tau above
            covered = 2.0 * tau * (1.0 - (tau / horizon_s) * -math.expm1(-horizon_s / tau))
        return 1.0 + 2.0 * self.strength * harmonic * covered

    def text(self) -> str:
        return f"bursts {self.size * 100:.3g}% lasting {_span(self.lasting_s)}"


@attrs.frozen(kw_only=True)
class ScaleSums:
    """The dispersion seen in blocks of ``seconds`` (0: every look is a block).

    ``start`` holds the cumulative (canary events, baseline events, canary exposure,
    baseline exposure) when the open block started at ``since`` seconds, so a look that
    does not close the block changes nothing here. Over closed blocks, with ``a = (x -
    n theta)^2`` and ``b = n theta (1 - theta)`` (``x`` the canary's events of the
    block's ``n``, ``theta`` its expected share at the ratio the earlier looks
    estimate), the sums of ``a``, ``b``, ``a^2``, ``ab``, ``b^2``: ``sum a / sum b`` is
    about 1 for binomial data and ``phi`` for data ``phi`` times more variable.
    ``covered`` is the time the closed blocks span."""

    seconds: float
    start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    since: float = 0.0
    a: float = 0.0
    b: float = 0.0
    aa: float = 0.0
    ab: float = 0.0
    bb: float = 0.0
    blocks: int = 0
    covered: float = 0.0

    def at(
        self, cumulative: tuple[float, float, float, float], at_s: float | None, ratio: float
    ) -> ScaleSums:
        """The look with these cumulative counts, at ``at_s`` seconds: closes the block
        once it has lasted ``seconds`` (block lengths need the time: without it only the
        per-look scale counts)."""
        if self.seconds > 0.0 and (at_s is None or at_s - self.since < self.seconds):
            return self
        since = self.since if at_s is None else at_s
        canary, baseline, canary_exposure, baseline_exposure = (
            now - then for now, then in zip(cumulative, self.start, strict=True)
        )
        total = canary + baseline
        a = b = 0.0
        closed = total > 0.0 and canary_exposure > 0.0 and baseline_exposure > 0.0
        if closed:  # else no events, or an arm without exposure: nothing to compare
            share = canary_exposure / (canary_exposure + baseline_exposure)
            theta = ratio * share / (ratio * share + 1.0 - share)
            a = (canary - total * theta) ** 2
            b = total * theta * (1.0 - theta)
        return ScaleSums(
            seconds=self.seconds,
            start=cumulative,
            since=since,
            a=self.a + a,
            b=self.b + b,
            aa=self.aa + a * a,
            ab=self.ab + a * b,
            bb=self.bb + b * b,
            blocks=self.blocks + closed,
            covered=self.covered + (since - self.since if closed else 0.0),
        )

    def estimate(self) -> tuple[float, float] | None:
        """(dispersion seen, its lower bound ``STANDARD_ERRORS`` below), or ``None``
        before ``MIN_BLOCKS`` blocks with events."""
        if self.blocks < MIN_BLOCKS or self.b <= 0.0:
            return None
        seen = self.a / self.b
        # the ratio estimator's variance (delta method over the blocks)
        spread = max(0.0, self.aa - 2.0 * seen * self.ab + seen * seen * self.bb)
        return seen, seen - STANDARD_ERRORS * math.sqrt(spread) / self.b


def fresh_scales() -> tuple[ScaleSums, ...]:
    return tuple(ScaleSums(seconds=s) for s in SCALES_S)


@attrs.frozen(kw_only=True)
class Excess:
    """Where the data are clearly burstier than the test assumes: the blocks' length
    (their average: looks further apart than the scale make longer blocks; 0 for one
    look), the dispersion seen there and what the test assumes there."""

    seconds: float
    seen: float
    assumed: float

    def text(self, metric: str) -> str:
        times = chr(215)
        return (
            f"burstier than declared: the canary's share varies {self.seen:.3g}{times} a "
            f"binomial over {_span(self.seconds)} blocks ({self.assumed:.3g}{times} declared) "
            f"{chr(8212)} declare `dispersion` or `bursts` for {metric}"
        )


def excess(
    scales: Sequence[ScaleSums],
    *,
    dispersion: float,
    bursts: Bursts | None,
    canary_rate: float,
    baseline_rate: float,
) -> Excess | None:
    """The block length where the dispersion seen most exceeds, at its lower bound,
    ``WARN_FACTOR`` times what the test assumes (the declared dispersion, or what the
    declared bursts predict for blocks that long); ``None`` when none does."""
    worst: Excess | None = None
    worst_ratio = WARN_FACTOR
    for scale in scales:
        estimate = scale.estimate()
        if estimate is None:
            continue
        seen, low = estimate
        length = scale.covered / scale.blocks if scale.blocks and scale.covered > 0 else None
        assumed = dispersion
        if bursts is not None and length is not None:
            assumed = max(assumed, bursts.inflation(canary_rate, baseline_rate, length))
        if low / assumed >= worst_ratio:
            worst_ratio = low / assumed
            worst = Excess(seconds=float(length or 0.0), seen=float(seen), assumed=float(assumed))
    return worst


def _span(seconds: float) -> str:
    """A length as a plan spells it (``15m``, ``21m20s``), to the second."""
    return format_duration(timedelta(seconds=max(1, round(seconds))))
