"""What a metric source is: the ``sources`` family's interface and its optional extras.

Each optional capability is a small protocol the engine checks with ``isinstance``
(never ``getattr`` probing), the way httpx keeps ``BaseTransport`` beside its
transports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._model import Measurement, Query

__all__ = ["MetricSource", "MetricValidator", "RangeSource"]


@runtime_checkable
class MetricSource(Protocol):
    """Answers metric queries at a moment (the checkpoint's time).

    A source never raises for "no data": it returns a :class:`Measurement` whose
    ``reason`` says what went wrong. It may raise :class:`SourceError`; the engine
    then records an INCONCLUSIVE verdict with the error as the reason. It may also
    have ``close()`` / ``aclose()``, called when the run ends.
    """

    def query(self, query: Query) -> Measurement | Awaitable[Measurement]: ...


@runtime_checkable
class RangeSource(Protocol):
    """A source that also answers range queries (``stable`` criteria over a window)."""

    def query_range(
        self, query: Query, *, step: timedelta
    ) -> Measurement | Awaitable[Measurement]: ...


@runtime_checkable
class MetricValidator(Protocol):
    """A source that checks a metric's own options when the plan's sources are built
    (raise :class:`ConfigError`), so a typo fails ``validate``, not the ramp."""

    def validate_metric(self, text: str, options: Mapping[str, Any]) -> None: ...
