"""Invariants of a run's journal, checked from the outside (kill tests, crash tests)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from gatekeeper import Event


def decisions(events: Sequence[Event]) -> list[tuple[str | None, str | None, int, str]]:
    return [
        (e.phase, e.checkpoint, int(e.data["attempt"]), str(e.data["action"]))
        for e in events
        if e.kind == "decision"
    ]


def confirmed_changes(events: Sequence[Event]) -> list[float]:
    """The distinct traffic shares the journal confirmed, in order."""
    out: list[float] = []
    for e in events:
        if e.kind in ("traffic_confirmed", "traffic_read"):
            share = float(e.data["canary"])
            if not out or out[-1] != share:
                out.append(share)
    return out


def check(
    events: Sequence[Event], reference: Sequence[Event], changes_log: Sequence[float]
) -> list[str]:
    """Every broken invariant, as a sentence (empty when all hold)."""
    problems: list[str] = []
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(events) + 1)):
        problems.append(f"journal sequence has gaps or repeats: {seqs[:20]}...")
    got = decisions(events)
    keys = [d[:3] for d in got]
    if len(keys) != len(set(keys)):
        problems.append("a checkpoint attempt was decided twice")
    if got != decisions(reference):
        problems.append(
            f"decisions differ from the run without crashes: {got} != {decisions(reference)}"
        )
    verdicts: dict[tuple[Any, ...], str] = {}
    for e in events:
        if e.kind == "verdict":
            key = (e.phase, e.checkpoint, e.data.get("attempt"), e.data["criterion"])
            if verdicts.setdefault(key, e.data["outcome"]) != e.data["outcome"]:
                problems.append(f"checkpoint judged twice with different verdicts: {key}")
    ends = [e.data["outcome"] for e in events if e.kind == "run_ended"]
    ref_end = [e.data["outcome"] for e in reference if e.kind == "run_ended"]
    if ends[-1:] != ref_end[-1:]:
        problems.append(f"final outcome {ends[-1:]} != {ref_end[-1:]}")
    if confirmed_changes(events) != confirmed_changes(reference):
        problems.append(
            f"traffic changes {confirmed_changes(events)} != {confirmed_changes(reference)}"
        )
    for a, b in itertools.pairwise(changes_log):
        if a == b:
            problems.append(f"traffic change to {a}% applied twice in a row")
    applied = list(changes_log)
    expected = list(confirmed_changes(reference)[1:])
    if applied != expected:
        problems.append(f"changes applied {applied} != expected {expected}")
    return problems
