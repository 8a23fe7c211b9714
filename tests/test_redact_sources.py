"""No source and no backend carries a secret into a reason, an error or a span.

A real HTTP server on 127.0.0.1 echoes what it was sent, the way misconfigured
proxies and APIs do: ``auth failed for Bearer <token>`` and the Authorization
header itself, raw, JSON-escaped and in Prometheus' ``error``/``warnings``. The
tokens have awkward shapes (quotes, newlines, ``/``, ``+``, ``=``, unicode);
basic auth comes back base64-encoded. Every encoding of every secret is looked
for in every string the source or backend produced.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gatekeeper._model import Measurement, Query
from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import ConfigError, TrafficError
from gatekeeper.sources import alertmanager, httpjson, prometheus
from gatekeeper.traffic import command, http
from test_redact import encodings

# Header-safe tokens (httpx sends them) and tokens httpx refuses to send (newline,
# non-ASCII): both must stay out of every message.
SENDABLE = ["quo\"te's-tok/en+=", "sla/sh+plus=equals==", "plain-token-0123456789"]
UNSENDABLE = ["new\nline-token", "ünïcødé-tøken-✓"]
USER, PASSWORD = "gkuser", 'p@ss:w/o+rd="x"'


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with ``status`` and a body that echoes the credentials."""

    protocol_version = "HTTP/1.1"
    server: EchoServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        key = self.headers.get("X-Api-Key", "")
        token = auth.removeprefix("Bearer ")
        text = f"auth failed for {auth} / Bearer {token} / key {key}"
        mode = self.server.mode
        if mode == "prometheus":
            payload: Any = {
                "status": "error",
                "errorType": "unauthorized",
                "error": text,
                "warnings": [text, json.dumps({"auth": auth})],
            }
        elif mode == "text":
            payload = text + "\n" + repr(auth)
        else:
            payload = {"error": text, "header": auth, "nested": json.dumps({"auth": auth})}
        body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        head = f"HTTP/1.1 {self.server.status} X\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self.wfile.write(head.encode() + body)

    do_GET = do_POST = do_PUT = _answer  # noqa: N815 - http.server's naming


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.status = 401
        self.mode = "json"
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The ``secret/encoding`` pairs found in ``text``."""
    return [
        f"{secret!r}/{name}"
        for secret in secrets
        for name, form in encodings(secret).items()
        if form and form in text
    ]


def spans_text(exporter: InMemorySpanExporter) -> str:
    parts = []
    for span in exporter.get_finished_spans():
        parts.append(span.name)
        parts += [f"{k}={v!s}" for k, v in (span.attributes or {}).items()]
        for event in span.events:
            parts += [event.name] + [f"{k}={v!s}" for k, v in (event.attributes or {}).items()]
    return "\n".join(parts)


def measure(source: Any, query: Query) -> Measurement:
    async def go() -> Measurement:
        try:
            result: Measurement = await source.query(query)
            return result
        finally:
            await source.aclose()

    return asyncio.run(go())


def query(text: str = "up", **options: Any) -> Query:
    return Query(
        metric="m",
        text=text,
        at=datetime.now(UTC),
        window=timedelta(minutes=1),
        options=options,
    )


SOURCES = {
    "prometheus": (prometheus.create, "prometheus", query()),
    "alertmanager": (alertmanager.create, "json", query('severity="critical"')),
    "http-json": (httpjson.create, "json", query("", path="$.value")),
}


def _auth(kind: str, token: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Options, env and the secrets to look for, for one way of authenticating."""
    if kind == "bearer":
        return {"bearer_token_env": "TOKEN"}, {"TOKEN": token}, [token]
    if kind == "header":
        return {"headers_env": {"X-Api-Key": "KEY"}}, {"KEY": token}, [token]
    options = {"basic_auth": {"username_env": "USER", "password_env": "PASS"}}
    return options, {"USER": USER, "PASS": PASSWORD}, [PASSWORD, f"{USER}:{PASSWORD}"]


@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("auth", ["bearer", "header", "basic"])
@pytest.mark.parametrize("kind", sorted(SOURCES))
@pytest.mark.parametrize("token", SENDABLE + UNSENDABLE)
def test_sources_never_carry_a_secret(
    echo: EchoServer, kind: str, auth: str, status: int, token: str
) -> None:
    """Reasons, warnings, the query shown and every span attribute and event: no form
    of the token (or of basic auth's password and user:pass) anywhere."""
    factory, mode, q = SOURCES[kind]
    echo.status, echo.mode = status, mode
    options, env, secrets = _auth(auth, token)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    source = factory(
        "src",
        {"url": echo.url, "attempts": 1, **options},
        PluginContext(base_dir=Path(), env=env),
        tracer_provider=provider,
    )
    result = measure(source, q)
    assert result.value is None
    outputs = "\n".join(
        [str(result.reason), result.query, *result.warnings, *result.labels, spans_text(exporter)]
    )
    assert [] == leaks(outputs, secrets)


@pytest.mark.parametrize("status", [401, 500])
@pytest.mark.parametrize("mode", ["json", "text"])
@pytest.mark.parametrize("token", SENDABLE + UNSENDABLE)
def test_http_backend_never_carries_a_secret(
    echo: EchoServer, mode: str, status: int, token: str
) -> None:
    """The router echoes the token in a 401/500 body (JSON or text), or httpx refuses
    to send it (a newline, non-ASCII): the TrafficError holds no form of it."""
    echo.status, echo.mode = status, mode
    backend = http.create(
        {"url": echo.url + "/split", "bearer_token_env": "ROUTER_TOKEN", "attempts": 1},
        PluginContext(base_dir=Path(), env={"ROUTER_TOKEN": token}),
    )
    backend._sleep = lambda _: None
    try:
        with pytest.raises(TrafficError) as info:
            backend.set_split(10)
    finally:
        backend.close()
    assert [] == leaks(f"{info.value}\n{info.value!r}", [token])


@pytest.mark.parametrize("code", [0, 3])
@pytest.mark.parametrize("token", SENDABLE + UNSENDABLE)
def test_command_backend_masks_its_secrets(tmp_path: Path, token: str, code: int) -> None:
    """A command that prints the secret it was given (kubectl -v9 does) to stderr
    (exit 3) or as its output (exit 0, not a number): the variables named by
    ``secrets_env`` reach the command and are masked in every message."""
    script = tmp_path / "echo.sh"
    script.write_text(
        f'#!/bin/sh\necho "token=$ROUTER_TOKEN" >&2\necho "$ROUTER_TOKEN"\nexit {code}\n'
    )
    script.chmod(0o755)
    backend = command.create(
        {"set": [str(script)], "get": [str(script)], "secrets_env": ["ROUTER_TOKEN"]},
        PluginContext(base_dir=tmp_path, env={"ROUTER_TOKEN": token}),
    )
    with pytest.raises(TrafficError) as info:
        backend.get_split()
    assert [] == leaks(str(info.value), [token])


@pytest.mark.parametrize("header", ["Authorization", "cookie", "X-Api-Key"])
def test_credential_headers_are_refused_in_plain_headers(header: str) -> None:
    """A credential header written into the plan's ``headers`` is refused at load,
    naming the key and never echoing the value; ``headers_env`` is the way."""
    with pytest.raises(ConfigError, match="headers_env") as info:
        prometheus.create(
            "p",
            {"url": "http://127.0.0.1:9", "headers": {header: "Bearer in-the-plan-1234"}},
            PluginContext(base_dir=Path(), env={}),
        )
    assert f"headers.{header}" == info.value.key
    assert "in-the-plan-1234" not in str(info.value)


@pytest.mark.parametrize(("token", "why"), [("abc", "too short"), ("new\nline-tok", "header")])
def test_unmaskable_or_unsendable_tokens_are_not_sent(
    echo: EchoServer, token: str, why: str
) -> None:
    """A 3-character token (masking it would mask ordinary text) or one a header
    cannot carry: no request at all, the reason names the variable, not the value."""
    source = prometheus.create(
        "p",
        {"url": echo.url, "bearer_token_env": "TOKEN", "attempts": 3},
        PluginContext(base_dir=Path(), env={"TOKEN": token}),
    )
    result = measure(source, query())
    assert result.value is None
    assert result.reason is not None
    assert "TOKEN" in result.reason
    assert why in result.reason
    assert token not in result.reason
    assert 0 == result.retries


def test_echoed_plan_values_are_cut_short() -> None:
    """A megabyte value in a plan option is named in the error, not echoed whole."""
    huge = "x" * 1_000_000
    context = PluginContext(base_dir=Path(), env={})
    with pytest.raises(ConfigError) as info:
        prometheus.create("p", {"url": "http://127.0.0.1:9"}, context).validate_metric(
            "up", {"pick": huge}
        )
    assert len(str(info.value)) < 300
    with pytest.raises(ConfigError) as info:
        http.create({"url": "http://127.0.0.1:9/s", "method": huge}, context)
    assert len(str(info.value)) < 300
    with pytest.raises(ConfigError) as info:
        command.create({"set": [huge + "{nope}"], "get": ["x"]}, context)
    assert len(str(info.value)) < 300
