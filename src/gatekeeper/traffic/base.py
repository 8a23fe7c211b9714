"""What a traffic backend is: the ``traffic`` family's interface."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._model import Split

__all__ = ["TrafficBackend"]


@runtime_checkable
class TrafficBackend(Protocol):
    """Moves traffic between the baseline and the canary.

    ``set_split`` applies a canary share in [0, 100], reads it back from the
    balancer and verifies it; it raises :class:`TrafficError` on a mismatch.
    Setting the share it already has is a no-op. ``get_split`` reads what the
    balancer does now (the engine re-reads it before every decision).
    """

    def get_split(self) -> Split | Awaitable[Split]: ...

    def set_split(self, canary_percent: float) -> Split | Awaitable[Split]: ...
