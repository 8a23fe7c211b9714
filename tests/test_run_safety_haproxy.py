"""The run's promises against a real HAProxy (issue 9's reproduced breaks): a raising
observer never keeps a failing canary's weight, `gatekeeper rollback` reaches a live
runner within seconds, and a weight changed under the run (a reload) is noticed
before any decision instead of being advanced on."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import gatekeeper
from gatekeeper import RunOutcome, hookimpl
from gatekeeper._plugins import Plugins
from gatekeeper.store.sqlite import SQLiteStore
from realservers import wait_until
from realservers.haproxy import HAProxyLauncher, HAProxyServer, Upstreams

pytestmark = pytest.mark.servers

PLAN = """
[plan]
name = "haproxy-safety"
[sources.s]
type = "static"
values = {{ error_rate = {error_rate} }}
[metrics.error_rate]
source = "s"
[traffic]
type = "haproxy"
socket = "{socket}"
backend = "app"
[[phases]]
name = "canary"
traffic = 2
checkpoints = [{checkpoints}]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""


@pytest.fixture
def haproxy(haproxy_launcher: HAProxyLauncher, upstreams: Upstreams) -> Iterator[HAProxyServer]:
    server = haproxy_launcher.start(upstreams)
    yield server
    server.stop()


def write_plan(
    directory: Path, haproxy: HAProxyServer, *, error_rate: float, checkpoints: str
) -> Path:
    path = directory / "gates.toml"
    path.write_text(
        PLAN.format(error_rate=error_rate, socket=haproxy.socket_path, checkpoints=checkpoints)
    )
    return path


def kinds(directory: Path) -> list[str]:
    store = SQLiteStore(directory / "gates.journal.sqlite3")
    try:
        return [str(e.kind) for e in store.events(store.runs()[-1].run_id)]
    finally:
        store.close()


class Raising:
    @hookimpl
    def gatekeeper_checkpoint_judged(self) -> None:
        raise ConnectionRefusedError("webhook at 127.0.0.1:9 refused")


def test_a_raising_hook_never_keeps_the_canarys_weight(
    tmp_path: Path, haproxy: HAProxyServer
) -> None:
    """Reproduced: HAProxy stayed at 251/5 with the journal saying `running`, exit 1."""
    plan = gatekeeper.load_plan(write_plan(tmp_path, haproxy, error_rate=0.5, checkpoints='"1s"'))
    plugins = Plugins(load_entry_points=False, plugins=[Raising()])
    result = gatekeeper.run(plan, plugins=plugins)
    assert RunOutcome.ROLLED_BACK == result.outcome
    assert 0 == haproxy.weight()
    assert "observer_failed" in kinds(tmp_path)


def test_gatekeeper_rollback_reaches_a_live_runner(tmp_path: Path, haproxy: HAProxyServer) -> None:
    """Reproduced: refused while the runner held the lease, which it renewed forever."""
    write_plan(tmp_path, haproxy, error_rate=0.001, checkpoints='"10m"')
    runner = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "run", "gates.toml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: haproxy.weight() > 0, timeout=30)
        store = SQLiteStore(tmp_path / "gates.journal.sqlite3")
        try:
            run_id = store.runs()[-1].run_id
        finally:
            store.close()
        asked = time.monotonic()
        rollback = subprocess.Popen(
            [sys.executable, "-m", "gatekeeper", "rollback", run_id, "--by", "oncall"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: haproxy.weight() == 0, timeout=5)
        assert time.monotonic() - asked < 5
        assert 0 == rollback.wait(timeout=30)
        assert 1 == runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)
    assert "operator_applied" in kinds(tmp_path)


def test_a_reload_under_the_run_is_noticed_and_never_advanced(
    tmp_path: Path, haproxy: HAProxyServer
) -> None:
    """Reproduced: the ramp was judged and advanced at a real canary weight of 0 after
    an HAProxy reload reset the runtime weights to the config file's."""
    write_plan(tmp_path, haproxy, error_rate=0.001, checkpoints='"3s"')
    runner = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "run", "gates.toml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: haproxy.weight() > 0, timeout=30)
        haproxy.reload()  # runtime weights back to the config: canary 0
        assert 0 == haproxy.weight()
        assert 3 == runner.wait(timeout=30)  # held: a person decides
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)
    found = kinds(tmp_path)
    assert "traffic_drift" in found
    assert 0 == haproxy.weight()
