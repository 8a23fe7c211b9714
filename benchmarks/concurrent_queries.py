"""How long a gate with 10 Prometheus criteria takes against its slowest query.

The queries of one checkpoint run concurrently (``asyncio.gather`` over one
source, one shared ``httpx.AsyncClient``), so the gate should take about as long
as its slowest query: the printed ratio should be close to 1.

By default the queries go to a tiny local server that answers like Prometheus
after a delay the query names (``delay_ms(120)``); ``--url`` points the same 10
queries at a real Prometheus instead (they are then ordinary PromQL).

    .venv/bin/python benchmarks/concurrent_queries.py [--rounds 5] [--url http://...]

Also printed: the client's CPU per request, and the same ratio with a bare
asyncio client (``--floor``: what the server alone allows on this machine).
``--httpcore`` injects httpx's default transport and ``--gzip`` asks for gzip
(both as before issue 12), to reproduce the "before" figures.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gatekeeper._model import Query
from gatekeeper._protocols import PluginContext
from gatekeeper.sources import prometheus

DELAYS_MS = [20, 40, 60, 80, 100, 120, 140, 160, 180, 200]
REAL_QUERIES = [
    "vector(1)",
    "sum(up)",
    "count(up)",
    "vector(time())",
    "sum(rate(prometheus_http_requests_total[1m])) or vector(0)",
    "max(process_resident_memory_bytes) or vector(0)",
    "sum(prometheus_tsdb_head_series) or vector(0)",
    "histogram_quantile(0.99,"
    " sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[5m]))) or vector(0)",
    "sum(scrape_duration_seconds) or vector(0)",
    'count(count by (__name__) ({__name__=~".+"})) or vector(0)',
]


class DelayServer:
    """Answers ``/api/v1/query`` like Prometheus after ``delay_ms(N)`` milliseconds.

    Runs in its own process (``--serve``) so its CPU time does not compete with the
    client's for the GIL: the figure is the client's overhead, not the fake server's.
    """

    def __init__(self, port: int = 0) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                match = re.search(r"delay_ms\((\d+)\)", form.get("query", [""])[0])
                time.sleep(int(match.group(1)) / 1000 if match else 0)
                body = json.dumps(
                    {
                        "status": "success",
                        "data": {
                            "resultType": "vector",
                            "result": [{"metric": {}, "value": [time.time(), "1"]}],
                        },
                    }
                ).encode()
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_delay_server() -> tuple[subprocess.Popen[bytes], str]:
    """The delay server in a child process; returns it and its URL once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])  # noqa: S603 - this very script
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # bounded readiness poll
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return child, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)
    child.kill()
    raise SystemExit("the delay server did not start")


async def measure(
    url: str, texts: list[str], rounds: int, *, httpcore: bool = False
) -> tuple[list[float], list[float], float]:
    """Per round: the slowest query alone, then all of them at once (one source).
    Also returns the client's CPU seconds per request (``time.process_time``)."""
    import httpx  # noqa: PLC0415 - only for --httpcore

    client = httpx.AsyncClient(trust_env=False) if httpcore else None
    source = prometheus.create(
        "prom", {"url": url}, PluginContext(base_dir=Path(), env={}), client=client
    )
    at = datetime.now(UTC)
    queries = [
        Query(metric=f"m{i}", text=text, at=at, window=timedelta(minutes=5))
        for i, text in enumerate(texts)
    ]
    slowest_alone: list[float] = []
    together: list[float] = []
    try:
        await asyncio.gather(*(source.query(q) for q in queries))  # warm the connection pool
        cpu = time.process_time()
        for _ in range(rounds):
            singles = []
            for query in queries:
                started = time.perf_counter()
                measured = await source.query(query)
                singles.append(time.perf_counter() - started)
                if measured.problem:
                    raise SystemExit(f"{query.text}: {measured.problem}")
            slowest_alone.append(max(singles))
            started = time.perf_counter()
            results = await asyncio.gather(*(source.query(q) for q in queries))
            together.append(time.perf_counter() - started)
            assert all(r.problem is None for r in results)
        cpu = (time.process_time() - cpu) / (rounds * 2 * len(queries))
    finally:
        await source.aclose()
        if client is not None:
            await client.aclose()
    return slowest_alone, together, cpu


async def floor(url: str, texts: list[str], rounds: int, *, gzip: bool) -> tuple[float, float]:
    """The same two medians with a bare asyncio client (one keep-alive connection per
    query, hand-written HTTP/1.1, almost no CPU): the ratio the server alone allows."""
    parts = urllib.parse.urlsplit(url)
    at = f"{time.time():.3f}"
    extra = b"Accept-Encoding: gzip\r\n" if gzip else b""

    async def ask(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter], text: str) -> None:
        reader, writer = stream
        body = urllib.parse.urlencode({"query": text, "time": at}).encode()
        writer.write(
            b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\n"
            + extra
            + b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        assert length is not None, head
        await reader.readexactly(int(length.group(1)))

    streams = [await asyncio.open_connection(parts.hostname, parts.port or 80) for _ in texts]
    try:
        await asyncio.gather(*(ask(s, t) for s, t in zip(streams, texts, strict=True)))
        alone, together = [], []
        for _ in range(rounds):
            singles = []
            for text in texts:
                started = time.perf_counter()
                await ask(streams[0], text)
                singles.append(time.perf_counter() - started)
            alone.append(max(singles))
            started = time.perf_counter()
            await asyncio.gather(*(ask(s, t) for s, t in zip(streams, texts, strict=True)))
            together.append(time.perf_counter() - started)
    finally:
        for _, writer in streams:
            writer.close()
    return statistics.median(alone), statistics.median(together)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a real Prometheus (default: a local delay server)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--floor", action="store_true", help="also a bare asyncio client")
    parser.add_argument("--httpcore", action="store_true", help="httpx's default transport")
    parser.add_argument("--gzip", action="store_true", help="ask for gzip (the old default)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        DelayServer(args.serve).thread.join(timeout=600)  # the child ends by itself
        return
    child = None
    if args.url:
        url, texts = args.url, REAL_QUERIES
    else:
        child, url = start_delay_server()
        texts = [f"vector(1) + 0 * delay_ms({ms})" for ms in DELAYS_MS]
    if args.gzip:
        prometheus.INSTANT_HEADERS.clear()  # httpx's default Accept-Encoding: gzip, deflate
    try:
        alone, together, cpu = asyncio.run(measure(url, texts, args.rounds, httpcore=args.httpcore))
        bare = asyncio.run(floor(url, texts, args.rounds, gzip=args.gzip)) if args.floor else None
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=5)
    slow, both = statistics.median(alone), statistics.median(together)
    target = args.url or f"local delay server, delays {DELAYS_MS[0]}-{DELAYS_MS[-1]} ms"
    client = "httpx + httpcore (default transport)" if args.httpcore else "httpx + AsyncioTransport"
    print(f"target: {target}")
    print(f"client: {client}, {'gzip' if args.gzip else 'identity'} for instant queries")
    print(f"rounds: {args.rounds} (medians)")
    print(f"slowest single query: {slow * 1000:.1f} ms")
    print(f"10 queries concurrently: {both * 1000:.1f} ms")
    print(f"ratio (concurrent / slowest single): {both / slow:.2f}")
    print(f"client CPU per request: {cpu * 1000:.3f} ms")
    if bare is not None:
        print(
            f"bare asyncio client (server floor): slowest single {bare[0] * 1000:.1f} ms, "
            f"concurrently {bare[1] * 1000:.1f} ms, ratio {bare[1] / bare[0]:.2f}"
        )


if __name__ == "__main__":
    main()
