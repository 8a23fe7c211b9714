"""A real Prometheus on 127.0.0.1: backfilled (exact data, no scraping) or scraping.

Use the session fixture ``prometheus_launcher`` from any scope:

    server = prometheus_launcher.backfilled(openmetrics_text)   # exact history
    server = prometheus_launcher.scraping(["127.0.0.1:8001"])   # live, 1s interval
    server.url; server.query("up"); server.stop()

Every server the launcher started is stopped at the end of the session (stopping
earlier with ``server.stop()`` frees the memory sooner). Backfilled timestamps must
lie in the past; retention is set to ten years so old history is kept.
"""

from __future__ import annotations

import http.server
import json
import math
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from . import binary, free_port, stop_process, wait_until

__all__ = [
    "PrometheusLauncher",
    "PrometheusServer",
    "Reply",
    "ScriptedServer",
    "openmetrics_family",
    "openmetrics_series",
    "prometheus_launcher",
    "scripted_server",
]


@attrs.define(kw_only=True)
class PrometheusServer:
    """A running Prometheus: its base URL, its data directory and how to stop it."""

    url: str
    directory: Path
    process: subprocess.Popen[bytes] = attrs.field(repr=False)

    def query(self, promql: str, at: float | None = None) -> Any:
        """The ``data`` of an instant query (a test helper; the source is the real client)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = str(at)
        with urllib.request.urlopen(
            f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=5
        ) as response:
            return json.load(response)["data"]

    def stop(self) -> None:
        stop_process(self.process)


def openmetrics_series(
    name: str, labels: Mapping[str, str], points: Sequence[tuple[float, float]]
) -> str:
    """OpenMetrics sample lines for one series: ``name{labels} value timestamp``."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    head = f"{name}{{{inner}}}" if inner else name
    return "".join(f"{head} {_om_value(value)} {stamp:.3f}\n" for stamp, value in points)


def openmetrics_family(
    family: str,
    kind: str,
    series: Sequence[tuple[str, Mapping[str, str], Sequence[tuple[float, float]]]],
) -> str:
    """One metric family: ``# TYPE family kind`` then each series' samples, e.g.
    ``openmetrics_family("http_requests", "counter", [("http_requests_total", {...}, points)])``.
    Points are ``(unix seconds, value)``, in the past, ascending."""
    lines = [f"# TYPE {family} {kind}\n"]
    lines += [openmetrics_series(name, labels, points) for name, labels, points in series]
    return "".join(lines)


def _om_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class PrometheusLauncher:
    """Starts Prometheus servers in temp dirs on free ports; stops them all at the end."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: list[PrometheusServer] = []

    def _start(
        self, config: str, data_dir: Path, *, ready_timeout: float = 20.0
    ) -> PrometheusServer:
        port = free_port()
        config_file = data_dir.parent / "prometheus.yml"
        config_file.write_text(config)
        log = (data_dir.parent / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={data_dir}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=10y",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = PrometheusServer(
            url=f"http://127.0.0.1:{port}", directory=data_dir, process=process
        )
        self._servers.append(server)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    "prometheus exited: " + (data_dir.parent / "prometheus.log").read_text()[-2000:]
                )
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                    return bool(response.status == 200)
            except urllib.error.HTTPError as exc:  # 503 while starting: close its socket
                exc.close()
                return False

        try:
            wait_until(ready, timeout=ready_timeout, what="prometheus /-/ready")
        except BaseException:
            server.stop()
            raise
        return server

    def _workdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="prom-", dir=self._root))

    def backfilled(self, openmetrics: str) -> PrometheusServer:
        """A server whose TSDB holds exactly ``openmetrics`` (``# EOF`` is added if
        missing), built with ``promtool tsdb create-blocks-from openmetrics``."""
        work = self._workdir()
        data = work / "data"
        data.mkdir()
        text = openmetrics if openmetrics.rstrip().endswith("# EOF") else openmetrics + "# EOF\n"
        source = work / "data.om"
        source.write_text(text)
        result = subprocess.run(
            [
                binary("promtool"),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(data),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"promtool failed: {result.stdout}\n{result.stderr}")
        return self._start("global: {}\nscrape_configs: []\n", data)

    def scraping(self, targets: Sequence[str], *, interval: str = "1s") -> PrometheusServer:
        """A server scraping ``targets`` (host:port, ``/metrics``) every ``interval``.
        The first scrape lands 5-6 s after start: poll, never sleep."""
        work = self._workdir()
        data = work / "data"
        data.mkdir()
        config = (
            f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
            "scrape_configs:\n  - job_name: apps\n"
            f"    scrape_interval: {interval}\n    scrape_timeout: {interval}\n"
            f"    static_configs:\n      - targets: {json.dumps(list(targets))}\n"
        )
        return self._start(config, data)

    def stop_all(self) -> None:
        for server in self._servers:
            server.stop()


@pytest.fixture(scope="session")
def prometheus_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusLauncher]:
    """Start real Prometheus servers (backfilled or scraping); all stopped after the session."""
    launcher = PrometheusLauncher(tmp_path_factory.mktemp("prometheus"))
    try:
        yield launcher
    finally:
        launcher.stop_all()


@attrs.frozen(kw_only=True)
class Reply:
    """One scripted answer: status, body (text or JSON-able), headers, and a delay
    before answering (a hang, bounded: released when the server stops)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0


@attrs.frozen(kw_only=True)
class SeenRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


class ScriptedServer:
    """A tiny real HTTP server on 127.0.0.1 that answers from a script, for the
    faults a real Prometheus cannot be made to produce (500 then success, 429 with
    Retry-After, garbage JSON, a hang). The last reply repeats."""

    def __init__(self) -> None:
        self.replies: list[Reply] = [Reply(body={"status": "success"})]
        self.seen: list[SeenRequest] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read ``seen`` instead."""

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with owner._lock:
                    owner.seen.append(
                        SeenRequest(
                            method=self.command,
                            path=self.path,
                            headers=dict(self.headers.items()),
                            body=body,
                        )
                    )
                    reply = owner.replies.pop(0) if len(owner.replies) > 1 else owner.replies[0]
                if reply.delay:
                    owner._release.wait(reply.delay)
                payload = (
                    b""
                    if reply.body is None
                    else reply.body.encode()
                    if isinstance(reply.body, str)
                    else json.dumps(reply.body).encode()
                )
                head = f"HTTP/1.1 {reply.status} X\r\nContent-Type: application/json\r\n"
                head += f"Content-Length: {len(payload)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                try:
                    self.wfile.write(head.encode() + b"\r\n" + payload)  # one write per reply
                except OSError:  # the client gave up (a timeout test): nothing to tell it
                    self.close_connection = True

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies = list(replies)
            self.seen = []

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A scripted HTTP server for fault tests; stopped (hangs released) afterwards."""
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.stop()
