"""Fuzzing the shipped recordings: every mutation loads or is one located PlanError.

The seeds are ``examples/progressive-rollout/*.csv``. A mutation replaces a cell
with another type, a huge, negative or non-finite value, an unknown variant or an
escape sequence; deletes, duplicates or cuts lines; adds a cell; or inserts a
control character. Each mutated recording either loads, and then a rehearsal of the
reference plan against it completes (a PlanError for a metric the plan lacks is
fine), or raises PlanError with the file and a line inside it.

Run with ``-s`` to see what was exercised::

    .venv/bin/python -m pytest tests/test_recording_fuzz.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gatekeeper
from gatekeeper import Recording
from gatekeeper._planfile import load_plan
from gatekeeper._plugins import default_plugins
from gatekeeper.exceptions import PlanError
from strategies import JUNK_RECORDING_CELLS, RAW_CONTROL_CHARACTERS

EXAMPLE = Path(__file__).parent.parent / "examples" / "progressive-rollout"
SEEDS = sorted(EXAMPLE.glob("*.csv"))
TEXTS = {seed: seed.read_text() for seed in SEEDS}
PLAN = load_plan(EXAMPLE / "gates.toml")
PLUGINS = default_plugins()

# Modest by default (the suite stays fast); GATEKEEPER_FUZZ_EXAMPLES=5000 for a deep run.
EXAMPLES_PER_TEST = int(os.environ.get("GATEKEEPER_FUZZ_EXAMPLES", "300"))
COUNTS: Counter[str] = Counter()
_WORK = Path(tempfile.mkdtemp(prefix="gatekeeper-fuzz-"))


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    lines = [f"{key}: {COUNTS[key]}" for key in sorted(COUNTS)]
    print("\nrecording fuzz counts\n  " + "\n  ".join(lines), file=sys.stderr)


@st.composite
def mutated_recordings(draw: st.DrawFn) -> tuple[str, str]:
    """(mutated text, what was done) for one mutation of one shipped recording."""
    seed = draw(st.sampled_from(SEEDS))
    lines = TEXTS[seed].split("\n")
    data = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    kind = draw(
        st.sampled_from(["cell", "cell", "cell", "delete", "duplicate", "cut", "extra", "control"])
    )
    if kind == "cell":
        index = draw(st.sampled_from(data))
        cells = lines[index].split(",")
        column = draw(st.integers(0, len(cells) - 1))
        cells[column] = draw(st.sampled_from(JUNK_RECORDING_CELLS))
        lines[index] = ",".join(cells)
    elif kind == "delete":
        del lines[draw(st.sampled_from(data))]
    elif kind == "duplicate":
        index = draw(st.sampled_from(data))
        lines.insert(index, lines[index])
    elif kind == "extra":
        index = draw(st.sampled_from(data))
        lines[index] += "," + draw(st.sampled_from(JUNK_RECORDING_CELLS))
    elif kind == "cut":
        text = "\n".join(lines)
        return text[: draw(st.integers(0, len(text)))], kind
    else:
        text = "\n".join(lines)
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(RAW_CONTROL_CHARACTERS)) + text[at:], kind
    return "\n".join(lines), kind


@settings(
    max_examples=EXAMPLES_PER_TEST,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_recordings())
def test_a_mutated_recording_loads_or_is_a_located_error(case: tuple[str, str]) -> None:
    """Loads (and the reference plan rehearses against it to the end) or raises
    PlanError with the file and a line in it."""
    text, kind = case
    COUNTS[f"recordings fuzzed ({kind})"] += 1
    path = _WORK / "recording.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    recording, error = _load(path)
    if error is not None:
        assert str(path) == error.file, str(error)
        assert error.line is not None, str(error)
        assert 1 <= error.line <= text.count("\n") + 1, str(error)
        assert "\n" not in str(error) and len(str(error)) < 2000
        COUNTS["recordings: located error"] += 1
        return
    assert recording is not None
    COUNTS["recordings: loaded"] += 1
    try:
        result = gatekeeper.rehearse(PLAN, recording, plugins=PLUGINS)
    except PlanError:  # the recording names a metric the plan does not know
        COUNTS["recordings: loaded, rehearsal PlanError"] += 1
        return
    COUNTS[f"recordings: rehearsed, {result.outcome.value}"] += 1


def _load(path: Path) -> tuple[Recording | None, PlanError | None]:
    try:
        return Recording.load(path), None
    except PlanError as error:
        return None, error
