"""The http backend against a real tiny routing API on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import ConfigError, TrafficError
from gatekeeper.traffic.http import HttpBackend, create, extract
from realservers import free_port

TOKEN = "s3cr3t-token-value"


class RouterState:
    def __init__(self) -> None:
        self.canary: float = 0.0
        self.fail_next: list[int] = []  # statuses to answer before behaving
        self.ignore_writes = False
        self.requests: list[tuple[str, Any]] = []
        self.scale = 1.0


class RouterHandler(BaseHTTPRequestHandler):
    server: RouterServer

    def reply(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self, method: str) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else {}
        state.requests.append((method, body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.reply(401, {"error": "unauthorized"})
            return
        if state.fail_next:
            self.reply(state.fail_next.pop(0), {"error": "try later"})
            return
        if method == "GET":
            self.reply(200, {"data": {"routes": [{"canary": state.canary * state.scale}]}})
            return
        if not state.ignore_writes:
            state.canary = float(body["weights"]["canary"]) / state.scale
        self.reply(200, {"ok": True})

    def do_GET(self) -> None:
        self.handle_any("GET")

    def do_PUT(self) -> None:
        self.handle_any("PUT")

    def do_POST(self) -> None:
        self.handle_any("POST")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class RouterServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.state = RouterState()
        super().__init__(("127.0.0.1", port), RouterHandler)


@pytest.fixture(scope="module")
def router_server() -> Iterator[RouterServer]:
    server = RouterServer(free_port())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def router(router_server: RouterServer) -> RouterServer:
    router_server.state = RouterState()
    return router_server


def url(server: RouterServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/split"


def build(server: RouterServer, sleeps: list[float] | None = None, **extra: Any) -> HttpBackend:
    options: dict[str, Any] = {
        "url": url(server),
        "path": "data.routes.0.canary",
        "body": {"weights": {"canary": "{canary}", "baseline": "{baseline}"}},
        "bearer_token_env": "ROUTER_TOKEN",
        **extra,
    }
    backend = create(options, PluginContext(base_dir=Path("/x"), env={"ROUTER_TOKEN": TOKEN}))
    if sleeps is not None:
        backend._sleep = sleeps.append
    return backend


def test_put_then_get_verifies_the_split(router: RouterServer) -> None:
    """The body template renders numbers as numbers; the GET path gives the split."""
    backend = build(router)
    split = backend.set_split(12.5)
    assert split.canary == 12.5
    assert ("PUT", {"weights": {"canary": 12.5, "baseline": 87.5}}) in router.state.requests
    assert backend.get_split().canary == 12.5


def test_setting_the_current_share_sends_no_write(router: RouterServer) -> None:
    """Only a GET when the API already reports the share."""
    router.state.canary = 30
    backend = build(router)
    assert backend.set_split(30).canary == 30
    assert [m for m, _ in router.state.requests] == ["GET"]


def test_fraction_scale_and_post(router: RouterServer) -> None:
    """scale = "fraction" reads [0, 1]; a POST body can use {canary_fraction}."""
    router.state.scale = 0.01
    backend = build(
        router,
        method="POST",
        scale="fraction",
        body={"weights": {"canary": "{canary_fraction}"}},
    )
    assert backend.set_split(25).canary == pytest.approx(25)
    assert ("POST", {"weights": {"canary": 0.25}}) in router.state.requests


def test_transient_500s_are_retried_then_succeed(router: RouterServer) -> None:
    """Two 503s on the write, then success: retried with backoff, bounded."""
    sleeps: list[float] = []
    backend = build(router, sleeps)
    router.state.fail_next = []
    backend.get_split()
    router.state.fail_next = [503, 500]
    router.state.requests.clear()
    # the GET before the write takes both failures here, then everything succeeds
    assert backend.set_split(40).canary == 40
    assert len(sleeps) == 2
    assert [m for m, _ in router.state.requests] == ["GET", "GET", "GET", "PUT", "GET"]


def test_an_api_that_keeps_answering_500_is_a_traffic_error(router: RouterServer) -> None:
    """Every attempt gets 500: TrafficError after exactly `attempts` requests; the
    token appears neither in the error nor in repr."""
    sleeps: list[float] = []
    backend = build(router, sleeps, attempts=3)
    router.state.fail_next = [500] * 10
    with pytest.raises(TrafficError, match="answered 500") as info:
        backend.set_split(10)
    assert len(router.state.requests) == 3
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(backend)
    assert info.value.wanted == 10


def test_client_errors_are_not_retried(router: RouterServer) -> None:
    """A 400 is an answer, not a hiccup: one request, then TrafficError."""
    backend = build(router, [])
    router.state.fail_next = [400]
    with pytest.raises(TrafficError, match="answered 400"):
        backend.get_split()
    assert len(router.state.requests) == 1


def test_a_write_that_does_not_take_effect_is_a_mismatch(router: RouterServer) -> None:
    """The API accepts the PUT but keeps the old share: TrafficError with both."""
    router.state.ignore_writes = True
    backend = build(router)
    with pytest.raises(TrafficError, match="GET reads 0%") as info:
        backend.set_split(50)
    assert (info.value.wanted, info.value.actual) == (50, 0)


def test_a_missing_token_variable_is_named(router: RouterServer) -> None:
    """The token variable is not set: the error names the variable, nothing is sent."""
    backend = create(
        {"url": url(router), "bearer_token_env": "ROUTER_TOKEN"},
        PluginContext(base_dir=Path("/x"), env={}),
    )
    with pytest.raises(TrafficError, match="ROUTER_TOKEN"):
        backend.get_split()
    assert router.state.requests == []


def test_connection_refused_is_retried_then_a_traffic_error() -> None:
    """Nothing listens: transport errors are retried `attempts` times, then reported."""
    sleeps: list[float] = []
    backend = create(
        {"url": f"http://127.0.0.1:{free_port()}/split", "attempts": 2},
        PluginContext(base_dir=Path("/x"), env={}),
    )
    backend._sleep = sleeps.append
    with pytest.raises(TrafficError, match=r"failed after 2 attempt\(s\): ConnectError"):
        backend.get_split()
    assert len(sleeps) == 1
    backend.close()


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "url"),
        ({"url": "ftp://x/"}, "url"),
        ({"url": "http://u:p@x/"}, "url"),
        ({"url": "ftp://u:hunter2@x/"}, "url"),
        ({"url": "http://x/", "headers": {"Authorization": "Bearer abc"}}, "headers.Authorization"),
        ({"url": "http://x/", "body": {"a": {"b": "{canry}"}}}, "body.a.b"),
        ({"url": "http://x/", "method": "DELETE"}, "method"),
        ({"url": "http://x/", "scale": "ratio"}, "scale"),
        ({"url": "http://x/", "attempts": 0}, "attempts"),
        ({"url": "http://x/", "token": "abc"}, "token"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], key: str) -> None:
    """Invalid tables raise ConfigError naming the key; secrets are refused in the plan."""
    with pytest.raises(ConfigError) as info:
        create(options, PluginContext(base_dir=Path("/x"), env={}))
    assert info.value.key == key
    assert "hunter2" not in str(info.value)


def test_extract_follows_dots_and_indexes() -> None:
    """Dotted paths walk dicts and lists; a leading $. is accepted; misses are KeyError."""
    doc = {"a": [{"b": 3}]}
    assert extract(doc, "a.0.b") == 3
    assert extract(doc, "$.a.0.b") == 3
    with pytest.raises(KeyError):
        extract(doc, "a.1.b")
    with pytest.raises(KeyError):
        extract(doc, "a.0.c")
