"""Traffic: intent → lease check → set → read back → compare → confirm.

The balancer's truth, not our belief: every change is compared with the intent
(a finite tolerance), the split is re-read before every decision, and a run that
was rolled back never raises traffic again.
"""

from __future__ import annotations

import math

from .._model import Phase, Split
from .._protocols import TrafficBackend
from ..exceptions import TrafficError
from .calls import call
from .context import RunContext
from .events import EventKind
from .replay import Journal

__all__ = ["TOLERANCE", "TrafficControl"]

#: Percentage points between the share asked for and the share read back that
#: still count as "the same" (balancers round weights: 10 % may read 10.16 %).
TOLERANCE = 0.5
ROLLBACK_ATTEMPTS = 3


def same_share(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= TOLERANCE


def _checked(split: Split, percent: float) -> Split:
    """The engine's own comparison of the read-back split with the intent, beside
    the backend's (a backend whose tolerance is misconfigured cannot switch it off)."""
    if not same_share(split.canary, percent):
        raise TrafficError(
            f"the balancer reads back {split.canary:g}% after being set to {percent:g}%",
            wanted=percent,
            actual=split.canary,
        )
    return split


class TrafficControl:
    """The run's only way to the balancer."""

    def __init__(self, ctx: RunContext, backend: TrafficBackend | None) -> None:
        self.ctx = ctx
        self.backend = None if ctx.judge_only else backend
        self.confirmed: Split | None = None
        # Why the run was rolled back, once it was: from then on nothing raises traffic.
        self.rolled_back: str | None = None
        # A rollback whose balancer write was not confirmed: tried again, never skipped.
        self._pending = False

    async def read(self) -> Split | None:
        """What the balancer does now, journaled."""
        if self.backend is None:
            return None
        self.confirmed = await call(self.backend.get_split)
        self.ctx.journal(EventKind.TRAFFIC_READ, data={"canary": self.confirmed.canary})
        return self.confirmed

    async def set(self, phase: Phase | None, percent: float, why: str) -> Split | None:
        """Move the canary to ``percent``; on failure return to the last confirmed
        split (never upward after a rollback) and raise :class:`TrafficError`."""
        if self.backend is None:
            return None
        if self.rolled_back is not None and percent > 0:
            raise TrafficError(
                f"run {self.ctx.run_id} was rolled back ({self.rolled_back}): it never "
                f"raises traffic again (asked for {percent:g}%)",
                wanted=percent,
            )
        previous = self.confirmed
        try:
            split = await self._apply(phase, percent, why, rollback=False)
        except TrafficError as exc:
            restored = ""
            if previous is not None and not self.ctx.lease_lost:
                try:
                    back = await self._apply(
                        phase,
                        previous.canary,
                        "returning to the last confirmed split",
                        rollback=False,
                    )
                    restored = f"; returned to the last confirmed split ({back.canary:g}%)"
                except TrafficError as again:
                    restored = f"; returning to {previous.canary:g}% failed too: {again}"
            raise TrafficError(
                f"could not set the canary to {percent:g}%: {exc}{restored}",
                wanted=percent,
                actual=exc.actual,
            ) from exc
        await self._changed(phase, split, previous)
        return split

    async def rollback(self, phase: Phase | None, why: str) -> Split | None:
        """Every request to the baseline. Journaled as a rollback intent first, so a
        crash or a failed write leaves an intent that resume finishes before anything
        else; retried, never followed by a move back up."""
        self.rolled_back = self.rolled_back or why
        if self.backend is None:
            return None
        if self.confirmed is not None and self.confirmed.canary == 0 and not self._pending:
            return self.confirmed
        previous = self.confirmed
        error: TrafficError | None = None
        for _attempt in range(ROLLBACK_ATTEMPTS):
            try:
                split = await self._apply(phase, 0.0, f"rollback: {why}", rollback=True)
            except TrafficError as exc:
                error = exc
                if self.ctx.lease_lost:
                    break
                continue
            self._pending = False
            await self._changed(phase, split, previous)
            return split
        self._pending = True
        assert error is not None
        raise TrafficError(
            f"rollback not confirmed after {ROLLBACK_ATTEMPTS} attempts: {error}; the canary "
            f"may still have traffic: run 'gatekeeper rollback {self.ctx.run_id}'",
            wanted=0.0,
            actual=error.actual,
        ) from error

    async def _apply(
        self, phase: Phase | None, percent: float, why: str, *, rollback: bool
    ) -> Split:
        assert self.backend is not None
        name = phase.name if phase else None
        self.ctx.check_lease()  # a fenced runner never writes to the balancer
        data = {"canary": percent, "why": why}
        if rollback:
            data["rollback"] = True
        self.ctx.journal(EventKind.TRAFFIC_INTENT, phase=name, data=data)
        try:
            with self.ctx.span("gatekeeper.traffic", {"gatekeeper.canary_percent": percent}):
                split = _checked(await call(self.backend.set_split, percent), percent)
        except TrafficError as exc:
            self.ctx.journal(
                EventKind.TRAFFIC_FAILED, phase=name, data={"canary": percent, "error": str(exc)}
            )
            raise
        self.confirmed = split
        self.ctx.journal(
            EventKind.TRAFFIC_CONFIRMED,
            phase=name,
            data={"canary": split.canary, "detail": split.detail},
        )
        return split

    async def _changed(self, phase: Phase | None, split: Split, previous: Split | None) -> None:
        if previous is None or previous.canary != split.canary:
            await self.ctx.observers.emit(
                "traffic_changed", run=self.ctx.info, phase=phase, split=split, previous=previous
            )

    async def drift(self, phase: Phase | None) -> str | None:
        """Re-read the balancer before a decision. ``None`` when it does what the run
        last confirmed; otherwise the reason (journaled): a gate never passes on a
        split the run did not set."""
        if self.backend is None or self.confirmed is None:
            return None
        try:
            actual = await call(self.backend.get_split)
        except TrafficError as exc:
            reason = f"the balancer could not be read before the decision: {exc}"
        else:
            if same_share(actual.canary, self.confirmed.canary):
                return None
            reason = (
                f"the balancer reports the canary at {actual.canary:g}%, but the run set "
                f"{self.confirmed.canary:g}%: the split changed under the run (a reload, a "
                "hand edit?); a person decides"
            )
        self.ctx.journal(
            EventKind.TRAFFIC_DRIFT,
            phase=phase.name if phase else None,
            data={"expected": self.confirmed.canary, "reason": reason},
        )
        return reason

    async def reconcile(self, journal: Journal) -> None:
        """On resume, before anything else: an unconfirmed rollback is finished (and
        the run stays rolled back); otherwise the balancer must do what the journal
        last confirmed, and an unconfirmed intent is set again (a no-op if applied)."""
        self.rolled_back = journal.rolled_back
        if self.backend is None:
            return
        actual = await call(self.backend.get_split)
        self.confirmed = actual
        if journal.pending_rollback or (journal.rolled_back and actual.canary > 0):
            self._pending = True
            self.ctx.journal(
                EventKind.TRAFFIC_RECONCILE,
                data={"found": actual.canary, "wanted": 0.0, "why": "finishing the rollback"},
            )
            await self.rollback(None, journal.rolled_back or "finishing the rollback")
            return
        wanted = journal.pending_intent if journal.pending_intent is not None else journal.confirmed
        if wanted is None or (journal.pending_intent is None and same_share(actual.canary, wanted)):
            self.ctx.journal(EventKind.TRAFFIC_READ, data={"canary": actual.canary})
            return
        why = (
            f"finishing the unconfirmed change to {wanted:g}%"
            if journal.pending_intent is not None
            else f"the balancer reports {actual.canary:g}%, the journal {wanted:g}%"
        )
        self.ctx.journal(
            EventKind.TRAFFIC_RECONCILE, data={"found": actual.canary, "wanted": wanted, "why": why}
        )
        await self.set(None, wanted, why)
