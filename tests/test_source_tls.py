"""TLS: verification is on by default, a CA bundle makes a private CA trusted."""

from __future__ import annotations

import asyncio
import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatekeeper._model import Measurement, Query
from gatekeeper._protocols import PluginContext
from gatekeeper.sources import httpjson
from realservers import binary


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate; yields (url, cert)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            binary("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            body = b'{"value": 5}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def ask(options: dict[str, Any]) -> Measurement:
    source = httpjson.create(
        "kpi", {"path": "value", **options}, PluginContext(base_dir=Path(), env={})
    )
    query = Query(metric="m", text="", at=datetime.now(UTC), window=timedelta(0))

    async def go() -> Measurement:
        try:
            return await source.query(query)
        finally:
            await source.aclose()

    return asyncio.run(go())


def test_unknown_certificate_is_refused_without_retries(tls_server: tuple[str, Path]) -> None:
    """By default an untrusted certificate gives no value, and is not retried."""
    url, _cert = tls_server
    measured = ask({"url": url})
    assert measured.value is None
    assert measured.problem == "TLS certificate verification failed (1 attempt)"


def test_ca_bundle_trusts_the_private_ca(tls_server: tuple[str, Path]) -> None:
    """ca_bundle makes the server's certificate trusted."""
    url, cert = tls_server
    assert ask({"url": url, "ca_bundle": str(cert)}).value == 5.0


def test_verification_can_be_turned_off(tls_server: tuple[str, Path]) -> None:
    """tls_verify = false accepts any certificate (a deliberate, visible choice)."""
    url, _cert = tls_server
    assert ask({"url": url, "tls_verify": False}).value == 5.0
