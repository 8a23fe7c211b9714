"""The http-json source: a number out of a JSON answer, or a reason why not."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper._model import Measurement, Query
from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import ConfigError
from gatekeeper.sources import httpjson
from gatekeeper.sources.httpjson import JsonPath, extract_number
from realservers.prometheus import Reply, ScriptedServer

CONTEXT = PluginContext(base_dir=Path(), env={"KPI_KEY": "k-secret-1"})
DOC = {
    "data": {
        "revenue": 1058.5,
        "as_text": "12.5",
        "nan_text": "NaN",
        "flag": True,
        "none": None,
        "items": [{"value": 1}, {"value": 2}, {"value": 3}],
        "odd key": {"p99 ms": 181},
    }
}


def ask(source: httpjson.HttpJsonSource, text: str = "", **options: Any) -> Measurement:
    query = Query(
        metric="revenue",
        text=text,
        at=datetime.now(UTC),
        window=timedelta(minutes=15),
        variant="canary",
        args={"region": "eu west/1"},
        options=options,
    )

    async def go() -> Measurement:
        try:
            return await source.query(query)
        finally:
            await source.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.data.revenue", 1058.5),
        ("data.revenue", 1058.5),
        ("data.items[-1].value", 3.0),
        ("$.data.items[0].value", 1.0),
        ('$.data["odd key"]["p99 ms"]', 181.0),
        ("$.data['odd key'].['p99 ms']", 181.0),
        ("data.as_text", 12.5),
    ],
)
def test_paths_find_numbers(path: str, expected: float) -> None:
    """Every documented path form reaches its number."""
    assert extract_number(DOC, JsonPath.parse(path)) == (expected, None)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("data.missing", "missing path data.missing: $.data has no key 'missing'"),
        (
            "data.items[5].value",
            "missing path data.items[5].value: $.data.items has no index 5 (length 3)",
        ),
        ("data.revenue.x", "missing path data.revenue.x: $.data.revenue is not an object"),
        ("data.flag", "data.flag is true, not a number"),
        ("data.none", "data.none is null, not a number"),
        ("data.nan_text", 'data.nan_text is "NaN", not a number'),
        ("data.items", 'data.items is [{"value": 1}, {"value": 2}, {"value": 3}], not a number'),
    ],
)
def test_paths_that_give_no_number(path: str, reason: str) -> None:
    """Missing keys, booleans, null, non-numeric strings and lists are reasons, not values."""
    assert extract_number(DOC, JsonPath.parse(path)) == (None, reason)


@pytest.mark.parametrize("bad", ["", "$", "a..b", "a[x]", "a[0", "a b"])
def test_bad_paths_are_config_errors(bad: str) -> None:
    """A malformed path fails when the plan loads, naming the key."""
    with pytest.raises(ConfigError) as caught:
        httpjson.create("kpi", {"url": "http://127.0.0.1:1", "path": bad}, CONTEXT)
    assert caught.value.key == "path"


def test_get_with_headers_and_templated_url(scripted_server: ScriptedServer) -> None:
    """GET the query URL relative to the source, placeholders percent-encoded, headers sent."""
    scripted_server.script(Reply(body=DOC))
    source = httpjson.create(
        "kpi",
        {
            "url": scripted_server.url,
            "headers": {"Accept": "application/json"},
            "headers_env": {"X-Key": "KPI_KEY"},
        },
        CONTEXT,
    )
    measured = ask(source, "/kpi/{{region}}?variant={{variant}}", path="$.data.revenue")
    seen = scripted_server.seen[0]
    assert (seen.method, seen.path) == ("GET", "/kpi/eu%20west%2F1?variant=canary")
    assert seen.headers["X-Key"] == "k-secret-1"
    assert (measured.value, measured.problem) == (1058.5, None)
    assert "k-secret-1" not in repr(measured) + repr(source)


def test_post_with_a_templated_body(scripted_server: ScriptedServer) -> None:
    """POST sends the JSON body with placeholders filled inside its strings only."""
    scripted_server.script(Reply(body={"result": [{"sum": 42}]}))
    source = httpjson.create("kpi", {"url": scripted_server.url + "/query"}, CONTEXT)
    measured = ask(
        source,
        method="POST",
        body={"variant": "{{variant}}", "region": "{{region}}", "window": "{{window}}", "n": 3},
        path="result[0].sum",
    )
    seen = scripted_server.seen[0]
    assert seen.method == "POST"
    assert json.loads(seen.body) == {
        "variant": "canary",
        "region": "eu west/1",
        "window": "15m",
        "n": 3,
    }
    assert measured.value == 42.0


def test_non_2xx_is_a_reason(scripted_server: ScriptedServer) -> None:
    """A 404 gives no value, even with a JSON body holding a number at the path."""
    scripted_server.script(Reply(status=404, body={"value": 1}))
    source = httpjson.create("kpi", {"url": scripted_server.url, "path": "value"}, CONTEXT)
    measured = ask(source)
    assert (measured.value, measured.problem) == (None, "HTTP 404 after 1 attempt")


def test_garbage_json_is_a_reason(scripted_server: ScriptedServer) -> None:
    """A 200 that is not JSON gives no value."""
    scripted_server.script(Reply(body="revenue=12"))
    source = httpjson.create("kpi", {"url": scripted_server.url, "path": "value"}, CONTEXT)
    assert ask(source).problem == "garbage JSON: 'revenue=12'"


def test_metric_url_override_and_unknown_option() -> None:
    """A metric's url option replaces the source's; an unknown metric option is a reason."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"v": 7})

    async def go() -> tuple[Measurement, Measurement]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            source = httpjson.create(
                "kpi", {"url": "http://127.0.0.1:9/base"}, CONTEXT, client=client
            )
            query = Query(
                metric="m",
                text="",
                at=datetime.now(UTC),
                window=timedelta(0),
                variant="b c",
                options={"url": "http://127.0.0.1:9/other/{{variant}}", "path": "v"},
            )
            bad = Query(
                metric="m",
                text="",
                at=datetime.now(UTC),
                window=timedelta(0),
                options={"path": "v", "jsonpath": "v"},
            )
            return await source.query(query), await source.query(bad)

    good, bad = asyncio.run(go())
    assert seen == ["http://127.0.0.1:9/other/b%20c"]
    assert good.value == 7.0
    assert bad.value is None
    assert bad.problem is not None
    assert bad.problem.startswith("bad query: jsonpath: unknown option")


def test_get_with_body_is_refused() -> None:
    """A body with GET is a configuration error: it would be silently dropped."""
    with pytest.raises(ConfigError) as caught:
        httpjson.create(
            "kpi", {"url": "http://127.0.0.1:1", "body": {"a": 1}}, CONTEXT
        ).validate_metric("", {"path": "a"})
    assert caught.value.key == "body"


def test_metric_without_query_uses_the_source_url() -> None:
    """The engine passes a metric's name as the text when it has no query: that is not a URL."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"v": 1})

    async def go() -> Measurement:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            source = httpjson.create(
                "kpi", {"url": "http://127.0.0.1:9/kpi", "path": "v"}, CONTEXT, client=client
            )
            query = Query(
                metric="revenue", text="revenue", at=datetime.now(UTC), window=timedelta(0)
            )
            return await source.query(query)

    assert asyncio.run(go()).value == 1.0
    assert seen == ["http://127.0.0.1:9/kpi"]
