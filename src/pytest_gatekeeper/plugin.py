"""pytest plugin: ``pytest --gate=ramp`` judges a phase's checkpoints as test items.

Every checkpoint of a gated phase is one item, ``PLAN::PHASE::CHECKPOINT``
(``gates.toml::ramp::15m``), run in order, each waiting for its time on the plan's
clock. The first item of a phase asks for its approval and moves traffic (unless
``--gate-no-traffic``); a failing checkpoint applies the plan's policy (a rollback,
say) and the items after it are skipped. The exit code is the gate.

Tests marked ``@pytest.mark.checkpoint("ramp", "30m")`` run right after that
checkpoint, with the ``gate_metrics`` fixture giving the values measured there.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from gatekeeper import (
    Action,
    CheckpointResult,
    Decision,
    GatekeeperError,
    Phase,
    Plan,
    PlanError,
    Rollout,
    RunOutcome,
    load_plan,
    rehearsal,
)
from gatekeeper._engine import PhaseState
from gatekeeper._report import format_gate_table
from gatekeeper._status import open_plan_store
from gatekeeper._units import format_number

__all__ = ["CheckpointItem", "GateFailure", "GateSession", "PhaseCollector", "PlanCollector"]


class GateFailure(Exception):  # noqa: N818 - a gate outcome, reported like pytest's Failed
    """A checkpoint whose gate did not pass (or whose phase had already stopped)."""

    def __init__(self, results: list[CheckpointResult]) -> None:
        self.results = results
        super().__init__(results[-1].decision.reason if results else "no result")


class GateSession:
    """Per-run state of the plugin: one rollout over the gated phases, driven on one
    event loop that lives as long as the pytest session."""

    def __init__(self, config: pytest.Config, plan: Plan, phases: list[Phase]) -> None:
        self.config = config
        self.plan = plan
        self.phases = phases
        self.no_traffic: bool = bool(config.getoption("gate_no_traffic"))
        recording = config.getoption("gate_rehearse")
        self.rehearsing = recording is not None
        self.loop = asyncio.Runner()
        names = [p.name for p in phases]
        self.store: Any = None
        if recording is not None:
            self.rollout = rehearsal(
                plan, Path(recording), phases=names, judge_only=self.no_traffic
            )
        else:
            # Live runs journal to the plan's durable store, so a CI retry of
            # `pytest --gate=ramp` resumes the phase instead of restarting its clock.
            self.store = open_plan_store(plan, config.getoption("gate_store"))
            self.rollout = Rollout(
                plan,
                judge_only=self.no_traffic,
                store=self.store,
                force=bool(config.getoption("gate_force")),
            )
        self.states: dict[str, PhaseState] = {}
        self.latest: dict[tuple[str, str], CheckpointResult] = {}
        self.decisions: dict[str, Decision] = {}
        # Marked tests per checkpoint still to run, and those that failed: a
        # checkpoint's decision stands only once its tests passed.
        self.checks: dict[tuple[str, str], int] = {}
        self.failed_checks: dict[tuple[str, str], list[str]] = {}
        self.pending: tuple[Phase, str] | None = None
        self.stopped: str | None = None
        self.started = False
        try:
            # Open (or resume) the run now: a refused resume or phase is a usage
            # error before any item runs, not a traceback in the first one.
            self.run(self.rollout.start(self.phases))
        except BaseException:
            self.finish(interrupted=False)
            raise
        self.started = True

    def run(self, coro: Any) -> Any:
        return self.loop.run(coro)

    def phase_state(self, phase: Phase) -> PhaseState:
        """The phase in progress, begun (approval, traffic) on first use."""
        state = self.states.get(phase.name)
        if state is None:
            journal = self.rollout.journal_state
            if journal is not None and journal.advanced(phase.name):
                # Advanced before a CI retry: its items replay the journaled results.
                progress = journal.progress[phase.name]
                state = PhaseState(phase=phase, started_at=progress.started_at)
            else:
                state = self.rollout.resumed_phase(phase) or self.run(
                    self.rollout.begin_phase(phase)
                )
            self.states[phase.name] = state
            if state.decision is not None:
                self._ended(phase, state)
        return state

    def judge(self, phase: Phase, checkpoint_name: str) -> list[CheckpointResult]:
        self.settle()
        state = self.phase_state(phase)
        if self.stopped is not None:
            return []
        checkpoint = phase.checkpoint(checkpoint_name)
        results: list[CheckpointResult] = self.run(self.rollout.judge_checkpoint(state, checkpoint))
        self.latest[(phase.name, checkpoint_name)] = results[-1]
        if self.checks.get((phase.name, checkpoint_name)):
            self.pending = (phase, checkpoint_name)  # the phase ends after its tests
        elif results[-1].decision.final:
            self._ended(phase, state)
        return results

    def check_done(self, phase: str, checkpoint: str, nodeid: str, *, failed: bool) -> None:
        """A test marked for the checkpoint finished; the last one settles it."""
        key = (phase, checkpoint)
        if failed:
            self.failed_checks.setdefault(key, []).append(nodeid)
        if key in self.checks:
            self.checks[key] -= 1
            if self.checks[key] <= 0:
                self.settle()

    def settle(self) -> None:
        """Apply the pending checkpoint's test failures (the policy decides, as for a
        failed gate), then end its phase if its decision was final."""
        if self.pending is None:
            return
        phase, name = self.pending
        self.pending = None
        state = self.states[phase.name]
        failed = self.failed_checks.get((phase.name, name))
        decided = state.decision
        if failed and (decided is None or decided.action is not Action.ROLLBACK):
            checkpoint = phase.checkpoint(name)
            item = self.run(self.rollout.fail_checks(state, checkpoint, failed))
            self.latest[(phase.name, name)] = item
        if state.decision is not None and state.decision.final:
            self._ended(phase, state)

    def _ended(self, phase: Phase, state: PhaseState) -> None:
        decision = self.rollout.end_phase(state)
        self.decisions[phase.name] = decision
        if decision.action is not Action.ADVANCE:
            self.stopped = f"{phase.name}: {decision.action.value}: {decision.reason}"

    def finish(self, interrupted: bool) -> None:
        try:
            if not self.started:
                return
            if interrupted:
                self.run(self.rollout.interrupted("the pytest session was interrupted"))
                return
            self.settle()
            if self.stopped is None and all(p.name in self.decisions for p in self.phases):
                self.run(self.rollout.finish(RunOutcome.ADVANCED, "every gated phase advanced"))
            elif self.stopped is None:
                self.run(self.rollout.interrupted("not every checkpoint was judged"))
            else:
                stopped = [d for d in self.decisions.values() if d.action is Action.ROLLBACK]
                outcome = RunOutcome.ROLLED_BACK if stopped else RunOutcome.HELD
                self.run(self.rollout.finish(outcome, self.stopped))
            self.step_summary()
        finally:
            self.run(self.rollout.aclose())
            self.loop.close()
            closer = getattr(self.store, "close", None)
            if closer is not None:
                closer()

    def step_summary(self) -> None:
        """In GitHub Actions, the run's Markdown summary on the job's page."""
        if not os.environ.get("GITHUB_STEP_SUMMARY") or not self.rollout.run_id:
            return
        from gatekeeper._runreport import github_step_summary, render_markdown  # noqa: PLC0415
        from gatekeeper._status import find_run  # noqa: PLC0415

        info = find_run(self.rollout.store, self.rollout.run_id)
        github_step_summary(render_markdown(info, self.rollout.store.events(info.run_id)))


SESSION_KEY = pytest.StashKey[GateSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gatekeeper", "release gates (gatekeeper)")
    group.addoption(
        "--gate",
        dest="gate",
        default=None,
        metavar="PHASE[,PHASE]",
        help="Judge these phases of the plan: each checkpoint becomes a test item.",
    )
    group.addoption(
        "--gate-plan",
        dest="gate_plan",
        default=None,
        metavar="PATH",
        help="The plan file (default: the gate_plan ini value, or gates.toml in the rootdir).",
    )
    group.addoption(
        "--gate-rehearse",
        dest="gate_rehearse",
        default=None,
        metavar="RECORDING",
        help="Rehearse on a simulated clock against this CSV recording.",
    )
    group.addoption(
        "--gate-no-traffic",
        dest="gate_no_traffic",
        action="store_true",
        default=False,
        help="Judge only: never change traffic, not even to roll back.",
    )
    group.addoption(
        "--gate-store",
        dest="gate_store",
        default=None,
        metavar="PATH|URL",
        help="The run journal (default: $GATEKEEPER_STORE, else a SQLite file next to the plan).",
    )
    group.addoption(
        "--gate-force",
        dest="gate_force",
        action="store_true",
        default=False,
        help="Gate a phase even though the phase before it has not advanced in the journal.",
    )
    parser.addini("gate_plan", "The gatekeeper plan file for --gate.", default="gates.toml")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "checkpoint(phase, name): run this test right after that checkpoint of a gated "
        "phase (with the gate_metrics fixture).",
    )


def _plan_path(config: pytest.Config) -> Path:
    option = config.getoption("gate_plan")
    path = Path(option) if option else Path(str(config.getini("gate_plan")))
    if not path.is_absolute():
        path = (Path.cwd() if option else config.rootpath) / path
    return path


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect: they apply to gate items too
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    gate = config.getoption("gate")
    marked = [item for item in items if item.get_closest_marker("checkpoint") is not None]
    if not gate:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason="runs at a gate checkpoint (use --gate)"))
        return
    path = _plan_path(config)
    try:
        plan = load_plan(path)
    except PlanError as exc:
        raise pytest.UsageError(f"gatekeeper: {exc}") from None
    names = [name.strip() for name in gate.split(",") if name.strip()]
    try:
        phases = list(plan.select(names))
    except KeyError as exc:
        raise pytest.UsageError(f"gatekeeper: --gate: {exc.args[0]}") from None
    try:
        # --collect-only lists the items and touches no source, balancer or journal.
        if not config.getoption("collectonly"):
            config.stash[SESSION_KEY] = GateSession(config, plan, phases)
    except (GatekeeperError, KeyError) as exc:
        raise pytest.UsageError(f"gatekeeper: {exc}") from None

    planfile = PlanCollector.from_parent(session, path=path, plan=plan, phases=phases)
    by_checkpoint: dict[tuple[str, str], list[pytest.Item]] = {}
    others: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("checkpoint")
        if marker is None:
            others.append(item)
            continue
        phase, checkpoint = _marker_args(marker, item)
        if phase not in names:
            item.add_marker(pytest.mark.skip(reason=f"phase {phase!r} is not gated in this run"))
            others.append(item)
            continue
        the_phase = plan.phase(phase)
        if checkpoint not in [c.name for c in the_phase.checkpoints]:
            raise pytest.UsageError(
                f"{item.nodeid}: checkpoint({phase!r}, {checkpoint!r}): phase {phase!r} has no "
                f"checkpoint {checkpoint!r} (known: "
                f"{', '.join(c.name for c in the_phase.checkpoints)})"
            )
        by_checkpoint.setdefault((phase, checkpoint), []).append(item)
    ordered: list[pytest.Item] = []
    gate_session = config.stash.get(SESSION_KEY, None)
    for phase_node in planfile.collect():
        assert isinstance(phase_node, PhaseCollector)  # our own tree
        checkpoints: list[pytest.Item | pytest.Collector] = list(phase_node.collect())
        # Counted like collected items ("collected N items" includes the checkpoints).
        session.ihook.pytest_collectreport(
            report=pytest.CollectReport(phase_node.nodeid, "passed", None, checkpoints)
        )
        for node in checkpoints:
            assert isinstance(node, CheckpointItem)
            ordered.append(node)
            attached = by_checkpoint.get((node.phase.name, node.name), [])
            ordered.extend(attached)
            if gate_session is not None and attached:
                gate_session.checks[(node.phase.name, node.name)] = len(attached)
    items[:] = others + ordered


def _marker_args(marker: pytest.Mark, item: pytest.Item) -> tuple[str, str]:
    args = list(marker.args) + [marker.kwargs[k] for k in ("phase", "name") if k in marker.kwargs]
    if len(args) != 2 or not all(isinstance(a, str) for a in args):
        raise pytest.UsageError(
            f"{item.nodeid}: use @pytest.mark.checkpoint('PHASE', 'CHECKPOINT'), got {marker}"
        )
    return args[0], args[1]


class PlanCollector(pytest.File):
    """The plan file: one child per gated phase."""

    def __init__(self, *, plan: Plan, phases: list[Phase], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.phases = phases

    def collect(self) -> Iterator[PhaseCollector]:
        for phase in self.phases:
            yield PhaseCollector.from_parent(self, name=phase.name, phase=phase)


class PhaseCollector(pytest.Collector):
    """A gated phase: one item per checkpoint, in order."""

    def __init__(self, *, phase: Phase, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.phase = phase

    def collect(self) -> Iterator[CheckpointItem]:
        for checkpoint in self.phase.checkpoints:
            yield CheckpointItem.from_parent(self, name=checkpoint.name, phase=self.phase)


class CheckpointItem(pytest.Item):
    """One checkpoint of a phase: waits for it, judges the gate, applies the policy."""

    def __init__(self, *, phase: Phase, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.phase = phase
        self.results: list[CheckpointResult] = []

    def runtest(self) -> None:
        gate = self.config.stash[SESSION_KEY]
        if gate.stopped is not None:
            pytest.skip(f"the gated run already stopped: {gate.stopped}")
        self.results = gate.judge(self.phase, self.name)
        if not self.results:  # the phase stopped before its first checkpoint (approval)
            raise GateFailure([])
        final = self.results[-1]
        for verdict in final.result.verdicts:
            observed = "-" if verdict.observed is None else format_number(verdict.observed)
            self.user_properties.append(
                (verdict.criterion.text, f"{observed} ({verdict.outcome.value})")
            )
        self.user_properties.append(("decision", final.decision.action.value))
        if final.decision.action not in (Action.CONTINUE, Action.ADVANCE):
            raise GateFailure(self.results)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        if isinstance(excinfo.value, GateFailure):
            gate = self.config.stash[SESSION_KEY]
            if not excinfo.value.results:
                return f"{self.phase.name} @ {self.name}: {gate.stopped}"
            lines = []
            for result in excinfo.value.results:
                r = result.result
                attempt = f" (re-check {r.attempt - 1})" if r.attempt > 1 else ""
                lines.append(
                    f"{self.phase.name} @ {self.name}{attempt}: {r.outcome.value.upper()} "
                    f"at {r.at.isoformat()}"
                )
                lines.append(format_gate_table(r, gate.plan.metrics))
                lines.append(f"→ {result.decision.action.value.upper()}: {result.decision.reason}")
                lines.append("")
            return "\n".join(lines).rstrip()
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"gate {self.phase.name} @ {self.name}"


def _gate_session(request: pytest.FixtureRequest) -> GateSession:
    gate = request.config.stash.get(SESSION_KEY, None)
    if gate is None:
        pytest.fail("gate fixtures need --gate")
    return gate


@pytest.fixture
def gate_result(request: pytest.FixtureRequest) -> CheckpointResult:
    """The gate result and decision of the checkpoint this test is marked for."""
    gate = _gate_session(request)
    marker = request.node.get_closest_marker("checkpoint")
    if marker is None:
        pytest.fail("gate_result needs @pytest.mark.checkpoint(PHASE, CHECKPOINT)")
    key = _marker_args(marker, request.node)
    result = gate.latest.get(key)
    if result is None:
        pytest.skip(f"checkpoint {key[0]} @ {key[1]} was not judged (the run stopped before)")
    return result


@pytest.fixture
def gate_metrics(gate_result: CheckpointResult) -> Mapping[str, float | None]:
    """Canary values measured at the marked checkpoint, by metric name (``None``
    where there was no usable value)."""
    values: dict[str, float | None] = {}
    for verdict in gate_result.result.verdicts:
        for m in verdict.measurements:
            if m.variant == "canary":
                values.setdefault(m.metric, m.value if m.problem is None else None)
    return values


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("checkpoint")
    gate = item.config.stash.get(SESSION_KEY, None)
    if marker is None or gate is None:
        return report
    phase, checkpoint = _marker_args(marker, item)
    failed = item.stash.get(_FAILED, False) or report.failed
    item.stash[_FAILED] = failed
    if report.when == "teardown":
        gate.check_done(phase, checkpoint, item.nodeid, failed=failed)
    return report


_FAILED = pytest.StashKey[bool]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    gate = session.config.stash.get(SESSION_KEY, None)
    if gate is not None:
        gate.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    gate = config.stash.get(SESSION_KEY, None)
    if gate is None or not gate.started:
        return
    write = terminalreporter.write_line
    terminalreporter.section("gatekeeper")
    mode = "rehearsal" if gate.rehearsing else "live"
    traffic = "judge only, traffic untouched" if gate.no_traffic else "traffic managed"
    write(f"plan {gate.plan.name} ({mode}, {traffic})")
    for phase in gate.phases:
        decision = gate.decisions.get(phase.name)
        if decision is None:
            write(f"{phase.name}: not decided")
            continue
        write(f"{phase.name}: {decision.action.value.upper()}: {decision.reason}")
    result = gate.rollout.result
    if result is not None:
        split = f"; canary at {format_number(result.split.canary)}%" if result.split else ""
        write(f"result: {result.outcome.value.upper()}{split}")
