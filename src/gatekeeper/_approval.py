"""Manual go/no-go before a phase: who can give it, and how it is asked."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

import attrs

from ._recording import Recording
from .exceptions import ApprovalError

__all__ = [
    "ApprovalAnswer",
    "ApprovalRequest",
    "ApprovalState",
    "Approver",
    "EnvApprover",
    "FileApprover",
]


class ApprovalState(enum.Enum):
    GIVEN = "given"
    REJECTED = "rejected"
    PENDING = "pending"


@attrs.frozen(kw_only=True)
class ApprovalRequest:
    """What an approver is asked: may ``phase`` of ``plan`` start (now, in ``run_id``)?"""

    run_id: str
    plan: str
    phase: str
    prompt: str
    at: datetime
    offset_in_run: float = 0.0


@attrs.frozen(kw_only=True)
class ApprovalAnswer:
    state: ApprovalState
    by: str = ""
    reason: str = ""


class Approver(Protocol):
    """Answers go/no-go requests; ``PENDING`` means nobody has decided yet."""

    def check(self, request: ApprovalRequest) -> ApprovalAnswer: ...


class EnvApprover:
    """Approvals from the environment, for CI.

    ``GATEKEEPER_APPROVE="ramp,rollout"`` (or ``"ramp=alice"`` to name who) gives;
    ``GATEKEEPER_REJECT="ramp"`` refuses; ``"*"`` stands for every phase.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._give = self._parse(env.get("GATEKEEPER_APPROVE", ""))
        self._reject = self._parse(env.get("GATEKEEPER_REJECT", ""))

    @staticmethod
    def _parse(text: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in text.split(","):
            phase, _, who = item.strip().partition("=")
            if phase:
                out[phase] = who.strip()
        return out

    def check(self, request: ApprovalRequest) -> ApprovalAnswer:
        for table, state, var in (
            (self._reject, ApprovalState.REJECTED, "GATEKEEPER_REJECT"),
            (self._give, ApprovalState.GIVEN, "GATEKEEPER_APPROVE"),
        ):
            for key in (request.phase, "*"):
                if key in table:
                    return ApprovalAnswer(state=state, by=table[key] or var, reason=f"from {var}")
        return ApprovalAnswer(state=ApprovalState.PENDING)


class FileApprover:
    """Approvals from a JSON file: ``{"ramp": {"state": "given", "by": "alice"}}``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def check(self, request: ApprovalRequest) -> ApprovalAnswer:
        if not self.path.exists():
            return ApprovalAnswer(state=ApprovalState.PENDING)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ApprovalError(f"{self.path}: cannot read approvals: {exc}") from None
        entry = data.get(request.phase) if isinstance(data, dict) else None
        if not isinstance(entry, dict):
            return ApprovalAnswer(state=ApprovalState.PENDING)
        try:
            state = ApprovalState(entry.get("state", "pending"))
        except ValueError:
            raise ApprovalError(
                f"{self.path}: {request.phase}.state must be given, rejected or pending"
            ) from None
        return ApprovalAnswer(state=state, by=str(entry.get("by", "")), reason=f"from {self.path}")


class ChainApprover:
    """The first approver that is not ``PENDING`` decides."""

    def __init__(self, *approvers: Approver) -> None:
        self.approvers = approvers

    def check(self, request: ApprovalRequest) -> ApprovalAnswer:
        for approver in self.approvers:
            answer = approver.check(request)
            if answer.state is not ApprovalState.PENDING:
                return answer
        return ApprovalAnswer(state=ApprovalState.PENDING)


class RecordingApprover:
    """Rehearsals: given unless the recording refuses (0) or withholds (empty) it."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def check(self, request: ApprovalRequest) -> ApprovalAnswer:
        from datetime import timedelta  # noqa: PLC0415

        answer = self.recording.approval(request.phase, timedelta(seconds=request.offset_in_run))
        if answer is None:
            return ApprovalAnswer(state=ApprovalState.PENDING, reason="withheld in the recording")
        if answer:
            return ApprovalAnswer(state=ApprovalState.GIVEN, by="rehearsal")
        return ApprovalAnswer(
            state=ApprovalState.REJECTED, by="rehearsal", reason="refused in the recording"
        )
