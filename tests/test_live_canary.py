"""The live canary demo (examples/live-canary/), run for real: two app versions,
Prometheus, Alertmanager, HAProxy or nginx, the load generator and ``gatekeeper run``.

Each run takes 20-35 s (Prometheus' first scrape alone is 5-6 s), so the file runs
four: good, bad and watch (the ramp's checkpoints minutes apart, its watch rolling
back) through HAProxy in-process (``demo.run_demo``), bad through nginx via
``demo.sh`` as a user would. What is asserted comes from the balancer, the load and
the run's journal, not from gatekeeper's console: the final split is read back from
HAProxy's runtime API or nginx's live include file, a burst after the run counts who
answered, and the rollback's moments come from ``gatekeeper history --json``.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gatekeeper import load_plan

DEMO = Path(__file__).resolve().parent.parent / "examples" / "live-canary"
if str(DEMO) not in sys.path:  # demo.py imports servers.py and loadgen.py beside it
    sys.path.insert(0, str(DEMO))

import demo  # noqa: E402 - found through the path set just above

pytestmark = pytest.mark.servers


def refuses(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except OSError:
        return True


def assert_stopped(result: demo.DemoResult) -> None:
    assert len(result.urls) == 5
    assert [] == [name for name, url in result.urls.items() if not refuses(url)]
    assert not Path(result.folder).exists()


def test_good_canary_is_promoted_to_100_percent_through_haproxy() -> None:
    """A healthy canary passes every checkpoint and ends with HAProxy sending it
    everything; the run exits 0 and every server is stopped afterwards."""
    out = io.StringIO()
    result = demo.run_demo("good", "haproxy", out=out)
    log = out.getvalue()
    assert [] == result.problems, log
    assert 0 == result.exit_code, log
    assert "ADVANCED" == result.outcome
    assert result.rolled_back_at is None
    assert 100.0 == result.split
    assert "haproxy baseline=0 canary=256" == result.split_detail
    assert {"canary": 300} == result.burst
    assert "… ramp: waiting for the go/no-go" in log
    assert "approval: given by GATEKEEPER_APPROVE" in log
    assert_stopped(result)


def test_bad_canary_is_rolled_back_at_the_first_ramp_checkpoint_through_haproxy() -> None:
    """Errors start when the ramp starts; its first checkpoint (3s) fails and rolls
    back: HAProxy's canary weight is 0, exit 1, and no request reaches the canary
    afterwards, neither in the running load nor in a final burst."""
    out = io.StringIO()
    result = demo.run_demo("bad", "haproxy", out=out)
    log = out.getvalue()
    assert [] == result.problems, log
    assert 1 == result.exit_code, log
    assert "ROLLED BACK" == result.outcome
    assert "ramp" == result.errors_started_in
    assert ("ramp", "3s") == result.rolled_back_at
    assert 0.0 == result.split
    assert "haproxy baseline=256 canary=0" == result.split_detail
    assert 0 == result.canary_after_rollback
    assert {"baseline": 300} == result.burst
    assert "✗ error_rate         " in log  # the failing criterion is shown
    assert "canary @ 6s: PASS" in log  # the canary phase itself passed
    assert_stopped(result)


def test_the_watch_rolls_a_bad_canary_back_long_before_the_ramps_first_checkpoint() -> None:
    """gates-watch.toml: the ramp's checkpoints are at 2m and 4m, its watch looks every
    second. Errors start with the ramp; the watch rolls back within seconds, journaled
    as the decision of the 2m checkpoint it came before: exit 1, HAProxy's canary
    weight 0, no canary answer afterwards. The run is cut off at 100 s, so a watch that
    did nothing fails here instead of being rescued by the 2m checkpoint."""
    out = io.StringIO()
    began = time.monotonic()
    result = demo.run_demo("watch", "haproxy", out=out, run_timeout=100.0)
    took = time.monotonic() - began
    log = out.getvalue()
    assert [] == result.problems, log
    assert 1 == result.exit_code, log
    assert "ROLLED BACK" == result.outcome
    assert "ramp" == result.errors_started_in
    assert ("ramp", "2m") == result.rolled_back_at
    assert result.by_watch
    # the journal's account (gatekeeper history --json), not the console's
    rollback = result.rollback
    assert "ramp" == rollback["phase"]
    assert "2m" == rollback["checkpoint"]
    assert 120.0 == rollback["first_checkpoint_s"]
    reason = str(rollback["reason"])
    assert reason.startswith("watch at "), reason
    assert "into ramp, before its 2m checkpoint: " in reason
    decided, zero = rollback["decided_s"], rollback["zero_s"]
    assert isinstance(decided, float) and isinstance(zero, float)
    assert 0.0 < decided <= zero < 60.0, rollback  # seconds, not the checkpoint's 2 minutes
    errors_to_zero = rollback["errors_to_zero_s"]
    assert isinstance(errors_to_zero, float) and 0.0 < errors_to_zero < 60.0, rollback
    # what the balancer and the load say
    assert 0.0 == result.split
    assert "haproxy baseline=256 canary=0" == result.split_detail
    assert 0 == result.canary_after_rollback
    assert {"baseline": 300} == result.burst
    # what a person sees
    assert "checkpoints 2m 4m" in log
    assert "watch: every 1s between checkpoints, 3 criteria" in log
    assert "ramp @ 2m (the watch, before it): FAIL" in log
    assert "→ ROLLBACK: watch at " in log
    assert "the journal: ramp started at " in log
    assert result.timings["gatekeeper_run"] < 60.0, result.timings
    assert took < 100.0, result.timings
    assert_stopped(result)


def test_bad_canary_is_rolled_back_through_nginx_by_demo_sh(tmp_path: Path) -> None:
    """``demo.sh bad nginx``: the same rollback through nginx's include file and
    reload, exit 1, and the JSON summary shows nginx sending nothing to the canary."""
    summary = tmp_path / "result.json"
    done = subprocess.run(
        ["bash", str(DEMO / "demo.sh"), "bad", "nginx", "--json", str(summary)],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert 1 == done.returncode, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(summary.read_text())
    assert [] == data["problems"], done.stdout
    assert ["ramp", "3s"] == data["rolled_back_at"]
    assert "nginx baseline=1000 canary=0" == data["split_detail"]
    assert 0 == data["canary_after_rollback"]
    assert {"baseline": 300} == data["burst"]
    assert "» stopped everything" in done.stdout
    assert not Path(data["folder"]).exists()


def test_a_demo_stopped_by_sigterm_stops_every_server_it_started() -> None:
    """SIGTERM while the demo waits for Prometheus: exit 130, every port it opened is
    closed and its temp folder is gone."""
    proc = subprocess.Popen(
        ["bash", str(DEMO / "demo.sh"), "good"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded: the watchdog kills a demo that hangs
            lines.append(line)
            if "» load generator:" in line:
                proc.send_signal(signal.SIGTERM)
                break
        rest, _ = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
    output = "".join(lines) + rest
    assert 130 == proc.returncode, output
    assert "interrupted: every server the demo started is stopped" in output
    urls = re.findall(r"http://127\.0\.0\.1:\d+", "".join(lines))
    assert 5 == len(set(urls)), output
    assert [] == [url for url in urls if not refuses(url)]
    folder = re.search(r"everything in (\S+)", output)
    assert folder is not None
    assert not Path(folder.group(1)).exists()


def test_the_nginx_plan_is_the_haproxy_plan_with_another_traffic_table() -> None:
    """gates-nginx.toml and gates.toml differ only in [traffic], so both demos judge
    the same gates."""
    haproxy = tomllib.loads((DEMO / "gates.toml").read_text())
    nginx = tomllib.loads((DEMO / "gates-nginx.toml").read_text())
    assert "haproxy" == haproxy.pop("traffic")["type"]
    assert "nginx" == nginx.pop("traffic")["type"]
    assert haproxy == nginx


def test_the_watched_plan_is_the_haproxy_plan_with_a_watched_ramp_minutes_long() -> None:
    """gates-watch.toml is gates.toml but for [plan] and the ramp: checkpoints at 2m and
    4m, and a watch every 1s whose statistical criterion is the gate's own text."""
    plain = tomllib.loads((DEMO / "gates.toml").read_text())
    watched = tomllib.loads((DEMO / "gates-watch.toml").read_text())
    assert "live-canary-watch" == watched.pop("plan")["name"]
    plain.pop("plan")
    ramp = next(p for p in watched["phases"] if p["name"] == "ramp")
    assert ["2m", "4m"] == ramp["checkpoints"]
    watch = ramp.pop("watch")
    assert "1s" == watch["every"]
    assert "error_rate < 1% for 5s" in watch["gate"]
    compare = "error_rate canary <= baseline * 1.2"
    assert compare in watch["gate"]
    assert compare in [c["criterion"] for c in ramp["gate"] if isinstance(c, dict)]
    ramp["checkpoints"] = ["3s", "6s"]
    assert plain == watched


def test_a_watched_demo_runs_through_haproxy_only() -> None:
    """``demo.sh watch nginx`` is refused at once (exit 2, nothing started)."""
    done = subprocess.run(
        ["bash", str(DEMO / "demo.sh"), "watch", "nginx"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert 2 == done.returncode, done.stdout + done.stderr
    assert "watch runs gates-watch.toml through haproxy" in done.stderr
    assert "everything in" not in done.stdout


def test_rendering_puts_the_real_servers_into_a_plan_the_loader_accepts(tmp_path: Path) -> None:
    """The demo changes only the values of the named keys; the result is a valid
    plan naming the given URLs and socket."""
    text = (DEMO / "gates.toml").read_text()
    rendered = demo.render_plan(
        text,
        {
            "sources.prom": {"url": "http://127.0.0.1:1111"},
            "sources.alerts": {"url": "http://127.0.0.1:2222"},
            "traffic": {"socket": str(tmp_path / "admin.sock")},
        },
    )
    assert len(text.splitlines()) == len(rendered.splitlines())
    plan_file = tmp_path / "gates.toml"
    plan_file.write_text(rendered)
    data = tomllib.loads(rendered)
    assert "http://127.0.0.1:1111" == data["sources"]["prom"]["url"]
    assert "http://127.0.0.1:2222" == data["sources"]["alerts"]["url"]
    assert str(tmp_path / "admin.sock") == data["traffic"]["socket"]
    assert ["canary", "ramp", "rollout"] == [p.name for p in load_plan(plan_file).phases]


def test_rendering_the_watched_plan_keeps_its_watch(tmp_path: Path) -> None:
    """The watched plan renders like gates.toml (each key once) and loads with the
    ramp's watch: every 1s, three criteria, checkpoints minutes apart."""
    rendered = demo.render_plan(
        (DEMO / "gates-watch.toml").read_text(),
        {
            "sources.prom": {"url": "http://127.0.0.1:1111"},
            "sources.alerts": {"url": "http://127.0.0.1:2222"},
            "traffic": {"socket": str(tmp_path / "admin.sock")},
        },
    )
    plan_file = tmp_path / "gates-watch.toml"
    plan_file.write_text(rendered)
    ramp = next(p for p in load_plan(plan_file).phases if p.name == "ramp")
    assert ramp.watch is not None
    assert 1.0 == ramp.watch.every.total_seconds()
    assert 3 == len(ramp.watch.gate.criteria)
    assert [120.0, 240.0] == [c.offset.total_seconds() for c in ramp.checkpoints]


def test_rendering_refuses_a_key_the_plan_does_not_set() -> None:
    """A plan edited so that a key the demo fills is gone fails loudly, naming it."""
    with pytest.raises(ValueError, match=r"\[traffic\] address"):
        demo.render_plan((DEMO / "gates.toml").read_text(), {"traffic": {"address": "x"}})
