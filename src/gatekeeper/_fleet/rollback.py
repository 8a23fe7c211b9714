"""Rolling back a target whose run already ended (``on_fail`` reaching back).

The same steps as ``gatekeeper rollback`` with no live runner, on the backend the
fleet holds: lease the target's run, journal the intent (``rollback: true``), set
the canary to 0 %, read it back, journal the confirmation and the run's new end.
A balancer that already reads 0 % (a kill after the write, before its record) is
confirmed without a second write: no traffic change is ever repeated.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from .._model import Split
from .._protocols import Event, Store, TrafficBackend
from ..exceptions import GatekeeperError, TrafficError

__all__ = ["rollback_finished"]


async def rollback_finished(
    store: Store, plan_name: str, backend: TrafficBackend, why: str
) -> Split:
    from .._run.calls import call  # noqa: PLC0415
    from .._run.events import EventKind  # noqa: PLC0415

    runs = [r for r in store.runs() if r.plan == plan_name and r.status != "restarted"]
    if not runs:
        raise GatekeeperError(f"no run of {plan_name!r} to roll back")
    info = runs[-1]
    acquire: Any = getattr(store, "acquire", None)
    lease = acquire(info.run_id) if acquire is not None else None

    def journal(kind: str, data: dict[str, Any]) -> None:
        store.append(info.run_id, Event(kind=kind, at=datetime.now(UTC), data=data))

    try:
        split: Split = await call(backend.get_split)
        if split.canary != 0:
            journal(EventKind.TRAFFIC_INTENT, {"canary": 0.0, "why": why, "rollback": True})
            if lease is not None:
                lease.check()
            await call(backend.set_split, 0.0)
            split = await call(backend.get_split)
            if split.canary != 0:
                journal(EventKind.TRAFFIC_FAILED, {"canary": 0.0, "error": "read back"})
                raise TrafficError(f"the balancer reads back {split.canary:g}%", wanted=0.0)
        journal(EventKind.TRAFFIC_CONFIRMED, {"canary": split.canary, "detail": split.detail})
        if info.status != "rolled back":
            journal(EventKind.RUN_ENDED, {"outcome": "rolled back", "reason": why})
            store.set_status(info.run_id, "rolled back")
    finally:
        if lease is not None:
            with contextlib.suppress(GatekeeperError):
                lease.release()
    return split
