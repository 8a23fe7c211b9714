"""gatekeeper: release gates as code.

A progressive rollout is a :class:`Plan` of phases; each phase sends a share of
traffic to the canary and is judged at checkpoints by a gate of criteria over live
metrics. Load a plan with :func:`load_plan`, then :func:`run` it, :func:`rehearse`
it against a recording, or :func:`check` one phase's gate now.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._approval import (
    ApprovalAnswer,
    ApprovalRequest,
    ApprovalState,
    Approver,
    ChainApprover,
    EnvApprover,
    FileApprover,
    RecordingApprover,
)
from ._criteria import drift
from ._model import (
    Action,
    Approval,
    Checkpoint,
    CheckpointResult,
    Criterion,
    Decision,
    Gate,
    GateResult,
    Kind,
    Measurement,
    Metric,
    OnFail,
    OnInconclusive,
    Outcome,
    Phase,
    PhaseResult,
    Plan,
    Policy,
    Query,
    Reference,
    RunOutcome,
    RunResult,
    SourceConfig,
    Split,
    TrafficConfig,
    Verdict,
    Watch,
    gate_outcome,
)
from ._planfile import load_plan, plan_from_text
from ._plugins import Plugins
from ._policy import PolicyState, decide
from ._protocols import (
    BackendFactory,
    Clock,
    Event,
    MetricSource,
    PluginContext,
    RunInfo,
    SourceFactory,
    Store,
    TrafficBackend,
)
from ._recording import Recording
from ._registry import BackendRegistry, RunInfoView, SourceRegistry
from ._report import ConsoleReporter
from ._store import MemoryStore
from .exceptions import (
    ApprovalError,
    ConfigError,
    GatekeeperError,
    PlanError,
    SourceError,
    StoreError,
    TrafficError,
)
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from ._api import acheck, arun, check, run, validate
    from ._clock import SimulatedClock, SystemClock
    from ._engine import Rollout, build_sources, build_traffic
    from ._judge import JudgeResult, Moments, judge_bound, judge_counts, judge_means, split_alpha
    from ._rehearsal import arehearse, rehearsal, rehearse
    from ._run.watch import WatchReport
    from .store import Lease, LeasingStore, PostgresStore, SQLiteStore, open_store

__version__ = "0.1.0"

# The run machinery pulls in asyncio (and with it logging, ssl, concurrent.futures):
# loaded on first use so that ``import gatekeeper`` stays fast for plan tooling.
_LAZY = {
    "acheck": "._api",
    "arun": "._api",
    "check": "._api",
    "run": "._api",
    "validate": "._api",
    "SimulatedClock": "._clock",
    "SystemClock": "._clock",
    "Rollout": "._engine",
    "build_sources": "._engine",
    "build_traffic": "._engine",
    "arehearse": "._rehearsal",
    "rehearsal": "._rehearsal",
    "rehearse": "._rehearsal",
    "WatchReport": "._run.watch",
    "JudgeResult": "._judge",
    "Moments": "._judge",
    "judge_bound": "._judge",
    "judge_counts": "._judge",
    "judge_means": "._judge",
    "split_alpha": "._judge",
    "Lease": ".store",
    "LeasingStore": ".store",
    "PostgresStore": ".store",
    "SQLiteStore": ".store",
    "open_store": ".store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gatekeeper' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Action",
    "Approval",
    "ApprovalAnswer",
    "ApprovalError",
    "ApprovalRequest",
    "ApprovalState",
    "Approver",
    "BackendFactory",
    "BackendRegistry",
    "ChainApprover",
    "Checkpoint",
    "CheckpointResult",
    "Clock",
    "ConfigError",
    "ConsoleReporter",
    "Criterion",
    "Decision",
    "EnvApprover",
    "Event",
    "FileApprover",
    "Gate",
    "GateResult",
    "GatekeeperError",
    "JudgeResult",
    "Kind",
    "Lease",
    "LeasingStore",
    "Measurement",
    "MemoryStore",
    "Metric",
    "MetricSource",
    "Moments",
    "OnFail",
    "OnInconclusive",
    "Outcome",
    "Phase",
    "PhaseResult",
    "Plan",
    "PlanError",
    "PluginContext",
    "Plugins",
    "Policy",
    "PolicyState",
    "PostgresStore",
    "Query",
    "Recording",
    "RecordingApprover",
    "Reference",
    "Rollout",
    "RunInfo",
    "RunInfoView",
    "RunOutcome",
    "RunResult",
    "SQLiteStore",
    "SimulatedClock",
    "SourceConfig",
    "SourceError",
    "SourceFactory",
    "SourceRegistry",
    "Split",
    "Store",
    "StoreError",
    "SystemClock",
    "TrafficBackend",
    "TrafficConfig",
    "TrafficError",
    "Verdict",
    "Watch",
    "WatchReport",
    "__version__",
    "acheck",
    "arehearse",
    "arun",
    "build_sources",
    "build_traffic",
    "check",
    "decide",
    "drift",
    "gate_outcome",
    "hookimpl",
    "judge_bound",
    "judge_counts",
    "judge_means",
    "load_plan",
    "open_store",
    "plan_from_text",
    "rehearsal",
    "rehearse",
    "run",
    "split_alpha",
    "validate",
]
