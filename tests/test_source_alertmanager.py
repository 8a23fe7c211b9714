"""The alertmanager source against a real Alertmanager: counts, names, silences."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatekeeper._model import Measurement, Query
from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import ConfigError
from gatekeeper.sources import alertmanager as am
from realservers import wait_until
from realservers.alertmanager import AlertmanagerServer

CONTEXT = PluginContext(base_dir=Path(), env={})


def ask(
    server: AlertmanagerServer, text: str, *, at: datetime | None = None, **options: Any
) -> Measurement:
    source = am.create("am", {"url": server.url}, CONTEXT)
    query = Query(
        metric="incidents",
        text=text,
        at=at or datetime.now(UTC),
        window=timedelta(minutes=5),
        args={"service": "api"},
        options=options,
    )

    async def go() -> Measurement:
        try:
            return await source.query(query)
        finally:
            await source.aclose()

    return asyncio.run(go())


def _processed(server: AlertmanagerServer, test: str, count: int) -> bool:
    alerts = server.alerts(filter=f'test="{test}"')
    return len(alerts) == count and all(a["status"]["state"] != "unprocessed" for a in alerts)


@pytest.mark.servers
def test_counts_active_critical_alerts_and_names_them(alertmanager: AlertmanagerServer) -> None:
    """Only active alerts matching every matcher count; silenced ones and other
    severities or services do not; the names say which incidents they are."""
    test = "count"
    alertmanager.raise_alerts(
        [
            {"alertname": "HighErrorRate", "severity": "critical", "service": "api", "test": test},
            {
                "alertname": "PodCrashLooping",
                "severity": "critical",
                "service": "api",
                "test": test,
                "pod": "a",
            },
            {
                "alertname": "PodCrashLooping",
                "severity": "critical",
                "service": "api",
                "test": test,
                "pod": "b",
            },
            {"alertname": "DiskFull", "severity": "critical", "service": "api", "test": test},
            {"alertname": "LatencyHigh", "severity": "warning", "service": "api", "test": test},
            {"alertname": "WebDown", "severity": "critical", "service": "web", "test": test},
        ]
    )
    alertmanager.silence({"alertname": "DiskFull", "test": test})
    wait_until(lambda: _processed(alertmanager, test, 6), timeout=10, what="alerts processed")

    measured = ask(alertmanager, f'severity="critical", service="{{{{service}}}}", test="{test}"')

    assert measured.value == 3.0
    assert measured.labels == ("HighErrorRate", "PodCrashLooping (2)")
    assert measured.problem is None
    assert 'service="api"' in measured.query


@pytest.mark.servers
def test_matchers_option_table_and_regex(alertmanager: AlertmanagerServer) -> None:
    """Matchers may come from the metric's ``matchers`` option, regexes included."""
    test = "option"
    alertmanager.raise_alerts(
        [
            {"alertname": "A", "severity": "critical", "test": test},
            {"alertname": "B", "severity": "page", "test": test},
            {"alertname": "C", "severity": "warning", "test": test},
        ]
    )
    wait_until(lambda: _processed(alertmanager, test, 3), timeout=10, what="alerts processed")

    measured = ask(alertmanager, "", matchers=[f'test="{test}"', 'severity=~"critical|page"'])
    as_table = ask(alertmanager, "", matchers={"test": test, "severity": "warning"})

    assert (measured.value, measured.labels) == (2.0, ("A", "B"))
    assert (as_table.value, as_table.labels) == (1.0, ("C",))


@pytest.mark.servers
def test_no_matching_alert_is_zero(alertmanager: AlertmanagerServer) -> None:
    """No matching alert is a real zero (the server answered), not missing data."""
    measured = ask(alertmanager, 'test="nothing-raised-here"')
    assert (measured.value, measured.labels, measured.problem) == (0.0, (), None)


@pytest.mark.servers
def test_a_past_moment_has_no_answer(alertmanager: AlertmanagerServer) -> None:
    """Alertmanager has no history: a rehearsal of last week gets no data, not today's count."""
    measured = ask(alertmanager, 'severity="critical"', at=datetime.now(UTC) - timedelta(days=7))
    assert measured.value is None
    assert measured.problem is not None
    assert "keeps no history" in measured.problem


@pytest.mark.servers
def test_injected_value_stays_one_matcher(alertmanager: AlertmanagerServer) -> None:
    """A placeholder value with quotes and commas stays inside its own matcher."""
    test = "inject"
    alertmanager.raise_alerts([{"alertname": "Z", "service": 'api", test="x', "test": test}])
    wait_until(lambda: _processed(alertmanager, test, 1), timeout=10, what="alerts processed")
    source = am.create("am", {"url": alertmanager.url}, CONTEXT)
    query = Query(
        metric="m",
        text='service="{{service}}"',
        at=datetime.now(UTC),
        window=timedelta(minutes=5),
        args={"service": 'api", test="x'},
    )

    async def go() -> Measurement:
        try:
            return await source.query(query)
        finally:
            await source.aclose()

    measured = asyncio.run(go())
    assert (measured.value, measured.labels) == (1.0, ("Z",))


def test_parse_matchers() -> None:
    """Braces optional, quoted values keep commas and escaped quotes, bare words allowed."""
    parsed = am.parse_matchers(r'{a="x, y", b!~"q\"r", c=bare}')
    assert [(m.name, m.op, m.value) for m in parsed] == [
        ("a", "=", "x, y"),
        ("b", "!~", 'q"r'),
        ("c", "=", "bare"),
    ]
    assert str(parsed[1]) == r'b!~"q\"r"'


def test_bad_options_are_config_errors() -> None:
    """Unknown source options and malformed matchers fail at plan load, naming the key."""
    with pytest.raises(ConfigError) as unknown:
        am.create("am", {"url": "http://127.0.0.1:1", "matcher": []}, CONTEXT)
    assert unknown.value.key == "matcher"
    with pytest.raises(ConfigError) as bad:
        am.create("am", {"url": "http://127.0.0.1:1", "matchers": ["=oops"]}, CONTEXT)
    assert bad.value.key == "matchers[0]"


@pytest.mark.servers
def test_metric_without_query_uses_option_matchers(alertmanager: AlertmanagerServer) -> None:
    """A metric with no query (the engine passes its name as the text) counts by its
    matchers option alone."""
    test = "noquery"
    alertmanager.raise_alerts([{"alertname": "Q", "severity": "critical", "test": test}])
    wait_until(lambda: _processed(alertmanager, test, 1), timeout=10, what="alerts processed")
    source = am.create("am", {"url": alertmanager.url, "matchers": {"test": test}}, CONTEXT)
    query = Query(metric="incidents", text="incidents", at=datetime.now(UTC), window=timedelta(0))

    async def go() -> Measurement:
        try:
            return await source.query(query)
        finally:
            await source.aclose()

    measured = asyncio.run(go())
    assert (measured.value, measured.labels) == (1.0, ("Q",))
