"""Faults a source must survive without ever giving a value that could pass.

A tiny real HTTP server on 127.0.0.1 (``scripted_server``) plays Prometheus for what
the real one cannot be made to do; waits between retries go through an injected
sleep so tests observe them instead of sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gatekeeper._model import Measurement, Query
from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import ConfigError
from gatekeeper.sources import alertmanager, httpjson, prometheus
from realservers import free_port
from realservers.prometheus import Reply, ScriptedServer

OK = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1700000000, "0.25"]}]},
}
SECRET = "s3cr3t-t0ken-value"


class Sleeps:
    """An injected sleep: records the waits, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make(
    url: str,
    sleeps: Sleeps | None = None,
    *,
    env: dict[str, str] | None = None,
    provider: Any = None,
    **options: Any,
) -> prometheus.PrometheusSource:
    return prometheus.create(
        "prom",
        {"url": url, **options},
        PluginContext(base_dir=Path(), env=env or {}),
        sleep=sleeps or Sleeps(),
        tracer_provider=provider,
    )


def run(source: Any, query: Query | None = None) -> Measurement:
    query = query or Query(metric="m", text="up", at=datetime.now(UTC), window=timedelta(minutes=1))

    async def go() -> Measurement:
        try:
            result: Measurement = await source.query(query)
            return result
        finally:
            await source.aclose()

    return asyncio.run(go())


def test_connection_refused(scripted_server: ScriptedServer) -> None:
    """Nobody listening: no value, the reason says so and counts the attempts."""
    sleeps = Sleeps()
    measured = run(make(f"http://127.0.0.1:{free_port()}", sleeps))
    assert measured.value is None
    assert measured.problem == "connection refused (3 attempts)"
    assert measured.retries == 2
    assert len(sleeps.waits) == 2


def test_hang_past_the_timeout(scripted_server: ScriptedServer) -> None:
    """A server that does not answer in time: timed out, retried, no value."""
    scripted_server.script(Reply(body=OK, delay=3.0))
    started = time.monotonic()
    measured = run(make(scripted_server.url, timeout="0.2s", attempts=2))
    assert measured.value is None
    assert measured.problem == "timed out after 200ms (2 attempts)"
    assert measured.retries == 1
    assert time.monotonic() - started < 2.0


def test_checkpoint_deadline_bounds_the_retries(scripted_server: ScriptedServer) -> None:
    """query.deadline cuts a slow source short even when its own timeout is longer."""
    scripted_server.script(Reply(body=OK, delay=3.0))
    at = datetime.now(UTC)
    query = Query(
        metric="m",
        text="up",
        at=at,
        window=timedelta(minutes=1),
        deadline=at + timedelta(seconds=0.4),
    )
    started = time.monotonic()
    measured = run(make(scripted_server.url, timeout="5s", attempts=5), query)
    elapsed = time.monotonic() - started
    assert measured.value is None
    assert measured.problem is not None
    assert measured.problem.startswith("timed out")
    assert elapsed < 1.5


def test_500_then_success_is_retried(scripted_server: ScriptedServer) -> None:
    """A 500 is retried; the answer after it counts, with the retry recorded."""
    scripted_server.script(Reply(status=500, body="oops"), Reply(body=OK))
    sleeps = Sleeps()
    measured = run(make(scripted_server.url, sleeps))
    assert (measured.value, measured.retries, measured.problem) == (0.25, 1, None)
    assert len(scripted_server.seen) == 2
    assert len(sleeps.waits) == 1
    assert 0.2 <= sleeps.waits[0] <= 0.4  # backoff 0.2s plus at most 0.2s of jitter


def test_503_every_time_gives_up(scripted_server: ScriptedServer) -> None:
    """5xx on every attempt: no value, 'HTTP 503 after 3 attempts'."""
    scripted_server.script(Reply(status=503, body="busy"))
    measured = run(make(scripted_server.url))
    assert measured.value is None
    assert measured.problem == "HTTP 503 after 3 attempts"
    assert len(scripted_server.seen) == 3


def test_retry_after_seconds_is_honoured(scripted_server: ScriptedServer) -> None:
    """429 with Retry-After: 7 waits exactly 7 seconds (observed through the sleep)."""
    scripted_server.script(
        Reply(status=429, body="slow down", headers={"Retry-After": "7"}), Reply(body=OK)
    )
    sleeps = Sleeps()
    measured = run(make(scripted_server.url, sleeps))
    assert measured.value == 0.25
    assert sleeps.waits == [7.0]


def test_retry_after_http_date_is_honoured(scripted_server: ScriptedServer) -> None:
    """Retry-After as an HTTP date is turned into the seconds until then."""
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    scripted_server.script(Reply(status=503, headers={"Retry-After": when}), Reply(body=OK))
    sleeps = Sleeps()
    assert run(make(scripted_server.url, sleeps)).value == 0.25
    assert 17.0 <= sleeps.waits[0] <= 20.0


def test_retry_after_beyond_the_deadline_stops(scripted_server: ScriptedServer) -> None:
    """A Retry-After longer than the query's deadline ends the query instead of waiting."""
    scripted_server.script(Reply(status=429, headers={"Retry-After": "25"}), Reply(body=OK))
    sleeps = Sleeps()
    measured = run(make(scripted_server.url, sleeps, deadline="10s"))
    assert measured.value is None
    assert measured.problem == "HTTP 429 after 1 attempt"
    assert sleeps.waits == []


def test_client_errors_are_not_retried(scripted_server: ScriptedServer) -> None:
    """A 404 is not retried: it will not get better."""
    scripted_server.script(Reply(status=404, body="not found"))
    measured = run(make(scripted_server.url))
    assert measured.problem == "HTTP 404 after 1 attempt"
    assert len(scripted_server.seen) == 1


def test_garbage_json(scripted_server: ScriptedServer) -> None:
    """A 200 whose body is not JSON gives no value."""
    scripted_server.script(Reply(body="<html>proxy error</html>"))
    measured = run(make(scripted_server.url))
    assert measured.value is None
    assert measured.problem == "garbage JSON: '<html>proxy error</html>'"


def test_status_error_with_200(scripted_server: ScriptedServer) -> None:
    """A 200 that says status: error gives no value and Prometheus' message."""
    scripted_server.script(
        Reply(body={"status": "error", "errorType": "execution", "error": "query timed out"})
    )
    measured = run(make(scripted_server.url))
    assert measured.value is None
    assert measured.problem == "status error: execution: query timed out"


def test_warnings_make_the_value_unusable(scripted_server: ScriptedServer) -> None:
    """Prometheus' warnings travel with the value and make it a problem."""
    scripted_server.script(Reply(body={**OK, "warnings": ["partial response"]}))
    measured = run(make(scripted_server.url))
    assert measured.value == 0.25
    assert measured.warnings == ("partial response",)
    assert measured.problem == "source warned: partial response"


def test_unexpected_result_shape(scripted_server: ScriptedServer) -> None:
    """A success whose result has a missing value is garbage, not a number."""
    scripted_server.script(
        Reply(
            body={"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
        )
    )
    measured = run(make(scripted_server.url))
    assert measured.value is None
    assert measured.problem is not None
    assert measured.problem.startswith("garbage JSON: unexpected result shape")


def test_retries_are_span_events(scripted_server: ScriptedServer) -> None:
    """Each retry is an event on the query's span, with its cause and wait."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    scripted_server.script(
        Reply(status=502), Reply(status=429, headers={"Retry-After": "3"}), Reply(body=OK)
    )
    measured = run(make(scripted_server.url, provider=provider))
    assert measured.retries == 2
    (span,) = exporter.get_finished_spans()
    assert span.name == "gatekeeper.source.query"
    assert span.attributes is not None
    assert span.attributes["gatekeeper.retries"] == 2
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert [e[1]["gatekeeper.cause"] for e in events] == ["HTTP 502", "HTTP 429"]
    assert events[1][1]["gatekeeper.wait_s"] == 3.0
    provider.shutdown()


# -- secrets ------------------------------------------------------------------------


def _all_text(measured: Measurement, *objects: Any) -> str:
    return " ".join([repr(measured), str(measured.problem), *(repr(o) for o in objects)])


def test_bearer_token_is_sent_but_never_shown(scripted_server: ScriptedServer) -> None:
    """The token reaches the server and appears in no repr, reason or span, even on errors."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    env = {"PROM_TOKEN": SECRET}
    scripted_server.script(
        Reply(status=500, body=SECRET), Reply(status=401, body=f"bad token {SECRET}")
    )
    source = make(scripted_server.url, env=env, provider=provider, bearer_token_env="PROM_TOKEN")
    measured = run(source)
    assert scripted_server.seen[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert measured.problem == "HTTP 401 after 2 attempts"
    spans = exporter.get_finished_spans()
    assert SECRET not in _all_text(measured, source, source.settings, *(s.to_json() for s in spans))
    provider.shutdown()


def test_basic_auth_and_secret_headers(scripted_server: ScriptedServer) -> None:
    """Basic auth and secret headers come from the named variables, never the plan."""
    env = {"USER_VAR": "alice", "PASS_VAR": SECRET, "KEY_VAR": SECRET + "-key"}
    scripted_server.script(Reply(body=OK))
    source = make(
        scripted_server.url,
        env=env,
        basic_auth={"username_env": "USER_VAR", "password_env": "PASS_VAR"},
        headers={"X-Scope-OrgID": "tenant-1"},
        headers_env={"X-Api-Key": "KEY_VAR"},
    )
    measured = run(source)
    seen = scripted_server.seen[0].headers
    assert seen["Authorization"] == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert (seen["X-Scope-OrgID"], seen["X-Api-Key"]) == ("tenant-1", SECRET + "-key")
    assert measured.value == 0.25
    assert SECRET not in _all_text(measured, source, source.settings)


def test_missing_secret_variable_is_a_reason_not_a_crash(scripted_server: ScriptedServer) -> None:
    """A named variable that is not set: no request, a reason naming the variable."""
    measured = run(make(scripted_server.url, bearer_token_env="PROM_TOKEN"))
    assert measured.value is None
    assert measured.problem == "environment variable PROM_TOKEN (named in the plan) is not set"
    assert scripted_server.seen == []


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"url": f"ftp://u:{SECRET}@127.0.0.1"}, "url"),
        ({"url": f"http://user:{SECRET}@127.0.0.1"}, "url"),
        ({"url": "http://127.0.0.1", "bearer_token_env": ""}, "bearer_token_env"),
        ({"url": "http://127.0.0.1", "timeout": "soon"}, "timeout"),
        ({"url": "http://127.0.0.1", "attempts": 0}, "attempts"),
        (
            {"url": "http://127.0.0.1", "basic_auth": {"username_env": "U"}},
            "basic_auth.password_env",
        ),
        ({"url": "http://127.0.0.1", "tls_verfy": False}, "tls_verfy"),
    ],
)
def test_bad_connection_options(options: dict[str, Any], key: str) -> None:
    """Bad connection options fail at plan load with the key named and no secret shown."""
    with pytest.raises(ConfigError) as caught:
        prometheus.create("prom", options, PluginContext(base_dir=Path(), env={}))
    assert caught.value.key == key
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("module", [alertmanager, httpjson])
def test_other_sources_share_the_resilience(scripted_server: ScriptedServer, module: Any) -> None:
    """alertmanager and http-json retry the same way and report the same reasons."""
    scripted_server.script(Reply(status=503))
    options: dict[str, Any] = {"url": scripted_server.url, "attempts": 2}
    if module is httpjson:
        options["path"] = "$.value"
    factory: Callable[..., Any] = module.create
    source = factory("s", options, PluginContext(base_dir=Path(), env={}), sleep=Sleeps())
    query = Query(metric="m", text="", at=datetime.now(UTC), window=timedelta(minutes=1))
    measured = run(source, query)
    assert measured.value is None
    assert measured.problem == "HTTP 503 after 2 attempts"
    assert measured.retries == 1


def test_injected_client_is_not_closed(scripted_server: ScriptedServer) -> None:
    """A client passed in belongs to the caller: aclose leaves it open."""
    scripted_server.script(Reply(body=OK))

    async def go() -> tuple[float | None, bool]:
        async with httpx.AsyncClient() as client:
            source = prometheus.create(
                "prom",
                {"url": scripted_server.url},
                PluginContext(base_dir=Path(), env={}),
                client=client,
            )
            measured = await source.query(
                Query(metric="m", text="up", at=datetime.now(UTC), window=timedelta(0))
            )
            await source.aclose()
            return measured.value, client.is_closed

    assert asyncio.run(go()) == (0.25, False)


_unused: Callable[[float], Awaitable[None]] = Sleeps()


@pytest.mark.parametrize("module", [prometheus, alertmanager, httpjson])
def test_secret_echoed_by_the_server_is_masked(
    scripted_server: ScriptedServer, module: Any
) -> None:
    """A server that echoes the token in its answer does not get it into the reason."""
    scripted_server.script(
        Reply(status=400, body=f"denied for {SECRET}"), Reply(body=f"<{SECRET}>")
    )
    options: dict[str, Any] = {"url": scripted_server.url, "bearer_token_env": "TOKEN"}
    if module is httpjson:
        options["path"] = "$.value"
    factory: Callable[..., Any] = module.create
    source = factory("s", options, PluginContext(base_dir=Path(), env={"TOKEN": SECRET}))
    query = Query(metric="m", text="", at=datetime.now(UTC), window=timedelta(minutes=1))
    first, second = run(source, query), run(source, query)
    assert first.problem is not None
    assert second.problem is not None
    assert SECRET not in _all_text(first, source) + _all_text(second)
    assert "***" in first.problem + second.problem
