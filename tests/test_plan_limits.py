"""Hostile and broken plans and recordings: each is one located PlanError (exit 2 in
the CLI), never a traceback, and never a plan that validates and then dies in a run.

Every case here crashed, hung or validated before the limits of ``_limits.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import gatekeeper
from gatekeeper import Plan, Recording
from gatekeeper._cli import main
from gatekeeper._limits import (
    MAX_CHECKPOINTS,
    MAX_ECHO,
    MAX_RECORDING_ROWS,
    bad_text,
    deepest,
    shorten,
)
from gatekeeper._options import Options
from gatekeeper._planfile import load_plan, plan_from_text
from gatekeeper.exceptions import ConfigError, PlanError

BASE = """\
[plan]
name = "shop"

[args]
service = "checkout"

[sources.s]
type = "static"
values = { x = 1.0 }

[metrics.x]
source = "s"
query = 'x{service="{{service}}",version="{{variant}}"}[{{window}}]'

[traffic]
type = "memory"

[[phases]]
name = "canary"
traffic = 5
checkpoints = ["15m", "30m"]
gate = ["x < 2"]
"""
PHASE_LINE = 18  # the [[phases]] header
CHECKPOINTS_LINE = 21


def edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


def nested(depth: int, open_: str, close: str, inner: str = "1") -> str:
    return open_ * depth + inner + close * depth


# name → (plan text, line, the message's key path and text)
CRASHES: dict[str, tuple[str, int, str]] = {
    "a checkpoint of 99999999999d (OverflowError)": (
        edit('"15m", "30m"', '"99999999999d"'),
        CHECKPOINTS_LINE,
        "phases[0].checkpoints[0]: a duration is at most 400d (the limit), got '99999999999d'",
    ),
    "a checkpoint of 1e15 seconds (OverflowError)": (
        edit('"15m", "30m"', "1e15"),
        CHECKPOINTS_LINE,
        "phases[0].checkpoints[0]: a duration is at most 400d (the limit), got 1000000000000000.0",
    ),
    "a checkpoint of 999999999d (validated, then died in the run)": (
        edit('"15m", "30m"', '"999999999d"'),
        CHECKPOINTS_LINE,
        "phases[0].checkpoints[0]: a duration is at most 400d (the limit), got '999999999d'",
    ),
    "a huge recheck_interval (OverflowError)": (
        edit("[traffic]\n", '[policy]\nrecheck_interval = "99999999999d"\n\n[traffic]\n'),
        16,
        "policy.recheck_interval: a duration is at most 400d (the limit), got '99999999999d'",
    ),
    "a huge approval timeout": (
        edit('gate = ["x < 2"]', 'gate = ["x < 2"]\napproval = { timeout = 1e300 }'),
        23,
        "phases[0].approval.timeout: a duration is at most 400d (the limit), got 1e+300",
    ),
    "a metric window of 1e15": (
        edit('source = "s"\n', 'source = "s"\nwindow = 1e15\n'),
        13,
        "metrics.x.window: a duration is at most 400d (the limit), got 1000000000000000.0",
    ),
    "an integer of 5,000 digits (ValueError inside tomllib)": (
        edit("traffic = 5", "traffic = " + "9" * 5000),
        20,
        "not valid TOML: Exceeds the limit (4300 digits) for integer string conversion",
    ),
    "5,000 nested arrays (RecursionError)": (
        BASE + "\n[sources.deep]\ntype = 'static'\nz = " + nested(5000, "[", "]") + "\n",
        26,
        "not valid TOML: nested deeper than 32 arrays and tables (the limit)",
    ),
    "5,000 nested inline tables (RecursionError)": (
        BASE + "\n[sources.deep]\ntype = 'static'\nz = " + nested(5000, "{a = ", "}") + "\n",
        26,
        "not valid TOML: nested deeper than 32 arrays and tables (the limit)",
    ),
    "40 nested arrays (under the parser's limit, over the plan's)": (
        BASE + "\n[sources.deep]\ntype = 'static'\nz = " + nested(40, "[", "]") + "\n",
        26,
        "sources.deep.z" + "[0]" * 29 + ": nested deeper than 32 arrays and tables (the limit)",
    ),
    "a dotted key of 1,000,000 parts (hours of quadratic parsing)": (
        BASE + "\n" + "a." * 1_000_000 + "a = 1\n",
        24,
        "a dotted key of more than 32 parts nests deeper than 32 tables (the limit)",
    ),
    "a quoted dotted key of 500,000 parts": (
        edit("[traffic]", "[traffic]\n" + '"a".' * 500_000 + '"a" = 1'),
        16,
        "a dotted key of more than 32 parts nests deeper than 32 tables (the limit)",
    ),
    "a table header of 100,000 dotted parts": (
        BASE + "\n[" + "a." * 100_000 + "a]\n",
        24,
        "a dotted key of more than 32 parts nests deeper than 32 tables (the limit)",
    ),
    "200,000 checkpoints (a rehearsal of minutes)": (
        edit('"15m", "30m"', ", ".join(str(i + 1) for i in range(200_000))),
        CHECKPOINTS_LINE,
        "phases[0].checkpoints: 200000 entries is too many (at most 10000 in one array or table)",
    ),
    "a checkpoint series of 10,080 checkpoints": (
        edit('["15m", "30m"]', '{ every = "1m", until = "7d" }'),
        CHECKPOINTS_LINE,
        "phases[0].checkpoints: 10080 checkpoints is too many (at most 10000)",
    ),
    "steps that last 800 days together": (
        edit(
            'traffic = 5\ncheckpoints = ["15m", "30m"]',
            'steps = [{ traffic = 1, checkpoints = ["400d"] }, '
            '{ traffic = 5, checkpoints = ["400d"] }]',
        ),
        20,
        "phases[0].steps[1]: the phase's steps last more than 400d (the limit for one phase)",
    ),
    "phases that last 4,400 days together": (
        BASE.replace('"15m", "30m"', '"400d"')
        + "".join(
            f'\n[[phases]]\nname = "p{i}"\ntraffic = 5\ncheckpoints = ["400d"]\ngate = ["x < 2"]\n'
            for i in range(10)
        ),
        78,
        "phases[10]: the phases together last more than 4000d (the limit)",
    ),
    "100,000 criteria judged at 10,000 checkpoints": (
        edit('["15m", "30m"]', '{ every = "1m", until = "10000m" }').replace(
            'gate = ["x < 2"]', "gate = [" + ", ".join(['"x < 2"'] * 11) + "]"
        ),
        PHASE_LINE,
        "phases[0]: the plan judges more than 100000 criteria at its checkpoints",
    ),
    "checkpoints of 0.1ms and 0.2ms (both named 1ms)": (
        edit('"15m", "30m"', "0.0001, 0.0002"),
        CHECKPOINTS_LINE,
        "phases[0].checkpoints[1]: two checkpoints are named '1ms'",
    ),
    "an empty plan": ("", 1, "the plan is empty: it needs at least one [[phases]] table"),
    "a plan without phases": (
        BASE[: BASE.index("[[phases]]")],
        1,
        "phases: a plan needs at least one [[phases]] table",
    ),
    "a phase name with an ANSI escape": (
        edit('name = "canary"', 'name = "ca\\u001b[31mnary"'),
        19,
        "phases[0].name: a name must match [A-Za-z0-9_][A-Za-z0-9_.:+-]* (letters, digits, "
        "_ . : + -), got 'ca\\x1b[31mnary'",
    ),
    "a phase name with a newline": (
        edit('name = "canary"', 'name = "can\\nary"'),
        19,
        "phases[0].name: a name must match",
    ),
    "a metric name with a space": (
        edit("[metrics.x]", '[metrics."x y"]'),
        11,
        'metrics."x y": a name must match [A-Za-z0-9_][A-Za-z0-9_.:+-]* (letters, digits, '
        "_ . : + -), got 'x y'",
    ),
    "an arg no placeholder can name": (
        edit('service = "checkout"', 'service-name = "checkout"'),
        5,
        "args.service-name: a name must match [A-Za-z_][A-Za-z0-9_]*",
    ),
    "a description that rewrites the console": (
        edit('gate = ["x < 2"]', 'gate = ["x < 2"]\ndescription = "ok\\r\\u001b[2Kshipped"'),
        23,
        "phases[0].description: control character '\\r' at position 3 is not allowed",
    ),
    "a misspelled placeholder": (
        edit("{{service}}", "{{servce}}"),
        13,
        "metrics.x.query: unknown placeholder {{servce}} (known: phase, service, variant, "
        "window; add it to [args])",
    ),
    "a misspelled placeholder in a metric option": (
        edit('source = "s"\n', 'source = "s"\npick = { version = "{{varaint}}" }\n'),
        13,
        "metrics.x.pick.version: unknown placeholder {{varaint}}",
    ),
    "a 1e308s bound on a metric in ms (an always-passing criterion)": (
        edit('source = "s"\n', 'source = "s"\nunit = "ms"\n').replace('"x < 2"', '"x < 1e308s"'),
        23,
        "phases[0].gate[0]: number out of range in the metric's unit: 1e+308",
    ),
    "NaN in a plugin option": (
        edit('type = "memory"', 'type = "memory"\ninitial = nan'),
        17,
        "traffic.initial: numbers must be finite, got nan",
    ),
    "a 100,000-character traffic value echoed back": (
        edit("traffic = 5", f"traffic = '{'x' * 100_000}'"),
        20,
        "phases[0].traffic: expected the canary's share in percent, 0 to 100, got 'xxxx",
    ),
    "a 100,000-character key echoed back": (
        edit("traffic = 5", f"traffic = 5\n{'k' * 100_000} = 1"),
        21,
        "phases[0].kkkkkkkk",
    ),
}


@pytest.mark.parametrize(("text", "line", "message"), CRASHES.values(), ids=CRASHES.keys())
def test_a_hostile_plan_is_one_located_error(text: str, line: int, message: str) -> None:
    """Each plan that once crashed, hung or validated is one PlanError with file and
    line, its message one short line that names the limit."""
    with pytest.raises(PlanError) as info:
        plan_from_text(text, path="gates.toml")
    error = info.value
    assert ("gates.toml", line) == (error.file, error.line), str(error)
    assert str(error).startswith(f"gates.toml:{line}: {message}")
    assert "\n" not in str(error)
    assert len(str(error)) < 400


Write = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Writes a file (text or bytes) into the test's folder and returns its path."""

    def write(text: str | bytes, name: str = "gates.toml") -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    return write


# Options a source or backend reads at validate time; each crashed with a traceback.
PLUGIN_CRASHES: dict[str, tuple[str, str]] = {
    "timeout = ['5s'] (AttributeError)": (
        '[sources.p]\ntype = "prometheus"\nurl = "http://127.0.0.1:9"\ntimeout = ["5s"]\n',
        "sources.p.timeout: expected a duration like '15m', got an array",
    ),
    "max_age = [] (AttributeError)": (
        '[sources.a]\ntype = "alertmanager"\nurl = "http://127.0.0.1:9"\nmax_age = []\n',
        "sources.a.max_age: expected a duration like '15m', got an array",
    ),
    "a deadline of 99999999999d (OverflowError)": (
        '[sources.p]\ntype = "prometheus"\nurl = "http://127.0.0.1:9"\ndeadline = "99999999999d"\n',
        "sources.p.deadline: a duration is at most 400d (the limit)",
    ),
    "recording = '/dev/zero' (MemoryError)": (
        '[sources.r]\ntype = "replay"\nrecording = "/dev/zero"\n',
        "sources.r.recording: /dev/zero: the recording is not a regular file",
    ),
}


@pytest.mark.parametrize(("table", "message"), PLUGIN_CRASHES.values(), ids=PLUGIN_CRASHES.keys())
def test_a_hostile_plugin_option_fails_validate(write: Write, table: str, message: str) -> None:
    """validate builds every source: a bad option is a located PlanError."""
    path = write(BASE + "\n" + table)
    with pytest.raises(PlanError) as info:
        gatekeeper.validate(path)
    assert f"{path}:" in str(info.value)
    assert message in str(info.value)


def test_a_prometheus_step_of_the_wrong_type_fails_validate(write: Write) -> None:
    """A metric's ``step = []`` (AttributeError) is a located PlanError."""
    path = write(
        edit('[sources.s]\ntype = "static"', '[sources.s]\ntype = "prometheus"\nurl = "http://h"')
        .replace("values = { x = 1.0 }\n", "")
        .replace('source = "s"\n', 'source = "s"\nstep = []\n')
    )
    with pytest.raises(PlanError) as info:
        gatekeeper.validate(path)
    assert "metrics.x.step: expected a duration like '15m', got an array" in str(info.value)


def test_a_relative_callable_fails_validate(write: Write) -> None:
    """``callable = ".relative:x"`` is a located PlanError, not a TypeError."""
    path = write(BASE + '\n[sources.py]\ntype = "python"\ncallable = ".relative:x"\n')
    with pytest.raises(PlanError):
        gatekeeper.validate(path)


CALENDAR = edit('name = "shop"', 'name = "shop"\ntimezone = "Europe/Berlin"')


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"],
    ids=["year 1", "year 9999"],
)
def test_a_start_at_at_the_end_of_time_is_a_plan_error(moment: str) -> None:
    """A timestamp datetime cannot shift to UTC is a located PlanError."""
    text = CALENDAR.replace('gate = ["x < 2"]', f'gate = ["x < 2"]\nstart_at = "{moment}"')
    with pytest.raises(PlanError):
        plan_from_text(text, path="gates.toml")


def test_a_start_at_in_year_9999_does_not_validate() -> None:
    """A plan whose phase starts in 9999 is refused at load, not at run time."""
    text = CALENDAR.replace(
        'gate = ["x < 2"]', 'gate = ["x < 2"]\nstart_at = "9999-12-01T00:00:00Z"'
    )
    with pytest.raises(PlanError):
        plan_from_text(text, path="gates.toml")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_tolerance_fails_at_load(value: str) -> None:
    """``tolerance = nan`` once switched read-back verification off: it is refused."""
    text = edit('type = "memory"', f'type = "http"\nurl = "http://h"\ntolerance = {value}')
    with pytest.raises(PlanError) as info:
        plan_from_text(text, path="gates.toml")
    assert (18, "traffic.tolerance") == (info.value.line, info.value.key)


# -- files -------------------------------------------------------------------------------


def test_a_non_utf8_plan_names_the_line_and_the_byte(write: Write) -> None:
    """The first bad byte is located: line, column and offset."""
    data = BASE.encode().replace(b'name = "canary"', b'name = "can\xffary"')
    path = write(data)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    offset = data.index(b"\xff")
    assert (
        f"{path}:19: the plan is not UTF-8 text: byte 0xff at column 12 (byte offset {offset})"
        == str(info.value)
    )


def test_a_plan_from_dev_zero_is_refused_unread() -> None:
    """A device is not read (it would never end)."""
    with pytest.raises(PlanError) as info:
        load_plan("/dev/zero")
    assert "/dev/zero: the plan is not a regular file" == str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_plan_from_a_fifo_does_not_hang(tmp_path: Path) -> None:
    """A named pipe without a writer would block open() forever: it is refused."""
    fifo = tmp_path / "gates.toml"
    os.mkfifo(fifo)
    with pytest.raises(PlanError) as info:
        load_plan(fifo)
    assert "the plan is not a regular file" in str(info.value)


def test_a_plan_over_4_mib_is_refused(write: Write) -> None:
    """A plan file is at most 4 MiB; the read stops there."""
    path = write(BASE + "#" * (4 * 1024 * 1024))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert f"{path}: the plan is larger than 4 MiB (the limit)" == str(info.value)


def test_a_self_referencing_mapping_is_a_plan_error() -> None:
    """A mapping that contains itself (Python, not TOML) is too deep, not a RecursionError."""
    loop: dict[str, object] = {"type": "memory"}
    loop["self"] = loop
    mapping = {
        "traffic": loop,
        "phases": [{"name": "a", "traffic": 1, "checkpoints": ["1m"], "gate": ["m < 1"]}],
    }
    with pytest.raises(PlanError) as info:
        Plan.from_mapping(mapping)
    assert "nested deeper than 32 arrays and tables" in str(info.value)


@pytest.mark.parametrize("key", [None, 1, 1.5, ("a",)])
def test_a_mapping_key_that_is_not_a_string_is_a_plan_error(key: object) -> None:
    """``Plan.from_mapping`` with a None, number or tuple key: a PlanError naming the
    table, not a TypeError from sorting or formatting the key."""
    mapping: dict[object, object] = {
        "metrics": {"m": {"source": "s", key: 1}},
        "sources": {"s": {"type": "static"}},
        "phases": [{"name": "a", "traffic": 1, "checkpoints": ["1m"], "gate": ["m < 1"]}],
    }
    with pytest.raises(PlanError) as info:
        Plan.from_mapping(mapping)  # type: ignore[arg-type]
    assert f"metrics.m: keys must be strings, got {key!r}" == str(info.value)


# -- the CLI -----------------------------------------------------------------------------

CLI_CASES = {
    **{name: text for name, (text, _, _) in CRASHES.items()},
    **{name: BASE + "\n" + table for name, (table, _) in PLUGIN_CRASHES.items()},
    "nan tolerance": edit('type = "memory"', 'type = "http"\nurl = "http://h"\ntolerance = nan'),
}


@pytest.mark.parametrize("text", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_validate_exits_2_with_one_line(
    write: Write, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """``gatekeeper validate`` on each crash case: exit 2, one line on stderr, no
    traceback."""
    path = write(text)
    code = main(["validate", str(path)], out=io.StringIO())
    err = capsys.readouterr().err
    assert (2, 1) == (code, len(err.splitlines())), err
    assert "Traceback" not in err
    assert err.startswith(f"gatekeeper: {path}:")


def test_validate_a_non_utf8_plan_exits_2(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    """The non-UTF-8 plan through the CLI: exit 2, the line in the message."""
    path = write(BASE.encode().replace(b"canary", b"can\xffary"))
    assert 2 == main(["validate", str(path)], out=io.StringIO())
    assert capsys.readouterr().err.startswith(f"gatekeeper: {path}:19: the plan is not UTF-8")


# -- recordings --------------------------------------------------------------------------

RECORDINGS: dict[str, tuple[str, int, str]] = {
    "at = 99999999999d (OverflowError)": (
        "at,metric,value\n99999999999d,x,1\n",
        2,
        "at: a duration is at most 4000d (the limit), got '99999999999d'",
    ),
    "at = 1e15 (OverflowError)": (
        "at,metric,value\n0,x,1\n1e15,x,2\n",
        3,
        "at: a duration is at most 4000d (the limit), got '1e15'",
    ),
    "a metric name with an escape": (
        "at,metric,value\n0,x\x1b[2J,1\n",
        2,
        "metric: control character '\\x1b' at position 2 is not allowed",
    ),
    "a 100,000-character value echoed back": (
        f"at,metric,value\n0,x,{'y' * 100_000}\n",
        2,
        "value: expected a number or nothing, got 'yyyy",
    ),
}


@pytest.mark.parametrize(("text", "line", "message"), RECORDINGS.values(), ids=RECORDINGS.keys())
def test_a_hostile_recording_is_one_located_error(text: str, line: int, message: str) -> None:
    """Each recording that crashed is one PlanError with its line, cut short."""
    with pytest.raises(PlanError) as info:
        Recording.parse(text, name="r.csv")
    assert str(info.value).startswith(f"r.csv:{line}: {message}")
    assert len(str(info.value)) < 300


def test_a_recording_over_the_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recording has at most 1,000,000 rows (lowered here to keep the test fast)."""
    assert 1_000_000 == MAX_RECORDING_ROWS
    monkeypatch.setattr("gatekeeper._recording.MAX_RECORDING_ROWS", 3)
    text = "at,metric,value\n" + "".join(f"{i},x,1\n" for i in range(4))
    with pytest.raises(PlanError) as info:
        Recording.parse(text, name="r.csv")
    assert "r.csv:5: more than 3 rows (the limit)" == str(info.value)


def test_a_recording_from_dev_zero_is_refused_unread() -> None:
    """``Recording.load('/dev/zero')`` once read until memory ran out."""
    with pytest.raises(PlanError) as info:
        Recording.load("/dev/zero")
    assert "/dev/zero: the recording is not a regular file" == str(info.value)


def test_rehearse_a_hostile_recording_exits_2(
    write: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gatekeeper rehearse --metrics`` with a broken recording: exit 2, one line."""
    plan = write(BASE)
    recording = write("at,metric,value\n0,x,1\n99999999999d,x,1\n", name="r.csv")
    code = main(["rehearse", str(plan), "--metrics", str(recording)], out=io.StringIO())
    err = capsys.readouterr().err
    assert (2, 1) == (code, len(err.splitlines())), err
    assert f"{recording}:3: at: a duration is at most 4000d" in err


# -- the pieces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, 0.01),
        ({"tolerance": 0}, 0.0),
        ({"tolerance": 0.5}, 0.5),
        ({"tolerance": 5}, 5.0),
    ],
)
def test_options_tolerance_reads_a_bounded_number(raw: dict[str, object], expected: float) -> None:
    """``Options.tolerance``: percentage points, 0 to 5, the default when absent."""
    assert expected == Options(raw).tolerance()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "tolerance: expected a finite number, got nan"),
        (float("inf"), "tolerance: expected a finite number, got inf"),
        (-0.1, "tolerance: must be at least 0, got -0.1"),
        (50, "tolerance: must be at most 5, got 50"),
        ("1", "tolerance: expected a number, got '1'"),
        (10**400, "tolerance: expected a finite number, got an integer of about 401 digits"),
    ],
)
def test_options_tolerance_refuses(value: object, message: str) -> None:
    """A NaN, infinite, negative or too wide tolerance is a ConfigError naming the key."""
    with pytest.raises(ConfigError) as info:
        Options({"tolerance": value}).tolerance()
    assert message == str(info.value)


def test_options_numbers_are_finite_and_bounded() -> None:
    """``Options.number``/``integer`` refuse NaN and ±Inf and honour minimum/maximum."""
    with pytest.raises(ConfigError, match="expected a finite number"):
        Options({"x": float("-inf")}).number("x")
    with pytest.raises(ConfigError, match="must be at most 10"):
        Options({"n": 11}).integer("n", maximum=10)
    assert 3 == Options({"n": 3}).integer("n", minimum=1, maximum=10)
    assert 1.5 == Options({}).number("x", 1.5, minimum=2)  # a default is not checked


@pytest.mark.parametrize("value", [["5s"], [], {}, True, None, 1e15, "99999999999d", "nan"])
def test_options_seconds_refuses_with_a_config_error(value: object) -> None:
    """``Options.seconds`` (every timeout and deadline) is never an AttributeError or
    OverflowError."""
    with pytest.raises(ConfigError):
        Options({"timeout": value if value is not None else []}).seconds("timeout", 5.0)


def _nested_lists(depth: int) -> list[object]:
    outer: list[object] = []
    inner = outer
    for _ in range(depth):
        child: list[object] = []
        inner.append(child)
        inner = child
    return outer


def test_shorten_cuts_long_and_deep_values() -> None:
    """Values quoted in messages are one short line, whatever they hold."""
    deep = _nested_lists(5000)
    for value in ["x" * 10**6, "a\nb", deep, list(range(10**5)), 10**5000]:
        text = shorten(value)
        assert len(text) <= MAX_ECHO and "\n" not in text


def test_bad_text_refuses_bidirectional_overrides() -> None:
    """A right-to-left override would reorder what the console shows."""
    assert bad_text("ok \u202e gnp.exe", multiline=True) is not None
    assert bad_text("two\nlines", multiline=True) is None


def test_deepest_is_iterative() -> None:
    """The shape check walks 100,000 levels without recursion."""
    deep = _nested_lists(100_000)
    assert deepest(deep) is not None
    assert sys.getrecursionlimit() < 100_000


# Texts on which a regex or the parser once took minutes (quadratic in the length of a
# key, a run of spaces or digits); each must be a quick answer.
N = 1_000_000
BAD = edit("traffic = 5", "traffic = 500")  # an error found after parsing: locate runs
SLOW = {
    "a 1,000,000-letter key": edit("traffic = 5", "traffic = 5\n" + "k" * N + " = 1"),
    "a 1,000,000-letter value": edit("traffic = 5", "traffic = '" + "x" * N + "'"),
    "a header with 1,000,000 spaces": BAD + "\n[sources.a" + " " * N + ".b]\ntype='static'\n",
    "a key with 1,000,000 spaces": BAD.replace("[traffic]", "[traffic]\nzz" + " " * N + "= 1"),
    "runs of 3,999 digits": BAD
    + "\n[sources.d]\ntype='static'\nz = ["
    + ", ".join(["9" * 3999] * 200)
    + "]\n",
    "a query of 500,000 '{{'": BAD.replace("{{service}}", "{{" * (N // 2)),
    "a placeholder of 1,000,000 letters": BAD.replace("{{service}}", "{{" + "a" * N),
    "a criterion of 1,000,000 characters": edit('"x < 2"', '"' + "x " * (N // 2) + '"'),
    "a dotted run of 1,000,000 parts in a string": edit("checkout", "a." * N),
}


@pytest.mark.parametrize("text", SLOW.values(), ids=SLOW.keys())
def test_pathological_text_is_answered_quickly(text: str) -> None:
    """Each is loaded or refused in well under a second (10 s allows a loaded machine)."""
    start = time.perf_counter()
    with contextlib.suppress(PlanError):
        plan_from_text(text, path="gates.toml")
    assert time.perf_counter() - start < 10


def test_a_long_dotted_run_inside_a_string_is_text() -> None:
    """The dotted-key check skips strings and comments: 'a.a.a…' as a value loads."""
    dotted = "a." * 100_000
    text = edit('service = "checkout"', f'service = "{dotted}"  # {dotted}')
    assert dotted == plan_from_text(text).args["service"]


def test_the_checkpoint_limit_is_far_above_a_human_plan() -> None:
    """10,000 checkpoints: a checkpoint every 5 minutes for a month still fits."""
    assert 10_000 == MAX_CHECKPOINTS
    plan = plan_from_text(edit('["15m", "30m"]', '{ every = "5m", until = "30d" }'))
    assert 8640 == len(plan.phases[0].checkpoints)
