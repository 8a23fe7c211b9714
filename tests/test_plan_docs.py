"""docs/plan-file.md is checked against the loader: every key it documents exists,
every key the loader accepts is documented, the defaults are the code's, and the
complete example loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatekeeper import Policy, plan_from_text
from gatekeeper._planfile import _METRIC_KEYS, _PHASE_KEYS, _POLICY_KEYS, _TOP_KEYS
from gatekeeper._planload_watch import WATCH_KEYS
from gatekeeper._units import format_duration

DOC = (Path(__file__).parent.parent / "docs" / "plan-file.md").read_text()


def section(title: str) -> str:
    start = DOC.index(f"## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else None]


def documented_keys(title: str) -> list[str]:
    return re.findall(r"^\| `([a-z_]+)` \|", section(title), flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("title", "keys"),
    [
        ("Top-level tables", _TOP_KEYS),
        ("Metrics", _METRIC_KEYS),
        ("Policy", _POLICY_KEYS),
        ("Phases", _PHASE_KEYS),
        ("Watches", WATCH_KEYS),
    ],
)
def test_documented_keys_are_the_loaders(title: str, keys: tuple[str, ...]) -> None:
    """The reference lists exactly the keys the loader accepts, no more, no fewer."""
    assert sorted(keys) == sorted(documented_keys(title))


def test_policy_defaults_are_the_codes() -> None:
    """The defaults column says what ``Policy()`` holds."""
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| `([^`]+)` \|", section("Policy"), re.MULTILINE))
    policy = Policy()
    assert {
        "on_fail": f'"{policy.on_fail.value}"',
        "on_inconclusive": f'"{policy.on_inconclusive.value}"',
        "failure_limit": str(policy.failure_limit),
        "consecutive_failure_limit": str(policy.consecutive_failure_limit),
        "inconclusive_limit": str(policy.inconclusive_limit),
        "recheck_interval": f'"{format_duration(policy.recheck_interval)}"',
        "alpha": f"{policy.alpha:g}",
    } == rows


def test_the_complete_example_loads() -> None:
    """The page's complete example is a valid plan with the phases it shows."""
    example = re.search(r"## A complete example\n\n```toml\n(.*?)```", DOC, re.DOTALL)
    assert example is not None
    plan = plan_from_text(example.group(1), path="plan-file.md")
    assert ["canary", "ramp"] == [p.name for p in plan.phases]
    assert 2 == plan.phase("ramp").policy.failure_limit


def test_the_limits_table_is_the_codes() -> None:
    """Every limit the loader enforces is in the Limits table with its value."""
    from gatekeeper import _limits  # noqa: PLC0415 - only this test reads the constants
    from gatekeeper._grammar import MAX_CRITERION  # noqa: PLC0415

    rows = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", section("Limits"), re.MULTILINE))

    def number(value: int) -> str:
        return f"{value:,}" if value >= 10_000 else str(value)

    mib = 1024 * 1024
    expected = {
        "plan file": f"{_limits.MAX_PLAN_BYTES // mib} MiB",
        "recording file": f"{_limits.MAX_RECORDING_BYTES // mib} MiB",
        "recording rows": number(_limits.MAX_RECORDING_ROWS),
        "nesting of arrays and tables": f"{_limits.MAX_DEPTH} levels",
        "entries of one array or table": number(_limits.MAX_ITEMS),
        "checkpoints of a plan": number(_limits.MAX_CHECKPOINTS),
        "criteria of one gate": number(_limits.MAX_CRITERIA),
        "checkpoints × criteria, summed over the phases": number(_limits.MAX_JUDGEMENTS),
        "one phase, from its start to its last checkpoint (steps included)": format_duration(
            _limits.MAX_DURATION
        ),
        "the phases one after another; a recording's `at`": format_duration(
            _limits.MAX_PLAN_DURATION
        ),
        "a name": f"{_limits.MAX_NAME} characters",
        "a description or an approval prompt": f"{_limits.MAX_TEXT} characters",
        "a criterion": f"{MAX_CRITERION} characters",
        "a traffic backend's `tolerance`": f"0 to {_limits.MAX_TOLERANCE:g} percentage points",
    }
    # The value is what comes before a remark: "4 MiB, a regular file", "10,000 (series ...)".
    assert expected == {label: re.split(r", | \(", rows[label])[0] for label in expected}
    durations = [label for label in rows if label.startswith("one duration")]
    assert [format_duration(_limits.MAX_DURATION)] == [rows[label] for label in durations]
    assert _limits.NAME_PATTERN in section("Names and placeholders")
    assert _limits.ARG_PATTERN in section("Names and placeholders")
