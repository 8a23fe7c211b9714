"""locate(): the line of a key path in TOML text, for errors found after parsing."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper._locate import PathPart, format_path, locate
from strategies import plan_mappings

TEXT = """\
# a plan: '#' in comments and strings must not confuse the scanner
[plan]
name = "shop # not a comment"

[sources.prom]
type = "prometheus"
url = 'http://127.0.0.1:9090/#/graph'

[metrics."error.rate"]
source = "prom"

[[phases]]
name = "canary"
gate = ["a < 1", "b < 2"]

[[phases]]
name = "ramp"  # the second phase
note = "a \\" # still the string"
traffic = 10
gate = [
    "x < 1", "y < 2",   # two on one line, [brackets] in a comment
    "z # < 3",
    { criterion = "w < 1",
      fail_only = true },
    "v < 1",
]

[phases.policy]
on_fail = "hold"

[[phases]]
name = "rollout"
checkpoints = { every = "1d", until = "12d" }
policy.on_fail = "rollback"
"""

CASES: list[tuple[tuple[PathPart, ...], int | None]] = [
    (("plan",), 2),
    (("plan", "name"), 3),
    (("sources", "prom"), 5),
    (("sources", "prom", "url"), 7),
    (("sources", "prom", "timeout"), 5),  # absent: its table
    (("metrics", "error.rate"), 9),
    (("metrics", "error.rate", "source"), 10),
    (("phases", 0), 12),
    (("phases", 0, "gate"), 14),
    (("phases", 0, "gate", 1), 14),  # a one-line array: the key's line
    (("phases", 1), 16),
    (("phases", 1, "name"), 17),
    (("phases", 1, "traffic"), 19),
    (("phases", 1, "gate", 0), 21),
    (("phases", 1, "gate", 1), 21),
    (("phases", 1, "gate", 2), 22),
    (("phases", 1, "gate", 3), 23),
    (("phases", 1, "gate", 3, "fail_only"), 23),
    (("phases", 1, "gate", 4), 25),
    (("phases", 1, "gate", 9), 20),  # no such element: the array's line
    (("phases", 1, "policy"), 28),
    (("phases", 1, "policy", "on_fail"), 29),
    (("phases", 2), 31),
    (("phases", 2, "checkpoints", "until"), 33),
    (("phases", 2, "policy", "on_fail"), 34),
    (("colour",), None),
    (("phases", 7), None),
]


@pytest.mark.parametrize(("path", "line"), CASES, ids=[format_path(p) for p, _ in CASES])
def test_locate(path: tuple[PathPart, ...], line: int | None) -> None:
    """Headers, arrays of tables, nested tables, keys, dotted and quoted keys, array
    elements (several on a line, inline tables over lines), '#' inside strings."""
    assert line == locate(TEXT, path)


def test_escaped_quote_does_not_end_a_string() -> None:
    """A key after a string holding \\" and '#' is still found on its own line."""
    assert 19 == locate(TEXT, ("phases", 1, "traffic"))
    assert 18 == locate(TEXT, ("phases", 1, "note"))


def test_comment_lines_inside_an_array_are_not_elements() -> None:
    """Blank and comment-only lines between elements are not counted."""
    text = 'gate = [\n    # first\n\n    "a < 1",\n    # second\n    "b < 2",\n]\n'
    assert (4, 6) == (locate(text, ("gate", 0)), locate(text, ("gate", 1)))


def test_first_element_on_the_opening_line() -> None:
    """'gate = [ "a",' opens the array and holds element 0; the next line holds 1."""
    text = 'gate = [ "a < 1",\n  "b < 2" ]\n'
    assert (1, 2) == (locate(text, ("gate", 0)), locate(text, ("gate", 1)))


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("phases", 1, "gate", 2), "phases[1].gate[2]"),
        (("plan", "name"), "plan.name"),
        ((), ""),
        (("metrics", "m", "args", "x"), "metrics.m.args.x"),
    ],
)
def test_format_path(path: tuple[PathPart, ...], text: str) -> None:
    """Key paths print the way errors show them."""
    assert text == format_path(path)


@pytest.mark.parametrize("separator", ["\u2028", "\x85", "\x0c"])
def test_only_newlines_break_lines(separator: str) -> None:
    """A U+2028, NEL or form feed inside a string does not shift the lines after it."""
    text = f'[plan]\ndescription = "a{separator}b"\nname = "x"\n'
    assert 3 == locate(text, ("plan", "name"))


def test_crlf_line_endings() -> None:
    """A file saved with CRLF line endings locates the same lines."""
    text = '[plan]\r\nname = "x"\r\n\r\n[[phases]]\r\ngate = [\r\n  "a",\r\n  "b",\r\n]\r\n'
    assert (2, 6, 7) == (
        locate(text, ("plan", "name")),
        locate(text, ("phases", 0, "gate", 0)),
        locate(text, ("phases", 0, "gate", 1)),
    )


MULTILINE = '''\
[metrics.m]
query = """
sum(rate(http_requests_total{
  source="x",   # not a comment
  [bracket]
}[5m]))
"""
source = "prom"

[[phases]]
name = "a"
gate = [
    """x < 1
    and more""", "y < 2",
    \'\'\'z < 3\'\'\',
    "w < 4",
]
'''


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("metrics", "m", "source"), 8),
        (("phases", 0), 10),
        (("phases", 0, "name"), 11),
        (("phases", 0, "gate", 0), 13),
        (("phases", 0, "gate", 1), 14),
        (("phases", 0, "gate", 2), 15),
        (("phases", 0, "gate", 3), 16),
    ],
)
def test_multi_line_strings(path: tuple[PathPart, ...], line: int) -> None:
    """Lines inside a multi-line string (a PromQL query over lines) are text: a
    'source="x"' or '[bracket]' there is neither a key nor a header."""
    assert line == locate(MULTILINE, path)


# -- property: every key of a generated plan written as TOML is found on its line --------


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"


class _Writer:
    """A small TOML writer that records the line it writes each key path on."""

    def __init__(self, split_arrays: bool) -> None:
        self.lines: list[str] = []
        self.where: dict[tuple[PathPart, ...], int] = {}
        self.split_arrays = split_arrays

    def add(self, text: str) -> int:
        self.lines.append(text)
        return len(self.lines)

    def inline(self, path: tuple[PathPart, ...], value: Any, line: int) -> None:
        """Everything inside a value written on ``line`` is found on that line."""
        self.where[path] = line
        if isinstance(value, dict):
            for key, item in value.items():
                self.inline((*path, key), item, line)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.inline((*path, index), item, line)

    def table(self, path: tuple[PathPart, ...], table: dict[str, Any]) -> None:
        subtables = []
        for key, value in table.items():
            # checkpoints = { every, until } stays inline; [[phases]] are arrays of tables.
            inline_table = bool(path) and path[0] == "phases" and key == "checkpoints"
            if (isinstance(value, dict) and not inline_table) or key == "phases":
                subtables.append((key, value))
            elif isinstance(value, list) and value and self.split_arrays:
                line = self.add(f"{_toml_key(key)} = [")
                self.where[(*path, key)] = line
                for index, item in enumerate(value):
                    self.inline((*path, key, index), item, self.add(f"    {_toml_value(item)},"))
                self.add("]")
            else:
                self.inline(
                    (*path, key), value, self.add(f"{_toml_key(key)} = {_toml_value(value)}")
                )
        for key, value in subtables:
            if isinstance(value, list):
                for index, item in enumerate(value):
                    self.add("")
                    self.where[(*path, key, index)] = self.add(f"[[{key}]]")
                    self.table((*path, key, index), item)
            else:
                self.add("")
                header = ".".join(_toml_key(str(p)) for p in (*path, key) if isinstance(p, str))
                self.where[(*path, key)] = self.add(f"[{header}]")
                self.table((*path, key), value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan_mappings(), st.booleans())
def test_every_key_of_a_written_plan_is_found(mapping: dict[str, Any], split: bool) -> None:
    """Written as TOML (arrays on one line or one element a line), every key path of a
    plan, array elements included, is located on the line it was written on."""
    writer = _Writer(split_arrays=split)
    writer.table((), mapping)
    text = "\n".join(writer.lines) + "\n"
    assert mapping == tomllib.loads(text)  # the writer itself is right
    found = {path: locate(text, path) for path in writer.where}
    assert writer.where == found


def test_a_table_defined_by_a_deeper_header_is_found_there() -> None:
    """``[sources.a.b]`` defines ``sources.a``: an error about ``sources.a.type`` points
    at that header, not nowhere."""
    text = '[plan]\nname = "x"\n\n[sources.a   .b]\ntype = "static"\n'
    assert 4 == locate(text, ("sources", "a", "type"))
