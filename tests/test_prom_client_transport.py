"""The sources' own HTTP/1.1 transport (``sources/_transport.py``) against raw servers
that answer byte for byte what each test scripts: keep-alive reuse, a connection the
server closed while idle, framing (Content-Length, chunked, to the end, gzip),
malformed answers, timeouts, refused headers. Whatever goes wrong is a reason, never
a value."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper._model import Measurement, Query
from gatekeeper._protocols import PluginContext
from gatekeeper.sources import prometheus
from gatekeeper.sources._transport import AsyncioTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]

VECTOR = json.dumps(
    {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.25"]}]},
    }
).encode()
MATRIX = json.dumps(
    {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {}, "values": [[1, "1"], [2, "2"]]}],
        },
    }
).encode()


class Server:
    """A raw TCP server on 127.0.0.1 in the test's loop; counts connections and keeps
    every request head it read."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer, self)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        return head


def answer(body: bytes, *extra: bytes, status: bytes = b"200 OK") -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\n"
        + headers
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def keep_alive(*replies: bytes) -> Handler:
    """Answers requests on one connection with ``replies`` in turn (the last repeats)."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        n = 0
        while True:
            await server.read_request(reader)
            writer.write(replies[min(n, len(replies) - 1)])
            await writer.drain()
            n += 1

    return handle


def query(text: str = "vector(0.25)") -> Query:
    return Query(metric="m", text=text, at=datetime.now(UTC), window=timedelta(minutes=1))


def source(url: str, **options: Any) -> prometheus.PrometheusSource:
    return prometheus.create(
        "prom", {"url": url, **options}, PluginContext(base_dir=Path(), env={})
    )


async def ask(url: str, times: int = 1, **options: Any) -> list[Measurement]:
    src = source(url, **options)
    try:
        return [await src.query(query()) for _ in range(times)]
    finally:
        await src.aclose()


def test_one_connection_carries_every_request() -> None:
    async def go() -> tuple[list[Measurement], Server]:
        async with Server(keep_alive(answer(VECTOR))) as server:
            return await ask(server.url, times=5), server

    measured, server = asyncio.run(go())
    assert [m.value for m in measured] == [0.25] * 5
    assert server.connections == 1


def test_concurrent_queries_open_one_connection_each_and_reuse_them() -> None:
    async def go() -> Server:
        async with Server(keep_alive(answer(VECTOR))) as server:
            src = source(server.url)
            try:
                for _ in range(3):
                    results = await asyncio.gather(*(src.query(query()) for _ in range(10)))
                    assert all(r.value == 0.25 for r in results)
            finally:
                await src.aclose()
            return server

    assert asyncio.run(go()).connections == 10


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_retry() -> None:
    async def once(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(answer(VECTOR))  # keep-alive by HTTP/1.1, then closed anyway
        await writer.drain()

    async def go() -> tuple[list[Measurement], Server]:
        async with Server(once) as server:
            src = source(server.url)
            try:
                first = await src.query(query())
                await asyncio.sleep(0.05)  # the close reaches the idle connection
                second = await src.query(query())
                return [first, second], server
            finally:
                await src.aclose()

    measured, server = asyncio.run(go())
    assert [m.value for m in measured] == [0.25, 0.25]
    assert [m.retries for m in measured] == [0, 0]
    assert server.connections == 2


def test_instant_queries_ask_for_no_compression_range_queries_for_gzip() -> None:
    async def go() -> Server:
        packed = gzip.compress(MATRIX)
        async with Server(
            keep_alive(answer(VECTOR), answer(packed, b"Content-Encoding: gzip"))
        ) as server:
            src = source(server.url)
            try:
                assert (await src.query(query())).value == 0.25
                assert (await src.query_range(query())).value == 2.0
            finally:
                await src.aclose()
            return server

    server = asyncio.run(go())
    instant, ranged = (h.lower() for h in server.heads)
    assert b"accept-encoding: identity\r\n" in instant
    assert b"accept-encoding: gzip, deflate\r\n" in ranged


def test_the_plans_own_header_wins_over_the_default() -> None:
    async def go() -> Server:
        async with Server(keep_alive(answer(VECTOR))) as server:
            await ask(server.url, headers={"accept-encoding": "gzip"})
            return server

    head = asyncio.run(go()).heads[0].lower()
    assert head.count(b"accept-encoding:") == 1
    assert b"accept-encoding: gzip\r\n" in head


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(
                f"{len(part):x}\r\n".encode() + part + b"\r\n"
                for part in (VECTOR[:10], VECTOR[10:])
            )
            + b"0\r\n\r\n",
            id="chunked",
        ),
        pytest.param(b"HTTP/1.0 200 OK\r\n\r\n" + VECTOR, id="to-the-end"),
        pytest.param(answer(VECTOR, b"Connection: close"), id="connection-close"),
        pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(VECTOR), id="informational-first"),
    ],
)
def test_every_framing_gives_the_value(reply: bytes) -> None:
    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(reply)
        await writer.drain()
        if b"chunked" in reply:  # a kept connection: wait for the next request or the end
            await server.read_request(reader)
            writer.write(reply)
            await writer.drain()

    async def go() -> list[Measurement]:
        async with Server(handle) as server:
            return await ask(server.url, times=2)

    assert [m.value for m in asyncio.run(go())] == [0.25, 0.25]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b"SPDY/3 200 OK\r\n\r\n", "RemoteProtocolError"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "RemoteProtocolError"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n",
            "RemoteProtocolError",
        ),
        (b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"status"', "RemoteProtocolError"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "RemoteProtocolError"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "RemoteProtocolError"),
        (b"", "RemoteProtocolError"),
    ],
)
def test_a_malformed_answer_is_a_reason_never_a_value(reply: bytes, reason: str) -> None:
    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        while True:  # every attempt gets the same bytes, then the connection closes
            await server.read_request(reader)
            writer.write(reply)
            await writer.drain()
            return

    async def go() -> Measurement:
        async with Server(handle) as server:
            (measured,) = await ask(server.url, attempts=2, backoff="10ms")
            return measured

    measured = asyncio.run(go())
    assert measured.value is None
    assert measured.problem is not None
    assert reason in measured.problem


def test_a_server_that_stops_mid_body_times_out_per_read() -> None:
    async def stall(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        await asyncio.sleep(5)

    async def go() -> Measurement:
        async with Server(stall) as server:
            (measured,) = await ask(server.url, timeout="200ms", attempts=1)
            return measured

    measured = asyncio.run(go())
    assert measured.value is None
    assert measured.problem is not None and "timed out" in measured.problem


def test_a_header_that_could_split_the_request_is_refused() -> None:
    async def go() -> None:
        async with Server(keep_alive(answer(VECTOR))) as server:
            transport = AsyncioTransport()
            try:
                request = httpx.Request(
                    "GET", server.url + "/x", headers={"X-Evil": "a\r\nInjected: yes"}
                )
                with pytest.raises(httpx.LocalProtocolError):
                    await transport.handle_async_request(request)
            finally:
                await transport.aclose()
            assert server.heads == []

    asyncio.run(go())


def test_connection_refused_is_said_so() -> None:
    async def go() -> Measurement:
        async with Server(keep_alive(answer(VECTOR))) as server:
            url = server.url
        (measured,) = await ask(url, attempts=1)
        return measured

    measured = asyncio.run(go())
    assert measured.value is None
    assert measured.problem is not None and "connection refused" in measured.problem


def test_closing_the_source_closes_its_idle_connections() -> None:
    async def go() -> bool:
        closed = asyncio.Event()

        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
        ) -> None:
            await server.read_request(reader)
            writer.write(answer(VECTOR))
            await writer.drain()
            if not await reader.read(1):
                closed.set()

        async with Server(handle) as server:
            await ask(server.url)
            await asyncio.wait_for(closed.wait(), 2)
            return closed.is_set()

    assert asyncio.run(go())


def test_sources_in_one_loop_share_one_pool_until_the_last_closes() -> None:
    async def go() -> Server:
        async with Server(keep_alive(answer(VECTOR))) as server:
            first, second = source(server.url), source(server.url)
            assert (await first.query(query())).value == 0.25
            assert (await second.query(query())).value == 0.25  # the same connection
            await first.aclose()
            assert (await second.query(query())).value == 0.25  # still open for the other
            await second.aclose()
            third = source(server.url)  # a fresh pool after the last one closed
            try:
                assert (await third.query(query())).value == 0.25
            finally:
                await third.aclose()
            return server

    assert asyncio.run(go()).connections == 2


def test_a_server_that_never_answers_does_not_take_the_slots_of_another() -> None:
    """The transport is shared by every source of a loop; its limit on requests in
    flight is per origin, so a hung server leaves the others their slots."""

    async def scenario() -> tuple[type[BaseException] | None, int]:
        held: list[asyncio.StreamWriter] = []
        release = asyncio.Event()

        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)
            await release.wait()
            writer.close()

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        hung = await asyncio.start_server(hang, "127.0.0.1", 0)
        good = await asyncio.start_server(answer, "127.0.0.1", 0)
        hung_port = hung.sockets[0].getsockname()[1]
        good_port = good.sockets[0].getsockname()[1]
        transport = AsyncioTransport(max_connections=1)
        async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
            stuck = asyncio.ensure_future(client.get(f"http://127.0.0.1:{hung_port}/"))
            await asyncio.sleep(0.1)  # the hung server holds its origin's one slot
            response = await client.get(
                f"http://127.0.0.1:{good_port}/", timeout=httpx.Timeout(2.0, pool=0.5)
            )
            stuck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stuck
        release.set()
        for server in (hung, good):
            server.close()
            await server.wait_closed()
        for writer in held:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        return None, response.status_code

    assert (None, 200) == asyncio.run(scenario())
