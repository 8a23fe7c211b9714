"""Faulty answers never pass: malformed alerts, NaN among picked series, and answers
that arrive too slowly (slow headers, a body that drips, an endless chunked body).

The servers are real sockets on 127.0.0.1: a scripted HTTP server for malformed
bodies, and a small asyncio server that sends one byte every 0.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatekeeper._model import Measurement, Query
from gatekeeper._protocols import PluginContext
from gatekeeper.sources import alertmanager, httpjson, prometheus
from realservers.prometheus import Reply, ScriptedServer

CONTEXT = PluginContext(base_dir=Path(), env={})


def run(source: Any, query: Query, *, ranged: bool = False) -> Measurement:
    async def go() -> Measurement:
        try:
            if ranged:
                result: Measurement = await source.query_range(query)
            else:
                result = await source.query(query)
            return result
        finally:
            await source.aclose()

    return asyncio.run(go())


def q(text: str, **options: Any) -> Query:
    return Query(
        metric="m", text=text, at=datetime.now(UTC), window=timedelta(minutes=1), options=options
    )


GOOD_ALERT = {"labels": {"alertname": "A", "severity": "critical"}, "status": {"state": "active"}}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ([{}], "no status"),
        ([{"labels": {"alertname": "A"}}], "no status"),
        ([{"labels": {"alertname": "A"}, "status": {}}], "state"),
        ([{"labels": {"alertname": "A"}, "status": {"state": "firing"}}], "firing"),
        ([{"labels": {"alertname": "A"}, "status": "active"}], "status"),
        ([{"labels": ["x"], "status": {"state": "active"}}], "labels"),
        ([GOOD_ALERT, {"status": {"state": None}}], "state"),
    ],
)
def test_malformed_alerts_are_inconclusive(
    scripted_server: ScriptedServer, body: Any, why: str
) -> None:
    """An alert without a status, or with a state Alertmanager never sends, is no
    count at all (a 0 would pass ``critical_incidents == 0``): no value, a reason."""
    scripted_server.script(Reply(body=body))
    source = alertmanager.create("am", {"url": scripted_server.url, "attempts": 1}, CONTEXT)
    measured = run(source, q('severity="critical"'))
    assert measured.value is None
    assert measured.reason is not None
    assert why in measured.reason
    assert "malformed alert" in measured.reason


def test_well_formed_alerts_still_count(scripted_server: ScriptedServer) -> None:
    """Active alerts count; suppressed and unprocessed ones are valid and do not."""
    scripted_server.script(
        Reply(
            body=[
                GOOD_ALERT,
                {**GOOD_ALERT, "status": {"state": "suppressed"}},
                {**GOOD_ALERT, "status": {"state": "unprocessed"}},
            ]
        )
    )
    source = alertmanager.create("am", {"url": scripted_server.url, "attempts": 1}, CONTEXT)
    measured = run(source, q('severity="critical"'))
    assert (1.0, None) == (measured.value, measured.reason)


def _vector(*values: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"pod": f"p{i}"}, "value": [1700000000, v]} for i, v in enumerate(values)
            ],
        },
    }


def _matrix(*values: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"pod": f"p{i}"}, "values": [[1700000000, v], [1700000060, "1"]]}
                for i, v in enumerate(values)
            ],
        },
    }


@pytest.mark.parametrize("pick", ["max", "min", "sum", "avg"])
@pytest.mark.parametrize("values", [("NaN", "0.001"), ("0.001", "NaN"), ("1", "NaN", "2")])
def test_nan_among_picked_series_is_no_value(
    scripted_server: ScriptedServer, pick: str, values: tuple[str, ...]
) -> None:
    """``[0.001, NaN]`` with ``pick = "max"`` is not 0.001: whatever its position, a
    NaN among the picked series gives no value and says so."""
    scripted_server.script(Reply(body=_vector(*values)))
    source = prometheus.create("p", {"url": scripted_server.url, "attempts": 1}, CONTEXT)
    measured = run(source, q("x", pick=pick))
    assert measured.value is None
    assert measured.reason is not None
    assert "NaN" in measured.reason


@pytest.mark.parametrize("pick", ["max", "min"])
def test_nan_among_picked_series_in_a_range_is_no_value(
    scripted_server: ScriptedServer, pick: str
) -> None:
    """A range query: a step where one picked series is NaN gives no value either."""
    scripted_server.script(Reply(body=_matrix("0.5", "NaN")))
    source = prometheus.create("p", {"url": scripted_server.url, "attempts": 1}, CONTEXT)
    measured = run(source, q("x", pick=pick), ranged=True)
    assert measured.value is None
    assert measured.reason is not None
    assert "NaN" in measured.reason


def test_finite_picked_series_still_aggregate(scripted_server: ScriptedServer) -> None:
    """No NaN: the aggregation is applied as before."""
    scripted_server.script(Reply(body=_vector("1", "3")))
    source = prometheus.create("p", {"url": scripted_server.url, "attempts": 1}, CONTEXT)
    assert 3.0 == run(source, q("x", pick="max")).value
    scripted_server.script(Reply(body=_vector("1", "+Inf")))
    source = prometheus.create("p", {"url": scripted_server.url, "attempts": 1}, CONTEXT)
    assert math.isinf(run(source, q("x", pick="max")).value or 0.0)


class DripServer:
    """A raw asyncio server on 127.0.0.1 that answers in one of three slow ways,
    one byte every ``interval`` seconds, until the client hangs up (bounded: at most
    ``limit`` bytes, and the server stops with the test)."""

    def __init__(self, mode: str, interval: float = 0.5, limit: int = 400) -> None:
        self.mode, self.interval, self.limit = mode, interval, limit
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        self.ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.mode == "headers":
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                payload = head + b"X-Slow: " + b"a" * self.limit
            elif self.mode == "body":
                head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
                writer.write(head)
                payload = b'{"value": ' + b" " * self.limit
            else:  # chunked, endless: one-byte chunks
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                payload = b""
            for i in range(self.limit):
                if self.mode == "chunked":
                    writer.write(b"1\r\n \r\n")
                else:
                    writer.write(payload[i : i + 1])
                await writer.drain()
                await asyncio.sleep(self.interval)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            self.tasks.discard(task)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            tasks = list(self.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(params=["headers", "body", "chunked"])
def drip(request: pytest.FixtureRequest) -> Iterator[DripServer]:
    server = DripServer(request.param)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["prometheus", "alertmanager", "http-json"])
def test_deadline_bounds_a_slow_drip(drip: DripServer, kind: str) -> None:
    """A byte every 0.5 s never trips httpx's per-read timeout (5 s); the source's
    ``deadline = "2s"`` still ends the query in about 2 s, with a reason."""
    options = {"url": drip.url, "deadline": "2s", "timeout": "5s", "attempts": 1}
    factory = {
        "prometheus": prometheus.create,
        "alertmanager": alertmanager.create,
        "http-json": httpjson.create,
    }[kind]
    if kind == "http-json":
        options["path"] = "$.value"
    source = factory("s", options, CONTEXT)
    started = time.monotonic()
    measured = run(source, q("up" if kind != "alertmanager" else 'a="b"'))
    elapsed = time.monotonic() - started
    print(f"slow-drip {drip.mode} {kind}: deadline 2s, ended after {elapsed:.2f}s")
    assert measured.value is None
    assert measured.reason is not None
    assert "timed out" in measured.reason
    assert 1.8 <= elapsed < 2.6
