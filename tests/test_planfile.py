"""Plan files: the reference plan loads as written; a broken plan names file, key and line."""

from __future__ import annotations

import contextlib
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper import Plan
from gatekeeper._model import Kind, OnFail, OnInconclusive, Reference
from gatekeeper._planfile import _PHASE_KEYS, _TOP_KEYS, load_plan, plan_from_text
from gatekeeper.exceptions import PlanError
from strategies import plan_mappings

# The known keys are listed sorted; the lists themselves grow with the plan format.
TOP_KEYS = ", ".join(sorted(_TOP_KEYS))
PHASE_KEYS = ", ".join(sorted(_PHASE_KEYS))
REFERENCE = Path(__file__).parent.parent / "examples" / "progressive-rollout" / "gates.toml"


@pytest.fixture(scope="module")
def reference() -> Plan:
    return load_plan(REFERENCE)


def test_reference_phases_and_traffic(reference: Plan) -> None:
    """canary 1 %, ramp 10 % behind a go/no-go, rollout and confirmation at 100 %."""
    expected = [
        ("canary", 1.0, False),
        ("ramp", 10.0, True),
        ("rollout", 100.0, False),
        ("baseline-confirmation", 100.0, False),
    ]
    actual = [(p.name, p.traffic, p.approval is not None) for p in reference.phases]
    assert expected == actual


def test_reference_checkpoints(reference: Plan) -> None:
    """Checkpoint names are kept as written ("36h", not "1d12h"); twelve daily ones."""
    expected = {
        "canary": ["15m", "30m", "1h"],
        "ramp": ["15m", "30m", "1h", "2h", "3h", "4h"],
        "rollout": ["15m", "30m", "1h", "2h", "4h", "8h", "24h", "36h"],
        "baseline-confirmation": [f"{d}d" for d in range(1, 13)],
    }
    assert expected == {p.name: [c.name for c in p.checkpoints] for p in reference.phases}
    rollout = reference.phase("rollout")
    assert timedelta(hours=36) == rollout.checkpoint("36h").offset
    confirmation = reference.phase("baseline-confirmation")
    assert [timedelta(days=d) for d in range(1, 13)] == [c.offset for c in confirmation.checkpoints]


def test_reference_bounds_are_in_metric_units(reference: Plan) -> None:
    """0.5% → 0.005 (a ratio), 200ms → 0.2 (the metric is in seconds), 99.95% → 0.9995."""
    expected = [
        (Kind.THRESHOLD, "error_rate", "<", 0.005, "%"),
        (Kind.THRESHOLD, "latency_p99", "<", 0.2, "ms"),
        (Kind.THRESHOLD, "availability", ">", 0.9995, "%"),
        (Kind.COUNT, "critical_incidents", "==", 0.0, ""),
    ]
    ramp = reference.phase("ramp").gate.criteria
    # The four criteria; statistical compare criteria may come on top of them.
    actual = [(c.kind, c.metric, c.op, c.bound, c.unit) for c in ramp if c.kind is not Kind.COMPARE]
    assert expected == actual
    compare = [(c.metric, c.reference, c.factor) for c in ramp if c.kind is Kind.COMPARE]
    assert all(reference is Reference.BASELINE and factor >= 1 for _, reference, factor in compare)


def test_reference_relative_and_stable_criteria(reference: Plan) -> None:
    """revenue ≥ prerun × 1.058 is relative; confirmation's drifts are stable criteria."""
    revenue = reference.phase("rollout").gate.criteria[-1]
    assert (Kind.RELATIVE, Reference.PRERUN, ">=", 1.058) == (
        revenue.kind,
        revenue.reference,
        revenue.op,
        revenue.factor,
    )
    stable = [
        (c.metric, c.tolerance)
        for c in reference.phase("baseline-confirmation").gate.criteria
        if c.kind is Kind.STABLE
    ]
    expected = [
        ("error_rate", 0.5),
        ("latency_p99", 0.1),
        ("availability", 0.0001),
        ("revenue_per_user", 0.05),
    ]
    assert expected == stable


def test_reference_policy_and_metrics(reference: Plan) -> None:
    """The plan policy is the safe default spelled out; error_rate is a ratio metric."""
    policy = reference.policy
    assert (OnFail.ROLLBACK, OnInconclusive.HOLD, 3, timedelta(minutes=5)) == (
        policy.on_fail,
        policy.on_inconclusive,
        policy.inconclusive_limit,
        policy.recheck_interval,
    )
    metrics = reference.metrics
    assert (True, "s", True) == (
        metrics["error_rate"].is_ratio,
        metrics["latency_p99"].unit,
        metrics["critical_incidents"].count,
    )


def test_reference_round_trips(reference: Plan) -> None:
    """to_mapping of the loaded reference plan reads back into an equal plan, same digest."""
    again = Plan.from_mapping(reference.to_mapping())
    assert (reference, reference.digest) == (again, again.digest)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan_mappings())
def test_plan_round_trip(mapping: dict[str, Any]) -> None:
    """Plan.from_mapping(plan.to_mapping()) == plan, and the digest is stable."""
    plan = Plan.from_mapping(mapping)
    again = Plan.from_mapping(plan.to_mapping())
    assert (plan, plan.digest) == (again, again.digest)
    assert plan.to_mapping() == again.to_mapping()


# -- errors ------------------------------------------------------------------------------

BASE = """\
[plan]
name = "shop"

[sources.prom]
type = "static"

[metrics.error_rate]
source = "prom"
query = "errors"

[metrics.latency]
source = "prom"
query = "latency"
unit = "ms"

[metrics.incidents]
source = "prom"
query = "alerts"
count = true

[[phases]]
name = "canary"
traffic = 1
checkpoints = ["15m", "30m"]
gate = ["error_rate < 1%"]

[[phases]]
name = "ramp"
traffic = 10
checkpoints = ["15m", "30m", "1h"]
gate = [
    "error_rate < 0.5%",  # 'quoted # inside' comment
    "latency < 200ms",
    "incidents == 0",
]
"""


def _edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


BROKEN: dict[str, tuple[str, int, str]] = {
    "unknown metric in a multi-line gate": (
        _edit('"incidents == 0"', '"eror_rate < 1%"'),
        34,
        "phases[1].gate[2]: unknown metric 'eror_rate' (known: error_rate, incidents, latency)",
    ),
    "unknown top-level key": (
        BASE + "\n[colour]\nx = 1\n",
        37,
        f"colour: unknown key (known: {TOP_KEYS})",
    ),
    "unknown phase key": (
        _edit('name = "ramp"\n', 'name = "ramp"\ncolour = "red"\n'),
        29,
        f"phases[1].colour: unknown key (known: {PHASE_KEYS})",
    ),
    "traffic over 100": (
        _edit("traffic = 10", "traffic = 150"),
        29,
        "phases[1].traffic: expected the canary's share in percent, 0 to 100, got 150",
    ),
    "bad duration": (
        _edit('["15m", "30m", "1h"]', '["15m", "3x", "1h"]'),
        30,
        "phases[1].checkpoints[1]: expected a duration like '90', '15m', '4h30m' or '1d', got '3x'",
    ),
    "checkpoints out of order": (
        _edit('["15m", "30m", "1h"]', '["15m", "1h", "30m"]'),
        30,
        "phases[1].checkpoints[2]: "
        "checkpoints must be after the phase start and in increasing order",
    ),
    "duplicate phase name": (
        _edit('name = "ramp"', 'name = "canary"'),
        28,
        "phases[1].name: duplicate phase name 'canary'",
    ),
    "unknown source": (
        _edit('[metrics.latency]\nsource = "prom"', '[metrics.latency]\nsource = "graphite"'),
        12,
        "metrics.latency.source: unknown source 'graphite' (known: prom)",
    ),
    "bad policy value": (
        BASE + '\n[phases.policy]\non_fail = "panic"\n',
        38,
        "phases[1].policy.on_fail: expected one of rollback, hold, got 'panic'",
    ),
    "bad plan policy limit": (
        _edit("[[phases]]", "[policy]\nfailure_limit = 0\n\n[[phases]]"),
        22,
        "policy.failure_limit: expected a whole number from 1 to 1000000, got 0",
    ),
    "ratio without denominator": (
        _edit(
            '[metrics.latency]\nsource = "prom"\nquery = "latency"',
            '[metrics.latency]\nsource = "prom"\nnumerator = "slow"',
        ),
        11,
        "metrics.latency: a ratio metric needs both numerator and denominator",
    ),
    "unit that does not fit": (
        _edit('"latency < 200ms"', '"latency < 2%"'),
        33,
        "phases[1].gate[1]: 'latency' is measured in 'ms'; a bound in '%' does not fit it",
    ),
    "count compared with a fraction": (
        _edit('"incidents == 0"', '"incidents < 0.5"'),
        34,
        "phases[1].gate[2]: 'incidents' is a count: compare it with a whole number",
    ),
    "grammar error": (
        _edit('"latency < 200ms"', '"latency << 200ms"'),
        33,
        "phases[1].gate[1]: expected a number, got '<' (column 10: 'latency << 200ms')",
    ),
    "statistical bound over 100%": (
        _edit('"error_rate < 0.5%"', '"error_rate canary < 150%"'),
        32,
        "phases[1].gate[0]: a statistical bound ('METRIC canary < BOUND') is a rate "
        "strictly between 0% and 100% on a ratio metric",
    ),
    "statistical bound on a time metric": (
        _edit('"latency < 200ms"', '"latency canary < 0.5"'),
        33,
        "phases[1].gate[1]: a statistical bound ('METRIC canary < BOUND') is a rate "
        "strictly between 0% and 100% on a ratio metric",
    ),
    "checkpoint that is a table": (
        _edit('["15m", "30m", "1h"]', '["15m", { at = "30m" }, "1h"]'),
        30,
        "phases[1].checkpoints[1]: expected a duration like '15m', got a table",
    ),
    "unit that is an array": (
        _edit('unit = "ms"', 'unit = ["ms"]'),
        14,
        "metrics.latency.unit: unknown unit ['ms'] (known: '', 'ratio', 'percent', 's', "
        "'ms', 'count')",
    ),
    "fail_only as a string": (
        _edit('"latency < 200ms",', '{ criterion = "latency < 200ms", fail_only = "false" },'),
        33,
        "phases[1].gate[1].fail_only: expected true or false, got a string ('false')",
    ),
    "one-line gate": (
        _edit('gate = ["error_rate < 1%"]', 'gate = ["error_rate < 1%", "nope > 1"]'),
        25,
        "phases[0].gate[1]: unknown metric 'nope' (known: error_rate, incidents, latency)",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_errors_name_file_line_and_key(tmp_path: Path, case: str) -> None:
    """FILE:LINE: KEYPATH: message, with the line of the offending key or element."""
    text, line, message = BROKEN[case]
    path = tmp_path / "gates.toml"
    path.write_text(text)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert f"{path}:{line}: {message}" == str(info.value)
    assert (str(path), line) == (info.value.file, info.value.line)


def test_invalid_toml_has_the_parser_line(tmp_path: Path) -> None:
    """A TOML syntax error gives the line tomllib found it on."""
    path = tmp_path / "gates.toml"
    path.write_text(_edit("traffic = 10", "traffic = = 10"))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert f"{path}:29: not valid TOML: Invalid value" == str(info.value)


def test_invalid_toml_at_the_end_of_the_file(tmp_path: Path) -> None:
    """A TOML error at the end of the document (an unclosed array) names the last line."""
    path = tmp_path / "gates.toml"
    path.write_text(BASE.rsplit("]", 1)[0] + "\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert f"{path}:34: not valid TOML: Invalid value at the end of the file" == str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    """A plan that cannot be read is a PlanError naming the file."""
    path = tmp_path / "absent.toml"
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert f"{path}: cannot read the plan: No such file or directory" == str(info.value)


def test_plan_named_after_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without [plan] name, a plan is named after its directory, also as a bare file name."""
    (tmp_path / "gates.toml").write_text(BASE.replace('[plan]\nname = "shop"\n', ""))
    monkeypatch.chdir(tmp_path)
    assert tmp_path.name == load_plan("gates.toml").name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"phases": [{"name": "a", "traffic": 150, "checkpoints": ["1m"], "gate": ["m < 1"]}]},
            "phases[0].traffic: expected the canary's share in percent, 0 to 100, got 150",
        ),
        ({"phases": []}, "phases: expected a non-empty array of [[phases]] tables"),
        (
            {"colour": 1},
            f"colour: unknown key (known: {TOP_KEYS})",
        ),
        (
            {"metrics": {"m": {"source": "nowhere", "query": "q"}}},
            "metrics.m.source: unknown source 'nowhere' (known: s)",
        ),
    ],
)
def test_mapping_errors_have_key_but_no_file(change: dict[str, Any], message: str) -> None:
    """Plan.from_mapping errors carry the key path, and no file or line."""
    mapping: dict[str, Any] = {
        "sources": {"s": {"type": "static"}},
        "metrics": {"m": {"source": "s", "query": "q"}},
        "phases": [{"name": "a", "traffic": 1, "checkpoints": ["1m"], "gate": ["m < 1"]}],
    }
    mapping.update(change)
    with pytest.raises(PlanError) as info:
        Plan.from_mapping(mapping)
    assert (message, None, None) == (str(info.value), info.value.file, info.value.line)


JUNK: st.SearchStrategy[object] = st.sampled_from(
    [None, [], {}, 1.5, -1, 0, True, "x", "", [1], {"a": 1}, math.nan, math.inf, [{}]]
)


def _key_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _key_paths(item, (*prefix, index))
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan_mappings(), st.data(), JUNK)
def test_a_corrupted_plan_is_a_plan_error(
    mapping: dict[str, Any], data: st.DataObject, junk: object
) -> None:
    """Any value anywhere replaced by junk loads or raises PlanError, never a traceback."""
    path = data.draw(st.sampled_from(_key_paths(mapping)))
    target: Any = mapping
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = junk
    with contextlib.suppress(PlanError):
        Plan.from_mapping(mapping)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(BASE)),
    st.integers(min_value=0, max_value=8),
    st.text(alphabet=st.sampled_from(list("[]{}\"'=,#.\n 0x%<")), max_size=3),
)
def test_a_mangled_plan_file_is_a_plan_error(start: int, length: int, insert: str) -> None:
    """Cutting and pasting characters anywhere in a plan file loads or gives a
    PlanError with a line inside the file, never a traceback."""
    text = BASE[:start] + insert + BASE[start + length :]
    try:
        plan_from_text(text, path="gates.toml")
    except PlanError as exc:
        error = exc
    else:
        return
    assert error.line is None or 1 <= error.line <= text.count("\n") + 1


def test_byte_order_mark(tmp_path: Path) -> None:
    """A plan saved with a UTF-8 byte order mark loads, and its errors keep their lines."""
    path = tmp_path / "gates.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert "shop" == load_plan(path).name
    path.write_bytes(b"\xef\xbb\xbf" + _edit("traffic = 10", "traffic = 150").encode())
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert (29, "phases[1].traffic") == (info.value.line, info.value.key)
