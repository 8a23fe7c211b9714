"""A plan's [notify.NAME] channel, through the engine, to a real receiver: the rollback
is applied before the message is queued, every attempt is journaled, and a dead
receiver never holds the run up."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import gatekeeper
from gatekeeper import RunOutcome
from gatekeeper._rehearsal import rehearsal
from gatekeeper.store.sqlite import SQLiteStore
from realservers.receivers import HttpReceiver

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"


def reference_with_webhook(tmp_path: Path, url: str) -> gatekeeper.Plan:
    text = (EXAMPLE / "gates.toml").read_text()
    text += (
        f'\n[notify.oncall]\ntype = "webhook"\nurl = "{url}"\non = ["rollback", "run_finished"]\n'
    )
    path = tmp_path / "gates.toml"
    path.write_text(text)
    shutil.copy(EXAMPLE / "bad-canary.csv", tmp_path / "bad-canary.csv")
    return gatekeeper.load_plan(path)


def test_a_rollback_reaches_the_webhook_after_it_is_applied(
    tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    plan = reference_with_webhook(tmp_path, http_receiver.url)
    store = SQLiteStore(tmp_path / "journal.sqlite3")
    try:
        rollout = rehearsal(plan, tmp_path / "bad-canary.csv", store=store, notify=True)
        result = rollout.run_sync()
        assert RunOutcome.ROLLED_BACK == result.outcome
        got = http_receiver.wait_for(2, timeout=10)
        kinds = {r.json()["kind"] for r in got}
        assert {"rollback", "run_finished"} <= kinds
        events = store.events(result.run_id)
        confirmed_zero = next(
            e.seq for e in events if e.kind == "traffic_confirmed" and e.data["canary"] == 0
        )
        attempts = [e for e in events if e.kind == "notification"]
        assert attempts
        assert all(e.seq > confirmed_zero for e in attempts)  # effect first, then told
        assert all(e.data["delivered"] for e in attempts)
    finally:
        store.close()


def test_a_dead_receiver_never_holds_the_run_up(tmp_path: Path) -> None:
    plan = reference_with_webhook(tmp_path, "http://127.0.0.1:9/hook")  # nothing listens
    store = SQLiteStore(tmp_path / "journal.sqlite3")
    try:
        started = time.monotonic()
        result = rehearsal(plan, tmp_path / "bad-canary.csv", store=store, notify=True).run_sync()
        assert RunOutcome.ROLLED_BACK == result.outcome
        assert time.monotonic() - started < 30  # bounded retries, drained at the end
        failed = [e for e in store.events(result.run_id) if e.kind == "notification"]
        assert failed
        assert not any(e.data["delivered"] for e in failed)
    finally:
        store.close()


def test_a_rehearsal_pages_nobody_unless_asked(tmp_path: Path, http_receiver: HttpReceiver) -> None:
    plan = reference_with_webhook(tmp_path, http_receiver.url)
    result = rehearsal(plan, tmp_path / "bad-canary.csv").run_sync()
    assert RunOutcome.ROLLED_BACK == result.outcome
    time.sleep(0.5)
    assert [] == http_receiver.received


class Broken:
    @gatekeeper.hookimpl
    def gatekeeper_checkpoint_judged(self) -> None:
        raise RuntimeError("a dashboard plugin broke")


def test_a_failing_observer_is_told_to_people(tmp_path: Path, http_receiver: HttpReceiver) -> None:
    """An observer's failure is journaled and notified; the run goes on unchanged."""
    text = (EXAMPLE / "gates.toml").read_text() + (
        f'\n[notify.oncall]\ntype = "webhook"\nurl = "{http_receiver.url}"\n'
        'on = ["observer_failure"]\n'
    )
    (tmp_path / "gates.toml").write_text(text)
    plan = gatekeeper.load_plan(tmp_path / "gates.toml")
    plugins = gatekeeper.Plugins(load_entry_points=False, plugins=[Broken()])
    result = rehearsal(plan, EXAMPLE / "bad-canary.csv", plugins=plugins, notify=True).run_sync()
    assert RunOutcome.ROLLED_BACK == result.outcome  # the decision stood
    got = http_receiver.wait_for(1, timeout=10)
    assert "observer_failure" == got[0].json()["kind"]
    assert "a dashboard plugin broke" in got[0].json()["reason"]
