"""How long a ``set_split`` takes on each backend, and how far real traffic is from it.

    .venv/bin/python benchmarks/traffic_backends.py [--changes 40] [--burst 2000]

Starts a real HAProxy and a real nginx (one worker) in front of two tiny upstreams
on 127.0.0.1 (the test fixtures' code), plus a file, a command (two shell scripts)
and an http backend (a tiny in-process router). For each it times ``--changes``
alternating ``set_split`` calls (each a real change, read back and verified) and
prints mean / p95 in milliseconds. For the balancers it then sends a bounded burst
at several shares and prints the measured canary share against the share the
weights give (the split error, in percentage points). Run by hand, not in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gatekeeper._model import Split
from gatekeeper._protocols import PluginContext
from gatekeeper.traffic import command, file, haproxy, http, nginx
from realservers import free_port
from realservers.haproxy import HAProxyLauncher, burst, start_upstreams
from realservers.nginx import NginxLauncher

SHARES = (1.0, 5.0, 10.0, 25.0, 50.0)


def timed_changes(set_split: Callable[[float], Split], changes: int) -> tuple[float, float]:
    """Mean and p95 (ms) of ``changes`` alternating real changes."""
    set_split(0)
    samples = []
    for index in range(changes):
        share = 10.0 if index % 2 == 0 else 20.0
        started = time.perf_counter()
        set_split(share)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.fmean(samples), p95


def split_errors(
    set_split: Callable[[float], Split], url: str, count: int
) -> list[tuple[float, float, float]]:
    """(asked, actual by weights, measured) for each share, over ``count`` requests."""
    rows = []
    for share in SHARES:
        actual = set_split(share).canary
        counts = burst(url, count)
        rows.append((share, actual, 100.0 * counts["canary"] / count))
    set_split(0)
    return rows


class _Router(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    canary = 0.0

    def _reply(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    def do_GET(self) -> None:
        self._reply({"canary": _Router.canary})

    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Router.canary = float(body["canary"])
        self._reply({"ok": True})

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def router() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Router)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/split"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gk-bench-"))
    ctx = PluginContext(base_dir=root, env={})
    upstreams = start_upstreams()
    haproxies = HAProxyLauncher(root)
    nginxes = NginxLauncher(root)
    timings: dict[str, tuple[float, float]] = {}
    errors: dict[str, list[tuple[float, float, float]]] = {}
    try:
        hap = haproxies.start(upstreams)
        hb = haproxy.create({"socket": str(hap.socket_path), "backend": "app"}, ctx)
        timings["haproxy (unix socket)"] = timed_changes(hb.set_split, args.changes)
        errors["haproxy"] = split_errors(hb.set_split, hap.url, args.burst)

        ngx = nginxes.start(upstreams)
        nb = nginx.create(
            {
                "include": str(ngx.include),
                "conf": str(ngx.conf),
                "nginx": ngx.nginx,
                "baseline": upstreams.baseline.address,
                "canary": upstreams.canary.address,
            },
            ctx,
        )
        timings["nginx (write, -t, reload, wait)"] = timed_changes(nb.set_split, args.changes)
        errors["nginx"] = split_errors(nb.set_split, ngx.url, args.burst)

        fb = file.create({"path": "split.json"}, ctx)
        timings["file (fsync + rename)"] = timed_changes(fb.set_split, args.changes)

        (root / "state").write_text("0\n")
        (root / "set.sh").write_text('#!/bin/sh\necho "$1" > "$(dirname "$0")/state"\n')
        (root / "get.sh").write_text('#!/bin/sh\ncat "$(dirname "$0")/state"\n')
        for script in ("set.sh", "get.sh"):
            (root / script).chmod(0o755)
        cb = command.create({"set": ["./set.sh", "{canary}"], "get": ["./get.sh"]}, ctx)
        timings["command (sh scripts, get+set+get)"] = timed_changes(cb.set_split, args.changes)

        with router() as url:
            web = http.create({"url": url}, ctx)
            timings["http (GET+PUT+GET, keep-alive)"] = timed_changes(web.set_split, args.changes)
            web.close()
    finally:
        haproxies.stop_all()
        nginxes.stop_all()
        upstreams.stop()

    print(f"set_split, {args.changes} real changes each (10% <-> 20%), read back and verified")
    for name, (mean, p95) in timings.items():
        print(f"  {name:36s} mean {mean:8.2f} ms   p95 {p95:8.2f} ms")
    print(f"split error over a burst of {args.burst} requests (measured - weights, in pp)")
    for name, rows in errors.items():
        for asked, actual, measured in rows:
            print(
                f"  {name:8s} asked {asked:5.1f}%  weights give {actual:7.3f}%  "
                f"measured {measured:7.3f}%  error {measured - actual:+.3f} pp"
            )
        worst = max(abs(m - a) for _, a, m in rows)
        print(f"  {name:8s} worst |error| {worst:.3f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
