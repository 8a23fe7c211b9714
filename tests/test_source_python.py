"""The ``python`` source: a callable named by import path answers the queries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gatekeeper import ConfigError, Measurement, PluginContext, Query
from gatekeeper.sources import python

AT = datetime(2026, 1, 1, tzinfo=UTC)
CONTEXT = PluginContext(base_dir=Path(), env={})


def revenue(query: Query) -> float:
    return 10.7 if query.variant == "canary" else 10.0


async def async_revenue(query: Query) -> float:
    await asyncio.sleep(0)
    return 11.0


def nothing(query: Query) -> None:
    return None


def text(query: Query) -> str:
    return "12"


def flag(query: Query) -> bool:
    return True


def broken(query: Query) -> float:
    raise RuntimeError("kpi service down")


def measure(path: str, variant: str = "canary") -> Measurement:
    source = python.create("kpi", {"callable": f"test_source_python:{path}"}, CONTEXT)
    query = Query(metric="revenue", text="", at=AT, window=timedelta(minutes=5), variant=variant)
    return asyncio.run(source.query(query))


@pytest.mark.parametrize(
    ("path", "variant", "value"),
    [("revenue", "canary", 10.7), ("revenue", "baseline", 10.0), ("async_revenue", "canary", 11.0)],
)
def test_def_and_async_def_callables_give_values(path: str, variant: str, value: float) -> None:
    """Plain and async functions both answer, per variant."""
    m = measure(path, variant)
    assert (value, None, variant) == (m.value, m.problem, m.variant)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("nothing", "the callable returned no data"),
        ("text", "the callable returned str, not a number"),
        ("flag", "the callable returned bool, not a number"),
        ("broken", "the callable raised RuntimeError: kpi service down"),
    ],
)
def test_anything_but_a_number_is_no_data_with_the_reason(path: str, reason: str) -> None:
    """None, strings, booleans and exceptions never become values."""
    m = measure(path)
    assert (None, reason) == (m.value, m.problem)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "expected 'package.module:function'"),
        ("no_such_module_here:f", "cannot import 'no_such_module_here'"),
        ("test_source_python:missing", "has no 'missing'"),
        ("test_source_python:AT", "is not callable"),
    ],
)
def test_a_bad_import_path_is_a_config_error(target: str, message: str) -> None:
    """The callable is resolved when the plan is validated, with the option named."""
    with pytest.raises(ConfigError, match=message) as info:
        python.create("kpi", {"callable": target}, CONTEXT)
    assert "callable" == info.value.key
