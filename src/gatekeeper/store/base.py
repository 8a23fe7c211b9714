"""What a durable journal promises: the interfaces and values of the ``store`` family.

A backend plugs in by implementing :class:`LeasingStore` (the SQL stores) or just
:class:`gatekeeper.Store` (the memory store). The values here — :class:`Claim`,
:class:`LeaseHolder` — and the errors :class:`LeaseHeld` and :class:`LeaseLost` are
what a runner or the CLI gets back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from ..exceptions import StoreError

if TYPE_CHECKING:
    from .._protocols import Event, RunInfo

__all__ = [
    "FINISHED_STATUSES",
    "RESTARTED",
    "Claim",
    "Lease",
    "LeaseHeld",
    "LeaseHolder",
    "LeaseLost",
    "LeasingStore",
]

#: Run statuses after which a run is over: it is reported, never resumed or repeated
#: (:meth:`LeasingStore.claim_run` returns it with ``finished=True``,
#: ``unfinished_runs`` skips it). Every other status — ``running``, ``held``,
#: ``interrupted`` — is a run still in progress that a runner resumes. ``restarted`` (a
#: run replaced by a newer one of the same plan) is over too, but ``claim_run`` looks
#: past it to the run that replaced it.
FINISHED_STATUSES = frozenset(
    {"advanced", "rolled back", "failed", "error", "abandoned", "restarted"}
)

#: The status ``claim_run(restart=True)`` gives the unfinished run it replaces.
RESTARTED = "restarted"


class LeaseHeld(StoreError):  # noqa: N818 - a state, read as `except LeaseHeld`
    """Another live runner holds the run's lease (after waiting, if asked to wait)."""

    def __init__(self, message: str, *, run_id: str, owner: str, expires_at: datetime) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.owner = owner
        self.expires_at = expires_at


class LeaseLost(StoreError):  # noqa: N818 - the name the engine and docs use
    """This runner's lease is no longer its own: it expired, or another runner took over.

    A runner that gets it must stop at once: no journal write and no balancer write.
    """


@runtime_checkable
class Lease(Protocol):
    """The right to drive one run, until ``expires_at`` unless renewed.

    ``token`` grows by one every time the run changes hands (a fencing token): the
    store refuses an append carrying an older token with ``LeaseLost("fenced: ...")``.
    """

    @property
    def run_id(self) -> str: ...

    @property
    def owner(self) -> str: ...

    @property
    def token(self) -> int: ...

    @property
    def expires_at(self) -> datetime: ...

    def renew(self) -> None:
        """Push ``expires_at`` one lease duration ahead; ``LeaseLost`` if it was lost."""

    def release(self) -> None:
        """Give the run up now (another runner may take it at once)."""

    def check(self) -> None:
        """``LeaseLost`` unless the lease is still this runner's and unexpired (one query).

        Call it right before an effect the journal cannot fence (a balancer write).
        """


@attrs.frozen(kw_only=True)
class LeaseHolder:
    """Who drives a run now: the owner of its live lease."""

    owner: str
    token: int
    expires_at: datetime


@attrs.frozen(kw_only=True)
class Claim:
    """What :meth:`LeasingStore.claim_run` found or made for a plan, in one transaction.

    * ``created``: a new run, leased to the caller (``lease`` set);
    * neither ``created`` nor ``finished``: the plan's unfinished run, now leased to the
      caller, to be resumed;
    * ``finished``: the plan's latest run is over (its status is in
      :data:`FINISHED_STATUSES`); ``lease`` is ``None`` and nothing was changed — report
      the run, do not repeat it.
    """

    run: RunInfo
    created: bool
    lease: Lease | None
    finished: bool


@runtime_checkable
class LeasingStore(Protocol):
    """A store that also leases runs (SQLite and PostgreSQL; not the memory store)."""

    def acquire(self, run_id: str, *, wait: timedelta | None = None) -> Lease: ...

    def claim_run(
        self,
        *,
        plan: str,
        plan_digest: str,
        started_at: datetime,
        restart: bool = False,
        wait: timedelta | None = None,
        after: str | None = None,
    ) -> Claim: ...

    def lease_holder(self, run_id: str) -> LeaseHolder | None: ...

    def create_run(self, *, plan: str, plan_digest: str, started_at: datetime) -> str: ...

    def append(self, run_id: str, event: Event, *, fenced: bool = True) -> int: ...

    def events(self, run_id: str, *, after: int = 0) -> Sequence[Event]: ...

    def runs(self) -> Sequence[RunInfo]: ...

    def set_status(self, run_id: str, status: str) -> None: ...

    def close(self) -> None: ...
