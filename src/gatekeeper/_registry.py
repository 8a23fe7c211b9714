"""The type registries plugins fill, and what hooks see of a run.

A leaf module (nothing here imports the plugin host), so the host, the hook
specifications and the built-ins can all use it without an import cycle.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from .exceptions import GatekeeperError

if TYPE_CHECKING:
    from ._model import Plan
    from ._protocols import BackendFactory, Clock, SourceFactory

__all__ = ["BackendRegistry", "RunInfoView", "SourceRegistry"]


class _Registry:
    _what = "type"

    def __init__(self) -> None:
        self._factories: dict[str, Any] = {}
        self._owners: dict[str, str] = {}

    def add(self, type_name: str, factory: Any, *, owner: str = "") -> None:
        if type_name in self._factories:
            raise GatekeeperError(
                f"{self._what} type {type_name!r} registered twice "
                f"({self._owners[type_name] or 'unknown'} and {owner or 'unknown'})"
            )
        self._factories[type_name] = factory
        self._owners[type_name] = owner

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._factories

    def unknown(self, type_name: str) -> str:
        """A message for an unknown type: the known ones and the closest match."""
        close = difflib.get_close_matches(type_name, self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self._what} type {type_name!r} (known: {', '.join(self.names())}){hint}"


class SourceRegistry(_Registry):
    """Metric source types by name, filled by ``gatekeeper_add_sources``."""

    _what = "source"

    def get(self, type_name: str) -> SourceFactory:
        factory: SourceFactory = self._factories[type_name]
        return factory


class BackendRegistry(_Registry):
    """Traffic backend types by name, filled by ``gatekeeper_add_traffic_backends``."""

    _what = "traffic backend"

    def get(self, type_name: str) -> BackendFactory:
        factory: BackendFactory = self._factories[type_name]
        return factory


@attrs.frozen(kw_only=True)
class RunInfoView:
    """What hooks see of a run."""

    run_id: str
    plan: Plan
    clock: Clock
    started_at: datetime
    rehearsal: bool = False
    judge_only: bool = False
    resumed: bool = False
