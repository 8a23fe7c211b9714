"""The statistical judge: anytime-valid canary-versus-baseline tests.

A gate is looked at every few seconds for hours. A fixed-sample test re-run at every
look rejects a healthy canary sooner or later; the tests here are *e-processes*:
non-negative processes whose expectation is at most 1 at every stopping time while the
criterion holds, so by Ville's inequality the chance they *ever* reach ``1/alpha`` is at
most ``alpha``, however often they are looked at and whenever the run stops.

One entry point per kind of data, each called once per look with *cumulative* data
since the phase started and the state returned by the previous look (``None`` at the
first look of a phase)::

    budget = AlphaBudget.of(plan.phases, alpha=0.01)          # once per rollout
    state, result = judge_counts(state, canary_events, canary_trials,
                                 baseline_events, baseline_trials,
                                 alpha=budget.alpha(phase, i), factor=1.2, op="<=",
                                 alpha_spent=budget.spent_through(phase))
    state, result = judge_counts(state, canary_crashes, None, baseline_crashes, None,
                                 split=[(1.0, 120.0), (10.0, 180.0)], ...)  # shares in force
    state, result = judge_tail(state, canary_buckets, baseline_buckets, above=0.2, ...)
    state, result = judge_bound(state, events, trials, bound=0.005, op="<", alpha=a)
    state, result = judge_means(state, Moments(...), Moments(...), bounds=(0, 500), ...)

* :func:`judge_counts` -- events of canary and baseline (Lindon & Malek's conditional
  test), robust to declared overdispersion (``dispersion``, ``bursts``), reporting the
  dispersion the data show;
* :func:`judge_tail` -- latency from histogram buckets, distribution-free: the share of
  requests slower than a bucket bound, by the counts test;
* :func:`judge_bound` -- a rate against an absolute bound;
* :func:`judge_means` -- means of values clipped to declared bounds (nonasymptotic); an
  unbounded mean is INCONCLUSIVE with the reason.

Every test keeps two e-processes: one for *harm* (FAIL at ``e >= 1/alpha``) and one for
*safety* (PASS at ``e >= 1/alpha``). Neither yet is INCONCLUSIVE ("collecting
evidence"), never PASS -- unless the criterion is ``fail_only``, this is the phase's
last look (``final=True``) and the canary produced data. A FAIL once reached stays.

States are frozen ``attrs`` objects; :meth:`to_dict` gives a JSON-able dict for the run
journal and :func:`state_from_dict` reads it back. Pure Python, ``math`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .bound import (
    BoundState,
    beta_binomial_log_bf,
    bound_log_e,
    bound_prior,
    judge_bound,
    rate_interval,
)
from .budget import AlphaBudget, criterion_alpha, split_alpha
from .counts import (
    CountsState,
    Split,
    confidence_ratios,
    counts_loglik_update,
    judge_counts,
    split_segments,
)
from .dispersion import SCALES_S, Bursts, Excess, ScaleSums
from .inputs import compare_data_problem, compare_metric_problem
from .means import (
    LAMBDAS,
    MIN_MEANS_SAMPLES,
    UNBOUNDED_REASON,
    MeansState,
    Moments,
    arm_interval,
    arm_log_e,
    evidence_apart,
    judge_means,
)
from .mixture import (
    DOWN_WEIGHTS,
    GRID_HALF,
    GRID_STEP,
    PRIOR_SCALE,
    UP_WEIGHTS,
    log_normal_cdf,
    log_sum_exp,
    mixture_log_e,
    normal_cdf,
    normal_mixture_log_e,
    rho_squared,
)
from .tail import Buckets, judge_tail, tail_counts, tail_edge
from .verdict import JudgeResult

__all__ = [
    "DOWN_WEIGHTS",
    "GRID_HALF",
    "GRID_STEP",
    "LAMBDAS",
    "MIN_MEANS_SAMPLES",
    "PRIOR_SCALE",
    "SCALES_S",
    "UNBOUNDED_REASON",
    "UP_WEIGHTS",
    "AlphaBudget",
    "BoundState",
    "Buckets",
    "Bursts",
    "CountsState",
    "Excess",
    "JudgeResult",
    "MeansState",
    "Moments",
    "ScaleSums",
    "Split",
    "arm_interval",
    "arm_log_e",
    "beta_binomial_log_bf",
    "bound_log_e",
    "bound_prior",
    "compare_data_problem",
    "compare_metric_problem",
    "confidence_ratios",
    "counts_loglik_update",
    "criterion_alpha",
    "evidence_apart",
    "judge_bound",
    "judge_counts",
    "judge_means",
    "judge_tail",
    "log_normal_cdf",
    "log_sum_exp",
    "mixture_log_e",
    "normal_cdf",
    "normal_mixture_log_e",
    "rate_interval",
    "rho_squared",
    "split_alpha",
    "split_segments",
    "state_from_dict",
    "tail_counts",
    "tail_edge",
]


def state_from_dict(data: Mapping[str, Any]) -> CountsState | BoundState | MeansState:
    """Read back a state written by ``to_dict`` (the run journal stores them)."""
    raw = dict(data)
    test = raw.pop("test", None)
    if test == "counts":
        raw["loglik"] = tuple(float(v) for v in raw["loglik"])
        if len(raw["loglik"]) != 2 * GRID_HALF + 1:
            raise ValueError("a counts state from a different grid")
        # journals written before the dispersion was measured per block length
        raw.pop("pearson", None)
        raw.pop("pearson_looks", None)
        if raw.get("bursts") is not None:
            raw["bursts"] = Bursts(**raw["bursts"])
        if "seen" in raw:
            raw["seen"] = tuple(
                ScaleSums(**{**scale, "start": tuple(scale["start"])}) for scale in raw["seen"]
            )
        return CountsState(**raw)
    if test == "bound":
        return BoundState(**raw)
    if test == "means":
        raw.pop("target_n", None)
        if raw.get("bounds") is not None:
            raw["bounds"] = (float(raw["bounds"][0]), float(raw["bounds"][1]))
        return MeansState(**raw)
    raise ValueError(f"unknown judge state {test!r}")
