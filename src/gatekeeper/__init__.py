"""gatekeeper: release gates as code.

A progressive rollout is a :class:`Plan` of phases; each phase sends a share of
traffic to the canary and is judged at checkpoints by a gate of criteria over live
metrics. Load a plan with :func:`load_plan`, then :func:`run` it, :func:`rehearse`
it against a recording, or :func:`check` one phase's gate now.
"""

from __future__ import annotations

from ._api import acheck, arun, check, run, validate
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
from ._clock import SimulatedClock, SystemClock
from ._criteria import drift
from ._engine import Rollout, build_sources, build_traffic
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
    gate_outcome,
)
from ._planfile import load_plan, plan_from_text
from ._plugins import BackendRegistry, Plugins, RunInfoView, SourceRegistry
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
from ._rehearsal import arehearse, rehearsal, rehearse
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

__version__ = "0.1.0"

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
    "Kind",
    "Measurement",
    "MemoryStore",
    "Metric",
    "MetricSource",
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
    "Query",
    "Recording",
    "RecordingApprover",
    "Reference",
    "Rollout",
    "RunInfo",
    "RunInfoView",
    "RunOutcome",
    "RunResult",
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
    "load_plan",
    "plan_from_text",
    "rehearsal",
    "rehearse",
    "run",
    "validate",
]
