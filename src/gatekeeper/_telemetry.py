"""OpenTelemetry, API only: gatekeeper never configures an SDK.

Imported lazily by the engine so ``import gatekeeper`` does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


def get_tracer(provider: Any = None) -> Tracer:
    from opentelemetry import trace  # noqa: PLC0415

    from . import __version__  # noqa: PLC0415

    return trace.get_tracer("gatekeeper", __version__, tracer_provider=provider)
