"""A bounded load generator for the live canary demo (127.0.0.1 only).

    python loadgen.py --url http://127.0.0.1:8080/ --count 5000 --duration 30 --rate 200

Stops at ``--count`` requests or after ``--duration`` seconds, whichever comes first.
Counts responses per version (the ``X-Version`` header the demo app sets) and status;
``--report-every S`` prints one JSON line per interval (``{"t": .., "baseline": ..,
"canary": .., "errors": ..}``, errors being non-200 answers and transport errors) so a
timeline shows when the canary stops answering. A kept-alive connection the server
closed meanwhile (an nginx reload does) is reopened and the request sent once more,
as HTTP clients do; any other failure counts as a transport error. The summary goes
last (``--json`` for JSON). Importable: :func:`run` returns a :class:`Summary`.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# how a server closing an idle kept-alive connection shows (not a failed request)
_CLOSED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class Summary:
    """What the load generator saw: responses per version and per (version, status)."""

    requests: int = 0
    versions: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    transport_errors: int = 0  # no HTTP answer at all (refused, reset, timed out)
    elapsed: float = 0.0
    intervals: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "versions": dict(self.versions),
            "statuses": dict(self.statuses),
            "transport_errors": self.transport_errors,
            "elapsed": round(self.elapsed, 3),
        }

    def text(self) -> str:
        per_version = " ".join(f"{v}={n}" for v, n in sorted(self.versions.items()))
        statuses = " ".join(f"{k}={n}" for k, n in sorted(self.statuses.items()))
        return (
            f"{self.requests} requests in {self.elapsed:.1f}s: {per_version or 'none'} "
            f"transport_errors={self.transport_errors} [{statuses}]"
        )


def _target(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS:
        raise ValueError(f"only http://127.0.0.1 URLs are allowed, got {url!r}")
    return parts.hostname, parts.port or 80, parts.path or "/"


def run(  # noqa: PLR0915 - workers are closures over one locked summary
    url: str,
    *,
    count: int,
    duration: float,
    concurrency: int = 4,
    rate: float = 0.0,
    timeout: float = 2.0,
    report_every: float = 0.0,
    on_interval: Callable[[dict[str, float]], None] | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Send at most ``count`` GETs for at most ``duration`` seconds; count the answers.

    ``stop`` ends the run early when set (the demo stops the load once the rollout
    is over; the count and duration bounds hold either way).
    """
    if count < 0 or duration <= 0 or concurrency < 1:
        raise ValueError("count >= 0, duration > 0 and concurrency >= 1 are required")
    host, port, path = _target(url)
    summary = Summary()
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + duration
    interval: collections.Counter[str] = collections.Counter()
    next_report = [start + report_every] if report_every > 0 else [float("inf")]
    stopped = stop or threading.Event()

    def flush(now: float) -> None:
        line: dict[str, float] = {"t": round(now - start, 2), **interval}
        line.setdefault("baseline", 0)
        line.setdefault("canary", 0)
        line.setdefault("errors", 0)
        summary.intervals.append(line)
        interval.clear()
        if on_interval is not None:
            on_interval(line)

    def take_ticket() -> int | None:
        with lock:
            now = time.monotonic()
            if summary.requests >= count or now >= deadline or stopped.is_set():
                return None
            summary.requests += 1
            return summary.requests

    def record(version: str | None, status: str | None) -> None:
        with lock:
            now = time.monotonic()
            if now >= next_report[0]:
                flush(now)
                next_report[0] += report_every
            if version is None:
                summary.transport_errors += 1
                interval["errors"] += 1
                return
            summary.versions[version] += 1
            summary.statuses[f"{version} {status}"] += 1
            interval[version] += 1
            if status != "200":
                interval["errors"] += 1

    def get(conn: http.client.HTTPConnection) -> tuple[str, str]:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.getheader("X-Version") or "unknown", str(response.status)

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            while (ticket := take_ticket()) is not None:
                if rate > 0:
                    due = start + ticket / rate
                    pause = due - time.monotonic()
                    if pause > 0:
                        stopped.wait(min(pause, max(deadline - time.monotonic(), 0)))
                    if time.monotonic() >= deadline or stopped.is_set():
                        return
                answer: tuple[str, str] | None = None
                for fresh in (conn.sock is None, True):
                    try:
                        answer = get(conn)
                        break
                    except (OSError, http.client.HTTPException) as exc:
                        conn.close()
                        conn = http.client.HTTPConnection(host, port, timeout=timeout)
                        if fresh or not isinstance(exc, _CLOSED):
                            break  # a real failure, counted as a transport error
                        # a kept-alive connection the server closed (nginx reloads): retry once
                if answer is None:
                    record(None, None)
                else:
                    record(*answer)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + timeout + 5)
    summary.elapsed = time.monotonic() - start
    if report_every > 0 and interval:
        flush(time.monotonic())
    # tickets taken but not sent (the deadline passed while pacing) are not requests
    summary.requests = sum(summary.versions.values()) + summary.transport_errors
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=1000, help="at most this many requests")
    parser.add_argument("--duration", type=float, default=10.0, help="at most this many seconds")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s in all (0: no limit)")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--report-every", type=float, default=0.0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        summary = run(
            args.url,
            count=args.count,
            duration=args.duration,
            concurrency=args.concurrency,
            rate=args.rate,
            timeout=args.timeout,
            report_every=args.report_every,
            on_interval=lambda line: print(json.dumps(line), flush=True),
        )
    except ValueError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary.as_dict()) if args.json else summary.text(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
