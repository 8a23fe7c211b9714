"""locate(): the line of a key path in TOML text, for errors found after parsing."""

from __future__ import annotations

import pytest

from gatekeeper._locate import PathPart, format_path, locate

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
