"""A bound on a whole synchronous HTTP request, slow answers included.

httpx's timeouts bound each read, so a server that sends one byte every half second
(headers or body) never trips them. :class:`Watchdog` sees the request's socket
through httpx's documented ``trace`` request extension and shuts it down when the
deadline passes, which wakes the blocked read; the caller then reports a time-out.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

__all__ = ["Watchdog"]


class Watchdog:
    """``with Watchdog(seconds) as dog: client.request(..., extensions=dog.extensions)``;
    ``dog.fired`` says whether the deadline ended the request."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    @property
    def extensions(self) -> dict[str, Any]:
        return {"trace": self._trace}

    def _trace(self, name: str, info: dict[str, Any]) -> None:
        if not name.endswith(("connect_tcp.complete", "connect_unix_socket.complete")):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed: nothing left to wake
            sock.shutdown(socket.SHUT_RDWR)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                self._shut(sock)

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
