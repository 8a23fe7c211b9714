"""Real receivers for notifications, on 127.0.0.1: an HTTP server that records every
request, and an SMTP server (aiosmtpd) that records every mail.

    http_receiver.url                      # http://127.0.0.1:PORT
    http_receiver.answer(500)              # every later request gets a 500
    http_receiver.delay = 5.0              # answer after 5 s (a slow receiver)
    http_receiver.wait_for(1, timeout=5)   # the requests received, once there are 1
    smtp_receiver.host, smtp_receiver.port
    smtp_receiver.wait_for(1, timeout=5)   # the mails received (email.message.Message)
    dead_url                               # an http:// URL on a port nobody listens on
"""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from . import free_port

__all__ = [
    "HttpReceiver",
    "Received",
    "SmtpReceiver",
    "dead_url",
    "http_receiver",
    "smtp_receiver",
]


@attrs.frozen(kw_only=True)
class Received:
    """One request as the receiver saw it; ``at`` is ``time.perf_counter()`` when its
    body had been read."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        owner = self.server.owner
        owner.record(
            Received(
                at=time.perf_counter(),
                method="POST",
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
        )
        if owner.delay:
            owner.released.wait(owner.delay)
        payload = b"ok" if owner.status < 400 else b"receiver says no"
        self.send_response(owner.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what was received, not the access log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out) before a slow answer is the point of the
        slow receiver, not an error worth a traceback."""


class HttpReceiver:
    """An HTTP server on 127.0.0.1 recording every POST; answers ``status`` after
    ``delay`` seconds."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.released = threading.Event()
        self._cond = threading.Condition()
        self._received: list[Received] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, status: int) -> None:
        self.status = status

    def record(self, received: Received) -> None:
        with self._cond:
            self._received.append(received)
            self._cond.notify_all()

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    def wait_for(self, count: int, *, timeout: float) -> list[Received]:
        """The requests received, once there are at least ``count`` (bounded wait)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._received)} of {count} requests in {timeout}s")
            return list(self._received)

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _Mailbox:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: list[email.message.Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        with self.cond:
            self.messages.append(message)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            self.cond.notify_all()
        return "250 Message accepted for delivery"


@attrs.define
class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 keeping every mail it accepts."""

    host: str
    port: int
    mailbox: _Mailbox = attrs.field(repr=False)

    @property
    def messages(self) -> list[email.message.Message]:
        with self.mailbox.cond:
            return list(self.mailbox.messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        with self.mailbox.cond:
            return list(self.mailbox.envelopes)

    def wait_for(self, count: int, *, timeout: float) -> list[email.message.Message]:
        with self.mailbox.cond:
            if not self.mailbox.cond.wait_for(
                lambda: len(self.mailbox.messages) >= count, timeout=timeout
            ):
                raise TimeoutError(f"{len(self.mailbox.messages)} of {count} mails in {timeout}s")
            return list(self.mailbox.messages)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpReceiver(host="127.0.0.1", port=controller.port, mailbox=mailbox)
    finally:
        controller.stop()


@pytest.fixture
def dead_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/hook"
