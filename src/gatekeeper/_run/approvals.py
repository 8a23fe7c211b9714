"""Approvals: the go/no-go before a phase.

An answer comes from the journal (``gatekeeper approve`` / ``reject``, bound to
this run and phase, and counted even when given before the run asked) or from the
approver (environment, file, recording). Waiting holds traffic where it is; an
operator's rollback still interrupts the wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from .._approval import ApprovalAnswer, ApprovalRequest, ApprovalState, Approver
from .._model import Phase
from .calls import call
from .context import RunContext
from .events import EventKind
from .operator import OperatorChannel

__all__ = ["APPROVAL_POLL", "Approvals"]

APPROVAL_POLL = timedelta(seconds=5)

Wait = Callable[[datetime], Awaitable[None]]


class Approvals:
    def __init__(
        self,
        ctx: RunContext,
        operator: OperatorChannel,
        approver: Approver,
        *,
        wait_for_approval: bool,
    ) -> None:
        self.ctx = ctx
        self.operator = operator
        self.approver = approver
        self.wait_for_approval = wait_for_approval

    def _from_journal(self, phase: Phase) -> ApprovalAnswer | None:
        answer = self.operator.approvals.get(phase.name)
        if answer is None:
            return None
        return ApprovalAnswer(
            state=ApprovalState.GIVEN if answer.given else ApprovalState.REJECTED,
            by=answer.by,
            reason=answer.reason,
        )

    async def ask(
        self, phase: Phase, wait: Wait, *, deadline: datetime | None = None
    ) -> ApprovalAnswer:
        """The phase's go/no-go; PENDING when nobody answered and the run may not
        wait (or the approval's timeout passed)."""
        assert phase.approval is not None
        ctx = self.ctx
        self.operator.poll()
        answer = self._from_journal(phase)
        if answer is not None:
            await self._answered(phase, answer)
            return answer
        ctx.journal(
            EventKind.APPROVAL_REQUESTED, phase=phase.name, data={"prompt": phase.approval.prompt}
        )
        await ctx.observers.emit("approval_requested", run=ctx.info, phase=phase)
        timeout = phase.approval.timeout
        if deadline is None and timeout is not None:
            deadline = ctx.clock.now() + timeout
        while True:
            now = ctx.clock.now()
            self.operator.poll()
            answer = self._from_journal(phase) or await self._approver(phase, now)
            if answer.state is not ApprovalState.PENDING:
                await self._answered(phase, answer)
                return answer
            waiting = self.wait_for_approval or deadline is not None
            if not waiting or (deadline is not None and now >= deadline):
                ctx.journal(
                    EventKind.APPROVAL_PENDING, phase=phase.name, data={"reason": answer.reason}
                )
                await self._answered(phase, answer)
                return answer
            step = now + APPROVAL_POLL
            await wait(step if deadline is None else min(deadline, step))

    async def _approver(self, phase: Phase, now: datetime) -> ApprovalAnswer:
        assert phase.approval is not None
        ctx = self.ctx
        origin = ctx.origin or ctx.started_at or now
        request = ApprovalRequest(
            run_id=ctx.run_id,
            plan=ctx.plan.name,
            phase=phase.name,
            prompt=phase.approval.prompt,
            at=now,
            offset_in_run=(now - origin).total_seconds(),
        )
        answer = await call(self.approver.check, request)
        if answer.state is not ApprovalState.PENDING:
            kind = (
                EventKind.APPROVAL_GIVEN
                if answer.state is ApprovalState.GIVEN
                else EventKind.APPROVAL_REJECTED
            )
            ctx.journal(kind, phase=phase.name, data={"by": answer.by, "reason": answer.reason})
        return answer

    async def _answered(self, phase: Phase, answer: ApprovalAnswer) -> None:
        await self.ctx.observers.emit(
            "approval_answered", run=self.ctx.info, phase=phase, answer=answer
        )
