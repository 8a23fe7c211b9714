"""A real Alertmanager on 127.0.0.1 (binary ``prometheus-alertmanager``).

``alertmanager`` (module scope) gives a typed handle:

    alertmanager.url
    alertmanager.raise_alerts([{"alertname": "X", "severity": "critical"}])
    alertmanager.silence({"alertname": "X"})       # returns the silence id
    alertmanager.alerts()                            # GET /api/v2/alerts (all states)

Alerts live until they expire (``endsAt``, one hour by default), so tests sharing a
server give their alerts a distinguishing label (e.g. ``test = "<name>"``).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from . import binary, free_port, stop_process, wait_until

__all__ = ["AlertmanagerServer", "alertmanager", "start_alertmanager"]

_CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""


@attrs.define(kw_only=True)
class AlertmanagerServer:
    """A running Alertmanager and the API calls tests need to set up a scene."""

    url: str
    directory: Path
    process: subprocess.Popen[bytes] = attrs.field(repr=False)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def raise_alerts(
        self, alerts: Sequence[Mapping[str, str]], *, lasting: timedelta = timedelta(hours=1)
    ) -> None:
        """POST alerts (each given as its labels), active from now for ``lasting``."""
        now = datetime.now(UTC)
        self._call(
            "POST",
            "/api/v2/alerts",
            [
                {
                    "labels": dict(labels),
                    "annotations": {"summary": "raised by a test"},
                    "startsAt": (now - timedelta(seconds=1)).isoformat(),
                    "endsAt": (now + lasting).isoformat(),
                }
                for labels in alerts
            ],
        )

    def silence(self, labels: Mapping[str, str], *, lasting: timedelta = timedelta(hours=1)) -> str:
        """Silence alerts whose labels equal ``labels``; returns the silence id."""
        now = datetime.now(UTC)
        answer = self._call(
            "POST",
            "/api/v2/silences",
            {
                "matchers": [
                    {"name": k, "value": v, "isRegex": False, "isEqual": True}
                    for k, v in labels.items()
                ],
                "startsAt": (now - timedelta(seconds=1)).isoformat(),
                "endsAt": (now + lasting).isoformat(),
                "createdBy": "gatekeeper tests",
                "comment": "test silence",
            },
        )
        return str(answer["silenceID"])

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Every alert the server knows (any state)."""
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        found: list[dict[str, Any]] = self._call(
            "GET", "/api/v2/alerts" + (f"?{query}" if query else "")
        )
        return found

    def stop(self) -> None:
        stop_process(self.process)


def start_alertmanager(directory: Path) -> AlertmanagerServer:
    """Start Alertmanager in ``directory`` on a free port and wait until it is ready."""
    port = free_port()
    config = directory / "alertmanager.yml"
    config.write_text(_CONFIG)
    storage = directory / "data"
    storage.mkdir(exist_ok=True)
    log_path = directory / "alertmanager.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={config}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = AlertmanagerServer(
        url=f"http://127.0.0.1:{port}", directory=directory, process=process
    )

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError("alertmanager exited: " + log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as exc:  # 503 while starting: close its socket
            exc.close()
            return False

    try:
        wait_until(ready, timeout=20, what="alertmanager /-/ready")
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    """A real Alertmanager for the module; stopped afterwards."""
    server = start_alertmanager(tmp_path_factory.mktemp("alertmanager"))
    try:
        yield server
    finally:
        server.stop()
