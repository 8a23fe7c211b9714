"""Machine output: every line of ``--json`` follows the schema docs/json.md documents,
in one versioned envelope shared by ``run``, ``rehearse`` and ``history``."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import gatekeeper
from gatekeeper._cli import main
from gatekeeper._clock import SimulatedClock
from gatekeeper._jsonout import JsonLines
from gatekeeper._registry import RunInfoView
from test_console_progress import timed_plan

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "progressive-rollout"
DOC = ROOT / "docs" / "json.md"

TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}

LIVE = """
[plan]
name = "json-live"
[sources.s]
type = "static"
values = { error_rate = 0.001 }
[metrics.error_rate]
source = "s"
[traffic]
type = "file"
path = "split.json"
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
approval = "go/no-go"
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""


def _table(text: str) -> dict[str, str]:
    """The first Markdown table in ``text``: field → type."""
    fields = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) >= 2 and cells[0].startswith("`"):
            fields[cells[0].strip("`")] = cells[1].replace("\\|", "|")
        elif fields and not line.strip():
            break
    return fields


def documented() -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, str]]:
    """docs/json.md read as a schema: the envelope, each kind's data, the status line."""
    text = DOC.read_text()
    events = text.split("## Events: `gatekeeper.event/1`", 1)[1].split("## Status", 1)[0]
    envelope = _table(events)
    kinds: dict[str, dict[str, str]] = {}
    for section in events.split("\n### ")[1:]:
        heading, body = section.split("\n", 1)
        for kind in re.findall(r"`([a-z_]+)`", heading):
            kinds[kind] = _table(body)
    status = _table(text.split("## Status: `gatekeeper.status/1`", 1)[1])
    return envelope, kinds, status


def check(value: Any, spec: str, where: str) -> None:
    allowed = tuple(t for name in spec.split("|") for t in TYPES[name])
    if isinstance(value, bool) and bool not in allowed:
        raise AssertionError(f"{where}: {value!r} is not {spec}")
    assert isinstance(value, allowed), f"{where}: {value!r} is not {spec}"


def check_event(line: dict[str, Any], *, origin: str) -> None:
    envelope, kinds, _ = documented()
    assert set(envelope) == set(line), f"envelope fields: {sorted(line)}"
    for field, spec in envelope.items():
        check(line[field], spec, field)
    assert "gatekeeper.event/1" == line["schema"]
    assert origin == line["origin"]
    if origin == "live":
        assert line["kind"] in kinds, f"undocumented kind {line['kind']}"
    fields = kinds.get(line["kind"])
    if fields is None:
        return
    if origin == "live":
        assert set(fields) == set(line["data"]), f"{line['kind']}: {sorted(line['data'])}"
    for field, spec in fields.items():
        if field in line["data"]:
            check(line["data"][field], spec, f"{line['kind']}.{field}")


def rehearse_json(recording: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    plan, metrics = str(EXAMPLE / "gates.toml"), str(EXAMPLE / recording)
    code = main(["rehearse", plan, "--metrics", metrics, "--json"], out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_documentation_reads_as_a_schema() -> None:
    """docs/json.md has the envelope, the live kinds and the status fields in tables."""
    envelope, kinds, status = documented()
    assert {"schema", "origin", "run", "seq", "at", "kind", "phase", "checkpoint", "data"} == set(
        envelope
    )
    assert {
        "run_started",
        "approval_requested",
        "approval_given",
        "approval_rejected",
        "approval_pending",
        "phase_waiting",
        "watch",
        "traffic_confirmed",
        "phase_started",
        "decision",
        "run_ended",
    } == set(kinds)
    assert {"schema", "run", "status", "next_at", "run_ends_at"} <= set(status)


@pytest.mark.parametrize(
    ("recording", "code"), [("healthy.csv", 0), ("bad-canary.csv", 1), ("no-data.csv", 1)]
)
def test_every_line_of_a_rehearsal_follows_the_documented_schema(recording: str, code: int) -> None:
    """Each line is one JSON object with the documented envelope, a documented kind and
    exactly the documented data fields, each of its documented type."""
    done, lines = rehearse_json(recording)
    assert code == done
    assert lines, "no output"
    for line in lines:
        check_event(line, origin="live")
    assert list(range(1, len(lines) + 1)) == [line["seq"] for line in lines]
    assert "run_started" == lines[0]["kind"]
    assert "run_ended" == lines[-1]["kind"]
    assert code == lines[-1]["data"]["exit_code"]


def test_the_decisions_of_the_bad_canary_are_the_documented_example() -> None:
    """The jq example of docs/json.md: decisions by phase and checkpoint."""
    _, lines = rehearse_json("bad-canary.csv")
    decisions = [
        [line["phase"], line["checkpoint"], line["data"]["action"]]
        for line in lines
        if line["kind"] == "decision"
    ]
    assert [
        ["canary", "15m", "continue"],
        ["canary", "30m", "continue"],
        ["canary", "1h", "advance"],
        ["ramp", "15m", "rollback"],  # the watch, 3 minutes into the ramp
    ] == decisions
    for expected in decisions:
        assert json.dumps(expected, separators=(",", ":")) in DOC.read_text()


def test_a_decision_says_what_is_next_and_when_the_run_ends(tmp_path: Path) -> None:
    """After ramp @ 15m: 30m next, at 01:30; the ramp ends 05:00; the run on schedule
    (36h rollout, twelve days of confirmation)."""
    _, recording = timed_plan(tmp_path)
    out = io.StringIO()
    main(["rehearse", str(tmp_path / "gates.toml"), "--metrics", str(recording), "--json"], out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    decision = next(
        line
        for line in lines
        if line["kind"] == "decision" and (line["phase"], line["checkpoint"]) == ("ramp", "15m")
    )
    data = decision["data"]
    assert ("30m", "2026-01-01T01:30:00+00:00") == (data["next_checkpoint"], data["next_at"])
    assert "2026-01-01T05:00:00+00:00" == data["phase_ends_at"]
    assert "2026-01-14T17:00:00+00:00" == data["run_ends_at"]


def test_a_live_run_prints_only_json_and_the_approval_command(tmp_path: Path) -> None:
    """``run --json`` held at an approval: every stdout line is an event, one of them
    carrying the exact command; ``history --json`` of that run has the same envelope."""
    (tmp_path / "gates.toml").write_text(LIVE)
    plan = str(tmp_path / "gates.toml")
    out = io.StringIO()
    assert 3 == main(["run", plan, "--no-wait", "--json"], out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for line in lines:
        check_event(line, origin="live")
    asked = next(line for line in lines if line["kind"] == "approval_requested")
    run_id = asked["run"]
    assert (
        f"gatekeeper approve {run_id} --phase full --by NAME --plan {plan}"
        == (asked["data"]["approve"])
    )
    assert "held" == lines[-1]["data"]["outcome"]

    history = io.StringIO()
    assert 0 == main(["history", run_id, "--plan", plan, "--json"], out=history)
    journal = [json.loads(line) for line in history.getvalue().splitlines()]
    for line in journal:
        check_event(line, origin="journal")
    assert {run_id} == {line["run"] for line in journal}
    assert "approval_requested" in {line["kind"] for line in journal}


def test_status_json_follows_the_documented_fields(tmp_path: Path) -> None:
    """``status --json``: one line per run, the documented fields of their types, read
    with ``--store`` alone (no plan file in the working directory)."""
    (tmp_path / "gates.toml").write_text(LIVE)
    plan = str(tmp_path / "gates.toml")
    main(["run", plan, "--no-wait", "-q"], out=io.StringIO())
    out = io.StringIO()
    store = str(tmp_path / "gates.journal.sqlite3")
    assert 0 == main(
        ["status", "--store", store, "--plan", str(tmp_path / "none.toml"), "--json"], out=out
    )
    _, _, status = documented()
    (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
    assert set(status) == set(line)
    for field, spec in status.items():
        check(line[field], spec, field)
    assert ("gatekeeper.status/1", "held") == (line["schema"], line["status"])
    assert "waiting for the go/no-go of full" == line["waiting"]
    command = f"gatekeeper approve {line['run']} --phase full --by NAME --store {store}"
    assert command == line["approve"]


def test_a_phase_wait_is_a_documented_line() -> None:
    """``phase_waiting`` (a start time, a window, a freeze, a hold) follows the schema."""
    plan = gatekeeper.load_plan(EXAMPLE / "gates.toml")
    clock = SimulatedClock()
    view = RunInfoView(run_id="r1", plan=plan, clock=clock, started_at=clock.now())
    out = io.StringIO()
    lines = JsonLines(out)
    lines.gatekeeper_phase_waiting(view, plan.phase("ramp"), clock.now(), "ramp starts now")
    lines.gatekeeper_phase_waiting(view, plan.phase("ramp"), None, "held by alice")
    written = [json.loads(text) for text in out.getvalue().splitlines()]
    assert ["phase_waiting", "phase_waiting"] == [line["kind"] for line in written]
    for line in written:
        check_event(line, origin="live")
