"""A real HAProxy on 127.0.0.1 in front of two tiny real HTTP upstreams.

    upstreams = start_upstreams()                  # "baseline" and "canary" answer their name
    server = haproxy_launcher.start(upstreams)     # frontend URL, admin socket, reload, stop
    burst(server.url, 2000)                        # Counter of versions over a bounded burst

HAProxy runs in master-worker mode in the foreground (``-W -db``) under Popen, so a
reload is ``SIGUSR2`` to the process we own and the test can see its effect (the
runtime weights go back to the configuration's). The upstreams set ``TCP_NODELAY``
and write each response in one call, or every request behind the balancer would
wait ~40 ms for a delayed ACK.
"""

from __future__ import annotations

import collections
import http.client
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs
import pytest

from . import binary, free_port, stop_process, wait_until

__all__ = [
    "HAProxyLauncher",
    "HAProxyServer",
    "Upstream",
    "Upstreams",
    "burst",
    "haproxy_launcher",
    "start_upstream",
    "start_upstreams",
    "upstreams",
]


class _VersionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _VersionServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        body = self.server.version.encode()
        head = (
            "HTTP/1.1 200 OK\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Content-Type: text/plain\r\n"
            f"X-Version: {self.server.version}\r\n\r\n"
        )
        self.wfile.write(head.encode() + body)  # one write per response

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a burst of thousands of requests must not flood the test output."""


class _VersionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, version: str) -> None:
        self.version = version
        super().__init__(("127.0.0.1", port), _VersionHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A balancer closing its idle keep-alive connections is not an error here."""


@attrs.define(kw_only=True)
class Upstream:
    """One tiny HTTP server answering its version name."""

    version: str
    port: int
    server: _VersionServer = attrs.field(repr=False)
    thread: threading.Thread = attrs.field(repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@attrs.frozen(kw_only=True)
class Upstreams:
    baseline: Upstream
    canary: Upstream

    def stop(self) -> None:
        self.baseline.stop()
        self.canary.stop()


def start_upstream(version: str) -> Upstream:
    """Start a server answering ``version`` on a free port (ready when this returns)."""
    server = _VersionServer(free_port(), version)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    return Upstream(version=version, port=server.server_address[1], server=server, thread=thread)


def start_upstreams() -> Upstreams:
    return Upstreams(baseline=start_upstream("baseline"), canary=start_upstream("canary"))


def burst(url: str, count: int, *, timeout: float = 30.0) -> collections.Counter[str]:
    """Send ``count`` GETs over one keep-alive connection; count the answering versions.

    Bounded in count and in time; a non-200 answer is counted as ``"status NNN"``.
    """
    host_port = url.removeprefix("http://").split("/", 1)[0]
    host, _, port = host_port.partition(":")
    counts: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                raise TimeoutError(f"burst of {count} took over {timeout}s ({counts})")
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode()
            version = response.getheader("X-Version") or body.strip()
            counts[version if response.status == 200 else f"status {response.status}"] += 1
    finally:
        conn.close()
    return counts


@attrs.define(kw_only=True)
class HAProxyServer:
    """A running HAProxy: frontend URL, admin socket (unix and TCP), files, reload, stop."""

    url: str
    socket_path: Path
    admin_address: str
    config_path: Path
    pid_file: Path
    backend: str
    baseline: str
    canary: str
    addresses: tuple[str, str]
    process: subprocess.Popen[bytes] = attrs.field(repr=False)

    def command(self, line: str) -> str:
        """One runtime API command over the unix socket (a test helper)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def weight(self, server: str | None = None) -> int:
        """The runtime weight of ``server`` (default: the canary) in the backend."""
        reply = self.command(f"get weight {self.backend}/{server or self.canary}")
        return int(reply.split()[0])

    def worker_pid(self) -> str:
        for line in self.command("show info").splitlines():
            if line.startswith("Pid:"):
                return line.split(":", 1)[1].strip()
        raise RuntimeError("haproxy 'show info' has no Pid line")

    def reload(self, *, timeout: float = 10.0) -> None:
        """Reload (SIGUSR2 to the master) and wait until a new worker answers."""
        before = self.worker_pid()
        self.process.send_signal(signal.SIGUSR2)
        wait_until(lambda: self.worker_pid() != before, timeout=timeout, what="haproxy reload")

    def stop(self) -> None:
        stop_process(self.process)


_CONFIG = """\
global
    stats socket {socket} mode 600 level admin
    stats socket ipv4@{admin} level admin
    stats timeout 10s

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend web
    bind {frontend}
    default_backend {backend}

backend {backend}
    balance roundrobin
    server baseline {baseline} weight {baseline_weight}
    server canary {canary} weight {canary_weight}
"""


class HAProxyLauncher:
    """Starts HAProxy servers in temp dirs on free ports; stops them all at the end."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: list[HAProxyServer] = []

    def start(
        self,
        upstreams: Upstreams | tuple[str, str],
        *,
        backend: str = "app",
        baseline_weight: int = 256,
        canary_weight: int = 0,
        ready_timeout: float = 10.0,
    ) -> HAProxyServer:
        """Start HAProxy in front of ``upstreams`` (tiny upstreams, or two
        ``host:port`` addresses: baseline, canary) and wait until it serves."""
        if isinstance(upstreams, Upstreams):
            addresses = (upstreams.baseline.address, upstreams.canary.address)
        else:
            addresses = upstreams
        directory = Path(tempfile.mkdtemp(prefix="haproxy-", dir=self._root))
        port, admin_port = free_port(), free_port()
        config = directory / "haproxy.cfg"
        config.write_text(
            _CONFIG.format(
                socket=directory / "admin.sock",
                admin=f"127.0.0.1:{admin_port}",
                frontend=f"127.0.0.1:{port}",
                backend=backend,
                baseline=addresses[0],
                canary=addresses[1],
                baseline_weight=baseline_weight,
                canary_weight=canary_weight,
            )
        )
        pid_file = directory / "haproxy.pid"
        exe = binary("haproxy")
        check = subprocess.run(
            [exe, "-c", "-q", "-f", str(config)], capture_output=True, timeout=10, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused the test config: {check.stderr.decode()}")
        log = (directory / "haproxy.log").open("wb")
        process = subprocess.Popen(
            [exe, "-W", "-db", "-f", str(config), "-p", str(pid_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = HAProxyServer(
            url=f"http://127.0.0.1:{port}",
            socket_path=directory / "admin.sock",
            admin_address=f"127.0.0.1:{admin_port}",
            config_path=config,
            pid_file=pid_file,
            backend=backend,
            baseline="baseline",
            canary="canary",
            addresses=addresses,
            process=process,
        )
        self._servers.append(server)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"haproxy exited with {process.returncode}: "
                    + (directory / "haproxy.log").read_text()
                )
            return bool(server.worker_pid()) and burst(server.url, 1, timeout=2).total() == 1

        wait_until(ready, timeout=ready_timeout, what="haproxy")
        return server

    def stop_all(self) -> None:
        for server in self._servers:
            server.stop()


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    """Two tiny HTTP servers answering "baseline" and "canary" (shared by the session)."""
    pair = start_upstreams()
    yield pair
    pair.stop()


@pytest.fixture(scope="session")
def haproxy_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HAProxyLauncher]:
    """Start HAProxy servers with ``.start(upstreams)``; all stopped at session end."""
    launcher = HAProxyLauncher(tmp_path_factory.mktemp("haproxy"))
    yield launcher
    launcher.stop_all()
