"""The run engine: phases, traffic, checkpoints, journaling, hooks, telemetry."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import gatekeeper
from gatekeeper import (
    Action,
    Measurement,
    MemoryStore,
    Plan,
    Query,
    RunOutcome,
    SimulatedClock,
    Split,
    TrafficError,
)
from gatekeeper.traffic.memory import MemoryBackend

START = datetime(2026, 3, 1, tzinfo=UTC)


def make_plan(**overrides: Any) -> Plan:
    data: dict[str, Any] = {
        "plan": {"name": "t"},
        "sources": {"s": {"type": "static"}},
        "metrics": {
            "error_rate": {"source": "s"},
            "latency": {"source": "s", "unit": "s"},
            "revenue": {"source": "s"},
        },
        "phases": [
            {
                "name": "canary",
                "traffic": 5,
                "checkpoints": ["10m", "20m"],
                "gate": ["error_rate < 1%"],
            },
            {"name": "full", "traffic": 100, "checkpoints": ["1h"], "gate": ["error_rate < 1%"]},
        ],
    }
    data.update(overrides)
    return Plan.from_mapping(data)


class ScriptedSource:
    """Answers from a function of (metric, variant, minutes since START)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values
        self.queries: list[Query] = []

    async def query(self, query: Query) -> Measurement:
        self.queries.append(query)
        entry = self.values.get(query.metric)
        minutes = (query.at - START).total_seconds() / 60
        value = entry(query.variant, minutes) if callable(entry) else entry
        return Measurement(metric=query.metric, variant=query.variant, at=query.at, value=value)


def rollout(
    plan: Plan,
    source: Any,
    *,
    traffic: MemoryBackend | None = None,
    store: MemoryStore | None = None,
    **kwargs: Any,
) -> gatekeeper.Rollout:
    return gatekeeper.Rollout(
        plan,
        sources={"s": source},
        traffic=traffic if traffic is not None else MemoryBackend(),
        clock=SimulatedClock(START),
        store=store or MemoryStore(),
        plugins=gatekeeper.Plugins(load_entry_points=False),
        **kwargs,
    )


def test_healthy_run_advances_every_phase_and_ends_at_full_traffic() -> None:
    """All gates pass: every phase advances and the canary ends with the phase's share."""
    traffic = MemoryBackend()
    result = rollout(make_plan(), ScriptedSource({"error_rate": 0.001}), traffic=traffic).run_sync()
    assert RunOutcome.ADVANCED == result.outcome
    assert 0 == result.exit_code
    assert [5.0, 100.0] == traffic.changes
    assert ["canary", "full"] == [p.phase for p in result.phases]
    assert [Action.ADVANCE, Action.ADVANCE] == [p.decision.action for p in result.phases]


def test_failing_checkpoint_rolls_back_and_stops() -> None:
    """A failed gate rolls the canary back to 0 % and no later phase starts."""
    traffic = MemoryBackend()
    source = ScriptedSource({"error_rate": lambda variant, minutes: 0.05 if minutes >= 15 else 0.0})
    result = rollout(make_plan(), source, traffic=traffic).run_sync()
    assert RunOutcome.ROLLED_BACK == result.outcome
    assert 1 == result.exit_code
    assert [5.0, 0.0] == traffic.changes
    assert "canary" in result.reason and "5% is not < 1%" in result.reason


def test_no_data_holds_then_rolls_back_never_advances() -> None:
    """Missing data is INCONCLUSIVE: held and re-checked, then rolled back at the limit."""
    result = rollout(make_plan(), ScriptedSource({"error_rate": None})).run_sync()
    assert RunOutcome.ROLLED_BACK == result.outcome
    decisions = [c.decision.action for c in result.phases[0].checkpoints]
    assert [Action.HOLD, Action.HOLD, Action.ROLLBACK] == decisions


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_never_pass(value: float) -> None:
    """NaN and ±Inf are never judged as numbers: the run cannot advance on them."""
    result = rollout(make_plan(), ScriptedSource({"error_rate": value})).run_sync()
    assert RunOutcome.ADVANCED != result.outcome
    verdict = result.phases[0].checkpoints[0].result.verdicts[0]
    assert gatekeeper.Outcome.INCONCLUSIVE == verdict.outcome


def test_a_raising_source_is_inconclusive_with_the_error_as_reason() -> None:
    """A source that raises yields INCONCLUSIVE naming the error, never PASS."""

    class Broken:
        async def query(self, query: Query) -> Measurement:
            raise gatekeeper.SourceError("connection refused")

    result = rollout(make_plan(), Broken()).run_sync()
    verdict = result.phases[0].checkpoints[0].result.verdicts[0]
    assert gatekeeper.Outcome.INCONCLUSIVE == verdict.outcome
    assert "source error: SourceError: connection refused" == verdict.reason


def test_a_hanging_source_times_out_as_inconclusive() -> None:
    """A query that never answers is cut at the query timeout: INCONCLUSIVE."""

    class Hanging:
        async def query(self, query: Query) -> Measurement:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    r = rollout(make_plan(), Hanging(), query_timeout=timedelta(milliseconds=50))
    result = r.run_sync()
    verdict = result.phases[0].checkpoints[0].result.verdicts[0]
    assert "timed out after 50ms" == verdict.reason


def test_sync_plugin_methods_are_run_off_the_event_loop() -> None:
    """A plain ``def`` source and backend work as well as ``async def`` ones."""

    class SyncSource:
        def query(self, query: Query) -> Measurement:
            return Measurement(metric=query.metric, at=query.at, value=0.0)

    class SyncBackend:
        def __init__(self) -> None:
            self.canary = 0.0

        def get_split(self) -> Split:
            return Split(canary=self.canary)

        def set_split(self, canary_percent: float) -> Split:
            self.canary = canary_percent
            return Split(canary=self.canary)

    backend = SyncBackend()
    result = gatekeeper.Rollout(
        make_plan(),
        sources={"s": SyncSource()},
        traffic=backend,
        clock=SimulatedClock(START),
        plugins=gatekeeper.Plugins(load_entry_points=False),
    ).run_sync()
    assert RunOutcome.ADVANCED == result.outcome
    assert 100.0 == backend.canary


def test_queries_of_one_checkpoint_run_concurrently() -> None:
    """Ten slow queries of one checkpoint take about as long as one."""
    metrics = {f"m{i}": {"source": "s"} for i in range(10)}
    plan = make_plan(
        metrics=metrics,
        phases=[
            {
                "name": "p",
                "traffic": 1,
                "checkpoints": ["1m"],
                "gate": [f"m{i} < 1" for i in range(10)],
            }
        ],
    )

    class Slow:
        async def query(self, query: Query) -> Measurement:
            await asyncio.sleep(0.2)
            return Measurement(metric=query.metric, at=query.at, value=0.0)

    began = time.perf_counter()
    result = rollout(plan, Slow()).run_sync()
    elapsed = time.perf_counter() - began
    assert RunOutcome.ADVANCED == result.outcome
    assert elapsed < 1.0  # ten sequential queries would take 2 s


def test_ratio_metric_keeps_both_counts_and_divides() -> None:
    """A numerator/denominator metric is judged on the ratio and keeps both counts."""
    plan = make_plan(
        metrics={"error_rate": {"source": "s", "numerator": "errors", "denominator": "requests"}},
        phases=[{"name": "p", "traffic": 1, "checkpoints": ["1m"], "gate": ["error_rate < 1%"]}],
    )

    class Counts:
        async def query(self, query: Query) -> Measurement:
            value = {"errors": 3.0, "requests": 600.0}[query.text]
            return Measurement(metric=query.metric, at=query.at, value=value, query=query.text)

    result = rollout(plan, Counts()).run_sync()
    m = result.phases[0].checkpoints[0].result.verdicts[0].measurements[0]
    assert (0.005, 3.0, 600.0) == (m.value, m.numerator, m.denominator)
    assert "(errors) / (requests)" == m.query


def test_ratio_with_zero_denominator_is_inconclusive() -> None:
    """No requests at all is no evidence: INCONCLUSIVE, not a 0 % error rate."""
    plan = make_plan(
        metrics={"error_rate": {"source": "s", "numerator": "errors", "denominator": "requests"}},
        phases=[{"name": "p", "traffic": 1, "checkpoints": ["1m"], "gate": ["error_rate < 1%"]}],
    )

    class Zero:
        async def query(self, query: Query) -> Measurement:
            return Measurement(metric=query.metric, at=query.at, value=0.0)

    result = rollout(plan, Zero()).run_sync()
    verdict = result.phases[0].checkpoints[0].result.verdicts[0]
    assert "no samples: the denominator is 0" == verdict.reason


def test_query_templates_get_variant_phase_window_and_args() -> None:
    """Queries carry the checkpoint's time and the window since the phase started."""
    plan = make_plan(
        variants={"canary": "v2", "baseline": "v1"},
        args={"service": "api"},
        metrics={"error_rate": {"source": "s", "query": "q{{variant}}"}},
        phases=[
            {
                "name": "p",
                "traffic": 1,
                "checkpoints": ["15m"],
                "gate": ["error_rate <= baseline * 1.5"],
            }
        ],
    )
    source = ScriptedSource({"error_rate": 0.001})
    rollout(plan, source).run_sync()
    rendered = sorted(q.render() for q in source.queries)
    assert ["qv1", "qv2"] == rendered
    assert {START + timedelta(minutes=15)} == {q.at for q in source.queries}
    assert {timedelta(minutes=15)} == {q.window for q in source.queries}
    assert {"api"} == {q.args["service"] for q in source.queries}


def test_relative_to_prerun_uses_the_value_recorded_at_the_start() -> None:
    """``prerun`` is measured once, before any traffic change."""
    plan = make_plan(
        phases=[
            {
                "name": "p",
                "traffic": 100,
                "checkpoints": ["1h"],
                "gate": ["revenue >= prerun * 1.05"],
            }
        ]
    )
    source = ScriptedSource({"revenue": lambda variant, minutes: 10.0 if minutes < 1 else 10.4})
    result = rollout(plan, source).run_sync()
    verdict = result.phases[0].checkpoints[0].result.verdicts[0]
    assert RunOutcome.ROLLED_BACK == result.outcome
    assert 10.5 == pytest.approx(verdict.bound)


def test_every_step_is_journaled_in_order() -> None:
    """The journal holds the run's steps: intent before confirmation, verdicts before
    the decision, and the end."""
    store = MemoryStore()
    r = rollout(make_plan(), ScriptedSource({"error_rate": 0.0}), store=store)
    result = r.run_sync()
    kinds = [e.kind for e in store.events(result.run_id)]
    assert "run_started" == kinds[0]
    assert "run_ended" == kinds[-1]
    first_intent = kinds.index("traffic_intent")
    assert "traffic_confirmed" == kinds[first_intent + 1]
    first_decision = kinds.index("decision")
    assert kinds.index("verdict") < first_decision
    assert kinds.index("measurement") < kinds.index("verdict")
    assert [e.seq for e in store.events(result.run_id)] == list(range(1, len(kinds) + 1))
    assert "advanced" == next(s.status for s in store.runs() if s.run_id == result.run_id)


def test_failed_traffic_change_returns_to_last_confirmed_split() -> None:
    """A balancer that refuses a change: the engine goes back to the last confirmed
    split, journals both, and the run ends in error, never advanced."""

    class Flaky(MemoryBackend):
        async def set_split(self, canary_percent: float) -> Split:
            if canary_percent == 100.0:
                raise TrafficError("balancer said no", wanted=100.0, actual=5.0)
            return await super().set_split(canary_percent)

    store = MemoryStore()
    traffic = Flaky()
    result = rollout(
        make_plan(), ScriptedSource({"error_rate": 0.0}), traffic=traffic, store=store
    ).run_sync()
    assert RunOutcome.ERROR == result.outcome
    assert "balancer said no" in result.reason
    assert "returned to the last confirmed split (5%)" in result.reason
    kinds = [e.kind for e in store.events(result.run_id)]
    assert "traffic_failed" in kinds
    assert 5.0 == asyncio.run(traffic.get_split()).canary


def test_judge_only_never_touches_traffic() -> None:
    """With judge_only the backend is never asked to change, even to roll back."""
    traffic = MemoryBackend(3.0)
    source = ScriptedSource({"error_rate": 0.5})
    result = rollout(make_plan(), source, traffic=traffic, judge_only=True).run_sync()
    assert RunOutcome.ROLLED_BACK == result.outcome
    assert [] == traffic.changes


def test_cancelled_run_is_interrupted_never_a_success() -> None:
    """Cancelling a run mid-phase journals an interruption and keeps traffic as is."""
    store = MemoryStore()
    traffic = MemoryBackend()

    class Blocking:
        async def query(self, query: Query) -> Measurement:
            await asyncio.sleep(10)
            raise AssertionError("unreachable")

    async def scenario() -> gatekeeper.RunResult:
        r = rollout(make_plan(), Blocking(), traffic=traffic, store=store)
        task = asyncio.create_task(r.run())
        await asyncio.sleep(0.05)
        task.cancel()
        return await task

    result = asyncio.run(scenario())
    assert RunOutcome.INTERRUPTED == result.outcome
    assert 3 == result.exit_code
    assert [5.0] == traffic.changes  # not rolled back: a person decides
    assert "interrupted" in [e.kind for e in store.events(result.run_id)]


def test_refused_approval_rolls_back_and_withheld_holds() -> None:
    """A no-go rolls the canary back; no answer stops the run held (exit 3)."""
    plan = make_plan(
        phases=[
            {"name": "canary", "traffic": 5, "checkpoints": ["10m"], "gate": ["error_rate < 1%"]},
            {
                "name": "full",
                "traffic": 100,
                "checkpoints": ["1h"],
                "gate": ["error_rate < 1%"],
                "approval": "go/no-go",
            },
        ]
    )
    source = ScriptedSource({"error_rate": 0.0})
    refused = rollout(plan, source, env={"GATEKEEPER_REJECT": "full=bob"}).run_sync()
    assert RunOutcome.ROLLED_BACK == refused.outcome
    assert "no-go for full by bob" in refused.reason
    withheld = rollout(plan, source, env={}).run_sync()
    assert RunOutcome.HELD == withheld.outcome
    assert "GATEKEEPER_APPROVE=full" in withheld.reason
    given = rollout(plan, source, env={"GATEKEEPER_APPROVE": "full=alice"}).run_sync()
    assert RunOutcome.ADVANCED == given.outcome


def test_hooks_see_every_checkpoint_with_the_next_one() -> None:
    """Event hooks get each judged checkpoint and when the next one is due."""
    seen: list[tuple[str, str, str | None]] = []

    class Listener:
        @gatekeeper.hookimpl
        def gatekeeper_checkpoint_judged(
            self,
            result: gatekeeper.GateResult,
            decision: gatekeeper.Decision,
            next_checkpoint: str | None,
        ) -> None:
            seen.append((result.checkpoint, decision.action.value, next_checkpoint))

    plugins = gatekeeper.Plugins(load_entry_points=False, plugins=[Listener()])
    gatekeeper.Rollout(
        make_plan(),
        sources={"s": ScriptedSource({"error_rate": 0.0})},
        traffic=MemoryBackend(),
        clock=SimulatedClock(START),
        plugins=plugins,
    ).run_sync()
    assert [("10m", "continue", "20m"), ("20m", "advance", None), ("1h", "advance", None)] == seen


def test_spans_are_emitted_through_an_injected_provider() -> None:
    """Run, checkpoint and query spans reach an injected SDK provider; a FAIL is an
    attribute, not a span error."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    source = ScriptedSource({"error_rate": 0.5})
    rollout(make_plan(), source, tracer_provider=provider).run_sync()
    spans = exporter.get_finished_spans()
    names = {s.name for s in spans}
    assert {
        "gatekeeper.run",
        "gatekeeper.checkpoint",
        "gatekeeper.query",
        "gatekeeper.traffic",
    } <= names
    checkpoint = next(s for s in spans if s.name == "gatekeeper.checkpoint")
    assert "fail" == (checkpoint.attributes or {}).get("gatekeeper.outcome")
    assert all(s.status.is_ok or s.status.status_code.name == "UNSET" for s in spans)


def test_unknown_phase_lists_the_known_ones() -> None:
    """Asking for a phase the plan lacks names the phases it has."""
    r = rollout(make_plan(), ScriptedSource({}))
    with pytest.raises(gatekeeper.PlanError, match=r"unknown phase 'ramp' \(known: canary, full\)"):
        r.select(["ramp"])


def test_hold_on_fail_stops_held_without_rollback() -> None:
    """``on_fail = "hold"``: a failed gate leaves traffic where it is (exit 3)."""
    traffic = MemoryBackend()
    plan = make_plan(policy={"on_fail": "hold"})
    result = rollout(plan, ScriptedSource({"error_rate": 0.5}), traffic=traffic).run_sync()
    assert RunOutcome.HELD == result.outcome
    assert [5.0] == traffic.changes


def test_stable_uses_checkpoint_history_without_range_queries() -> None:
    """A source without range queries: stability is judged on the values measured at
    the phase's checkpoints so far."""
    plan = make_plan(
        phases=[
            {
                "name": "p",
                "traffic": 100,
                "checkpoints": ["1h", "2h", "3h"],
                "gate": ["latency stable within 10%"],
            }
        ]
    )
    source = ScriptedSource({"latency": lambda variant, minutes: 0.1 if minutes < 150 else 0.2})
    result = rollout(plan, source).run_sync()
    outcomes = [c.result.outcome.value for c in result.phases[0].checkpoints]
    # 1h: one sample (collecting), re-check at 1h05m: two equal samples pass; 3h: 0.1 → 0.2 fails
    assert "inconclusive" == outcomes[0]
    assert "fail" == outcomes[-1]
    assert RunOutcome.ROLLED_BACK == result.outcome


def compare_plan(criterion: str, checkpoints: list[str] | None = None) -> Plan:
    return make_plan(
        metrics={"error_rate": {"source": "s", "numerator": "errors", "denominator": "requests"}},
        phases=[
            {
                "name": "ramp",
                "traffic": 10,
                "checkpoints": checkpoints or ["5m", "10m", "15m", "20m"],
                "gate": [criterion],
            }
        ],
    )


class Traffic:
    """Cumulative request and error counts per arm at a rate per minute."""

    def __init__(self, canary_rate: float, baseline_rate: float, per_minute: float) -> None:
        self.rates = {"canary": canary_rate, "baseline": baseline_rate}
        self.per_minute = per_minute
        self.queries = 0

    async def query(self, query: Query) -> Measurement:
        self.queries += 1
        minutes = query.window.total_seconds() / 60
        share = 0.1 if query.variant == "canary" else 0.9
        requests = self.per_minute * share * minutes
        value = requests if query.text == "requests" else requests * self.rates[query.variant]
        return Measurement(metric=query.metric, variant=query.variant, at=query.at, value=value)


def test_compare_fails_a_canary_five_times_worse_than_baseline() -> None:
    """The sequential judge finds a ×5 error rate and explains it in one line."""
    plan = compare_plan("error_rate canary <= baseline * 1.2")
    result = rollout(plan, Traffic(0.01, 0.002, per_minute=6000)).run_sync()
    assert RunOutcome.ROLLED_BACK == result.outcome
    verdict = result.phases[0].checkpoints[-1].result.verdicts[0]
    assert gatekeeper.Outcome.FAIL == verdict.outcome
    assert verdict.evidence["e_value"] >= 100  # 1 / alpha
    assert verdict.evidence["test"] == "counts"


def test_compare_passes_a_healthy_canary_with_evidence_only() -> None:
    """Identical arms: never FAIL; PASS only once the evidence says so."""
    plan = compare_plan("error_rate canary <= baseline * 1.5", ["10m", "1h", "2h"])
    result = rollout(plan, Traffic(0.002, 0.002, per_minute=20000)).run_sync()
    outcomes = [c.result.outcome for c in result.phases[0].checkpoints]
    assert gatekeeper.Outcome.FAIL not in outcomes
    assert gatekeeper.Outcome.PASS == outcomes[-1]


def test_compare_with_too_little_data_is_collecting_evidence() -> None:
    """A handful of requests is not evidence either way: INCONCLUSIVE, never PASS."""
    plan = compare_plan("error_rate canary <= baseline * 1.2", ["1m"])
    result = rollout(plan, Traffic(0.002, 0.002, per_minute=50)).run_sync()
    verdict = result.phases[0].checkpoints[0].result.verdicts[0]
    assert gatekeeper.Outcome.INCONCLUSIVE == verdict.outcome
    assert "collecting evidence" in verdict.reason


def test_statistical_bound_fails_on_evidence_of_a_high_rate() -> None:
    """``error_rate canary < 0.5%`` fails when the counts show the rate is above it."""
    plan = compare_plan("error_rate canary < 0.5%")
    result = rollout(plan, Traffic(0.02, 0.002, per_minute=6000)).run_sync()
    verdict = result.phases[0].checkpoints[-1].result.verdicts[0]
    assert gatekeeper.Outcome.FAIL == verdict.outcome
    assert "bound" == verdict.evidence["test"]


def test_judge_state_is_journaled_at_every_look() -> None:
    """The sequential state goes to the journal, so a resumed run can carry it on."""
    store = MemoryStore()
    plan = compare_plan("error_rate canary <= baseline * 1.2", ["5m", "10m"])
    result = rollout(plan, Traffic(0.002, 0.002, per_minute=6000), store=store).run_sync()
    states = [e for e in store.events(result.run_id) if e.kind == "judge_state"]
    assert len(states) == sum(len(p.checkpoints) for p in result.phases)
    assert "counts" == states[-1].data["state"]["test"]


def test_collecting_evidence_continues_instead_of_holding() -> None:
    """A sequential test still collecting evidence moves on to the next checkpoint
    (not a hold towards the inconclusive limit); the last checkpoint decides."""
    plan = compare_plan("error_rate canary <= baseline * 1.5")
    result = rollout(plan, Traffic(0.002, 0.002, per_minute=20000)).run_sync()
    actions = [c.decision.action for c in result.phases[0].checkpoints]
    assert [Action.CONTINUE, Action.CONTINUE, Action.CONTINUE, Action.ADVANCE] == actions
    first = result.phases[0].checkpoints[0]
    assert gatekeeper.Outcome.INCONCLUSIVE == first.result.outcome
    assert first.decision.reason.startswith("collecting evidence")


def test_no_data_is_not_collecting_evidence() -> None:
    """Missing counts hold and count towards the limit, even for compare criteria."""
    plan = compare_plan("error_rate canary <= baseline * 1.2")
    result = rollout(plan, ScriptedSource({"error_rate": None})).run_sync()
    assert [Action.HOLD, Action.HOLD, Action.ROLLBACK] == [
        c.decision.action for c in result.phases[0].checkpoints
    ]


def test_a_phase_goes_up_in_steps_each_with_its_checkpoints() -> None:
    """``steps``: 1 → 5 → 10 %, each step's checkpoints on the phase's clock, the
    share raised when the previous step's last checkpoint passed."""
    plan = make_plan(
        phases=[
            {
                "name": "ramp",
                "steps": [
                    {"traffic": 1, "checkpoints": ["5m", "10m"]},
                    {"traffic": 5, "checkpoints": ["5m"]},
                    {"traffic": 10, "checkpoints": ["15m", "30m"]},
                ],
                "gate": ["error_rate < 1%"],
            }
        ]
    )
    ramp = plan.phase("ramp")
    assert ["5m@1%", "10m@1%", "5m@5%", "15m@10%", "30m@10%"] == [c.name for c in ramp.checkpoints]
    assert [5, 10, 15, 30, 45] == [c.offset.total_seconds() / 60 for c in ramp.checkpoints]
    assert 10.0 == ramp.final_traffic
    assert plan == Plan.from_mapping(plan.to_mapping())
    traffic = MemoryBackend()
    store = MemoryStore()
    result = rollout(
        plan, ScriptedSource({"error_rate": 0.0}), traffic=traffic, store=store
    ).run_sync()
    assert RunOutcome.ADVANCED == result.outcome
    assert [1.0, 5.0, 10.0] == traffic.changes
    steps = [e for e in store.events(result.run_id) if e.kind == "step_started"]
    assert [(START + timedelta(minutes=10), 5.0), (START + timedelta(minutes=15), 10.0)] == [
        (e.at, e.data["traffic"]) for e in steps
    ]


def test_a_failing_step_rolls_back_without_climbing_further() -> None:
    """A failure in the 5 % step rolls back; the 10 % step never starts."""
    plan = make_plan(
        phases=[
            {
                "name": "ramp",
                "steps": [
                    {"traffic": 1, "checkpoints": ["5m"]},
                    {"traffic": 5, "checkpoints": ["5m"]},
                    {"traffic": 10, "checkpoints": ["5m"]},
                ],
                "gate": ["error_rate < 1%"],
            }
        ]
    )
    traffic = MemoryBackend()
    source = ScriptedSource({"error_rate": lambda variant, minutes: 0.05 if minutes > 6 else 0.0})
    result = rollout(plan, source, traffic=traffic).run_sync()
    assert RunOutcome.ROLLED_BACK == result.outcome
    assert [1.0, 5.0, 0.0] == traffic.changes


def test_an_approval_file_named_in_the_environment_answers(tmp_path: Path) -> None:
    """``GATEKEEPER_APPROVAL_FILE``: a JSON file says who approved which phase."""
    plan = make_plan(
        phases=[
            {
                "name": "full",
                "traffic": 100,
                "checkpoints": ["1h"],
                "gate": ["error_rate < 1%"],
                "approval": True,
            }
        ]
    )
    answers = tmp_path / "approvals.json"
    answers.write_text('{"full": {"state": "given", "by": "carol"}}')
    store = MemoryStore()
    env = {"GATEKEEPER_APPROVAL_FILE": str(answers)}
    result = rollout(plan, ScriptedSource({"error_rate": 0.0}), store=store, env=env).run_sync()
    assert RunOutcome.ADVANCED == result.outcome
    given = next(e for e in store.events(result.run_id) if e.kind == "approval_given")
    assert "carol" == given.data["by"]
