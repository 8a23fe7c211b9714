"""The run engine, one module per concern.

* :mod:`.rollout` — :class:`Rollout`: the run loop, putting the parts together
* :mod:`.steps` — judging a checkpoint, evaluating a gate, holding
* :mod:`.context` — :class:`RunContext` (identity, journal writer, tracing) and
  :class:`PhaseState`
* :mod:`.events` — the journal's event kinds and their encoding
* :mod:`.replay` — a journal read back (resume)
* :mod:`.start` — claiming a run, resuming, reporting a finished one
* :mod:`.traffic` — intent → lease check → set → read back → confirm; drift
* :mod:`.measure` — what to query, concurrently; ratios; time-outs
* :mod:`.judging` — one function per gate, one evaluator per criterion kind
* :mod:`.approvals`, :mod:`.operator` — go/no-go; rollback/hold/resume requests
* :mod:`.lease`, :mod:`.observers`, :mod:`.build`, :mod:`.calls`
"""

from .build import build_sources, build_traffic, default_approver, plugin_context
from .calls import call
from .context import PhaseState, RunContext
from .rollout import Rollout

__all__ = [
    "PhaseState",
    "Rollout",
    "RunContext",
    "build_sources",
    "build_traffic",
    "call",
    "default_approver",
    "plugin_context",
]
