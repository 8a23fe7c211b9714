"""A small HTTP service for the live canary demo: one process per version.

    python app.py --port 8001 --version baseline
    python app.py --port 8002 --version canary --error-rate 0.2 --latency-ms 40 --errors-after 15

Every request other than ``/metrics`` and ``/healthz`` answers ``200 <version>``
(or ``500 error <version>`` with probability ``--error-rate`` once ``--errors-after``
seconds have passed since start), after ``--latency-ms``. It is instrumented with
prometheus-client on the same port:

* ``http_requests_total{version, code}``
* ``http_request_duration_seconds{version}`` (a histogram)

``PUT /admin?error_rate=0.3&latency_ms=50`` changes the behaviour at run time (for
demos that turn a canary bad on cue). The socket sets ``TCP_NODELAY`` and each
response is written in one call: behind HAProxy or nginx anything else adds ~40 ms
of delayed-ACK wait to every request. Binds 127.0.0.1 by default; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5)


class Behaviour:
    """What the service does now; changed by flags and by ``PUT /admin``."""

    def __init__(self, *, error_rate: float, latency_ms: float, errors_after: float) -> None:
        self.lock = threading.Lock()
        self.error_rate = error_rate
        self.latency_ms = latency_ms
        self.errors_from = time.monotonic() + errors_after
        self.random = random.Random()

    def next(self) -> tuple[float, bool]:
        """The latency (s) and whether this request fails."""
        with self.lock:
            fail = time.monotonic() >= self.errors_from and self.random.random() < self.error_rate
            return self.latency_ms / 1000.0, fail


class AppServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], version: str, behaviour: Behaviour) -> None:
        self.version = version
        self.behaviour = behaviour
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by version and status code.",
            ["version", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by version.",
            ["version"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        # series exist from the start, so rate() has a zero to begin with
        for code in ("200", "500"):
            self.requests.labels(version=version, code=code)
        self.duration.labels(version=version)
        super().__init__(address, AppHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients (the balancer) closing idle connections are not errors worth a trace."""


class AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AppServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def respond(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        reason = self.responses.get(status, ("",))[0]
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Version: {self.server.version}\r\n\r\n"
        ).encode()
        self.wfile.write(head + body)  # one write per response

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path == "/metrics":
            self.respond(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
            return
        if path == "/healthz":
            self.respond(200, b"ok\n")
            return
        started = time.perf_counter()
        latency, fail = self.server.behaviour.next()
        if latency > 0:
            time.sleep(latency)
        version = self.server.version
        status = 500 if fail else 200
        body = f"error {version}\n" if fail else f"{version}\n"
        # Count before answering: a client that reads /metrics right after its last
        # response must find that response counted.
        self.server.requests.labels(version=version, code=str(status)).inc()
        self.server.duration.labels(version=version).observe(time.perf_counter() - started)
        self.respond(status, body.encode())

    def do_PUT(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/admin":
            self.respond(404, b"not found\n")
            return
        params = urllib.parse.parse_qs(parts.query)
        behaviour = self.server.behaviour
        try:
            with behaviour.lock:
                if "error_rate" in params:
                    behaviour.error_rate = float(params["error_rate"][0])
                    behaviour.errors_from = time.monotonic()
                if "latency_ms" in params:
                    behaviour.latency_ms = float(params["latency_ms"][0])
        except ValueError as exc:
            self.respond(400, f"{exc}\n".encode())
            return
        self.respond(
            200,
            f"error_rate={behaviour.error_rate} latency_ms={behaviour.latency_ms}\n".encode(),
        )

    def log_message(self, format: str, *args: object) -> None:
        """No access log: the load generator counts, Prometheus measures."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--version", required=True, choices=["baseline", "canary"])
    parser.add_argument("--error-rate", type=float, default=0.0, help="0..1, share of 500s")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--errors-after", type=float, default=0.0, help="seconds before errors start"
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.error_rate <= 1.0:
        parser.error("--error-rate must be within 0..1")
    behaviour = Behaviour(
        error_rate=args.error_rate, latency_ms=args.latency_ms, errors_after=args.errors_after
    )
    server = AppServer((args.host, args.port), args.version, behaviour)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"{args.version} listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
