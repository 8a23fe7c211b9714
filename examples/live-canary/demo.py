"""The live canary demo: a real rollout through a real balancer, judged on real metrics.

    python demo.py good [haproxy|nginx]    # the canary ends at 100 %: exit 0
    python demo.py bad  [haproxy|nginx]    # errors start in the ramp: rolled back, exit 1
    python demo.py watch                   # the same errors, the ramp's checkpoints
                                           # minutes apart: its watch rolls back, exit 1

Starts, on free 127.0.0.1 ports in a temp folder: the baseline and the canary
(``app.py``), Alertmanager, Prometheus (scraping both apps every second, with one
alerting rule for "critical"), HAProxy or nginx in front of the apps (all traffic on
the baseline); then the bounded load generator; waits (polling) until Prometheus has
scraped both apps twice; renders ``gates.toml`` (or ``gates-nginx.toml``) with the real
ports and runs ``gatekeeper run`` on it with ``GATEKEEPER_APPROVE=ramp``, printing the
timeline as it happens. ``bad`` raises the canary's error rate (``PUT /admin``) the
moment the ramp starts. ``watch`` does the same on ``gates-watch.toml``, whose ramp has
its checkpoints at 2m and 4m and a watch that looks every second in between: the watch,
not a checkpoint, rolls the canary back. Afterwards it reads the split back from the
balancer itself, sends a bounded burst and counts who answered, reads the rollback's
moments from the run's journal (``gatekeeper history --json``), and stops everything,
whatever happened.

Exit code: gatekeeper's (0 advanced, 1 rolled back, 3 held), or 4 when the demo's
own checks of the result failed (the balancer is not where the run says, or the
canary still answered after a rollback); 130 when interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # servers.py and loadgen.py sit next to this file
    sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402 - found through the path set just above
import servers  # noqa: E402 - same

PLANS = {"haproxy": HERE / "gates.toml", "nginx": HERE / "gates-nginx.toml"}
WATCH_PLAN = HERE / "gates-watch.toml"  # the ramp's checkpoints minutes apart, watched
EXPECTED_EXIT = {"good": 0, "bad": 1, "watch": 1}
BAD_MODES = ("bad", "watch")  # the canary turns bad when the bad phase starts
EXIT_CHECK_FAILED = 4
EXIT_INTERRUPTED = 130  # as shells report Ctrl-C

_CHECKPOINT = re.compile(
    r"\[\+[^\]]*\] (\S+) @ (\S+?)"
    r"(?: \((?:re-check \d+|(the watch), before it)\))?: (PASS|FAIL|INCONCLUSIVE)"
)
_PHASE = re.compile(r"▶ phase (\S+)")
_RESULT = re.compile(r"^result: ([A-Z][A-Z ]*[A-Z])")
_RUN_ID = re.compile(r"^gatekeeper · plan \S+ · run ([0-9a-f]+)")


def render_plan(text: str, values: Mapping[str, Mapping[str, str]]) -> str:
    """Replace the string values of ``key = "..."`` lines inside the named tables
    (``{"sources.prom": {"url": ...}}``); every key must be found exactly once, so an
    edited plan fails loudly instead of running against the wrong server."""
    lines = text.splitlines(keepends=True)
    table: str | None = None
    found: dict[tuple[str, str], int] = {}
    for index, line in enumerate(lines):
        header = re.match(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            table = header.group(2) if header.group(1) == "[" else None
            continue
        if table not in values:
            continue
        assert table is not None
        entry = re.match(r'(\s*)([A-Za-z_]+)(\s*=\s*)"[^"]*"(.*)$', line)
        if entry and entry.group(2) in values[table]:
            key = entry.group(2)
            value = json.dumps(values[table][key])  # a TOML basic string
            lines[index] = f"{entry.group(1)}{key}{entry.group(3)}{value}{entry.group(4)}\n"
            found[table, key] = found.get((table, key), 0) + 1
    wanted = [(t, k) for t, keys in values.items() for k in keys]
    wrong = [f"[{t}] {k}" for t, k in wanted if found.get((t, k)) != 1]
    if wrong:
        raise ValueError(f"the plan must set each of these exactly once: {', '.join(wrong)}")
    return "".join(lines)


def plan_values(
    backend: str,
    prometheus: servers.Prometheus,
    alertmanager: servers.Alertmanager,
    balancer: servers.Balancer,
) -> dict[str, dict[str, str]]:
    """What the demo puts into the plan: the real URLs, socket, paths and addresses."""
    values = {
        "sources.prom": {"url": prometheus.url},
        "sources.alerts": {"url": alertmanager.url},
    }
    if backend == "haproxy":
        assert balancer.socket_path is not None
        values["traffic"] = {"socket": str(balancer.socket_path)}
    else:
        assert balancer.include is not None and balancer.conf is not None
        values["traffic"] = {
            "include": str(balancer.include),
            "conf": str(balancer.conf),
            "prefix": str(balancer.directory),
            "nginx": balancer.nginx,
            "baseline": balancer.baseline.address,
            "canary": balancer.canary.address,
        }
    return values


@dataclass
class DemoResult:
    """What happened, for people (printed) and for tests (asserted)."""

    mode: str
    backend: str
    exit_code: int | None = None  # gatekeeper's
    outcome: str | None = None  # "ADVANCED", "ROLLED BACK", ... from the run's last line
    rolled_back_at: tuple[str, str] | None = None  # (phase, checkpoint)
    by_watch: bool = False  # the rollback was the watch's, before that checkpoint
    errors_started_in: str | None = None  # bad: the phase during which errors started
    first_checkpoint: dict[str, str] = field(default_factory=dict)  # phase -> its first
    split: float | None = None  # the canary's share read back from the balancer at the end
    split_detail: str = ""
    load: dict[str, object] = field(default_factory=dict)
    canary_after_rollback: int | None = None  # load answers in intervals after it
    burst: dict[str, int] = field(default_factory=dict)  # versions over the final burst
    timings: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    # from the run's journal: the rollback decision and its moments (see _journal)
    rollback: dict[str, object] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)  # every server's, for the record
    folder: str = ""  # the temp folder (removed at the end unless kept)
    problems: list[str] = field(default_factory=list)

    @property
    def demo_exit_code(self) -> int:
        if self.problems or self.exit_code is None:
            return EXIT_CHECK_FAILED
        return self.exit_code


class Timeline:
    """Lines stamped with the seconds since the demo started (thread-safe)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.start

    def line(self, text: str) -> None:
        with self.lock:
            print(f"[{self.now():5.1f}s] {text}", file=self.out, flush=True)

    def say(self, text: str) -> None:
        self.line(f"» {text}")


def run_demo(  # noqa: PLR0915 - one story, told in order
    mode: str,
    backend: str = "haproxy",
    *,
    out: TextIO | None = None,
    rate: float = 100.0,
    bad_phase: str = "ramp",
    error_rate: float = 0.5,
    burst: int = 300,
    keep: bool = False,
    run_timeout: float = 150.0,
) -> DemoResult:
    """Run the whole demo once; everything started here is stopped before it returns."""
    if mode not in EXPECTED_EXIT or backend not in PLANS:
        raise ValueError(f"mode good|bad|watch and backend haproxy|nginx, got {mode!r} {backend!r}")
    if mode == "watch" and backend != "haproxy":
        raise ValueError("the watched plan (gates-watch.toml) runs through haproxy")
    timeline = Timeline(out or sys.stdout)
    result = DemoResult(mode=mode, backend=backend)
    plan_source = WATCH_PLAN if mode == "watch" else PLANS[backend]
    plan_text = plan_source.read_text()
    for phase in tomllib.loads(plan_text)["phases"]:
        result.first_checkpoint[phase["name"]] = str(phase["checkpoints"][0])
    root = Path(tempfile.mkdtemp(prefix="live-canary-"))
    result.folder = str(root)
    stop_load = threading.Event()
    loads: list[loadgen.Summary] = []
    load_thread: threading.Thread | None = None
    gatekeeper: subprocess.Popen[str] | None = None
    try:
        with servers.Stack(root) as stack:
            timeline.say(f"{mode} canary through {backend}; everything in {root}")
            baseline = stack.app("baseline", wait=False)
            canary = stack.app("canary", wait=False)
            alertmanager = stack.alertmanager()
            prometheus = stack.prometheus([baseline, canary], alertmanager)
            stack.wait_app(baseline)
            stack.wait_app(canary)
            start_balancer = stack.haproxy if backend == "haproxy" else stack.nginx
            balancer = start_balancer(baseline, canary)
            timeline.say(
                f"baseline {baseline.url} · canary {canary.url} · {backend} {balancer.url} · "
                f"prometheus {prometheus.url} · alertmanager {alertmanager.url}"
            )
            result.timings["servers_started"] = round(timeline.now(), 2)
            result.urls = {
                "baseline": baseline.url,
                "canary": canary.url,
                backend: balancer.url,
                "prometheus": prometheus.url,
                "alertmanager": alertmanager.url,
            }

            load_started = timeline.now()
            every = 2.0

            reports: list[tuple[float, dict[str, float]]] = []  # (timeline time, interval)

            def report(line: dict[str, float]) -> None:
                reports.append((timeline.now(), line))
                answered = line["baseline"] + line["canary"]
                share = 100.0 * line["canary"] / answered if answered else 0.0
                timeline.line(
                    f"· load: baseline {line['baseline']:g} · canary {line['canary']:g} "
                    f"({share:.1f}%) · errors {line['errors']:g}"
                )

            def load() -> None:
                loads.append(
                    loadgen.run(
                        balancer.url + "/",
                        count=int(rate * run_timeout),
                        duration=run_timeout,
                        concurrency=4,
                        rate=rate,
                        report_every=every,
                        on_interval=report,
                        stop=stop_load,
                    )
                )

            def stop_load_now() -> None:
                stop_load.set()
                thread.join(timeout=10)

            load_thread = thread = threading.Thread(target=load, name="loadgen", daemon=True)
            thread.start()
            stack.before_stop.append(stop_load_now)
            timeline.say(f"load generator: {rate:g} requests/s through {backend}")
            prometheus.wait_scraped(2)
            result.timings["prometheus_ready"] = round(timeline.now(), 2)
            timeline.say("Prometheus has scraped both apps twice: rate() has data")

            plan = root / plan_source.name
            plan.write_text(
                render_plan(plan_text, plan_values(backend, prometheus, alertmanager, balancer))
            )
            env = {**os.environ, "GATEKEEPER_APPROVE": "ramp", "PYTHONUNBUFFERED": "1"}
            env.pop("GATEKEEPER_REJECT", None)
            timeline.say(f"GATEKEEPER_APPROVE=ramp gatekeeper run {plan}")
            started = timeline.now()
            gatekeeper = subprocess.Popen(
                [sys.executable, "-m", "gatekeeper", "run", str(plan)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                text=True,
                encoding="utf-8",
            )
            watchdog = threading.Timer(run_timeout, gatekeeper.kill)
            watchdog.start()
            last: tuple[str, str] | None = None
            last_by_watch = False
            rollback_time: float | None = None
            errors_time: float | None = None
            errors_at: datetime | None = None  # the wall clock, to compare with the journal
            assert gatekeeper.stdout is not None
            try:
                for raw in gatekeeper.stdout:
                    text = raw.rstrip("\n")
                    if text.strip():
                        timeline.line(text)
                    if result.run_id is None and (m := _RUN_ID.search(text)) is not None:
                        result.run_id = m.group(1)
                    elif (m := _PHASE.search(text)) is not None:
                        if mode in BAD_MODES and m.group(1) == bad_phase:
                            answer = canary.set_behaviour(error_rate=error_rate)
                            errors_time = timeline.now()
                            errors_at = datetime.now(UTC)
                            result.errors_started_in = bad_phase
                            timeline.say(f"{mode}: the canary turns bad now ({answer})")
                    elif (m := _CHECKPOINT.search(text)) is not None:
                        last = (m.group(1), m.group(2))
                        last_by_watch = m.group(3) is not None
                    elif "→ ROLLBACK" in text:
                        result.rolled_back_at = last
                        result.by_watch = last_by_watch
                    elif "% → 0% confirmed" in text and rollback_time is None:
                        rollback_time = timeline.now()
                        if errors_time is not None:
                            result.timings["errors_to_0%"] = round(rollback_time - errors_time, 2)
                    elif (m := _RESULT.search(text)) is not None:
                        result.outcome = m.group(1)
                result.exit_code = gatekeeper.wait(timeout=30)
            finally:
                watchdog.cancel()
                _end(gatekeeper)  # before the servers go, if we got here by an exception
            result.timings["gatekeeper_run"] = round(timeline.now() - started, 2)
            timeline.say(f"gatekeeper exited {result.exit_code} ({result.outcome})")

            result.split, result.split_detail = balancer.read_split()
            timeline.say(f"the balancer now: canary {result.split:g}% ({result.split_detail})")
            if result.outcome == "ROLLED BACK" and result.run_id is not None:
                try:
                    result.rollback = _journal(plan, result.run_id, errors_at)
                except (
                    OSError,
                    RuntimeError,
                    ValueError,
                    KeyError,
                    StopIteration,  # an event the journal should have and has not
                    subprocess.SubprocessError,
                ) as exc:
                    result.problems.append(f"the run's journal could not be read: {exc}")
                else:
                    timeline.say(_describe(result.rollback))
            if rollback_time is not None:
                # keep the load on until two whole intervals lie after the rollback
                def seen_after() -> bool:
                    return len(_after(reports, load_started, rollback_time)) >= 2

                try:
                    servers.wait_until(seen_after, timeout=4 * every, what="load intervals")
                except TimeoutError as exc:
                    result.problems.append(f"the load stopped reporting after the rollback: {exc}")
            stop_load.set()
            load_thread.join(timeout=10)
            if loads:
                result.load = loads[0].as_dict()
                timeline.say(f"load generator: {loads[0].text()}")
            if rollback_time is not None:
                after = _after(reports, load_started, rollback_time)
                result.canary_after_rollback = int(sum(line["canary"] for line in after))
                timeline.say(
                    f"after the rollback: {sum(line['baseline'] for line in after):g} answers "
                    f"from the baseline, {result.canary_after_rollback} from the canary "
                    f"({len(after)} whole load intervals)"
                )
            final = loadgen.run(balancer.url + "/", count=burst, duration=20, concurrency=2)
            result.burst = dict(final.versions)
            timeline.say(f"a last burst: {final.text()}")
            _check(result, burst)
            result.timings["total"] = round(timeline.now(), 2)
    finally:
        stop_load.set()
        if gatekeeper is not None:
            _end(gatekeeper)
        if load_thread is not None:
            load_thread.join(timeout=10)
        if keep:
            timeline.say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    timeline.say("stopped everything")
    for problem in result.problems:
        timeline.say(f"CHECK FAILED: {problem}")
    timeline.say(
        f"{mode} through {backend}: exit {result.demo_exit_code} · "
        + " · ".join(f"{k} {v:g}s" for k, v in result.timings.items())
    )
    return result


def _end(gatekeeper: subprocess.Popen[str]) -> None:
    """Stop ``gatekeeper run`` if it still runs (SIGTERM: it journals the
    interruption and leaves traffic where it is); close its pipe."""
    if gatekeeper.poll() is None:
        gatekeeper.terminate()
        try:
            gatekeeper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gatekeeper.kill()
            gatekeeper.wait(timeout=10)
    if gatekeeper.stdout is not None:
        gatekeeper.stdout.close()


def _journal(plan: Path, run_id: str, errors_at: datetime | None) -> dict[str, object]:
    """The rollback as the run's journal has it (``gatekeeper history --json``): the
    phase, the checkpoint its decision belongs to, the reason, and its moments in
    seconds from the phase's start: the decision, the balancer confirming 0 %, the
    first checkpoint's due time; and from the errors' start when the demo caused them."""
    done = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "history", run_id, "--plan", str(plan), "--json"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gatekeeper history exited {done.returncode}: {done.stderr[-500:]}")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    decision = next(
        e for e in events if e["kind"] == "decision" and e["data"]["action"] == "rollback"
    )
    phase = decision["phase"]
    started = next(e for e in events if e["kind"] == "phase_started" and e["phase"] == phase)
    confirmed = next(
        e
        for e in events
        if e["kind"] == "traffic_confirmed"
        and e["seq"] > decision["seq"]
        and e["data"]["canary"] == 0.0
    )
    schedule = next(e for e in events if e["kind"] == "run_started")["data"]["schedule"]
    first = next(p for p in schedule if p["phase"] == phase)["checkpoints"][0]
    start = datetime.fromisoformat(started["data"]["started_at"])

    def since(moment: datetime) -> float:
        return round((moment - start).total_seconds(), 3)

    decided = datetime.fromisoformat(decision["at"])
    zero = datetime.fromisoformat(confirmed["at"])
    rollback: dict[str, object] = {
        "phase": phase,
        "checkpoint": decision["checkpoint"],
        "reason": decision["data"]["reason"],
        "phase_started_at": start.isoformat(),
        "decided_at": decision["at"],
        "confirmed_at": confirmed["at"],
        "first_checkpoint": first["name"],
        "first_checkpoint_s": float(first["offset_s"]),
        "decided_s": since(decided),
        "zero_s": since(zero),
    }
    if errors_at is not None:
        rollback["errors_s"] = since(errors_at)
        rollback["errors_to_decision_s"] = round((decided - errors_at).total_seconds(), 3)
        rollback["errors_to_zero_s"] = round((zero - errors_at).total_seconds(), 3)
    return rollback


def _describe(rollback: Mapping[str, object]) -> str:
    """The journal's account of the rollback, in one line."""
    phase, first = rollback["phase"], rollback["first_checkpoint"]
    errors = ""
    if "errors_s" in rollback:
        errors = f"the canary turned bad at +{rollback['errors_s']:.2f}s; "
    return (
        f"the journal: {phase} started at {str(rollback['phase_started_at'])[11:23]} UTC; "
        f"{errors}ROLLBACK decided at +{rollback['decided_s']:.2f}s "
        f"(as {phase} @ {rollback['checkpoint']}), canary at 0% confirmed at "
        f"+{rollback['zero_s']:.2f}s; the first checkpoint ({first}) was due at "
        f"+{rollback['first_checkpoint_s']:g}s"
    )


def _after(
    reports: list[tuple[float, dict[str, float]]], load_started: float, moment: float
) -> list[dict[str, float]]:
    """The load intervals that began at or after ``moment`` (timeline seconds)."""
    starts = [load_started] + [stamp for stamp, _ in reports[:-1]]
    return [line for begin, (_, line) in zip(starts, reports, strict=True) if begin >= moment]


def _check(result: DemoResult, burst: int) -> None:
    """What the demo promises, checked against the balancer and the load, not the log."""
    problems = result.problems
    canary = result.burst.get("canary", 0)
    if result.exit_code != EXPECTED_EXIT[result.mode]:
        problems.append(f"gatekeeper exited {result.exit_code}, not {EXPECTED_EXIT[result.mode]}")
    if result.mode == "good":
        if result.split != 100.0:
            problems.append(f"the balancer sends {result.split}% to the canary, not 100%")
        if canary != burst:
            problems.append(f"{canary} of {burst} burst requests reached the canary, not all")
        return
    if result.errors_started_in is None:
        problems.append("the canary never turned bad: no phase start was seen in the output")
        return
    wanted = (result.errors_started_in, result.first_checkpoint.get(result.errors_started_in))
    if result.rolled_back_at != wanted:
        problems.append(f"rolled back at {result.rolled_back_at}, not at {wanted}")
    if result.by_watch != (result.mode == "watch"):
        problems.append(
            "the watch rolled back"
            if result.by_watch
            else "a checkpoint, not the watch, rolled back"
        )
    if result.mode == "watch":
        # the journal's word: the watch decided, well before the checkpoint it came before
        reason = str(result.rollback.get("reason", ""))
        if not reason.startswith("watch at ") or f"before its {wanted[1]} checkpoint" not in reason:
            problems.append(f"the rollback's reason is not the watch's: {reason!r}")
        decided = result.rollback.get("decided_s")
        due = result.rollback.get("first_checkpoint_s")
        if not isinstance(decided, float) or not isinstance(due, float) or decided >= due / 2:
            problems.append(f"the watch decided at {decided}s, not long before {due}s")
    if result.split != 0.0:
        problems.append(f"the balancer sends {result.split}% to the canary, not 0%")
    if canary or result.canary_after_rollback:
        problems.append(
            f"the canary answered after the rollback: {result.canary_after_rollback} during "
            f"the load, {canary} in the last burst"
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so the finally blocks stop every server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("mode", choices=sorted(EXPECTED_EXIT))
    parser.add_argument("backend", nargs="?", default="haproxy", choices=sorted(PLANS))
    parser.add_argument("--rate", type=float, default=100.0, help="load, requests/s")
    parser.add_argument("--error-rate", type=float, default=0.5, help="bad, watch: the canary's")
    parser.add_argument(
        "--bad-phase", default="ramp", help="bad, watch: errors start with this phase"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    parser.add_argument("--json", type=Path, help="also write the result here as JSON")
    args = parser.parse_args(argv)
    if args.mode == "watch" and args.backend != "haproxy":
        parser.error("watch runs gates-watch.toml through haproxy")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_demo(
            args.mode,
            args.backend,
            rate=args.rate,
            error_rate=args.error_rate,
            bad_phase=args.bad_phase,
            keep=args.keep,
        )
    except KeyboardInterrupt:
        print("» interrupted: every server the demo started is stopped", flush=True)
        return EXIT_INTERRUPTED
    if args.json is not None:
        data = {**asdict(result), "demo_exit_code": result.demo_exit_code}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    return result.demo_exit_code


if __name__ == "__main__":
    raise SystemExit(main())
