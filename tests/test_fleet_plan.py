"""Fleet plans: targets, waves, bakes and [fleet] load, or fail with file:line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gatekeeper._fleet as fleet_api
from gatekeeper._fleet import FleetOnFail, fleet_from_text, load_fleet
from gatekeeper.exceptions import PlanError

EXAMPLE = Path(__file__).parent.parent / "examples" / "multi-region" / "fleet.toml"

BASE = """\
[plan]
name = "small"
[sources.s]
type = "static"
[metrics.error_rate]
source = "s"
numerator = 'errors{{region="{{{{region}}}}"}}'
denominator = 'requests{{region="{{{{region}}}}"}}'
[metrics.incidents]
source = "s"
count = true
query = "incidents"
[policy]
alpha = 0.05
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["10m"]
gate = ["error_rate < 1%", {{ criterion = "error_rate canary <= baseline * 2", alpha = 0.02 }}]
gate_alpha = 0.05
[[phases]]
name = "full"
traffic = 100
checkpoints = ["10m"]
gate = ["error_rate < 1%"]
[targets.a]
traffic = {{ type = "memory" }}
args = {{ region = "ra" }}
[targets.b]
traffic = {{ type = "memory" }}
args = {{ region = "rb" }}
[targets.c]
traffic = {{ type = "memory" }}
args = {{ region = "rc" }}
{extra}
"""

WAVES = """
[[waves]]
name = "one"
targets = ["a"]
bake = { for = "1h", requests = 500 }
approval = "wave one?"
[[waves]]
name = "two"
targets = ["b", "c"]
"""

FLEET = """
[fleet]
on_fail = "rollback-all"
entry = ["incidents == 0"]
requests = "error_rate"
pairs = [["a", "b"]]
"""


def load(extra: str, path: str = "fleet.toml") -> fleet_api.Fleet:
    return fleet_from_text(BASE.format(extra=extra), path=path)


def error(extra: str) -> PlanError:
    with pytest.raises(PlanError) as caught:
        load(extra)
    return caught.value


def line_of(extra: str, needle: str) -> int:
    lines = BASE.format(extra=extra).splitlines()
    return next(i for i, text in enumerate(lines, start=1) if needle in text)


def test_the_multi_region_example_loads_eight_targets_in_four_waves() -> None:
    """The example: eight regions, waves of 1, 1, 2, 4, bakes of 12h, 4h, 3h, 2h."""
    fleet = load_fleet(EXAMPLE)
    assert 8 == len(fleet.targets)
    assert [1, 1, 2, 4] == [len(w.targets) for w in fleet.waves]
    assert [12, 4, 3, 2] == [w.bake.duration / timedelta(hours=1) for w in fleet.waves]
    assert 100000 == fleet.waves[0].bake.requests
    assert FleetOnFail.ROLLBACK_WAVE is fleet.policy.on_fail
    assert "error_rate" == fleet.policy.requests
    assert 1 == len(fleet.policy.entry)


def test_a_target_plan_has_its_name_backend_args_and_share_of_alpha() -> None:
    """``<plan>@<target>``, the target's args over the plan's, every alpha / 3."""
    fleet = load(WAVES + FLEET)
    plan = fleet.target_plan("b")
    assert "small@b" == plan.name
    assert "rb" == plan.args["region"]
    assert pytest.approx(0.05 / 3) == plan.phases[0].gate.alpha
    assert pytest.approx(0.01 / 3) == plan.phases[1].gate.alpha
    assert pytest.approx(0.02 / 3) == plan.phases[0].gate.criteria[1].alpha
    assert None is plan.phases[0].gate.criteria[0].alpha
    assert pytest.approx(0.05 / 3) == plan.policy.alpha  # the fleet's budget, shared
    digests = {fleet.target_plan(t).digest for t in fleet.targets}
    assert 3 == len(digests)


def test_a_wave_approval_is_asked_before_its_targets_first_phase() -> None:
    """A wave's go/no-go is the first phase's approval of each of its targets."""
    fleet = load(WAVES + FLEET)
    approval = fleet.target_plan("a").phases[0].approval
    assert approval is not None
    assert "wave one?" == approval.prompt
    assert None is fleet.target_plan("b").phases[0].approval


def test_the_fleet_tables_are_read() -> None:
    fleet = load(WAVES + FLEET)
    assert FleetOnFail.ROLLBACK_ALL is fleet.policy.on_fail
    assert (("a", "b"),) == fleet.policy.pairs
    assert "incidents == 0" == fleet.policy.entry[0].text
    assert timedelta(hours=1) == fleet.waves[0].bake.duration
    assert "small@fleet" == fleet_api.fleet_name(fleet.name)


@pytest.mark.parametrize(
    ("extra", "needle", "key", "message"),
    [
        (
            WAVES.replace('["b", "c"]', '["b", "c"]\n[fleet]\npairs = [["b", "c"]]'),
            'targets = ["b", "c"]',
            "waves[1].targets",
            "b and c are a pair",
        ),
        (
            WAVES.replace('["a"]', '["a", "zz"]'),
            '["a", "zz"]',
            "waves[0].targets",
            "unknown target",
        ),
        (WAVES.replace('["b", "c"]', '["b"]'), "[targets.c]", "targets.c", "in no wave"),
        (
            WAVES.replace('["b", "c"]', '["b", "c", "a"]'),
            '"c", "a"]',
            "waves[1].targets",
            "already",
        ),
        (WAVES, "requests = 500", "waves[0].bake.requests", "needs [fleet] requests"),
        (WAVES + '[fleet]\non_fail = "panic"', "on_fail", "fleet.on_fail", "expected one of"),
        (WAVES + '[fleet]\nentry = ["nope > 1"]', "entry =", "fleet.entry[0]", "unknown metric"),
        (WAVES.replace("1h", "1 fortnight"), "bake =", "waves[0].bake.for", ""),
        (
            WAVES + '[fleet]\nrequests = "nope"',
            'requests = "nope"',
            "fleet.requests",
            "unknown metric",
        ),
    ],
)
def test_fleet_errors_are_located(extra: str, needle: str, key: str, message: str) -> None:
    """Every fleet error names the file, the line and the key path."""
    found = error(extra)
    assert "fleet.toml" == found.file
    assert key == found.key
    assert message in found.message
    assert line_of(extra, needle) == found.line


def test_a_target_missing_an_arg_another_target_adds_is_refused() -> None:
    """A target without ``region`` would query another target's region."""
    text = BASE.replace('args = {{ region = "rc" }}', "")
    with pytest.raises(PlanError) as caught:
        fleet_from_text(text.format(extra=WAVES), path="f.toml")
    assert "targets.c.args" == caught.value.key
    assert "missing arg 'region'" in caught.value.message


def test_an_error_in_the_plan_part_is_located_in_the_fleet_file() -> None:
    """The plan loader's errors get this file's line."""
    extra = WAVES.replace('name = "one"', 'name = "one"') + "[metrics.bad]\nsource = 'nowhere'\n"
    found = error(extra)
    assert found.key is not None and found.key.startswith("metrics.bad")
    assert found.line is not None and found.line > 1


def test_unknown_keys_in_targets_and_waves_fail() -> None:
    found = error(WAVES.replace('name = "two"', 'name = "two"\nbakee = 1'))
    assert "waves[1].bakee" == found.key
    text = BASE.replace('args = {{ region = "ra" }}', 'args = {{ region = "ra" }}\nweight = 1')
    with pytest.raises(PlanError) as caught:
        fleet_from_text(text.format(extra=WAVES), path="f.toml")
    assert "targets.a.weight" == caught.value.key


def test_invalid_toml_is_one_located_message() -> None:
    with pytest.raises(PlanError) as caught:
        fleet_from_text("[plan\nname = 1\n", path="broken.toml")
    assert 1 == caught.value.line


@settings(max_examples=40, deadline=None)
@given(
    waves=st.lists(st.integers(0, 3), min_size=5, max_size=5),
    pairs=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 4)).filter(lambda p: p[0] != p[1]),
        max_size=3,
    ),
)
def test_pairs_are_refused_exactly_when_they_share_a_wave(
    waves: list[int], pairs: list[tuple[int, int]]
) -> None:
    """Any assignment of five targets to waves loads unless a pair shares a wave."""
    names = [f"t{i}" for i in range(5)]
    targets = "".join(f'[targets.{n}]\ntraffic = {{ type = "memory" }}\n' for n in names)
    used = sorted(set(waves))
    members = {w: [n for n, x in zip(names, waves, strict=True) if x == w] for w in used}
    wave_text = "".join(
        f'[[waves]]\nname = "w{w}"\ntargets = {members[w]}\n' for w in used
    ).replace("'", '"')
    pair_text = ", ".join(f'["t{a}", "t{b}"]' for a, b in pairs)
    text = (
        '[plan]\nname = "p"\n[sources.s]\ntype = "static"\n[metrics.m]\nsource = "s"\n'
        '[[phases]]\nname = "x"\ntraffic = 100\ncheckpoints = ["1m"]\n'
        f'gate = ["m < 1"]\n{targets}{wave_text}[fleet]\npairs = [{pair_text}]\n'
    )
    clash = any(waves[a] == waves[b] for a, b in pairs)
    if clash:
        with pytest.raises(PlanError, match="never share a wave"):
            fleet_from_text(text)
    else:
        fleet = fleet_from_text(text)
        assert len(used) == len(fleet.waves)


def test_all_is_complete_and_sorted() -> None:
    """The fleet package exports what it defines, sorted (httpx's rule)."""
    names = {n for n in dir(fleet_api) if n.isidentifier()}
    public = {n for n in names if not n.startswith("_")} - {
        "annotations",
        "commands",
        "journal",
        "load",
        "model",
        "orchestrate",
        "rehearse",
        "bake",
        "rollback",
    }
    assert sorted(fleet_api.__all__) == fleet_api.__all__
    assert public == set(fleet_api.__all__)


def test_the_cli_loads_a_fleet_or_a_plan_by_what_the_file_holds() -> None:
    """A file with fleet tables is a Fleet; the reference plan stays a Plan."""
    from gatekeeper import Plan  # noqa: PLC0415

    plain = EXAMPLE.parent.parent / "progressive-rollout" / "gates.toml"
    assert isinstance(fleet_api.load_plan_or_fleet(EXAMPLE), fleet_api.Fleet)
    assert isinstance(fleet_api.load_plan_or_fleet(plain), Plan)
