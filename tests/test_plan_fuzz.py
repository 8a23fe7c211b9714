"""Fuzzing the shipped plans: every mutation loads or is one located PlanError.

The seeds are ``examples/*/gates*.toml`` and a plan with every calendar key. A
mutation replaces a value with one of another type, a huge, negative or non-finite
one; replaces a string's content; deletes, duplicates or cuts lines (duplicate keys,
missing keys); or inserts a control character. Each mutated plan either loads, and
then ``gatekeeper.validate`` raises nothing but PlanError (and a rehearsal of the
reference and the calendar plan completes), or raises PlanError with the file and a
line inside it. Never another exception.

Run with ``-s`` to see what was exercised::

    .venv/bin/python -m pytest tests/test_plan_fuzz.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gatekeeper
from gatekeeper import Plan
from gatekeeper._planfile import load_plan
from gatekeeper._plugins import default_plugins
from gatekeeper.exceptions import PlanError
from strategies import (
    JUNK_STRING_CONTENTS,
    JUNK_TOML_VALUES,
    RAW_CONTROL_CHARACTERS,
    SELF_REFERENCE,
    python_junk,
)

EXAMPLES = Path(__file__).parent.parent / "examples"
# A plan with every calendar key (no example has one): time zone, windows, freezes,
# start_at, ask_at, on_deadline.
CALENDAR_PLAN = """\
[plan]
name = "checkout"
timezone = "Europe/Berlin"

[windows.staffed]
days = "mon-fri"
hours = "09:00-18:00"

[freezes.year-end]
from = "2026-12-20T00:00:00Z"
to = "2027-01-05T00:00:00Z"
reason = "year end"

[freezes.weekend]
days = "sat-sun"
hours = "00:00-24:00"

[sources.s]
type = "static"
values = { x = 1.0 }

[metrics.x]
source = "s"

[traffic]
type = "memory"

[policy]
window = "staffed"

[[phases]]
name = "canary"
traffic = 1
checkpoints = ["15m", "30m"]
gate = ["x < 2"]

[[phases]]
name = "ramp"
traffic = 10
start_at = "14:00"
approval = { prompt = "go/no-go", ask_at = "13:00", on_deadline = "reject" }
checkpoints = ["15m"]
gate = ["x < 2"]

[[phases]]
name = "rollout"
traffic = 100
start_at = "+1d 16:00"
window = "staffed"
checkpoints = ["1h"]
gate = ["x < 2"]
"""
_SEED_DIR = Path(tempfile.mkdtemp(prefix="gatekeeper-fuzz-seed-")) / "calendar"
_SEED_DIR.mkdir()
(_SEED_DIR / "gates.toml").write_text(CALENDAR_PLAN)
(_SEED_DIR / "x.csv").write_text("at,metric,value\n0,x,1\n")
SEEDS = [*sorted(EXAMPLES.glob("*/gates*.toml")), _SEED_DIR / "gates.toml"]
# The seeds rehearsed when a mutation of them validates, and their recordings.
REHEARSED = {
    EXAMPLES / "progressive-rollout" / "gates.toml": EXAMPLES
    / "progressive-rollout"
    / "healthy.csv",
    _SEED_DIR / "gates.toml": _SEED_DIR / "x.csv",
}
TEXTS = {seed: seed.read_text() for seed in SEEDS}
PLUGINS = default_plugins()
# Modest by default (the suite stays fast); GATEKEEPER_FUZZ_EXAMPLES=5000 for a deep run.
EXAMPLES_PER_TEST = int(os.environ.get("GATEKEEPER_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES_PER_TEST,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

T = TypeVar("T")

# What the fuzzers exercised, printed at the end of the module (run with -s).
COUNTS: Counter[str] = Counter()

_ASSIGNMENT = re.compile(r"^(\s*[A-Za-z0-9_.\"'-]+\s*=\s*)(.+)$")
_STRING = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'")


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    lines = [f"{key}: {COUNTS[key]}" for key in sorted(COUNTS)]
    print("\nplan fuzz counts\n  " + "\n  ".join(lines), file=sys.stderr)


def test_the_seeds_load_and_validate() -> None:
    """Every example plan is valid as shipped: the fuzzers start from good plans."""
    assert len(SEEDS) >= 4
    for seed in SEEDS:
        gatekeeper.validate(load_plan(seed), plugins=PLUGINS)


@st.composite
def mutated_texts(draw: st.DrawFn) -> tuple[Path, str, str]:
    """(seed, mutated text, what was done) for one mutation of one example plan."""
    seed = draw(st.sampled_from(SEEDS))
    lines = TEXTS[seed].split("\n")
    kind = draw(
        st.sampled_from(
            ["value", "value", "value", "string", "string", "delete", "duplicate", "cut", "control"]
        )
    )
    if kind == "value":
        candidates = [i for i, line in enumerate(lines) if _ASSIGNMENT.match(line)]
        index = draw(st.sampled_from(candidates))
        match = _ASSIGNMENT.match(lines[index])
        assert match is not None
        lines[index] = match.group(1) + draw(st.sampled_from(JUNK_TOML_VALUES))
    elif kind == "string":
        spans = [
            (i, m.start(), m.end())
            for i, line in enumerate(lines)
            if not line.lstrip().startswith("#")
            for m in _STRING.finditer(line)
        ]
        index, start, end = draw(st.sampled_from(spans))
        content = draw(st.sampled_from(JUNK_STRING_CONTENTS))
        line = lines[index]
        lines[index] = line[:start] + '"' + content + '"' + line[end:]
    elif kind == "delete":
        del lines[draw(st.integers(0, len(lines) - 1))]
    elif kind == "duplicate":
        index = draw(st.integers(0, len(lines) - 1))
        lines.insert(index, lines[index])
    elif kind == "cut":
        text = "\n".join(lines)
        return seed, text[: draw(st.integers(0, len(text)))], kind
    else:
        text = "\n".join(lines)
        at = draw(st.integers(0, len(text)))
        return seed, text[:at] + draw(st.sampled_from(RAW_CONTROL_CHARACTERS)) + text[at:], kind
    return seed, "\n".join(lines), kind


_WORK = Path(tempfile.mkdtemp(prefix="gatekeeper-fuzz-"))


def _write(seed: Path, text: str) -> Path:
    """The mutated plan as a file (beside nothing the seed needs: no example plan
    reads files relative to itself)."""
    path = _WORK / seed.parent.name / seed.name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _assert_located(error: PlanError, path: Path, text: str) -> None:
    assert str(path) == error.file, str(error)
    assert error.line is not None, str(error)
    assert 1 <= error.line <= text.count("\n") + 1, str(error)
    assert "\n" not in str(error) and len(str(error)) < 2000


@FUZZ
@given(mutated_texts())
def test_a_mutated_plan_file_loads_or_is_a_located_error(case: tuple[Path, str, str]) -> None:
    """Loads (then validate raises only PlanError, and a rehearsal of the reference
    plan completes) or raises PlanError with the file and a line in it."""
    seed, text, kind = case
    COUNTS[f"plans fuzzed (text, {kind})"] += 1
    path = _write(seed, text)
    plan, error = _attempt(load_plan, path)
    if error is not None:
        _assert_located(error, path, text)
        COUNTS["plans: located load error"] += 1
        return
    assert plan is not None
    COUNTS["plans: loaded"] += 1
    _, error = _attempt(gatekeeper.validate, plan, plugins=PLUGINS)
    if error is not None:
        assert error.file == str(path), str(error)
        COUNTS["plans: loaded, validate PlanError"] += 1
        return
    COUNTS["plans: loaded and validated"] += 1
    if seed in REHEARSED:
        _rehearse(plan, REHEARSED[seed])


def _attempt(
    call: Callable[..., T], *args: Any, **kwargs: Any
) -> tuple[T | None, PlanError | None]:
    """(result, None), or (None, the PlanError): anything else propagates and fails."""
    try:
        return call(*args, **kwargs), None
    except PlanError as error:
        return None, error


def _rehearse(plan: Plan, recording: Path) -> None:
    try:
        result = gatekeeper.rehearse(plan, recording, plugins=PLUGINS)
    except PlanError:  # the recording names a metric the mutated plan lost
        COUNTS["plans: rehearsal PlanError"] += 1
        return
    COUNTS[f"plans: rehearsed, {result.outcome.value}"] += 1


def _key_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _key_paths(item, (*prefix, index))
    return found


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_a_mutated_plan_mapping_is_a_plan_error(seed: Path, data: st.DataObject) -> None:
    """Plan.from_mapping (Python values TOML cannot write: None, tuples, objects,
    self-references, keys that are not strings) on an example plan with a value
    replaced, a key deleted or an odd key added loads or raises PlanError."""
    import tomllib  # noqa: PLC0415 - only this test reads the seeds as mappings

    mapping = tomllib.loads(TEXTS[seed])
    path = data.draw(st.sampled_from(_key_paths(mapping)))
    target: Any = mapping
    for part in path[:-1]:
        target = target[part]
    action = data.draw(st.sampled_from(["delete", "key", "replace", "replace"]))
    if action == "delete" and isinstance(target, dict):
        del target[path[-1]]
        COUNTS["mappings fuzzed (delete)"] += 1
    elif action == "key" and isinstance(target, dict):
        target[data.draw(st.sampled_from([None, 1, 1.5, ("a",), True, ""]))] = "x"
        COUNTS["mappings fuzzed (odd key)"] += 1
    else:
        junk = data.draw(python_junk)
        target[path[-1]] = mapping if junk is SELF_REFERENCE else junk
        COUNTS["mappings fuzzed (replace)"] += 1
    plan, error = _attempt(Plan.from_mapping, mapping, path="gates.toml")
    if error is not None:
        assert "gates.toml" == error.file
        assert "\n" not in str(error) and len(str(error)) < 2000
        COUNTS["mappings: PlanError"] += 1
        return
    assert plan is not None
    COUNTS["mappings: loaded"] += 1
    _, error = _attempt(gatekeeper.validate, plan, plugins=PLUGINS)
    COUNTS[
        "mappings: loaded, validate PlanError" if error else "mappings: loaded and validated"
    ] += 1
