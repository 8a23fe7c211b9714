"""An HTTP/1.1 keep-alive transport for ``httpx`` on plain asyncio streams.

Why: measured against a real Prometheus (docs/benchmarks.md, "Concurrent queries"),
httpx's default transport (httpcore over anyio, h11 parsing) spent most of the
client's CPU per request outside HTTP: every time a request finished, httpcore's
pool re-scanned each waiting request against each connection, asking every idle one
``has_expired()`` (a ``poll()`` and anyio's ``extra_attributes`` dict rebuilt per
call), with anyio cancel scopes around each read and write; then h11's event state
machine was the largest cost left. With the 10 queries of a checkpoint in flight the
client, not Prometheus, was the bottleneck.

This transport keeps what the sources rely on (per-phase timeouts from the
request's ``timeout`` extension, httpx's exception types with the OS error as the
cause, TLS verified as httpx verifies it, a header that could split the request
refused) and does nothing else: idle connections per origin, no HTTP/2, no proxies
(the sources set ``trust_env=False``), no redirects (the sources never follow them).
Responses are framed as RFC 9112 section 6.3 says (no body for HEAD/204/304; chunked;
one Content-Length; else to the end of the connection, which is then not reused);
anything malformed is a ``RemoteProtocolError``. The whole body is read before the
response is returned (the sources read it anyway); the caller's overall deadline
still bounds a body that drips.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import attrs
import httpx

__all__ = ["AsyncioTransport", "release_shared", "shared_transport"]

READ_SIZE = 65536
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_UNSAFE = re.compile(rb"[\r\n\x00]")
_STATUS = re.compile(rb"(HTTP/1\.[01]) ([1-9][0-9][0-9])(?: ([^\r\n]*))?")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
Origin = tuple[str, str, int]


class _Stale(Exception):  # noqa: N818 - internal signal: a reused connection was already closed
    pass


class _Connection:
    __slots__ = ("expires", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.expires = 0.0  # 0: never used yet; then when it stops being worth reusing

    def usable(self, now: float) -> bool:
        return now < self.expires and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    timeout: Any = request.extensions.get("timeout") or {}
    return {key: timeout.get(key) for key in ("connect", "read", "write", "pool")}


class AsyncioTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive over asyncio streams (see the module's docstring).

    ``max_connections`` bounds requests in flight per origin (waiting for a slot counts against
    the ``pool`` timeout); ``max_keepalive`` idle connections per origin are kept for
    ``keepalive_expiry`` seconds. A request on a reused connection that the server
    had already closed (no byte of a response received) is sent once more on a new
    connection, as browsers do; any other failure is the caller's to retry.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        max_connections: int = 100,
        max_keepalive: int = 32,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        # Requests in flight per origin: the pool is shared by every source of the loop,
        # and a server that never answers must not take the slots of the others.
        self._max_connections = max_connections
        self._slots: dict[Origin, asyncio.Semaphore] = {}
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self._verify
            self._ssl = (
                verify
                if isinstance(verify, ssl.SSLContext)
                else httpx.create_ssl_context(verify=verify, trust_env=False)
            )
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the transport is closed", request=request)
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme!r}", request=request)
        origin: Origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts = _timeouts(request)
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = asyncio.Semaphore(self._max_connections)
        if slots.locked():
            try:
                async with asyncio.timeout(timeouts["pool"]):
                    await slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection slot", request=request) from None
        else:
            await slots.acquire()
        try:
            connection = self._reuse(origin)
            if connection is not None:
                try:
                    return await self._exchange(connection, origin, request, body, timeouts)
                except _Stale:
                    pass  # closed by the server while idle: once more on a new connection
            connection = await self._connect(origin, request, timeouts)
            try:
                return await self._exchange(connection, origin, request, body, timeouts)
            except _Stale:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection without a response", request=request
                ) from None
        finally:
            slots.release()

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.usable(now):
                return connection
            connection.close()
        return None

    async def _connect(
        self, origin: Origin, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> _Connection:
        scheme, host, port = origin
        tls = self._ssl_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeouts["connect"]):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                    limit=READ_SIZE,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out connecting", request=request) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS verification (ssl.SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    async def _exchange(
        self,
        connection: _Connection,
        origin: Origin,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        """Send one request and read its whole response; keep the connection if it
        can carry another, close it otherwise (errors and cancellation included)."""
        reused = connection.expires > 0
        keep = False
        try:
            await _send(connection, request, body, timeouts["write"], reused=reused)
            head, content, keep = await _receive(
                connection, request, timeouts["read"], reused=reused
            )
            return httpx.Response(
                head.status,
                headers=head.headers,
                stream=httpx.ByteStream(content),
                extensions={"http_version": head.version, "reason_phrase": head.reason},
                request=request,
            )
        finally:
            self._release(connection, origin, keep=keep)

    def _release(self, connection: _Connection, origin: Origin, *, keep: bool) -> None:
        idle = self._idle.setdefault(origin, [])
        if keep and not self._closed and len(idle) < self._max_keepalive:
            connection.expires = time.monotonic() + self._expiry
            idle.append(connection)
        else:
            connection.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        writers = []
        for connections in idle.values():
            for connection in connections:
                connection.close()
                writers.append(connection.writer)
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _send(
    connection: _Connection,
    request: httpx.Request,
    body: bytes,
    write_timeout: float | None,
    *,
    reused: bool,
) -> None:
    data = _request_bytes(request, body)
    try:
        connection.writer.write(data)
        if connection.writer.transport.get_write_buffer_size():
            async with asyncio.timeout(write_timeout):
                await connection.writer.drain()
    except TimeoutError:
        raise httpx.WriteTimeout("timed out writing", request=request) from None
    except OSError as exc:
        if reused:
            raise _Stale from exc
        raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc


def _request_bytes(request: httpx.Request, body: bytes) -> bytes:
    """The request line, headers and body; a header that could split the message
    (CR, LF or NUL in a value, a name that is not a token) is refused."""
    url = request.url
    lines = [request.method.encode("ascii") + b" " + url.raw_path + b" HTTP/1.1"]
    names = set()
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name) or _UNSAFE.search(value):
            raise httpx.LocalProtocolError("a header cannot be sent as it is", request=request)
        lowered = name.lower()
        if lowered in (b"transfer-encoding", b"content-length"):
            continue  # framed below, by the body actually sent
        names.add(lowered)
        lines.append(name + b": " + value)
    if b"host" not in names:
        lines.insert(1, b"Host: " + url.netloc)
    if body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@attrs.frozen
class _Head:
    version: bytes
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]

    def tokens(self, name: bytes) -> list[bytes]:
        return [t.strip().lower() for v in self.values(name) for t in v.split(b",") if t.strip()]


def _parse_head(raw: bytes) -> _Head:
    lines = raw[:-4].split(b"\r\n")
    status = _STATUS.fullmatch(lines[0])
    if status is None:
        raise ValueError("malformed status line")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name) or _UNSAFE.search(value):
            raise ValueError("malformed header line")
        headers.append((name, value.strip(b" \t")))
    version, code, reason = status.groups()
    if code == b"101":
        raise ValueError("unexpected 101 Switching Protocols (no switch was asked for)")
    return _Head(version, int(code), reason or b"", headers)


async def _receive(
    connection: _Connection, request: httpx.Request, read_timeout: float | None, *, reused: bool
) -> tuple[_Head, bytes, bool]:
    """The response head, its whole body, and whether the connection can carry
    another request. ``read_timeout`` bounds each read, as httpx's read timeout
    does; a reused connection closed before any byte came is :class:`_Stale`."""
    reader = connection.reader
    received = False
    try:
        async with asyncio.timeout(read_timeout) as deadline:

            def more() -> None:  # a read arrived: the next one gets the whole timeout
                if read_timeout is not None:
                    deadline.reschedule(asyncio.get_running_loop().time() + read_timeout)

            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if reused and not received and not exc.partial:
                        raise _Stale from None
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection without a complete response",
                        request=request,
                    ) from None
                except asyncio.LimitOverrunError:
                    raise httpx.RemoteProtocolError(
                        "the response head is too long", request=request
                    ) from None
                received = True
                more()
                head = _parse_head(raw)
                if not 100 <= head.status < 200:
                    break
            content, framed = await _body(reader, request, head, more)
    except TimeoutError:
        raise httpx.ReadTimeout("timed out reading", request=request) from None
    except ValueError as exc:  # a malformed head, length or chunk
        raise httpx.RemoteProtocolError(str(exc), request=request) from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):  # in the body
        raise httpx.RemoteProtocolError(
            "the server closed the connection mid-response", request=request
        ) from None
    except OSError as exc:
        if reused and not received:
            raise _Stale from exc
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    keep = (
        framed
        and head.version == b"HTTP/1.1"
        and b"close" not in head.tokens(b"connection")
        and not reader.at_eof()
    )
    return head, content, keep


async def _body(
    reader: asyncio.StreamReader,
    request: httpx.Request,
    head: _Head,
    more: Callable[[], None],
) -> tuple[bytes, bool]:
    """The body as the head frames it (RFC 9112 6.3), and whether it was framed (a
    body read to the end of the connection leaves nothing to reuse)."""
    if request.method == "HEAD" or head.status in (204, 304):
        return b"", True
    chunks: list[bytes] = []
    codings = head.tokens(b"transfer-encoding")
    if codings:
        if codings[-1] != b"chunked":
            await _until_close(reader, chunks, more)
            return b"".join(chunks), False
        while True:
            line = await reader.readuntil(b"\r\n")
            more()
            size_text = line[:-2].split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise ValueError("malformed chunk size")
            size = int(size_text, 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers: skipped
                    more()
                return b"".join(chunks), not head.values(b"content-length")
            await _exactly(reader, size, chunks, more)
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("malformed chunk end")
    lengths = {v.strip() for v in head.values(b"content-length")}
    if not lengths:
        await _until_close(reader, chunks, more)
        return b"".join(chunks), False
    if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
        raise ValueError("malformed Content-Length")
    await _exactly(reader, int(length), chunks, more)
    return b"".join(chunks), True


async def _exactly(
    reader: asyncio.StreamReader, size: int, chunks: list[bytes], more: Callable[[], None]
) -> None:
    while size > 0:
        chunk = await reader.read(min(size, READ_SIZE))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", size)
        chunks.append(chunk)
        size -= len(chunk)
        more()


async def _until_close(
    reader: asyncio.StreamReader, chunks: list[bytes], more: Callable[[], None]
) -> None:
    while chunk := await reader.read(READ_SIZE):
        chunks.append(chunk)
        more()


@attrs.define
class _Shared:
    transport: AsyncioTransport
    users: int = 0


# One pool per event loop and TLS setting, shared by every source of the process:
# 200 watched runs with a source each would otherwise hold 200 pools of idle
# connections (Prometheus accepts 512 connections by default, then stops accepting).
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Shared]] = (
    weakref.WeakKeyDictionary()
)


def shared_transport(key: Hashable, make: Callable[[], AsyncioTransport]) -> AsyncioTransport:
    """The running loop's transport for ``key`` (its TLS settings), made on first
    use; every caller gives it back with :func:`release_shared`."""
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    entry = pools.get(key)
    if entry is None or entry.transport.closed:
        entry = pools[key] = _Shared(make())
    entry.users += 1
    return entry.transport


async def release_shared(
    key: Hashable, transport: AsyncioTransport, loop: asyncio.AbstractEventLoop
) -> None:
    """One user fewer; the last one closes the pool."""
    pools = _POOLS.get(loop) or {}
    entry = pools.get(key)
    if entry is not None and entry.transport is transport:
        entry.users -= 1
        if entry.users > 0:
            return
        del pools[key]
    await transport.aclose()
