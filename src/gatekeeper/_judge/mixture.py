"""The arithmetic every test shares: log-space sums, the normal distribution, the
effect grid and its prior, and the Gaussian-mixture martingale."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

#: Grid of the rate ratio (counts) or the rate (bound) relative to the null's boundary:
#: ``exp(k * GRID_STEP)`` for ``k = -GRID_HALF .. GRID_HALF`` (factor 1.1 steps, 1/66 to 66 times).
GRID_STEP = math.log(1.1)
GRID_HALF = 44
#: Prior scale (natural log units) of the mixture over the effect: most mass on effects
#: between 1.1 and 5 times, the ones worth catching early.
PRIOR_SCALE = 1.0
MAX_LOG_E = 700.0


def log_sum_exp(values: Sequence[float]) -> float:
    """``log(sum(exp(v)))`` without overflow; ``-inf`` for an empty sequence."""
    if not values:
        return -math.inf
    top = max(values)
    if top == -math.inf:
        return -math.inf
    exp = math.exp
    return top + math.log(math.fsum([exp(v - top) for v in values]))


def normal_cdf(x: float) -> float:
    """Φ(x), the standard normal distribution function."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def log_normal_cdf(x: float) -> float:
    """log Φ(x), accurate in the far left tail (where Φ underflows)."""
    if x > -30.0:
        return math.log(normal_cdf(x))
    # Mills ratio asymptotics: Φ(x) ~ φ(x)/|x| (1 - 1/x² + 3/x⁴)
    x2 = x * x
    return (
        -0.5 * x2
        - math.log(-x)
        - 0.5 * math.log(2.0 * math.pi)
        + math.log1p(-1.0 / x2 + 3.0 / (x2 * x2))
    )


def side_log_weights(positive: bool) -> list[tuple[int, float]]:
    """(k, log prior weight) of the grid points on one side of the null, summing to 1:
    a half-normal of scale ``PRIOR_SCALE`` on the log effect."""
    ks = range(1, GRID_HALF + 1) if positive else range(-1, -GRID_HALF - 1, -1)
    raw = [(k, -((k * GRID_STEP) ** 2) / (2.0 * PRIOR_SCALE**2)) for k in ks]
    norm = log_sum_exp([w for _, w in raw])
    return [(k, w - norm) for k, w in raw]


UP_WEIGHTS = side_log_weights(positive=True)
DOWN_WEIGHTS = side_log_weights(positive=False)
#: A fixed prior over the whole grid (both sides, half each): the mixture whose
#: likelihood ratio against *any* ratio ``r`` is a martingale at ``r``, so the ratios it
#: does not reject form a confidence sequence valid between grid points too.
TWO_SIDED = [(k, w - math.log(2.0)) for k, w in UP_WEIGHTS + DOWN_WEIGHTS]


def grid_ratio(k: int) -> float:
    """The effect of the grid point ``k`` steps from the null's boundary."""
    return math.exp(k * GRID_STEP)


def mixture_log_e(loglik: Sequence[float], center: int, *, upward: bool) -> float:
    """log of the one-sided mixture e-value against the grid point ``center`` (an index
    into ``loglik``), mixing the points above (``upward``) or below it."""
    base = loglik[center]
    return log_sum_exp([w + loglik[i] - base for i, w in _side(center, len(loglik), upward=upward)])


@functools.lru_cache(maxsize=256)
def _side(center: int, size: int, *, upward: bool) -> tuple[tuple[int, float], ...]:
    """(index, log weight) of the grid points one side of ``center`` inside the grid."""
    weights = UP_WEIGHTS if upward else DOWN_WEIGHTS
    return tuple((center + k, w) for k, w in weights if 0 <= center + k < size)


def bounded_e(log_e: float) -> float:
    """``exp(log_e)``, capped so that a crushing amount of evidence stays a float."""
    return math.exp(min(log_e, MAX_LOG_E))


def rho_squared(target_n: float, alpha: float) -> float:
    """Mixture variance that makes the normal-mixture boundary tightest at ``target_n``
    (Howard et al. 2021, eq. 3.5)."""
    log_inv = -2.0 * math.log(alpha)
    return (log_inv + math.log(log_inv + 1.0)) / target_n


def normal_mixture_log_e(z: float, t: float, rho2: float, *, one_sided: bool) -> float:
    """log of the Gaussian-mixture martingale at standardised sum ``S = z * sqrt(t)``
    after ``t`` observations: ``∫ exp(λS - λ²t/2) dN(λ; 0, ρ²)`` in closed form;
    ``one_sided`` mixes over a half-normal on λ > 0 (evidence that the drift is positive)."""
    s = z * math.sqrt(t)
    grow = 1.0 + rho2 * t
    base = rho2 * s * s / (2.0 * grow) - 0.5 * math.log(grow)
    if not one_sided:
        return base
    return math.log(2.0) + base + log_normal_cdf(math.sqrt(rho2) * s / math.sqrt(grow))
