"""The example plugin package in examples/plugin-package works as documented."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import gatekeeper

sys.path.insert(0, str(Path(__file__).parent.parent / "examples" / "plugin-package" / "src"))
import gatekeeper_env  # the example package is not installed in the test env

PLAN = {
    "sources": {"ci": {"type": "env", "prefix": "GATE_"}},
    "metrics": {"smoke_failures": {"source": "ci", "query": "SMOKE_FAILURES", "count": True}},
    "phases": [
        {"name": "smoke", "traffic": 1, "checkpoints": ["1m"], "gate": ["smoke_failures == 0"]}
    ],
}


def run(env: dict[str, str]) -> gatekeeper.RunResult:
    plugins = gatekeeper.Plugins(load_entry_points=False, plugins=[gatekeeper_env])
    plan = gatekeeper.Plan.from_mapping(PLAN)
    rollout = gatekeeper.Rollout(plan, plugins=plugins, env=env, clock=gatekeeper.SimulatedClock())
    return rollout.run_sync()


def test_plugin_source_passes_fails_and_never_passes_without_data() -> None:
    """0 passes, 2 fails, unset is INCONCLUSIVE (never a pass)."""
    assert gatekeeper.RunOutcome.ADVANCED == run({"GATE_SMOKE_FAILURES": "0"}).outcome
    assert gatekeeper.RunOutcome.ROLLED_BACK == run({"GATE_SMOKE_FAILURES": "2"}).outcome
    missing = run({})
    assert gatekeeper.RunOutcome.ROLLED_BACK == missing.outcome
    verdict = missing.phases[0].checkpoints[0].result.verdicts[0]
    assert "GATE_SMOKE_FAILURES is not set" == verdict.reason


def test_plugin_option_errors_are_located(tmp_path: Path) -> None:
    """A bad plugin option is a plan error with the plan's line."""
    path = tmp_path / "gates.toml"
    path.write_text(
        '[sources.ci]\ntype = "env"\nprefx = "GATE_"\n[metrics.m]\nsource = "ci"\n'
        '[[phases]]\nname = "x"\ntraffic = 1\ncheckpoints = ["1m"]\ngate = ["m == 0"]\n'
    )
    plugins = gatekeeper.Plugins(load_entry_points=False, plugins=[gatekeeper_env])
    with pytest.raises(gatekeeper.PlanError, match=r":3: sources\.ci\.prefx: unknown option"):
        gatekeeper.validate(path, plugins=plugins)
