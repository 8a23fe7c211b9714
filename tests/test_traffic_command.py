"""The command backend with real scripts: argv templates, no shell, timeouts, errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import ConfigError, TrafficError
from gatekeeper.traffic.command import CommandBackend, create, parse_share


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """set.sh records its argv (one per line) and stores $1; get.sh prints the state."""
    script(
        tmp_path / "set.sh",
        'echo run >> "$(dirname "$0")/set.count"\n'
        'printf "%s\\n" "$@" > "$(dirname "$0")/set.argv"\n'
        'echo "$1" > "$(dirname "$0")/state"\n',
    )
    script(tmp_path / "get.sh", 'cat "$(dirname "$0")/state" 2>/dev/null || echo 0\n')
    return tmp_path


def build(base: Path, **options: object) -> CommandBackend:
    return create(options, PluginContext(base_dir=base, env={}))


def set_runs(base: Path) -> int:
    path = base / "set.count"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_set_runs_the_template_and_get_verifies(scripts: Path) -> None:
    """Placeholders fill each argv element separately; get's output is the split."""
    backend = build(
        scripts,
        set=["./set.sh", "{canary}", "weight={canary_weight}/{total_weight}", "{baseline:.1f}"],
        get=["./get.sh"],
        total_weight=1000,
    )
    split = backend.set_split(12.5)
    assert split.canary == 12.5
    assert (scripts / "set.argv").read_text().splitlines() == ["12.5", "weight=125/1000", "87.5"]
    assert backend.get_split().canary == 12.5


def test_no_shell_is_involved(scripts: Path) -> None:
    """Shell syntax in an argument is passed literally, never interpreted."""
    backend = build(scripts, set=["./set.sh", "{canary}", "; touch pwned"], get=["./get.sh"])
    backend.set_split(5)
    assert (scripts / "set.argv").read_text().splitlines() == ["5", "; touch pwned"]
    assert not (scripts / "pwned").exists()


def test_setting_the_current_share_does_not_run_set(scripts: Path) -> None:
    """get reads the share already in place: set is not run again."""
    backend = build(scripts, set=["./set.sh", "{canary}"], get=["./get.sh"])
    backend.set_split(20)
    backend.set_split(20)
    assert set_runs(scripts) == 1
    assert backend.writes == 1


def test_a_failing_set_reports_exit_code_stderr_and_the_current_split(tmp_path: Path) -> None:
    """Exit 3 with a message on stderr: both are in the TrafficError, with the share
    get still reads."""
    script(tmp_path / "set.sh", 'echo "forbidden: no RBAC for you" >&2\nexit 3\n')
    script(tmp_path / "get.sh", "echo 4%\n")
    backend = build(tmp_path, set=["./set.sh", "{canary}"], get=["./get.sh"])
    with pytest.raises(TrafficError, match=r"exited with 3: forbidden: no RBAC") as info:
        backend.set_split(10)
    assert (info.value.wanted, info.value.actual) == (10, 4)


def test_a_hanging_command_is_killed_at_the_timeout(tmp_path: Path) -> None:
    """set hangs (in a child of the script, too): killed after the timeout with the
    whole process group, and the error says so."""
    script(tmp_path / "set.sh", "sleep 30 &\nsleep 30\n")
    script(tmp_path / "get.sh", "echo 0\n")
    backend = build(tmp_path, set=["./set.sh"], get=["./get.sh"], timeout="0.5s")
    started = time.monotonic()
    with pytest.raises(TrafficError, match=r"did not finish within 0\.5s"):
        backend.set_split(10)
    assert time.monotonic() - started < 5


def test_a_set_that_does_not_take_effect_is_a_mismatch(tmp_path: Path) -> None:
    """set exits 0 but get still reads the old share: TrafficError with both numbers."""
    script(tmp_path / "set.sh", "exit 0\n")
    script(tmp_path / "get.sh", "echo 1\n")
    backend = build(tmp_path, set=["./set.sh", "{canary}"], get=["./get.sh"])
    with pytest.raises(TrafficError, match=r"get reads 1%") as info:
        backend.set_split(50)
    assert (info.value.wanted, info.value.actual) == (50, 1)


def test_unparseable_get_output_is_a_traffic_error(tmp_path: Path) -> None:
    """get prints something that is not a percent: the error quotes it."""
    script(tmp_path / "get.sh", "echo 'weights: a=1 b=2'\n")
    backend = build(tmp_path, set=["true"], get=["./get.sh"])
    with pytest.raises(TrafficError, match="is not a percent"):
        backend.get_split()


def test_a_missing_program_is_a_traffic_error(tmp_path: Path) -> None:
    """The program does not exist: TrafficError, not an OSError."""
    backend = build(tmp_path, set=["./nope"], get=["./nope-either"])
    with pytest.raises(TrafficError, match="could not start"):
        backend.get_split()


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [("12.5", 12.5), ("12.5%\n", 12.5), (" 7 %\n\n", 7.0), ("x\ny\n100\n", 100.0), ("0", 0.0)],
)
def test_parse_share_accepts_a_percent_on_the_last_line(stdout: str, expected: float) -> None:
    """The last non-empty line is a number, optionally followed by %."""
    assert parse_share(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "\n", "abc", "101", "-1", "12.5 percent", "nan"])
def test_parse_share_refuses_anything_else(stdout: str) -> None:
    """No number, out of range or extra words: a ValueError saying why."""
    with pytest.raises(ValueError, match=r"\S"):
        parse_share(stdout)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"set": "kubectl set {canary}", "get": ["g"]}, "set"),
        ({"set": ["s", "{canary}", "{cnary}"], "get": ["g"]}, "set[2]"),
        ({"set": ["s", "{0}"], "get": ["g"]}, "set[1]"),
        ({"set": ["s", "{canary!r}"], "get": ["g"]}, "set[1]"),
        ({"set": ["s", "{canary:zz}"], "get": ["g"]}, "set[1]"),
        ({"set": ["s", "{canary"], "get": ["g"]}, "set[1]"),
        ({"set": ["s"], "get": ["g", "{canary}"]}, "get[1]"),
        ({"set": ["s"]}, "get"),
        ({"set": [], "get": ["g"]}, "set"),
        ({"set": ["s", 1], "get": ["g"]}, "set[1]"),
        ({"set": ["s"], "get": ["g"], "timeout": "soon"}, "timeout"),
        ({"set": ["s"], "get": ["g"], "shell": True}, "shell"),
    ],
)
def test_templates_are_checked_when_the_plan_loads(options: dict[str, object], key: str) -> None:
    """Unknown placeholders, bad format specs, a string instead of argv: ConfigError
    naming the element, before anything runs."""
    with pytest.raises(ConfigError) as info:
        create(options, PluginContext(base_dir=Path("/nonexistent"), env={}))
    assert info.value.key == key


def test_literal_braces_are_allowed_when_doubled(scripts: Path) -> None:
    """{{ and }} stay literal braces (JSON patches on the command line)."""
    backend = build(
        scripts, set=["./set.sh", "{canary}", '{{"weight": {canary_weight}}}'], get=["./get.sh"]
    )
    backend.set_split(30)
    assert (scripts / "set.argv").read_text().splitlines() == ["30", '{"weight": 30}']
