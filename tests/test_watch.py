"""The watch between checkpoints: it stops a phase early, never advances one, keeps
its journal compact and carries its evidence across a restart (issue 12)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper import Event, Plan, PlanError, RunOutcome, RunResult, plan_from_text
from gatekeeper._grammar import GrammarError, parse_criterion
from gatekeeper._rehearsal import rehearsal
from gatekeeper._run.context import PhaseState
from gatekeeper._run.events import EventKind
from gatekeeper._run.rollout import Rollout
from gatekeeper._store import MemoryStore
from gatekeeper._units import format_duration

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"

PLAN = """
[plan]
name = "watched"
[sources.s]
type = "static"
[metrics.m]
source = "s"
[metrics.error_rate]
source = "s"
numerator = "errors"
denominator = "requests"
[traffic]
type = "memory"
[[phases]]
name = "ramp"
traffic = 10
checkpoints = ["15m", "30m"]
gate = ["m < 1", { criterion = "error_rate canary <= baseline * 1.2", fail_only = true }]
[phases.watch]
every = "5s"
gate = [{WATCH}]
"""


def plan(watch: str = '"m < 1 for 1m"', **replace: str) -> Plan:
    text = PLAN.replace("{WATCH}", watch)
    for old, new in replace.items():
        text = text.replace(old, new)
    return plan_from_text(text, path="gates.toml")


def recording(tmp_path: Path, rows: str, *, counts: bool = True) -> Path:
    """``m`` as given; healthy cumulative counts (1 % errors in both arms) every 10 s."""
    lines = ["at,metric,value,variant", *rows.strip().splitlines()]
    if counts:
        for second in range(0, 1801 + 1, 10):
            canary, baseline = second * 20, second * 180
            lines += [
                f"{second},error_rate.numerator,{canary // 100}",
                f"{second},error_rate.denominator,{canary}",
                f"{second},error_rate.numerator,{baseline // 100},baseline",
                f"{second},error_rate.denominator,{baseline},baseline",
            ]
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(
    the_plan: Plan, path: Path, store: MemoryStore | None = None
) -> tuple[RunResult, list[Event]]:
    store = store or MemoryStore()
    rollout = rehearsal(the_plan, path, store=store)
    result = rollout.run_sync()
    return result, list(store.events(rollout.run_id))


def kinds(events: list[Event]) -> Counter[str]:
    return Counter(str(e.kind) for e in events)


# -- the plan file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("watch", "extra", "message"),
    [
        ('"m < 1"', {'every = "5s"': 'every = "500ms"'}, "phases[0].watch.every"),
        ('"m stable within 5%"', {}, "a stability criterion is judged at checkpoints"),
        (
            '"error_rate canary <= baseline * 1.5"',
            {},
            "must also be in the phase's gate",
        ),
        ('"m < 1 for 0s"', {}, "longer than 0s"),
        ('"error_rate canary <= baseline * 1.2 for 1m"', {}, "needs no 'for'"),
        ('"m < 1"', {'every = "5s"': 'every = "5s"\nevery2 = 1'}, "every2"),
        ('"m < 1"', {'every = "5s"': 'stale = "1s"'}, "a watch needs 'every'"),
    ],
)
def test_a_bad_watch_is_one_located_message(
    watch: str, extra: dict[str, str], message: str
) -> None:
    with pytest.raises(PlanError) as caught:
        plan(watch, **extra)
    text = str(caught.value)
    assert "gates.toml" in text
    assert message in text


def test_for_belongs_to_watches_only() -> None:
    with pytest.raises(PlanError, match=r"phases\[0\]\.gate\[0\].*belongs to a watch"):
        plan(**{'gate = ["m < 1", {': 'gate = ["m < 1 for 1m", {'})


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(min_value=1, max_value=400 * 86400))
def test_for_reads_back_any_duration_it_is_written_with(seconds: int) -> None:
    written = format_duration(timedelta(seconds=seconds))
    assert parse_criterion(f"m < 1 for {written}").persist == timedelta(seconds=seconds)
    assert parse_criterion(f"m >= prerun * 1.1 for {written}").persist == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["m < 1 for", "m < 1 for soon", "m < 1 for 1m 2"])
def test_a_bad_for_says_where(text: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse_criterion(text)
    assert caught.value.column >= len("m < 1 for")


# -- what a watch may decide -------------------------------------------------------------


def test_a_jump_two_minutes_in_is_rolled_back_by_the_watch_before_the_first_checkpoint(
    tmp_path: Path,
) -> None:
    result, events = run(plan(), recording(tmp_path, "0,m,0.5\n120,m,2"))
    assert result.outcome is RunOutcome.ROLLED_BACK
    decision = next(e for e in events if e.kind == EventKind.DECISION)
    # Failing from 2m, for the minute it must: rolled back at 3m, not at the 15m checkpoint.
    assert decision.at - events[0].at <= timedelta(minutes=3, seconds=5)
    assert decision.checkpoint == "15m"
    assert decision.data["action"] == "rollback"
    assert "watch at 3m into ramp, before its 15m checkpoint" in decision.data["reason"]
    assert "m: 2 is not < 1 for 1m" in decision.data["reason"]
    confirmed = [e for e in events if e.kind == EventKind.TRAFFIC_CONFIRMED]
    assert confirmed[-1].data["canary"] == 0


def test_a_failure_shorter_than_its_persistence_is_noted_not_acted_on(tmp_path: Path) -> None:
    result, events = run(plan(), recording(tmp_path, "0,m,0.5\n120,m,2\n170,m,0.5"))
    assert result.outcome is RunOutcome.ADVANCED
    changes = [(e.data["criterion"], e.data["status"]) for e in events if e.kind == "watch_changed"]
    assert changes == [("m < 1 for 1m", "failing"), ("m < 1 for 1m", "passing")]


def test_without_persistence_one_failing_look_stops_the_phase(tmp_path: Path) -> None:
    result, events = run(plan('"m < 1"'), recording(tmp_path, "0,m,0.5\n120,m,2"))
    assert result.outcome is RunOutcome.ROLLED_BACK
    decision = next(e for e in events if e.kind == EventKind.DECISION)
    assert decision.at - events[0].at == timedelta(minutes=2)


def test_on_fail_hold_holds_for_a_person(tmp_path: Path) -> None:
    held = plan('"m < 1"', **{"[traffic]": '[policy]\non_fail = "hold"\n[traffic]'})
    result, events = run(held, recording(tmp_path, "0,m,0.5\n120,m,2"))
    assert result.outcome is RunOutcome.HELD
    decision = next(e for e in events if e.kind == EventKind.DECISION)
    assert decision.data["action"] == "hold"
    assert "gatekeeper resume" in decision.data["reason"]
    assert not [e for e in events if e.kind == EventKind.TRAFFIC_INTENT and e.data["canary"] == 0]


def test_a_passing_watch_never_makes_a_checkpoint_pass(tmp_path: Path) -> None:
    """The watch only looks at ``m2``; the gate's ``m`` fails at the 15m checkpoint."""
    the_plan = plan(
        '"m2 < 1"', **{"[metrics.error_rate]": '[metrics.m2]\nsource = "s"\n[metrics.error_rate]'}
    )
    path = recording(tmp_path, "0,m,0.5\n0,m2,0.5\n600,m,2")
    result, events = run(the_plan, path)
    assert result.outcome is RunOutcome.ROLLED_BACK
    decision = next(e for e in events if e.kind == EventKind.DECISION)
    assert decision.checkpoint == "15m"
    assert decision.at - events[0].at == timedelta(minutes=15)
    assert "watch" not in decision.data["reason"]


def test_no_data_is_said_once_and_never_a_failure(tmp_path: Path) -> None:
    """The watch's metric goes silent: one 'no data' change, no rollback by the watch;
    the checkpoint treats the silence as INCONCLUSIVE (never a pass)."""
    path = recording(tmp_path, "0,m,0.5\n60,m,", counts=True)
    result, events = run(plan('"m < 1"'), path)
    stale = [e for e in events if e.kind == "watch_changed" and e.data["status"] == "no data"]
    assert len(stale) == 1
    assert "no data for" in stale[0].data["line"]
    first = next(e for e in events if e.kind == EventKind.DECISION)
    assert first.checkpoint == "15m"
    assert first.data["outcome"] == "inconclusive"
    assert result.outcome is not RunOutcome.ADVANCED


def test_the_statistical_criterion_shares_the_gates_evidence(tmp_path: Path) -> None:
    """Looked at every 5 s by the watch, the compare criterion's test has seen every
    look when the checkpoint judges it: one e-process, not two."""
    the_plan = plan('"m < 1", "error_rate canary <= baseline * 1.2"')
    rollout = rehearsal(the_plan, recording(tmp_path, "0,m,0.5"), store=MemoryStore())
    result = rollout.run_sync()
    assert result.outcome is RunOutcome.ADVANCED
    verdicts = [
        e
        for e in rollout.store.events(rollout.run_id)
        if e.kind == EventKind.VERDICT and "canary" in e.data["criterion"]
    ]
    assert verdicts[0].checkpoint == "15m"
    # 15m of looks every 5 s (the watch) plus the checkpoint's own.
    assert verdicts[0].data["evidence"]["looks"] >= 15 * 12


# -- compact, durable, resumable ------------------------------------------------------------


def test_passing_looks_leave_no_trace_but_snapshots(tmp_path: Path) -> None:
    the_plan = plan('"m < 1", "error_rate canary <= baseline * 1.2"')
    result, events = run(the_plan, recording(tmp_path, "0,m,0.5"))
    assert result.outcome is RunOutcome.ADVANCED
    counted = kinds(events)
    # 30 minutes every 5 s is 360 looks: journaled are the checkpoints' looks and a
    # snapshot every 10 minutes.
    assert counted["verdict"] == 2 * 2
    assert counted["measurement"] == 2 * 3
    assert counted["watch_snapshot"] == 2
    snapshot = next(e for e in events if e.kind == "watch_snapshot")
    assert snapshot.data["looks"] == 120
    assert "error_rate canary <= baseline * 1.2" in snapshot.data["judges"]


class Crash(BaseException):
    """The process dies."""


class CrashingStore(MemoryStore):
    """Dies right after writing its first watch snapshot past ``skip`` of them."""

    def __init__(self, skip: int) -> None:
        super().__init__()
        self.skip = skip
        self.armed = True

    def append(self, run_id: str, event: Event, *, fenced: bool = True) -> int:
        seq = super().append(run_id, event, fenced=fenced)
        if self.armed and event.kind == "watch_snapshot":
            if self.skip == 0:
                self.armed = False
                raise Crash
            self.skip -= 1
        return seq


def test_a_resumed_run_continues_the_watchs_evidence(tmp_path: Path) -> None:
    """Killed right after the 20m snapshot, the run resumes with the judge's state and
    the watch's count of looks, and decides as the run that was never killed."""
    the_plan = plan('"m < 1", "error_rate canary <= baseline * 1.2"')
    path = recording(tmp_path, "0,m,0.5")
    whole, _ = run(the_plan, path)
    store = CrashingStore(skip=1)
    first = rehearsal(the_plan, path, store=store)
    with pytest.raises(Crash):
        first.run_sync()
    snapshot = [e for e in store.events(first.run_id) if e.kind == "watch_snapshot"][-1]
    again = rehearsal(the_plan, path, store=store)
    state = asyncio.run(_resumed_state(again))
    assert state.watch_saved is not None
    assert state.watch_saved["looks"] == 239  # every 5 s to 20m, the 15m checkpoint aside
    assert state.judges, "the compare criterion's state came back"
    looks_then = snapshot.data["judges"]["error_rate canary <= baseline * 1.2"]["looks"]
    assert state.judges[1].looks == looks_then
    resumed = rehearsal(the_plan, path, store=store).run_sync()
    assert resumed.outcome is whole.outcome


async def _resumed_state(rollout: Rollout) -> PhaseState:
    await rollout.start()
    phase = rollout.plan.phases[0]
    state = rollout.resumed_phase(phase)
    assert state is not None
    return state


# -- the reference plan -------------------------------------------------------------------


def test_the_reference_plan_is_rolled_back_by_its_watch_three_minutes_into_the_ramp() -> None:
    the_plan = plan_from_text((EXAMPLE / "gates.toml").read_text(), path="gates.toml")
    store = MemoryStore()
    rollout = rehearsal(the_plan, EXAMPLE / "bad-canary.csv", phases=["ramp"], store=store)
    result = rollout.run_sync(["ramp"])
    assert result.outcome is RunOutcome.ROLLED_BACK
    events = list(store.events(rollout.run_id))
    started = next(e for e in events if e.kind == EventKind.PHASE_STARTED)
    decision = next(e for e in events if e.kind == EventKind.DECISION)
    assert decision.checkpoint == "15m"
    assert decision.at - started.at == timedelta(minutes=3)
    assert "watch at 3m into ramp, before its 15m checkpoint" in decision.data["reason"]


# -- properties -------------------------------------------------------------------------

PERSIST_PLAN = """
[plan]
name = "persist"
[sources.s]
type = "static"
[metrics.m]
source = "s"
[traffic]
type = "memory"
[[phases]]
name = "p"
traffic = 10
checkpoints = ["10m"]
gate = ["m < 1"]
[phases.watch]
every = "5s"
gate = ["m < 1 for {persist}s"]
"""

LOOKS = 119  # the looks before the 10m checkpoint (5 s … 9m55s)


def expected_failure(values: list[float | None], persist: int) -> int | None:
    """The reference model: the first look (seconds into the phase) at which ``m`` has
    failed at every look with data for ``persist`` seconds; a look without data
    neither breaks nor confirms the run."""
    since: int | None = None
    for index, value in enumerate(values):
        at = 5 * (index + 1)
        if value is None:
            continue
        if value >= 1:
            since = at if since is None else since
            if at - since >= persist:
                return at
        else:
            since = None
    return None


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.5, 2.0, None]), min_size=LOOKS, max_size=LOOKS),
    persist=st.sampled_from([5, 15, 30, 60]),
)
def test_the_watch_fails_exactly_when_persistence_says(
    tmp_path_factory: pytest.TempPathFactory, values: list[float | None], persist: int
) -> None:
    the_plan = plan_from_text(PERSIST_PLAN.replace("{persist}", str(persist)))
    rows = ["at,metric,value", "0,m,0.5"]
    rows += [f"{5 * (i + 1)},m,{'' if v is None else v}" for i, v in enumerate(values)]
    path = tmp_path_factory.mktemp("persist") / "m.csv"
    path.write_text("\n".join(rows) + "\n")
    _, events = run(the_plan, path)
    decision = next(e for e in events if e.kind == EventKind.DECISION)
    failed_at = expected_failure(values, persist)
    started = next(e for e in events if e.kind == EventKind.PHASE_STARTED).at
    if failed_at is None:
        assert not decision.data["reason"].startswith("watch at"), decision.data["reason"]
        assert decision.at - started == timedelta(minutes=10)
    else:
        assert decision.data["reason"].startswith("watch at"), decision.data["reason"]
        assert decision.at - started == timedelta(seconds=failed_at)
        assert decision.data["action"] == "rollback"


@settings(max_examples=300, deadline=None)
@given(
    every=st.integers(min_value=1, max_value=3600),
    now=st.integers(min_value=0, max_value=400 * 86400),
)
def test_looks_fall_on_the_phases_grid(every: int, now: int) -> None:
    """The next look is after ``now``, at most ``every`` later, on the phase's grid."""
    from gatekeeper._run.watch import Watcher  # noqa: PLC0415

    class State:
        started_at = datetime(2026, 1, 1, tzinfo=UTC)

    watcher = Watcher.__new__(Watcher)
    object.__setattr__(watcher, "state", State())
    start = State.started_at
    at = watcher._after(start + timedelta(seconds=now), timedelta(seconds=every))
    assert start + timedelta(seconds=now) < at <= start + timedelta(seconds=now + every)
    assert (at - start) % timedelta(seconds=every) == timedelta(0)


def test_a_fail_only_criterion_collecting_again_is_not_stuck_without_data(tmp_path: Path) -> None:
    """A fail-only compare never PASSes before the last checkpoint: once its counts come
    back it is collecting evidence, which is data, and the watch says so once."""
    the_plan = plan('"m < 1", "error_rate canary <= baseline * 1.2"')
    rows = ["at,metric,value,variant", "0,m,0.5"]
    for second in range(300, 1801, 10):  # no counts for the first 5 minutes
        canary, baseline = second * 20, second * 180
        rows += [
            f"{second},error_rate.numerator,{canary // 100}",
            f"{second},error_rate.denominator,{canary}",
            f"{second},error_rate.numerator,{baseline // 100},baseline",
            f"{second},error_rate.denominator,{baseline},baseline",
        ]
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(rows) + "\n")
    result, events = run(the_plan, path)
    assert result.outcome is RunOutcome.ADVANCED
    changes = [e.data["status"] for e in events if e.kind == "watch_changed"]
    assert changes == ["no data", "passing"]
    assert "data again" in next(e for e in events if e.data.get("status") == "passing").data["line"]


def test_the_watch_goes_on_across_a_step_up(tmp_path: Path) -> None:
    """A stepped phase keeps its watch after the share goes up: the failure 5 minutes
    into the second step rolls back before that step's checkpoint."""
    stepped = PLAN.replace(
        'traffic = 10\ncheckpoints = ["15m", "30m"]\n',
        'steps = [{ traffic = 1, checkpoints = ["10m"] }, '
        '{ traffic = 10, checkpoints = ["10m", "20m"] }]\n',
    )
    the_plan = plan_from_text(stepped.replace("{WATCH}", '"m < 1"'))
    result, events = run(the_plan, recording(tmp_path, "0,m,0.5\n900,m,2"))
    assert result.outcome is RunOutcome.ROLLED_BACK
    step = next(e for e in events if e.kind == EventKind.STEP_STARTED)
    decision = [e for e in events if e.kind == EventKind.DECISION][-1]
    assert step.data["traffic"] == 10
    assert decision.at - step.at == timedelta(minutes=5)
    assert decision.data["reason"].startswith("watch at 15m into ramp, before its 10m@10% ")


def test_the_watch_goes_on_while_a_checkpoint_holds_for_a_recheck(tmp_path: Path) -> None:
    """An INCONCLUSIVE checkpoint holds and re-checks in 5 minutes; the watch keeps
    looking meanwhile and a failure rolls back before the re-check."""
    the_plan = plan(
        '"m2 < 1"', **{"[metrics.error_rate]": '[metrics.m2]\nsource = "s"\n[metrics.error_rate]'}
    )
    # m is silent at 15m (the checkpoint holds); m2 fails at 16m.
    path = recording(tmp_path, "0,m,0.5\n0,m2,0.5\n840,m,\n960,m2,2")
    result, events = run(the_plan, path)
    assert result.outcome is RunOutcome.ROLLED_BACK
    decisions = [e for e in events if e.kind == EventKind.DECISION]
    assert [d.data["action"] for d in decisions] == ["hold", "rollback"]
    assert decisions[0].data.get("recheck_at") is not None
    assert decisions[1].at - events[0].at == timedelta(minutes=16)
    assert decisions[1].data["reason"].startswith("watch at 16m into ramp, before its 15m ")
