"""One look's verdict: the result value every test returns, the decision rule shared by
all tests, and the one-line explanation people read."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .._model import Outcome
from .dispersion import Excess

TIMES, DASH, ALPHA = "\u00d7", "\u2013", "\u03b1"  # x, -, alpha as people read them


def upper_ops(op: str) -> bool:
    """``True`` when the criterion caps the canary (``<``, ``<=``): harm is "too high"."""
    if op in ("<", "<="):
        return True
    if op in (">", ">="):
        return False
    raise ValueError(f"a statistical criterion needs <, <=, > or >=, got {op!r}")


def check_alpha(alpha: float) -> None:
    """Refuse a level outside (0, 1): a programming error, not a verdict."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


@attrs.frozen(kw_only=True)
class JudgeResult:
    """One look's verdict of a statistical test, with the evidence behind it.

    ``e_value`` is the running maximum of the harm e-process (the sequential p-value is
    ``p_value = min(1, 1/e_value)``); ``e_value_pass`` the same for the evidence that the
    criterion holds. ``ci_low``/``ci_high`` bound the effect (``effect`` names it: the
    rate ratio canary/baseline, the rate, or the ratio of means) with the
    ``1 - alpha`` confidence sequence at this look, rounded outwards (``None`` when
    unbounded). ``collecting`` is ``True`` for an INCONCLUSIVE that only means "not
    enough evidence yet" -- the next look may decide -- as opposed to unusable data.
    ``alpha_spent`` is the part of the rollout's error budget spent by the phases
    judged so far, this one included (``None`` when the caller keeps no budget), and
    ``alpha_budget`` that budget; ``dispersion`` the variance inflation the test
    allowed for at this look, ``dispersion_seen`` the one the data show from look to
    look, and ``burstier`` where they show clearly more than the test allows for
    (counts only).
    """

    outcome: Outcome
    test: str
    explanation: str
    alpha: float
    e_value: float = 1.0
    e_value_pass: float = 1.0
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    effect: str = ""
    n_canary: float = 0.0
    n_baseline: float = 0.0
    looks: int = 0
    decided_after_s: float | None = None
    collecting: bool = False
    alpha_spent: float | None = None
    alpha_budget: float | None = None
    dispersion: float | None = None
    dispersion_seen: float | None = None
    burstier: Excess | None = None

    @property
    def p_value(self) -> float:
        """The anytime-valid p-value of harm: ``1 / max e`` so far."""
        return min(1.0, 1.0 / self.e_value) if self.e_value > 0 else 1.0

    def as_evidence(self) -> dict[str, Any]:
        """JSON-able evidence for ``Verdict.evidence``."""
        return {
            "test": self.test,
            "alpha": self.alpha,
            "alpha_spent": self.alpha_spent,
            "alpha_budget": self.alpha_budget,
            "e_value": self.e_value,
            "e_value_pass": self.e_value_pass,
            "p_value": self.p_value,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "effect": self.effect,
            "n_canary": self.n_canary,
            "n_baseline": self.n_baseline,
            "looks": self.looks,
            "decided_after_s": self.decided_after_s,
            "collecting": self.collecting,
            "dispersion": self.dispersion,
            "dispersion_seen": self.dispersion_seen,
            "burstier": None if self.burstier is None else attrs.asdict(self.burstier),
        }


@attrs.frozen(kw_only=True)
class Budget:
    """What a judge call says about the rollout's error budget (see ``AlphaBudget``)."""

    spent: float | None = None
    total: float | None = None

    def text(self) -> str:
        if self.spent is None:
            return ""
        total = "" if self.total is None else f" of {fmt_pct(self.total)}"
        return f"; {ALPHA} spent so far {fmt_pct(self.spent)}{total}"


def decide(
    *,
    max_harm: float,
    max_safe: float,
    alpha: float,
    final: bool,
    fail_only: bool,
    has_data: bool = True,
) -> tuple[Outcome, str, bool]:
    """(outcome, verdict word for the explanation, collecting).

    Harm at ``1/alpha`` is FAIL; safety at ``1/alpha`` is PASS unless the criterion is
    fail-only; a fail-only criterion passes at the phase's last look only if the canary
    produced data at all (``has_data``): no data never passes."""
    threshold = 1.0 / alpha
    if max_harm >= threshold:
        return Outcome.FAIL, "FAIL", False
    if max_safe >= threshold and not fail_only:
        return Outcome.PASS, "PASS", False
    if fail_only and final:
        if not has_data:
            return Outcome.INCONCLUSIVE, "INCONCLUSIVE (fail-only: no canary data to judge)", False
        return Outcome.PASS, "PASS (fail-only: no evidence of harm by the end of the phase)", False
    return Outcome.INCONCLUSIVE, "INCONCLUSIVE", True


def decided_at(
    previous: float | None,
    outcome: Outcome,
    elapsed_s: float | None,
    *,
    fail_only: bool,
    final: bool,
) -> float | None:
    """When the test decided: kept once set; a fail-only horizon PASS is no decision."""
    if previous is None and outcome is not Outcome.INCONCLUSIVE and not (fail_only and final):
        return elapsed_s
    return previous


def fmt_e(value: float) -> str:
    if value >= 1e6:
        return f"{value:.1e}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_n(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def fmt_pct(value: float) -> str:
    return f"{value * 100:.3g}%"


def round_out(value: float, *, up: bool, digits: int = 3) -> float:
    """``value`` to ``digits`` significant digits, rounded away from the interval's
    inside (``up`` for an upper end): a printed interval never excludes what the
    computed one includes."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10.0 ** (math.floor(math.log10(abs(value))) - digits + 1)
    steps = value / scale
    rounded = math.ceil(steps - 1e-9) if up else math.floor(steps + 1e-9)
    return rounded * scale


def fmt_ratio(value: float | None, *, up: bool | None = None) -> str:
    """``×1.23``; ``up`` rounds an interval's end outwards (``None``: nearest)."""
    if value is None:
        return "∞"
    if up is not None:
        value = round_out(value, up=up)
    return f"{TIMES}{value:.3g}" if value < 10 else f"{TIMES}{value:.0f}"


def fmt_pct_out(value: float, *, up: bool) -> str:
    """A rate's interval end in percent, rounded outwards."""
    return f"{round_out(value * 100, up=up):.3g}%"


def fmt_level(alpha: float) -> str:
    return f"{(1 - alpha) * 100:.4g}%"


def invalid(test: str, alpha: float, reason: str, looks: int, budget: Budget) -> JudgeResult:
    """INCONCLUSIVE for unusable data (not "collecting": waiting will not fix it)."""
    return JudgeResult(
        outcome=Outcome.INCONCLUSIVE,
        test=test,
        explanation=reason,
        alpha=alpha,
        looks=looks,
        alpha_spent=budget.spent,
        alpha_budget=budget.total,
    )


def finite_nonneg(*values: float | None) -> bool:
    return all(v is None or (math.isfinite(v) and v >= 0) for v in values)


def explain(
    head: str,
    evidence: str,
    n_text: str,
    word: str,
    *,
    collecting: bool,
    fail_only: bool,
    waiting_head: str | None = None,
    budget: Budget | None = None,
) -> str:
    """The verdict's one line, the same shape for every test: what was seen, the
    evidence, and either the decision or that evidence is still being collected."""
    spent = budget.text() if budget is not None else ""
    if not collecting:
        return f"{head}, {evidence}{spent} after {n_text}: {word}"
    text = f"collecting evidence: {n_text}; {waiting_head or head}, {evidence}{spent}"
    if fail_only:
        text += "; fail-only: PASS at the phase's last checkpoint unless harm shows"
    return text


def evidence_text(e_harm: float, e_safe: float, alpha: float) -> str:
    threshold = 1.0 / alpha
    if e_harm >= threshold:
        return f"e={fmt_e(e_harm)} ≥ 1/{ALPHA}={fmt_e(threshold)}"
    if e_safe >= threshold:
        return f"e(pass)={fmt_e(e_safe)} ≥ 1/{ALPHA}={fmt_e(threshold)}"
    return f"e={fmt_e(e_harm)}, e(pass)={fmt_e(e_safe)} < 1/{ALPHA}={fmt_e(threshold)}"
