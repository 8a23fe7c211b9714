"""docs/calendar.md is checked against the calendar: its examples parse and say true things."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gatekeeper._calendar_parse import (
    parse_ask_at,
    parse_calendar,
    parse_start_at,
    parse_window_name,
)
from gatekeeper._calendar_text import describe_wait
from gatekeeper._locate import PathPart, format_path

DOC = (Path(__file__).parent.parent / "docs" / "calendar.md").read_text()
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", DOC, re.DOTALL)
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.DOTALL)


def refuse(key: tuple[PathPart, ...], message: str) -> AssertionError:
    return AssertionError(f"docs/calendar.md: {format_path(key)}: {message}")


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=lambda block: block.split("\n")[0])
def test_every_toml_example_parses(block: str) -> None:
    """Each TOML example is a valid calendar, and its start, ask and window keys parse."""
    data: dict[str, Any] = tomllib.loads(block)
    calendar = parse_calendar(data, refuse)
    if "policy" in data:
        parse_window_name(data["policy"]["window"], ("policy", "window"), refuse, calendar)
    phases = list(data.get("phases", []))
    approvals = [data["approval"]] if "approval" in data else []
    for index, phase in enumerate(phases):
        if "start_at" in phase:
            key = ("phases", index, "start_at")
            parse_start_at(phase["start_at"], key, refuse, zone=calendar.timezone)
        approvals.extend([phase["approval"]] if "approval" in phase else [])
    for approval in approvals:
        parse_ask_at(approval["ask_at"], ("approval", "ask_at"), refuse, zone=calendar.timezone)


def test_the_start_at_table_parses() -> None:
    """Every start_at value the reference table shows is accepted."""
    values = re.findall(r'^\| `("[^"]+")` \| at ', DOC, re.MULTILINE)
    assert 4 == len(values)
    for value in values:
        parse_start_at(value.strip('"'), ("start_at",), refuse)


def test_the_python_example_runs() -> None:
    """The embedding example runs as written."""
    assert 1 == len(PYTHON_BLOCKS)
    exec(compile(PYTHON_BLOCKS[0], "docs/calendar.md", "exec"), {})


def test_the_console_example_is_what_describe_wait_prints() -> None:
    """The wait shown for a Friday evening is describe_wait's text."""
    text = describe_wait(
        datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
        datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        ZoneInfo("Europe/Berlin"),
    )
    assert "on Mon at 09:00 CET, in 2d14h" == text
    assert f"opens {text}" in DOC
