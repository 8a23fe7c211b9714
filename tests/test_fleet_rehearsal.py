"""Rehearsing the eight-region fleet: waves in order, bakes on time and requests,
the entry gate, and what a failure in the third wave does under each on_fail."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gatekeeper import MemoryStore, RunOutcome
from gatekeeper._fleet import (
    Fleet,
    FleetEvent,
    fleet_from_text,
    fleet_rehearsal,
    fleet_status,
    load_fleet,
    rehearse_fleet,
)
from gatekeeper._rehearsal import REHEARSAL_ORIGIN
from gatekeeper.store.sqlite import SQLiteStore

EXAMPLE = Path(__file__).parent.parent / "examples" / "multi-region"
FLEET = EXAMPLE / "fleet.toml"
HEALTHY = EXAMPLE / "healthy.csv"
FAILS = EXAMPLE / "third-wave-fails.csv"
EARLY = ("af-south-1", "sa-east-1")
WAVE3 = ("us-east-2", "eu-west-1")
LAST = ("us-east-1", "us-west-2", "eu-central-1", "ap-southeast-1")


def with_on_fail(value: str) -> Fleet:
    text = FLEET.read_text().replace('on_fail = "rollback-wave"', f'on_fail = "{value}"')
    return fleet_from_text(text, path=str(FLEET))


def rehearse(
    fleet: Fleet, recording: Path, store: MemoryStore | SQLiteStore | None = None
) -> tuple[RunOutcome, dict[str, float], MemoryStore | SQLiteStore]:
    store = store or MemoryStore()
    run, backends = fleet_rehearsal(fleet, recording, store=store)

    async def go() -> tuple[RunOutcome, dict[str, float]]:
        result = await run.run()
        return result.outcome, {t: (await b.get_split()).canary for t, b in backends.items()}

    outcome, shares = asyncio.run(go())
    return outcome, shares, store


def fleet_events(store: MemoryStore | SQLiteStore, kind: str) -> list[dict[str, object]]:
    run = next(r for r in store.runs() if r.plan.endswith("@fleet"))
    return [dict(e.data) for e in store.events(run.run_id) if e.kind == kind]


def test_a_healthy_release_reaches_every_region_wave_by_wave() -> None:
    """All eight at 100 %; each wave starts after the one before it ran and baked."""
    outcome, shares, store = rehearse(load_fleet(FLEET), HEALTHY)
    assert RunOutcome.ADVANCED is outcome
    assert dict.fromkeys(shares, 100.0) == shares
    starts = {str(d["wave"]): str(d["at"]) for d in fleet_events(store, FleetEvent.WAVE_STARTED)}
    offsets = {
        wave: (datetime.fromisoformat(at) - REHEARSAL_ORIGIN) / timedelta(hours=1)
        for wave, at in starts.items()
    }
    # 2h of phases, then the bake: 12h, 4h, 3h.
    assert {"pilot": 0, "latam": 14, "wave-3": 20, "rest": 25} == offsets


def test_the_third_wave_failing_rolls_that_wave_back_and_stops_the_fleet() -> None:
    """rollback-wave: eu-west-1 fails, us-east-2 goes back with it, the first two waves
    stay at 100 % and the last wave never starts."""
    outcome, shares, store = rehearse(load_fleet(FLEET), FAILS)
    assert RunOutcome.ROLLED_BACK is outcome
    assert dict.fromkeys(EARLY, 100.0) == {t: shares[t] for t in EARLY}
    assert dict.fromkeys(WAVE3 + LAST, 0.0) == {t: shares[t] for t in WAVE3 + LAST}
    plans = {r.plan for r in store.runs()}
    assert not any(f"multi-region@{t}" in plans for t in LAST)
    (failed,) = fleet_events(store, FleetEvent.FAILED)
    assert ["eu-west-1"] == failed["targets"]
    assert ["us-east-2"] == failed["rollback"]


def test_rollback_all_takes_every_moved_region_back() -> None:
    """rollback-all: the pilot and latam regions go back to 0 % too, each journaled as
    a confirmed rollback in its own run."""
    outcome, shares, store = rehearse(with_on_fail("rollback-all"), FAILS)
    assert RunOutcome.ROLLED_BACK is outcome
    assert dict.fromkeys(shares, 0.0) == shares
    rolled = {str(d["target"]) for d in fleet_events(store, FleetEvent.TARGET_ROLLED_BACK)}
    assert {*EARLY, "us-east-2"} == rolled
    pilot = next(r for r in store.runs() if r.plan == "multi-region@af-south-1")
    assert "rolled back" == pilot.status
    kinds = [e.kind for e in store.events(pilot.run_id)]
    assert "traffic_intent" in kinds[kinds.index("run_ended") :]


def test_stop_leaves_the_others_where_they_are_and_holds() -> None:
    """stop: only the failing region goes back; the fleet holds (exit 3) for a person."""
    outcome, shares, _ = rehearse(with_on_fail("stop"), FAILS)
    assert RunOutcome.HELD is outcome
    assert 0.0 == shares["eu-west-1"]
    assert dict.fromkeys((*EARLY, "us-east-2"), 100.0) == {
        t: shares[t] for t in (*EARLY, "us-east-2")
    }
    assert dict.fromkeys(LAST, 0.0) == {t: shares[t] for t in LAST}


def test_a_failing_entry_gate_holds_before_the_wave(tmp_path: Path) -> None:
    """A critical incident anywhere from 13h on: re-checked for an hour, the latam
    wave does not start."""
    recording = tmp_path / "incident.csv"
    recording.write_text(HEALTHY.read_text() + "13h,critical_incidents,1,canary,us-east-1\n")
    outcome, shares, store = rehearse(load_fleet(FLEET), recording)
    assert RunOutcome.HELD is outcome
    assert {"af-south-1": 100.0} == {t: s for t, s in shares.items() if s}
    first, *later = fleet_events(store, FleetEvent.ENTRY_CHECKED)
    assert "pass" == first["outcomes"]["us-east-1"]  # type: ignore[index]
    assert 13 == len(later)
    assert all("fail" == c["outcomes"]["us-east-1"] for c in later)  # type: ignore[index]


def test_a_bake_waits_for_enough_requests(tmp_path: Path) -> None:
    """The pilot's 100,000 requests arrive only at 16h: the next wave waits for them
    (re-checked every 5m), though 12h of bake ended at 14h."""
    recording = tmp_path / "slow.csv"
    text = HEALTHY.read_text().replace(
        "14h,error_rate.denominator,120000", "14h,error_rate.denominator,60000"
    )
    recording.write_text(text + "16h,error_rate.denominator,120000,canary,af-south-1\n")
    outcome, _, store = rehearse(load_fleet(FLEET), recording)
    assert RunOutcome.ADVANCED is outcome
    checks = fleet_events(store, FleetEvent.BAKE_CHECKED)
    pilot = [c for c in checks if c["wave"] == "pilot"]
    assert 25 == len(pilot)  # 14h, then every 5m up to 16h
    latam = next(d for d in fleet_events(store, FleetEvent.WAVE_STARTED) if d["wave"] == "latam")
    assert str(latam["at"]).startswith("2026-01-01T16:00")


def test_a_finished_fleet_is_reported_not_repeated(tmp_path: Path) -> None:
    """Running the fleet again on the same journal changes nothing."""
    store = SQLiteStore(tmp_path / "journal.sqlite3")
    try:
        rehearse(load_fleet(FLEET), FAILS, store)
        count = len(store.runs())
        outcome, shares, _ = rehearse(load_fleet(FLEET), FAILS, store)
        assert RunOutcome.ROLLED_BACK is outcome
        assert count == len(store.runs())
        assert dict.fromkeys(shares, 0.0) == shares  # fresh memory balancers: untouched
    finally:
        store.close()


def test_status_shows_targets_phases_shares_and_what_the_fleet_waits_for(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.sqlite3")
    try:
        rehearse(load_fleet(FLEET), FAILS, store)
        out = io.StringIO()
        assert 0 == fleet_status(load_fleet(FLEET), store, out=out)
    finally:
        store.close()
    text = out.getvalue()
    assert "af-south-1" in text and "advanced" in text
    assert "eu-west-1" in text and "rolled back" in text
    assert "not started" in text
    assert "waiting for: nothing (ended rolled back" in text


@pytest.mark.parametrize("recording", [HEALTHY, FAILS])
def test_the_command_function_prints_every_region(recording: Path) -> None:
    out = io.StringIO()
    result = rehearse_fleet(load_fleet(FLEET), recording, out=out)
    assert (0 if recording == HEALTHY else 1) == result.exit_code
    assert 9 == len(out.getvalue().splitlines())


def test_a_wave_approval_withheld_holds_the_fleet_before_that_wave(tmp_path: Path) -> None:
    """The latam wave's go/no-go (its target's first phase) is withheld: the fleet
    holds with the pilot at 100 % and nothing else moved."""
    text = FLEET.read_text().replace(
        'targets = ["sa-east-1"]', 'targets = ["sa-east-1"]\napproval = "latam: go?"'
    )
    fleet = fleet_from_text(text, path=str(FLEET))
    recording = tmp_path / "withheld.csv"
    recording.write_text(HEALTHY.read_text() + "0,approval:canary,,canary,sa-east-1\n")
    outcome, shares, store = rehearse(fleet, recording)
    assert RunOutcome.HELD is outcome
    assert {"af-south-1": 100.0} == {t: s for t, s in shares.items() if s}
    latam = next(r for r in store.runs() if r.plan == "multi-region@sa-east-1")
    kinds = [e.kind for e in store.events(latam.run_id)]
    assert "approval_pending" in kinds or "approval_requested" in kinds


def test_rollback_of_one_target_and_of_all(tmp_path: Path) -> None:
    """``gatekeeper rollback --target b`` sends b to 0 % (the engine's own rollback on
    b's run, backend built from b's plan); without --target every target goes back."""
    import fleetcrashrun  # noqa: PLC0415
    from gatekeeper._fleet import fleet_rollback  # noqa: PLC0415

    assert 0 == fleetcrashrun.run(tmp_path).exit_code
    fleet = fleetcrashrun.fleet(tmp_path)
    store = SQLiteStore(tmp_path / "journal.sqlite3")
    try:
        out = io.StringIO()
        assert 0 == fleet_rollback(fleet, store, targets=["b"], by="ci", reason="t", out=out)
        shares = {t: _file_share(tmp_path, t) for t in "abc"}
        assert {"a": 100.0, "b": 0.0, "c": 100.0} == shares
        assert 2 == fleet_rollback(fleet, store, targets=["zz"], by="ci", reason="t", out=out)
        assert 0 == fleet_rollback(fleet, store, targets=None, by="ci", reason="t", out=out)
        assert dict.fromkeys("abc", 0.0) == {t: _file_share(tmp_path, t) for t in "abc"}
    finally:
        store.close()


def _file_share(directory: Path, target: str) -> float:
    import json  # noqa: PLC0415

    return float(json.loads((directory / f"split-{target}.json").read_text())["canary"])


def test_a_held_fleet_run_again_continues_where_it_held(tmp_path: Path) -> None:
    """An incident from 13h on: the entry gate is re-checked every 5m for an hour,
    then the fleet holds (at 15h). Run again once the incident is over (15h30m), the
    same fleet run continues with the latam wave; the pilot is not run again."""
    store = SQLiteStore(tmp_path / "journal.sqlite3")
    incident = HEALTHY.read_text() + "13h,critical_incidents,1,canary,us-east-1\n"
    first_recording = tmp_path / "incident.csv"
    first_recording.write_text(incident)
    later = tmp_path / "later.csv"
    later.write_text(incident + "15h30m,critical_incidents,0,canary,us-east-1\n")
    try:
        first, _, _ = rehearse(load_fleet(FLEET), first_recording, store)
        assert RunOutcome.HELD is first
        assert 1 + 13 == len(fleet_events(store, FleetEvent.ENTRY_CHECKED))  # 14h..15h
        runs = len(store.runs())
        second, shares, _ = rehearse(load_fleet(FLEET), later, store)
        assert RunOutcome.ADVANCED is second
        assert 1 == sum(r.plan.endswith("@fleet") for r in store.runs())
        assert runs + 7 == len(store.runs())  # seven more targets, the pilot not again
        assert 0.0 == shares["af-south-1"]  # a fresh memory balancer: not touched again
        assert all(shares[t] == 100.0 for t in shares if t != "af-south-1")
        assert [] != fleet_events(store, FleetEvent.RESUMED)
        latam = next(
            d for d in fleet_events(store, FleetEvent.WAVE_STARTED) if d["wave"] == "latam"
        )
        assert str(latam["at"]).startswith("2026-01-01T15:30")
    finally:
        store.close()
