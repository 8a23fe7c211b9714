"""Shared hypothesis strategies for the core: durations, criteria, policies, plans.

Everything here is valid by construction; tests that want broken input break it
themselves, so a failure always points at the code, not at the generator.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from gatekeeper._grammar import Parsed, Quantity
from gatekeeper._model import (
    COMPARISONS,
    Criterion,
    Kind,
    Measurement,
    OnFail,
    OnInconclusive,
    Outcome,
    Policy,
    Reference,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# Metric units a plan may declare, and the bound units that fit each of them.
FITTING_UNITS: dict[str, tuple[str, ...]] = {
    "": ("", "%", "ms", "s"),
    "ratio": ("", "%"),
    "percent": ("", "%"),
    "s": ("", "ms", "s"),
    "ms": ("", "ms", "s"),
}

# Text a person may write in a description: no control characters (newlines and tabs
# aside) and no bidirectional overrides, which the loader refuses.
printable = st.one_of(
    st.characters(blacklist_categories=("Cc", "Cs", "Cf")), st.sampled_from("\n\t")
)

metric_names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(
    lambda name: name not in {"baseline", "prerun", "canary", "stable", "within", "over"}
)

# Whole milliseconds up to ~40 days: the resolution format_duration keeps.
durations = st.integers(min_value=0, max_value=40 * 86_400_000).map(
    lambda ms: timedelta(milliseconds=ms)
)
positive_durations = durations.filter(bool)


@st.composite
def duration_texts(draw: st.DrawFn) -> tuple[str, timedelta]:
    """A duration as a plan writes it ("4h30m", "90", "1d2h") and its value, within
    the 400-day limit of one duration."""
    if draw(st.booleans()):
        seconds = draw(st.integers(min_value=0, max_value=10**7))
        return str(seconds), timedelta(seconds=seconds)
    units = draw(
        st.lists(st.sampled_from(["d", "h", "m", "s", "ms"]), min_size=1, max_size=5, unique=True)
    )
    order = ["d", "h", "m", "s", "ms"]
    text = ""
    total = timedelta(0)
    for unit in sorted(units, key=order.index):
        value = draw(st.integers(min_value=0, max_value=300 if unit == "d" else 999))
        text += f"{value}{unit}"
        total += {
            "d": timedelta(days=value),
            "h": timedelta(hours=value),
            "m": timedelta(minutes=value),
            "s": timedelta(seconds=value),
            "ms": timedelta(milliseconds=value),
        }[unit]
    return text, total


@st.composite
def numbers(draw: st.DrawFn, *, whole: bool = False) -> tuple[str, float]:
    """A non-negative number as text ("3", "0.25", ".5", "1e-3") and its value."""
    if whole:
        n = draw(st.integers(min_value=0, max_value=10**6))
        return str(n), float(n)
    text = draw(
        st.one_of(
            st.integers(min_value=0, max_value=10**6).map(str),
            st.builds(
                lambda i, f: f"{i}.{f}",
                st.integers(min_value=0, max_value=9999),
                st.from_regex(r"[0-9]{1,4}", fullmatch=True),
            ),
            st.from_regex(r"\.[0-9]{1,3}", fullmatch=True),
            st.builds(
                lambda m, e: f"{m}e{e}",
                st.integers(min_value=1, max_value=99),
                st.integers(min_value=-6, max_value=3),
            ),
        )
    )
    return text, float(text)


@st.composite
def quantities(draw: st.DrawFn, units: tuple[str, ...] = ("", "%", "ms", "s")) -> Quantity:
    """A quantity (number and unit) drawn from the given units."""
    _, value = draw(numbers())
    return Quantity(value=value, unit=draw(st.sampled_from(units)))


def quantity_text(quantity: Quantity) -> str:
    """How a quantity is written: ``repr`` keeps every digit of the float."""
    return f"{quantity.value!r}{quantity.unit}"


@st.composite
def criteria(draw: st.DrawFn, metric: str | None = None, unit: str = "") -> tuple[str, Parsed]:
    """Any form of the grammar, for a metric of ``unit``: the text and what it parses to.

    threshold (``x < 0.5%``), relative to baseline or prerun with factor and offset
    (``x >= baseline * 1.058 + 2ms``), the ``canary <= baseline * F`` compare form,
    the ``canary < RATE`` statistical bound (rate metrics), and
    ``stable within X% [over D]``.
    """
    name = metric if metric is not None else draw(metric_names)
    units = FITTING_UNITS.get(unit, ("",))
    sp = draw(st.sampled_from([" ", "  "]))
    forms = ["threshold", "relative", "compare", "stable"]
    if unit in ("", "ratio", "percent"):
        forms.append("canary bound")  # the statistical bound: a rate in (0%, 100%)
    form = draw(st.sampled_from(forms))
    if form == "stable":
        tolerance = Quantity(value=draw(numbers())[1], unit="%")
        text = f"{name} stable within {quantity_text(tolerance)}"
        window = None
        if draw(st.booleans()):
            window_text, window = draw(duration_texts())
            text += f"{sp}over{sp}{window_text}"
        return text, Parsed(text=text, metric=name, stable_within=tolerance, window=window)
    if form == "compare":
        factor = draw(st.floats(min_value=1.0, max_value=5.0, allow_nan=False))
        text = f"{name} canary{sp}<={sp}baseline * {factor!r}"
        return text, Parsed(
            text=text,
            metric=name,
            op="<=",
            reference=Reference.BASELINE,
            factor=factor,
            canary=True,
        )
    op = draw(st.sampled_from(COMPARISONS))
    if form == "canary bound":
        rate = Quantity(value=draw(st.sampled_from([0.1, 0.5, 1.0, 2.5, 50.0, 99.9])), unit="%")
        text = f"{name} canary{sp}{op}{sp}{quantity_text(rate)}"
        return text, Parsed(text=text, metric=name, op=op, bound=rate, canary=True)
    if form == "threshold":
        bound = draw(quantities(units))
        text = f"{name}{sp}{op}{sp}{quantity_text(bound)}"
        return text, Parsed(text=text, metric=name, op=op, bound=bound)
    reference = draw(st.sampled_from(list(Reference)))
    text = f"{name} {op} {reference.value}"
    factor = 1.0
    if draw(st.booleans()):
        factor = draw(st.floats(min_value=0.01, max_value=100.0, allow_nan=False))
        text += f" * {factor!r}"
    offset: Quantity | None = None
    if draw(st.booleans()):
        written = draw(quantities(units))
        sign = draw(st.sampled_from(["+", "-"]))
        text += f"{sp}{sign}{sp}{quantity_text(written)}"
        offset = Quantity(value=-written.value if sign == "-" else written.value, unit=written.unit)
    return text, Parsed(
        text=text, metric=name, op=op, reference=reference, factor=factor, offset=offset
    )


criterion_texts = criteria().map(lambda pair: pair[0])

policies = st.builds(
    Policy,
    on_fail=st.sampled_from(list(OnFail)),
    on_inconclusive=st.sampled_from(list(OnInconclusive)),
    failure_limit=st.integers(min_value=1, max_value=5),
    consecutive_failure_limit=st.integers(min_value=1, max_value=5),
    inconclusive_limit=st.integers(min_value=1, max_value=5),
    recheck_interval=positive_durations,
)

outcomes = st.sampled_from(list(Outcome))


def policy_mapping(policy: Policy) -> dict[str, Any]:
    """The plan-file table of a policy, every key spelled out."""
    from gatekeeper._units import format_duration  # noqa: PLC0415 - keeps imports together

    return {
        "on_fail": policy.on_fail.value,
        "on_inconclusive": policy.on_inconclusive.value,
        "failure_limit": policy.failure_limit,
        "consecutive_failure_limit": policy.consecutive_failure_limit,
        "inconclusive_limit": policy.inconclusive_limit,
        "recheck_interval": format_duration(policy.recheck_interval),
    }


@st.composite
def metric_tables(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """Named metric tables over the source ``src``: plain, ratio and count metrics."""
    names = draw(st.lists(metric_names, min_size=1, max_size=4, unique=True))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        shape = draw(st.sampled_from(["query", "ratio", "count"]))
        table: dict[str, Any] = {"source": "src"}
        if shape == "ratio":
            table["numerator"] = f"errors_{name}"
            table["denominator"] = f"requests_{name}"
        else:
            table["query"] = f'metric_{name}{{version="{{{{variant}}}}"}}'
        if shape == "count":
            table["count"] = True
        else:
            unit = draw(st.sampled_from(sorted(FITTING_UNITS)))
            if unit:
                table["unit"] = unit
        if shape == "ratio" and draw(st.integers(min_value=0, max_value=3)) == 0:
            size = draw(st.sampled_from(["30%", "5%", 0.3, 1.5]))
            lasting = draw(st.sampled_from(["15m", "1s", "2h30m", "7d", "90"]))
            table["bursts"] = {"size": size, "lasting": lasting}
        if shape == "query" and draw(st.integers(min_value=0, max_value=3)) == 0:
            low = draw(st.integers(min_value=-5, max_value=5))
            table["bounds"] = [low, low + draw(st.integers(min_value=1, max_value=100))]
        if draw(st.booleans()):
            table["window"] = draw(duration_texts())[0]
        out[name] = table
    return out


@st.composite
def gate_for(draw: st.DrawFn, metrics: dict[str, dict[str, Any]]) -> list[Any]:
    """A non-empty gate whose criteria all fit their metric's unit."""
    out: list[Any] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        name = draw(st.sampled_from(sorted(metrics)))
        table = metrics[name]
        if table.get("count"):
            op = draw(st.sampled_from(COMPARISONS))
            text = f"{name} {op} {draw(numbers(whole=True))[0]}"
        else:
            text, _ = draw(criteria(metric=name, unit=table.get("unit", "")))
            if " canary" in text and (
                "window" in table  # a compare needs cumulative counts: no window
                or ("numerator" not in table and "baseline" not in text)  # a bound: a rate
                or not ({"numerator", "count", "bounds"} & set(table))  # data it can judge
            ):
                text = f"{name} > 0"
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            out.append({"criterion": text, "fail_only": True, "alpha": 0.0005})
        else:
            out.append(text)
    return out


@st.composite
def checkpoint_lists(draw: st.DrawFn) -> list[str] | dict[str, str]:
    """Increasing checkpoint offsets as written, or an ``{every, until}`` series."""
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        every = draw(st.integers(min_value=1, max_value=24))
        return {"every": f"{every}h", "until": f"{every * draw(st.integers(1, 12))}h"}
    steps = draw(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=6))
    out: list[str] = []
    minutes = 0
    for step in steps:
        minutes += step
        out.append(draw(st.sampled_from([f"{minutes}m", str(minutes * 60)])))
    return out


@st.composite
def phase_tables(draw: st.DrawFn, name: str, metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One ``[[phases]]`` table, with optional policy, approval and description."""
    table: dict[str, Any] = {
        "name": name,
        "traffic": draw(
            st.one_of(
                st.integers(min_value=0, max_value=100),
                st.floats(min_value=0, max_value=100, allow_nan=False),
            )
        ),
        "checkpoints": draw(checkpoint_lists()),
        "gate": draw(gate_for(metrics)),
    }
    if draw(st.booleans()):
        table["policy"] = policy_mapping(draw(policies))
    approval = draw(st.sampled_from([None, True, "go?", "table"]))
    if approval == "table":
        table["approval"] = {"prompt": "ship it?", "timeout": draw(duration_texts())[0]}
    elif approval is not None:
        table["approval"] = approval
    if draw(st.booleans()):
        table["description"] = draw(st.text(printable, max_size=20))
    if draw(st.booleans()):
        table["gate_alpha"] = draw(st.floats(min_value=0.001, max_value=0.5))
    return table


@st.composite
def plan_mappings(draw: st.DrawFn) -> dict[str, Any]:
    """A whole plan mapping that loads, shaped like the TOML file."""
    metrics = draw(metric_tables())
    names = draw(st.lists(metric_names, min_size=1, max_size=4, unique=True))
    mapping: dict[str, Any] = {
        "plan": {"name": draw(metric_names)},
        "sources": {"src": {"type": "static", "values": {"x": 1.0}}},
        "metrics": metrics,
        "traffic": {"type": "memory"},
        "phases": [draw(phase_tables(name, metrics)) for name in names],
    }
    if draw(st.booleans()):
        mapping["policy"] = policy_mapping(draw(policies))
    if draw(st.booleans()):
        mapping["variants"] = {"canary": "v2", "baseline": "v1"}
    if draw(st.booleans()):
        mapping["args"] = {"service": "checkout"}
    if draw(st.booleans()):
        mapping["plan"]["description"] = "generated"
    return mapping


# -- measurements ----------------------------------------------------------------------

finite_values = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)


def measurement(value: float | None, **changes: Any) -> Measurement:
    """A canary measurement at ``T0``."""
    return Measurement(metric=changes.pop("metric", "m"), at=T0, value=value, **changes)


@st.composite
def problem_measurements(draw: st.DrawFn) -> Measurement:
    """A measurement that cannot be judged: no data, NaN, ±Inf, an error, a warning."""
    kind = draw(st.sampled_from(["none", "nan", "inf", "-inf", "reason", "warning"]))
    value: float | None = draw(finite_values)
    reason = None
    warnings: tuple[str, ...] = ()
    if kind == "none":
        value = None
    elif kind == "nan":
        value = math.nan
    elif kind == "inf":
        value = math.inf
    elif kind == "-inf":
        value = -math.inf
    elif kind == "reason":
        reason = draw(st.sampled_from(["source error: 503", "empty result"]))
    else:
        warnings = ("partial response",)
    return measurement(value, reason=reason, warnings=warnings)


def threshold_criterion(op: str, bound: float, *, unit: str = "", count: bool = False) -> Criterion:
    """A threshold (or count) criterion without going through the grammar."""
    return Criterion(
        text=f"m {op} {bound}",
        kind=Kind.COUNT if count else Kind.THRESHOLD,
        metric="m",
        op=op,
        bound=bound,
        unit=unit,
    )


# -- hostile input ------------------------------------------------------------------------
# Values the fuzzers put where a plan or a recording had a good one: other types,
# huge, negative, non-finite, deeply nested, control characters, misspelled
# placeholders. Each once crashed, hung or validated somewhere (issue 10).

JUNK_TOML_VALUES: tuple[str, ...] = (
    '"x"',
    "''",
    "-1",
    "0",
    "1e15",
    "-1e15",
    "1e308",
    "-0.0",
    "0.0001",
    "nan",
    "inf",
    "-inf",
    "true",
    "[]",
    "{}",
    '["5s"]',
    "[[]]",
    "{ a = 1 }",
    "99999999999",
    "9" * 5000,
    '"99999999999d"',
    '"999999999d"',
    '"400d"',
    '"401d"',
    '"-5m"',
    "1979-05-27",
    "12:00:00",
    '"\\u001b[31m"',
    '"a\\nb"',
    '"\\u202e"',
    '"{{ap}}"',
    '"' + "x" * 20_000 + '"',
    "[" * 60 + "]" * 60,
    "[" * 3000 + "]" * 3000,
    "{ a = " * 40 + "1" + " }" * 40,
    "[" + ", ".join(str(i + 1) for i in range(20_000)) + "]",
)

# What a string in a plan may be replaced by (the text between its quotes).
JUNK_STRING_CONTENTS: tuple[str, ...] = (
    "",
    " ",
    "99999999999d",
    "1e15",
    "nan",
    "-1",
    "0.0001",
    "\\u001b[2J",
    "\\r",
    "{{ap}}",
    "{{ variant }}",
    "x" * 5000,
    "canary",
    "error_rate",
    "memory",
    "prometheus",
    "replay",
)

RAW_CONTROL_CHARACTERS: tuple[str, ...] = (
    "\x00",
    "\x1b",
    "\r",
    "\x7f",
    "\x85",
    "\u2028",
    "\ufeff",
    "\t",
    "\n",
    "\udcff",  # a lone surrogate: written as it is, then not UTF-8
)

# What a cell of a recording may be replaced by.
JUNK_RECORDING_CELLS: tuple[str, ...] = (
    "",
    " ",
    "99999999999d",
    "1e15",
    "4000d",
    "4001d",
    "-1",
    "-0",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "1e-300",
    "0.0001",
    "1h 30m",
    "x" * 200_000,  # over the csv module's field limit
    '"unterminated',
    "\x1b[2J",
    "approval:ramp",
    "error_rate.numerator",
    "canary",
    "baseline",
    "other",
    "9" * 5000,
)

SELF_REFERENCE = object()  # stands for "the mapping itself": a cycle

# Python values for Plan.from_mapping, beyond what TOML can write.
python_junk: st.SearchStrategy[object] = st.sampled_from(
    [
        None,
        (),
        ("15m",),
        {"a": None},
        b"bytes",
        object(),
        SELF_REFERENCE,
        10**5000,
        -(10**400),
        math.nan,
        math.inf,
        1e300,
        "\x1b[31m",
        "x" * 100_000,
        datetime(2026, 1, 1, tzinfo=UTC),
        timedelta(days=10**6),
        [[[[[[[[]]]]]]]] * 3,
        list(range(20_000)),
    ]
)
