"""The run's lease: one driver per run, and fenced writes.

A store that leases runs (SQLite, PostgreSQL) lets one process hold a run at a
time. The runner renews the lease while it lives and checks it right before every
balancer write, so a runner paused past its lease (and taken over) never moves
traffic. The window that remains is the time between that check and the
balancer's own write: one request to the balancer, well under the lease's length.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from .._protocols import Store
from ..exceptions import GatekeeperError

__all__ = ["LeaseKeeper"]


class LeaseKeeper:
    """Takes, renews, checks and releases a run's lease (a no-op for stores
    without leases, such as the in-memory one)."""

    def __init__(self, store: Store, *, wait: timedelta | None = None) -> None:
        self.store = store
        self.wait = wait
        self.lease: Any = None
        self._renewer: asyncio.Task[None] | None = None
        self.lost = False

    def take(self, run_id: str) -> None:
        acquire = getattr(self.store, "acquire", None)
        if acquire is None:
            return
        self.hold(acquire(run_id, wait=self.wait))

    def hold(self, lease: Any) -> None:
        """Keep a lease taken elsewhere (an atomic claim) renewed while the run lives."""
        self.lease = lease
        if lease is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._renewer = loop.create_task(self._renew())

    async def _renew(self) -> None:
        """Every third of the lease's duration."""
        lease = self.lease
        period = max((lease.expires_at - datetime.now(UTC)).total_seconds() / 3, 0.5)
        while True:
            await asyncio.sleep(period)
            try:
                await asyncio.to_thread(lease.renew)
            except GatekeeperError:
                # Lost (expired, taken over, journal gone): the next journal or
                # balancer write fails its fence check and stops the run.
                self.lost = True
                return

    def check(self) -> None:
        """Raise when the lease is no longer ours (expired and taken over): called
        right before every balancer write."""
        checker = getattr(self.lease, "check", None)
        if checker is None:
            return
        try:
            checker()
        except GatekeeperError:
            self.lost = True
            raise

    def stop_renewing(self) -> None:
        """Keep the lease but stop renewing it (it expires on its own): a runner that
        froze, as tests and drills simulate."""
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None

    def release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self.lease is not None:
            lease, self.lease = self.lease, None
            with contextlib.suppress(GatekeeperError):
                lease.release()
