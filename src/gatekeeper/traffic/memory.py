"""``memory``: a traffic backend that only remembers the split (tests, rehearsals)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._model import Split
from .._options import Options
from .._protocols import PluginContext
from ..exceptions import TrafficError
from . import check_share

__all__ = ["MemoryBackend", "create"]


class MemoryBackend:
    """Keeps the canary share in memory. ``fail_next`` makes the next change fail
    (for tests of the engine's recovery)."""

    def __init__(self, canary: float = 0.0) -> None:
        self._canary = canary
        self.changes: list[float] = []
        self.fail_next: str | None = None

    async def get_split(self) -> Split:
        return Split(canary=self._canary, detail="memory")

    async def set_split(self, canary_percent: float) -> Split:
        check_share(canary_percent, actual=self._canary)
        if self.fail_next is not None:
            reason, self.fail_next = self.fail_next, None
            raise TrafficError(reason, wanted=canary_percent, actual=self._canary)
        if canary_percent != self._canary:
            self._canary = canary_percent
            self.changes.append(canary_percent)
        return Split(canary=self._canary, detail="memory")


def create(options: Mapping[str, Any], context: PluginContext) -> MemoryBackend:
    opts = Options(options)
    initial = opts.number("initial", 0.0)
    opts.done()
    return MemoryBackend(initial or 0.0)
