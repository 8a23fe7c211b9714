"""Durable journals of runs: SQLite (the default, one host) and PostgreSQL (teams).

Both implement :class:`gatekeeper.Store` with the same schema and the same meaning:
an append-only journal of :class:`~gatekeeper.Event` per run, every append its own
committed (fsync'd) transaction, ``seq`` 1, 2, 3 ... per run without gaps. Both also
hand out a :class:`Lease` per run, so exactly one runner drives a run at a time: the
store remembers the lease it holds for a run and checks its fencing token inside every
append's transaction, so a runner that lost its lease can no longer write.
:meth:`~LeasingStore.claim_run` finds or makes a plan's run and leases it in one
transaction (one driver per run); ``append(..., fenced=False)`` is the operator channel
into a run another runner drives; :meth:`Lease.check` is the check before a balancer
write. The family's interface is in :mod:`gatekeeper.store.base`.

:func:`open_store` picks the store from a path or URL; ``psycopg`` is imported only
for a PostgreSQL URL. See ``docs/stores.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import StoreError
from .base import (
    FINISHED_STATUSES,
    RESTARTED,
    Claim,
    Lease,
    LeaseHeld,
    LeaseHolder,
    LeaseLost,
    LeasingStore,
)

if TYPE_CHECKING:
    from .._protocols import Store
    from .postgres import PostgresStore
    from .sqlite import SQLiteStore

__all__ = [
    "FINISHED_STATUSES",
    "RESTARTED",
    "Claim",
    "Lease",
    "LeaseHeld",
    "LeaseHolder",
    "LeaseLost",
    "LeasingStore",
    "PostgresStore",
    "SQLiteStore",
    "open_store",
]


def __getattr__(name: str) -> Any:
    """``SQLiteStore`` and ``PostgresStore`` load on first use (psycopg only then)."""
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore  # noqa: PLC0415 - lazy by design

        return SQLiteStore
    if name == "PostgresStore":
        from .postgres import PostgresStore  # noqa: PLC0415 - lazy by design

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(
    target: str | Path,
    *,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Store:
    """The store a plan or a command line names.

    * ``postgresql://user@host:port/db`` or ``postgres://...``: :class:`PostgresStore`
      (credentials from ``env``, default ``os.environ``: PGPASSWORD and friends);
    * ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or a plain path:
      :class:`SQLiteStore`, relative paths anchored at ``base_dir`` (the plan's folder);
    * ``memory:``: a :class:`MemoryStore` (rehearsals, tests).
    """
    text = str(target)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in {"postgresql", "postgres"}:
        from .postgres import PostgresStore  # noqa: PLC0415 - psycopg only when asked for

        return PostgresStore(text, env=env)
    if text in {"memory:", ":memory:"}:
        from .._store import MemoryStore  # noqa: PLC0415 - keep imports lazy

        return MemoryStore()
    if scheme == "sqlite":
        text = text[len("sqlite:///") :] if text.lower().startswith("sqlite:///") else ""
        if not text:
            raise StoreError("a sqlite URL is sqlite:///relative/path.db or sqlite:////abs.db")
    elif scheme:
        raise StoreError(
            f"unknown store scheme {scheme!r}: use a path, sqlite:///..., or postgresql://..."
        )
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    from .sqlite import SQLiteStore  # noqa: PLC0415 - keep imports lazy

    return SQLiteStore(path)
