"""docs/plan-file.md is checked against the loader: every key it documents exists,
every key the loader accepts is documented, the defaults are the code's, and the
complete example loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatekeeper import Policy, plan_from_text
from gatekeeper._planfile import _METRIC_KEYS, _PHASE_KEYS, _POLICY_KEYS, _TOP_KEYS
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
    } == rows


def test_the_complete_example_loads() -> None:
    """The page's complete example is a valid plan with the phases it shows."""
    example = re.search(r"## A complete example\n\n```toml\n(.*?)```", DOC, re.DOTALL)
    assert example is not None
    plan = plan_from_text(example.group(1), path="plan-file.md")
    assert ["canary", "ramp"] == [p.name for p in plan.phases]
    assert 2 == plan.phase("ramp").policy.failure_limit
