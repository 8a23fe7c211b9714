"""Start the live canary demo's real servers on 127.0.0.1, and stop them all.

    with Stack(Path(tempfile.mkdtemp())) as stack:
        baseline = stack.app("baseline")
        canary = stack.app("canary")
        alertmanager = stack.alertmanager()
        prometheus = stack.prometheus([baseline, canary], alertmanager)
        balancer = stack.haproxy(baseline, canary)        # or stack.nginx(...)
        prometheus.wait_scraped(2)                          # rate() needs two scrapes

Everything gets a free port and lives in the stack's folder; readiness is bounded
polling, never a fixed sleep; leaving the ``with`` block (or ``stop()``) stops every
process in reverse order. Used by ``demo.py`` and by ``tests/test_live_canary.py``,
so the tests run the real demo. Facts behind the details: /work/shared/REAL-SERVERS.md
(Prometheus' first scrape lands 5-6 s after start; Alertmanager's binary is
``prometheus-alertmanager``; nginx needs ``-p``/``-c`` on every invocation).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(name: str, *candidates: str) -> str:
    """The path of a server binary; a missing one is an error, never skipped."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if found:
            return found
    raise RuntimeError(f"{name} is not installed (scripts/setup.sh installs it)")


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = ""
) -> None:
    """Poll ``predicate`` until it is true, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # noqa: BLE001 - the server may not answer yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last!r}")


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float = 5.0) -> None:
    """Terminate, then kill if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def http(url: str, *, method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    """One request to a 127.0.0.1 server: status and body (an HTTP error is an answer)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


@dataclass
class App:
    """One version of the demo service (``app.py``)."""

    version: str
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def set_behaviour(
        self, *, error_rate: float | None = None, latency_ms: float | None = None
    ) -> str:
        """``PUT /admin``: change the error rate or latency now; returns the app's answer."""
        params = {
            k: str(v)
            for k, v in (("error_rate", error_rate), ("latency_ms", latency_ms))
            if v is not None
        }
        status, body = http(f"{self.url}/admin?{urllib.parse.urlencode(params)}", method="PUT")
        if status != 200:
            raise RuntimeError(f"{self.version}: PUT /admin answered {status}: {body!r}")
        return body.decode().strip()


@dataclass
class Prometheus:
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query now."""
        status, body = http(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        if status != 200:
            raise RuntimeError(f"prometheus answered {status}: {body[:200]!r}")
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
        return result

    def wait_scraped(self, targets: int, *, scrapes: int = 2, timeout: float = 30.0) -> None:
        """Wait until every target has been scraped successfully ``scrapes`` times
        (``rate()`` needs two samples; the first scrape lands 5-6 s after start)."""
        promql = f'count(sum_over_time(up{{job="apps"}}[1m]) >= {scrapes})'

        def ready() -> bool:
            result = self.query(promql)
            return bool(result) and int(float(result[0]["value"][1])) >= targets

        wait_until(ready, timeout=timeout, interval=0.2, what=f"{scrapes} scrapes of each app")


@dataclass
class Alertmanager:
    url: str

    def active(self) -> list[str]:
        """Names of the alerts active now."""
        status, body = http(f"{self.url}/api/v2/alerts?active=true&silenced=false")
        if status != 200:
            raise RuntimeError(f"alertmanager answered {status}")
        return sorted(a["labels"].get("alertname", "?") for a in json.loads(body))


@dataclass
class Balancer:
    """HAProxy or nginx in front of the two apps; ``read_split`` asks the balancer
    itself (HAProxy's runtime API, nginx's live include file), not gatekeeper."""

    kind: str
    url: str
    directory: Path
    baseline: App
    canary: App
    socket_path: Path | None = None  # haproxy: the runtime API
    include: Path | None = None  # nginx: the upstream file gatekeeper rewrites
    conf: Path | None = None
    nginx: str = "nginx"

    def read_split(self) -> tuple[float, str]:
        """The canary's share in percent as the balancer has it now, and the raw weights."""
        if self.kind == "haproxy":
            weights = [self._haproxy_weight(name) for name in ("baseline", "canary")]
        else:
            weights = self._nginx_weights()
        total = sum(weights)
        if total == 0:
            raise RuntimeError(f"{self.kind}: no server has any weight")
        detail = f"{self.kind} baseline={weights[0]} canary={weights[1]}"
        return 100.0 * weights[1] / total, detail

    def _haproxy_weight(self, server: str) -> int:
        assert self.socket_path is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(f"get weight app/{server}\n".encode())
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        reply = b"".join(chunks).decode().strip()  # "26 (initial 0)"
        match = re.match(r"(\d+)", reply)
        if match is None:
            raise RuntimeError(f"haproxy: get weight app/{server}: {reply!r}")
        return int(match.group(1))

    def _nginx_weights(self) -> list[int]:
        assert self.include is not None
        text = self.include.read_text()
        weights = []
        for app in (self.baseline, self.canary):
            match = re.search(rf"^\s*server\s+{re.escape(app.address)}\b([^;]*);", text, re.M)
            if match is None:
                raise RuntimeError(f"nginx: no server line for {app.address} in {self.include}")
            params = match.group(1)
            weight = re.search(r"weight=(\d+)", params)
            down = re.search(r"\b(down|backup)\b", params)
            weights.append(0 if down else int(weight.group(1)) if weight else 1)
        return weights


_HAPROXY_CFG = """\
global
    stats socket {socket} mode 600 level admin
    stats timeout 10s

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend web
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
    server baseline {baseline} weight 256
    server canary {canary} weight 0
"""

_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 256;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;

    include {include};

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

_NGINX_UPSTREAM = """\
upstream app {{
    server {baseline} weight=1000;
    server {canary} down;
}}
"""

_ALERTMANAGER_YML = """\
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""

# One alerting rule for "critical": the canary answers more than 20 % errors.
_RULES_YML = """\
groups:
  - name: live-canary
    interval: 1s
    rules:
      - alert: CanaryErrorRateHigh
        expr: >-
          sum(rate(http_requests_total{version="canary",code=~"5.."}[5s]))
          / sum(rate(http_requests_total{version="canary"}[5s])) > 0.2
        labels:
          severity: critical
          service: live-canary
        annotations:
          summary: the canary answers more than 20 % errors
"""


@dataclass
class Stack:
    """Every process the demo started, in start order; ``stop()`` ends them all."""

    directory: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    # run first when stopping, newest first: clients (the load) end before the servers
    before_stop: list[Callable[[], None]] = field(default_factory=list)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every process, newest first; safe to call twice."""
        while self.before_stop:
            self.before_stop.pop()()
        while self.processes:
            _, proc = self.processes.pop()
            stop_process(proc)

    def _spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        with (self.directory / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((name, proc))
        return proc

    def _alive(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            log = (self.directory / f"{name}.log").read_text(errors="replace")
            raise RuntimeError(f"{name} exited with {proc.returncode}: {log[-2000:]}")

    def _ready(self, name: str, proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
        def ready() -> bool:
            self._alive(name, proc)
            return http(url, timeout=1)[0] == 200

        wait_until(ready, timeout=timeout, what=f"{name} at {url}")

    # -- the pieces ----------------------------------------------------------------

    def app(self, version: str, *extra: str, port: int | None = None, wait: bool = True) -> App:
        """Start ``app.py --version VERSION`` (ready when this returns, unless ``wait``
        is false: then call :meth:`wait_app`)."""
        app = App(version=version, port=port or free_port())
        argv = [sys.executable, str(HERE / "app.py"), "--port", str(app.port)]
        proc = self._spawn(version, [*argv, "--version", version, *extra])
        if wait:
            self._ready(version, proc, f"{app.url}/healthz", 20)
        return app

    def wait_app(self, app: App) -> None:
        proc = dict(self.processes)[app.version]
        self._ready(app.version, proc, f"{app.url}/healthz", 20)

    def alertmanager(self) -> Alertmanager:
        folder = self.directory / "alertmanager"
        (folder / "data").mkdir(parents=True)
        (folder / "alertmanager.yml").write_text(_ALERTMANAGER_YML)
        am = Alertmanager(url=f"http://127.0.0.1:{free_port()}")
        proc = self._spawn(
            "alertmanager",
            [
                binary("prometheus-alertmanager"),
                f"--config.file={folder / 'alertmanager.yml'}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address={am.url.removeprefix('http://')}",
                "--cluster.listen-address=",  # or it binds 0.0.0.0:9094
            ],
        )
        self._ready("alertmanager", proc, f"{am.url}/-/ready", 20)
        return am

    def prometheus(self, apps: Sequence[App], alertmanager: Alertmanager) -> Prometheus:
        """Prometheus scraping ``apps`` every second, with the one alerting rule
        sending to ``alertmanager``. Ready to answer when this returns; the first
        scrape comes later (:meth:`Prometheus.wait_scraped`)."""
        folder = self.directory / "prometheus"
        (folder / "data").mkdir(parents=True)
        (folder / "rules.yml").write_text(_RULES_YML)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(folder / "rules.yml")],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [alertmanager.url.removeprefix("http://")]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "apps",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [a.address for a in apps]}],
                }
            ],
        }
        (folder / "prometheus.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML
        prom = Prometheus(url=f"http://127.0.0.1:{free_port()}")
        proc = self._spawn(
            "prometheus",
            [
                binary("prometheus"),
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={prom.url.removeprefix('http://')}",
            ],
        )
        self._ready("prometheus", proc, f"{prom.url}/-/ready", 20)
        return prom

    def haproxy(self, baseline: App, canary: App) -> Balancer:
        """HAProxy in front of the apps, all traffic on the baseline (weights 256/0),
        runtime API on a unix socket in its folder."""
        folder = self.directory / "haproxy"
        folder.mkdir()
        port = free_port()
        config = folder / "haproxy.cfg"
        config.write_text(
            _HAPROXY_CFG.format(
                socket=folder / "admin.sock",
                port=port,
                baseline=baseline.address,
                canary=canary.address,
            )
        )
        exe = binary("haproxy")
        check = subprocess.run(
            [exe, "-c", "-q", "-f", str(config)], capture_output=True, timeout=10, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused the config: {check.stderr.decode()}")
        # master-worker in the foreground, so the process we own is HAProxy itself
        proc = self._spawn("haproxy", [exe, "-W", "-db", "-f", str(config)])
        balancer = Balancer(
            kind="haproxy",
            url=f"http://127.0.0.1:{port}",
            directory=folder,
            baseline=baseline,
            canary=canary,
            socket_path=folder / "admin.sock",
        )
        self._ready("haproxy", proc, balancer.url + "/healthz", 10)
        wait_until(lambda: balancer.read_split()[0] == 0.0, timeout=10, what="haproxy socket")
        return balancer

    def nginx(self, baseline: App, canary: App) -> Balancer:
        """nginx (one worker, foreground) in front of the apps, all traffic on the
        baseline; the upstream include is the file gatekeeper's nginx backend owns."""
        prefix = self.directory / "nginx"
        prefix.mkdir()
        port = free_port()
        include = prefix / "upstream.conf"
        include.write_text(_NGINX_UPSTREAM.format(baseline=baseline.address, canary=canary.address))
        conf = prefix / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(prefix=prefix, include=include, port=port))
        exe = binary("nginx", "/usr/sbin/nginx")
        proc = self._spawn("nginx", [exe, "-p", str(prefix), "-c", str(conf)])
        balancer = Balancer(
            kind="nginx",
            url=f"http://127.0.0.1:{port}",
            directory=prefix,
            baseline=baseline,
            canary=canary,
            include=include,
            conf=conf,
            nginx=exe,
        )
        self._ready("nginx", proc, balancer.url + "/healthz", 10)
        wait_until((prefix / "nginx.pid").exists, timeout=10, what="nginx pid file")
        return balancer
