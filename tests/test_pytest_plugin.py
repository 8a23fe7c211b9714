"""The pytest plugin, exercised through ``pytester`` on the reference plan."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gatekeeper.store.sqlite import SQLiteStore

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project directory holding the reference plan as gates.toml and its recordings."""
    for name in ("gates.toml", "healthy.csv", "bad-canary.csv", "no-data.csv"):
        shutil.copy(EXAMPLE / name, pytester.path / name)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester


def test_collect_only_lists_checkpoints_as_plan_phase_checkpoint(project: pytest.Pytester) -> None:
    """Each checkpoint is one item ``gates.toml::PHASE::CHECKPOINT``, in order."""
    result = project.runpytest("--gate=canary,ramp", "--collect-only", "-q")
    lines = [line for line in result.outlines if line.startswith("gates.toml::")]
    assert [
        "gates.toml::canary::15m",
        "gates.toml::canary::30m",
        "gates.toml::canary::1h",
        "gates.toml::ramp::15m",
        "gates.toml::ramp::30m",
        "gates.toml::ramp::1h",
        "gates.toml::ramp::2h",
        "gates.toml::ramp::3h",
        "gates.toml::ramp::4h",
    ] == lines


def test_collect_only_touches_no_source(project: pytest.Pytester) -> None:
    """Listing items never queries a source."""
    project.makepyfile(
        probe="""
        from pathlib import Path

        def value(query):
            Path("queried").write_text("yes")
            return 0.0
        """
    )
    project.makefile(
        ".toml",
        gates="""
        [sources.p]
        type = "python"
        callable = "probe:value"
        [metrics.m]
        source = "p"
        [[phases]]
        name = "ramp"
        traffic = 10
        checkpoints = ["1s", "2s"]
        gate = ["m < 1"]
        """,
    )
    project.syspathinsert()
    result = project.runpytest("--gate=ramp", "--collect-only", "-q")
    assert 0 == result.ret
    assert not (project.path / "queried").exists()


def test_bad_canary_fails_the_15m_item_through_the_watch(project: pytest.Pytester) -> None:
    """The watch stops the ramp 3 minutes in: the 15m item fails with the watch's look
    (criterion, observed, bound, verdict and reason); later checkpoints are skipped; the
    summary ends with the rollback."""
    result = project.runpytest("--gate=ramp", "--gate-rehearse=bad-canary.csv")
    assert 1 == result.ret
    result.assert_outcomes(failed=1, skipped=5)
    result.stdout.fnmatch_lines(
        [
            "ramp @ 15m: FAIL at 2026-01-01T14:03:00+00:00",
            "criterion*observed*bound*verdict*reason",
            "error_rate < 0.5% for 1m*0.9%*0.5%*FAIL*0.9% is not < 0.5%",
            "error_rate canary <= baseline * 1.2*×4.41*FAIL*canary error_rate 0.353% vs*",
            "→ ROLLBACK: watch at 3m into ramp, before its 15m checkpoint: error_rate: *",
            "*gatekeeper*",
            "ramp: ROLLBACK: watch at 3m into ramp, before its 15m checkpoint: *",
            "result: ROLLED BACK; canary at 0%",
        ]
    )


def test_healthy_phase_passes_and_advances(project: pytest.Pytester) -> None:
    """Every checkpoint passes: exit 0 and the phase advances."""
    result = project.runpytest("--gate=ramp", "--gate-rehearse=healthy.csv")
    assert 0 == result.ret
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["ramp: ADVANCE: gate passed*", "result: ADVANCED; canary at 10%"])


def test_no_data_holds_then_fails(project: pytest.Pytester) -> None:
    """Silent metrics never pass: held at 30m, then rolled back."""
    result = project.runpytest("--gate=ramp", "--gate-rehearse=no-data.csv")
    assert 1 == result.ret
    result.stdout.fnmatch_lines(["ramp @ 30m (re-check 2): INCONCLUSIVE*"])


def test_no_traffic_judges_but_never_rolls_back(project: pytest.Pytester) -> None:
    """``--gate-no-traffic``: the gate still fails, traffic is untouched."""
    result = project.runpytest("--gate=ramp", "--gate-rehearse=bad-canary.csv", "--gate-no-traffic")
    assert 1 == result.ret
    result.stdout.fnmatch_lines(
        ["plan progressive-rollout (rehearsal, judge only, traffic untouched)"]
    )
    assert "canary at 0%" not in result.stdout.str()


def test_marked_user_tests_run_at_their_checkpoint_with_metrics(project: pytest.Pytester) -> None:
    """A ``checkpoint`` marked test runs right after that checkpoint with its values."""
    project.makepyfile(
        test_user="""
        import pytest

        ORDER = []

        @pytest.mark.checkpoint("ramp", "30m")
        def test_latency_budget(gate_metrics):
            assert gate_metrics["latency_p99"] == 0.042
            assert gate_metrics["error_rate"] == 0.0008

        def test_plain():
            pass
        """
    )
    result = project.runpytest("--gate=ramp", "--gate-rehearse=healthy.csv", "-v")
    assert 0 == result.ret
    result.stdout.fnmatch_lines(
        [
            "test_user.py::test_plain PASSED*",
            "gates.toml::ramp::15m PASSED*",
            "gates.toml::ramp::30m PASSED*",
            "test_user.py::test_latency_budget PASSED*",
            "gates.toml::ramp::1h PASSED*",
        ]
    )


def test_a_failing_user_check_fails_and_rolls_back_the_phase(project: pytest.Pytester) -> None:
    """A user check is part of the gate: when it fails, the phase is rolled back."""
    project.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.checkpoint("ramp", "15m")
        def test_business_rule(gate_metrics):
            assert gate_metrics["error_rate"] < 0.0001
        """
    )
    result = project.runpytest("--gate=ramp", "--gate-rehearse=healthy.csv")
    assert 1 == result.ret
    result.assert_outcomes(passed=1, failed=1, skipped=5)
    result.stdout.fnmatch_lines(
        ["ramp: ROLLBACK: gate failed: 1 test(s) failed at 15m: test_user.py::test_business_rule"]
    )


def test_marked_tests_are_skipped_without_gate(project: pytest.Pytester) -> None:
    """Without ``--gate`` a checkpoint test has nothing to check: it is skipped."""
    project.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.checkpoint("ramp", "30m")
        def test_x(gate_metrics):
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(skipped=1)


def test_unknown_phase_is_a_usage_error_listing_phases(project: pytest.Pytester) -> None:
    """``--gate`` with a typo stops before running anything."""
    result = project.runpytest("--gate=rmap")
    assert pytest.ExitCode.USAGE_ERROR == result.ret
    result.stderr.fnmatch_lines(
        ["*--gate: unknown phase 'rmap' (known: canary, ramp, rollout, baseline-confirmation)"]
    )


def test_bad_plan_is_a_usage_error_with_file_and_line(project: pytest.Pytester) -> None:
    """A broken plan is reported with its line, not a traceback."""
    (project.path / "gates.toml").write_text('[[phases]]\nname = "x"\ntraffic = 500\n')
    result = project.runpytest("--gate=x")
    assert pytest.ExitCode.USAGE_ERROR == result.ret
    result.stderr.fnmatch_lines(["*gates.toml:3: phases?0?.traffic: expected the canary's share*"])


def test_junit_xml_carries_observed_values(project: pytest.Pytester) -> None:
    """JUnit XML properties hold each metric's observed value and the decision."""
    result = project.runpytest(
        "--gate=ramp", "--gate-rehearse=bad-canary.csv", "--junitxml=out.xml"
    )
    assert 1 == result.ret
    tree = ET.parse(project.path / "out.xml")
    case = next(c for c in tree.iter("testcase") if c.get("name") == "15m")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert "0.009 (fail)" == props["error_rate < 0.5% for 1m"]
    assert "0.042 (pass)" == props["latency_p99 < 200ms for 1m"]
    assert "rollback" == props["decision"]


def test_gate_plan_option_and_ini(project: pytest.Pytester) -> None:
    """The plan can be named on the command line or in the ini file."""
    (project.path / "gates.toml").rename(project.path / "release.toml")
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\ngate_plan = release.toml\n")
    by_ini = project.runpytest("--gate=canary", "--collect-only", "-q")
    by_ini.stdout.fnmatch_lines(["release.toml::canary::15m"])
    project.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    by_option = project.runpytest(
        "--gate=canary", "--gate-plan=release.toml", "--collect-only", "-q"
    )
    by_option.stdout.fnmatch_lines(["release.toml::canary::15m"])


LIVE_PLAN = """
[plan]
name = "live"
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
checkpoints = ["1s", "2s", "3s"]
gate = ["error_rate < 1%"]
[[phases]]
name = "ramp"
traffic = 20
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""


def test_a_ci_retry_resumes_the_phase_instead_of_restarting_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first CI attempt dies after the 1s checkpoint; the retry resumes the same
    run: the 1s checkpoint is not judged again, traffic is not moved again, and the
    phase's clock keeps its recorded start."""
    pytester.makefile(".toml", gates=LIVE_PLAN)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    pytester.makepyfile(
        test_die="""
        import os, pytest

        @pytest.mark.checkpoint("canary", "1s")
        def test_runner_dies(gate_metrics):
            if os.environ.get("DIE") == "1":
                os._exit(17)  # the CI machine goes away
        """
    )
    monkeypatch.setenv("DIE", "1")
    first = pytester.runpytest_subprocess("--gate=canary")
    assert 17 == first.ret
    monkeypatch.delenv("DIE")
    retry = pytester.runpytest_subprocess("--gate=canary", "-v")
    assert 0 == retry.ret, retry.stdout.str()
    retry.stdout.fnmatch_lines(["gates.toml::canary::1s PASSED*", "gates.toml::canary::3s PASSED*"])
    store = SQLiteStore(pytester.path / "gates.journal.sqlite3")
    try:
        runs = store.runs()
        assert 1 == len(runs)
        events = store.events(runs[0].run_id)
        kinds = [e.kind for e in events]
        assert 1 == kinds.count("phase_started")
        assert 1 == kinds.count("resumed")
        judged = [(e.checkpoint, e.data["attempt"]) for e in events if e.kind == "decision"]
        assert [("1s", 1), ("2s", 1), ("3s", 1)] == judged
        assert [5.0] == [e.data["canary"] for e in events if e.kind == "traffic_intent"]
    finally:
        store.close()


def test_a_later_phase_is_refused_until_the_one_before_advanced(pytester: pytest.Pytester) -> None:
    """``--gate=ramp`` before the canary advanced fails with the reason; --gate-force runs it."""
    pytester.makefile(".toml", gates=LIVE_PLAN)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    refused = pytester.runpytest_subprocess("--gate=ramp")
    assert pytest.ExitCode.USAGE_ERROR == refused.ret
    refused.stderr.fnmatch_lines(["*phase 'ramp' follows 'canary', which has not advanced*"])
    forced = pytester.runpytest_subprocess("--gate=ramp", "--gate-force")
    assert 0 == forced.ret


def test_collected_counts_match_what_runs_and_k_selects_checkpoints(
    project: pytest.Pytester,
) -> None:
    """The break: `collected 4 items` was printed, then 6 ran; -k chose other items
    than ran. Checkpoints are counted as collected and -k applies to them."""
    project.makepyfile(
        test_user="""
        import pytest

        def test_plain():
            pass

        @pytest.mark.checkpoint("ramp", "15m")
        def test_business_rule(gate_metrics):
            assert gate_metrics["error_rate"] < 0.01
        """
    )
    result = project.runpytest("--gate=ramp", "--gate-rehearse=healthy.csv", "--gate-force")
    result.stdout.fnmatch_lines(["collected 8 items"])  # 2 tests + 6 ramp checkpoints
    result.assert_outcomes(passed=8)
    selected = project.runpytest(
        "--gate=ramp", "--gate-rehearse=healthy.csv", "--gate-force", "-k", "15m or 30m"
    )
    selected.stdout.fnmatch_lines(["collected 8 items / 6 deselected / 2 selected"])
    selected.assert_outcomes(passed=2, deselected=6)


def test_the_run_summary_is_appended_for_github_actions(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With GITHUB_STEP_SUMMARY set, the gated run's Markdown lands on the job's page."""
    summary = project.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = project.runpytest("--gate=ramp", "--gate-rehearse=bad-canary.csv")
    result.assert_outcomes(failed=1, skipped=5)
    text = summary.read_text()
    assert "## gatekeeper: progressive-rollout — rolled back" in text
