"""The ``gatekeeper`` command.

Exit codes: 0 advanced / passed, 1 failed / rolled back, 2 bad usage or a bad
plan, 3 held, inconclusive or interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from . import _operate as operate
from ._api import acheck, validate
from ._approval import ApprovalAnswer, ApprovalRequest, ApprovalState
from ._cli_args import EXIT_USAGE, parser
from ._cli_fleet import fleet_command
from ._clock import SimulatedClock
from ._engine import Rollout, build_sources, plugin_context
from ._model import GateResult, Outcome, Phase, Plan, RunResult
from ._planfile import load_plan
from ._plugins import Plugins, default_plugins
from ._protocols import Event
from ._rehearsal import rehearsal
from ._report import ConsoleReporter
from ._status import describe_run, find_run, format_event, open_journal, open_plan_store
from ._units import format_duration
from .exceptions import GatekeeperError, PlanError
from .store.base import LeaseHeld

_GATE_EXIT = {Outcome.PASS: 0, Outcome.FAIL: 1, Outcome.INCONCLUSIVE: 3}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Entry point of the ``gatekeeper`` command; returns the exit code.

    A reader that went away (``gatekeeper run gates.toml | head -3``) never changes
    the run or its exit code: the run's own observers survive the closed pipe, and
    what is left to print is dropped.
    """
    try:
        code = _main(argv, out)
        if out is None:
            sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
        return 3
    return code


def _stdout_to_devnull() -> None:
    """Python's documented way out of a closed stdout: nothing more to flush at exit."""
    import os  # noqa: PLC0415

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _phase_line(phase: Phase) -> str:
    watch = ""
    if phase.watch is not None:
        watch = f", watched every {format_duration(phase.watch.every)}"
    return f"{phase.name} ({len(phase.checkpoints)} checkpoints{watch})"


def _main(argv: Sequence[str] | None, out: TextIO | None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        fleet = fleet_command(args, out)
        if fleet is not None:
            return fleet
        if args.command == "validate":
            plan = validate(args.plan)
            phases = ", ".join(_phase_line(p) for p in plan.phases)
            print(f"{args.plan}: ok: plan {plan.name!r}: {phases}", file=out)
            return 0
        if args.command == "rehearse":
            return _rehearse(args, out)
        if args.command == "run":
            return _run(args, out)
        if args.command == "check":
            return _check(args, out)
        if args.command in (
            "status",
            "history",
            "approve",
            "reject",
            "rollback",
            "hold",
            "resume",
            "freeze",
            "report",
        ):
            return _journal_command(args, out)
    except PlanError as exc:
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyError as exc:
        print(f"gatekeeper: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    except LeaseHeld as exc:
        # Another runner drives the run: nothing was done here (not "rolled back").
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return 3
    except GatekeeperError as exc:
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.command)  # pragma: no cover - argparse requires a command


def _reporter(out: TextIO, quiet: bool, args: argparse.Namespace | None = None) -> Any:
    """The command's console (or JSON lines) reporter: an observer of this run only,
    so in-process commands never pile reporters onto the process's plugin host."""
    reporter: Any = ConsoleReporter(out, verbose=not quiet)
    if args is not None:
        from ._report import answer_args  # noqa: PLC0415

        extra = answer_args(str(args.plan), getattr(args, "store", None))
        if args.json:
            from ._jsonout import JsonLines  # noqa: PLC0415

            reporter = JsonLines(out, phases=args.phase, command_args=extra)
        else:
            reporter = ConsoleReporter(
                out, verbose=not quiet, phases=args.phase, command_args=extra
            )
    return reporter


def _drive(rollout: Rollout, phases: Sequence[str] | None, reporter: Any) -> RunResult:
    """Run to the end; SIGINT and SIGTERM cancel the run, which journals the
    interruption and leaves traffic where it is."""

    rollout.observers.local.register(reporter, name="console")

    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # we are inside asyncio.run
        # Not available off the main thread or on every platform: SIGINT still works.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await rollout.run(phases)

    return asyncio.run(main())


def _rehearse(args: argparse.Namespace, out: TextIO) -> int:
    plan = load_plan(args.plan)
    plugins = default_plugins()
    reporter = _reporter(out, args.quiet, args)
    if args.metrics is not None:
        origin = {"origin": _moment(plan, args.start, "--start")} if args.start else {}
        rollout = rehearsal(plan, args.metrics, phases=args.phase, plugins=plugins, **origin)
    else:
        rollout = _backtest(plan, args.since, args.phase, plugins)
    result = _drive(rollout, args.phase, reporter)
    return result.exit_code


class _Given:
    """Backtests approve every phase: the question is what the gates would say."""

    def check(self, request: ApprovalRequest) -> ApprovalAnswer:
        return ApprovalAnswer(state=ApprovalState.GIVEN, by="backtest")


def _backtest(plan: Plan, since: str, phases: Sequence[str] | None, plugins: Plugins) -> Rollout:
    """Real sources, queried at past moments on a simulated clock; memory traffic."""
    from .traffic.memory import MemoryBackend  # noqa: PLC0415

    try:
        origin = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise PlanError(f"--since: expected an ISO 8601 time, got {since!r}") from None
    if origin.tzinfo is None:
        origin = origin.replace(tzinfo=UTC)
    selected = plan.select(phases)
    first = selected[0]
    end = (
        origin
        + plan.phase_offset(first.name, origin)
        + sum((p.duration for p in selected), timedelta(0))
    )
    if end > datetime.now(UTC):
        raise PlanError(
            f"--since {since}: the selected phases would end at {end.isoformat()}, "
            "in the future; backtest a window that has already happened"
        )
    index = plan.phases.index(first)
    return Rollout(
        plan,
        sources=build_sources(plan, plugins, plugin_context(plan)),
        traffic=MemoryBackend(plan.phases[index - 1].final_traffic if index else 0.0),
        clock=SimulatedClock(origin + plan.phase_offset(first.name, origin)),
        plugins=plugins,
        approver=_Given(),
        rehearsal=True,
        origin=origin,
    )


def _run(args: argparse.Namespace, out: TextIO) -> int:
    plan = load_plan(args.plan)
    plugins = default_plugins()
    reporter = _reporter(out, args.quiet, args)
    store = open_plan_store(plan, args.store)
    try:
        rollout = Rollout(
            plan,
            plugins=plugins,
            judge_only=args.judge_only,
            store=store,
            restart=args.restart,
            force=args.force,
            wait_for_approval=not args.no_wait,
            start_at=_start_at(plan, args.start_at),
        )
        result = _drive(rollout, args.phase, reporter)
    finally:
        _close(store)
    if rollout.reported:
        print(f"gatekeeper: {result.reason}", file=sys.stderr if args.json else out)
    elif os.environ.get("GITHUB_STEP_SUMMARY") and result.run_id:
        _step_summary(plan, args.store, result.run_id)
    return result.exit_code


def _step_summary(plan: Plan, target: str | None, run_id: str) -> None:
    """In GitHub Actions, the run's Markdown summary on the job's page."""
    from ._runreport import github_step_summary, render_markdown  # noqa: PLC0415

    store = open_plan_store(plan, target)
    try:
        info = find_run(store, run_id)
        github_step_summary(render_markdown(info, store.events(run_id)))
    finally:
        _close(store)


def _start_at(plan: Plan, value: str | None) -> Any:
    if value is None:
        return None
    from ._calendar_parse import parse_start_at  # noqa: PLC0415

    def error(key: Any, message: str) -> Exception:
        return PlanError(f"--start-at: {message}")

    return parse_start_at(value, ("--start-at",), error, zone=plan.calendar.timezone)


def _moment(plan: Plan, value: str, option: str) -> Any:
    from ._calendar_parse import parse_moment  # noqa: PLC0415

    def error(key: Any, message: str) -> Exception:
        return PlanError(f"{option}: {message}")

    return parse_moment(value, (option,), error, plan.calendar.timezone)


def _close(store: Any) -> None:
    closer = getattr(store, "close", None)
    if closer is not None:
        closer()


def _journal_command(args: argparse.Namespace, out: TextIO) -> int:
    plan = _journal_plan(args)
    store = open_journal(plan, args.store)
    try:
        if args.command == "status":
            return _status(args, plan, store, out)
        info = find_run(store, args.run)
        if args.command == "report":
            return _report(args, store, info, out)
        if args.command == "history":
            for event in store.events(info.run_id):
                if args.json:
                    print(json.dumps(_event_json(event, info.run_id), sort_keys=True), file=out)
                else:
                    print(format_event(event), file=out)
            return 0
        assert plan is not None  # only status, history and report go without one
        if args.command in ("approve", "reject"):
            return operate.answer(
                store,
                plan,
                info,
                give=args.command == "approve",
                phase=args.phase,
                by=args.by,
                reason=args.reason,
                out=out,
            )
        if args.command == "freeze":
            until = _moment(plan, args.until, "--until")
            return operate.freeze(store, info, until=until, by=args.by, reason=args.reason, out=out)
        if args.command in ("hold", "resume"):
            return operate.hold(
                store,
                info,
                resume=args.command == "resume",
                by=args.by,
                reason=args.reason,
                out=out,
            )
        return operate.rollback(store, plan, info, by=args.by, reason=args.reason, out=out)
    finally:
        _close(store)


def _report(args: argparse.Namespace, store: Any, info: Any, out: TextIO) -> int:
    from ._runreport import write_reports  # noqa: PLC0415 - only this command renders

    if args.html is None and args.markdown is None:
        raise PlanError("gatekeeper report: name --html FILE and/or --markdown FILE")
    for path in write_reports(
        info, store.events(info.run_id), html=args.html, markdown=args.markdown
    ):
        print(f"run {info.run_id}: report written to {path}", file=out)
    return 0


def _event_json(event: Event, run_id: str) -> dict[str, Any]:
    from ._jsonout import event_json  # noqa: PLC0415 - the schema shared with run --json

    return event_json(event, run_id)


def _journal_plan(args: argparse.Namespace) -> Plan | None:
    """The plan, or none: status, history and report read a journal named by
    --store (or $GATEKEEPER_STORE) without a plan file."""
    without = args.command in ("status", "history", "report")
    if without and not args.plan.exists() and (args.store or os.environ.get("GATEKEEPER_STORE")):
        return None
    return load_plan(args.plan)


def _status(args: argparse.Namespace, plan: Plan | None, store: Any, out: TextIO) -> int:
    from ._report import answer_args  # noqa: PLC0415
    from ._status import run_state  # noqa: PLC0415

    extra = answer_args(str(args.plan) if plan is not None else None, args.store)
    runs = [find_run(store, args.run)] if args.run else list(store.runs())
    if not runs and not args.json:
        print("no runs in the journal", file=out)
    for info in runs:
        events = store.events(info.run_id)
        if args.json:
            from ._jsonout import dumps, status_json  # noqa: PLC0415

            state = run_state(info, events, plan, extra)
            print(dumps(status_json(info, state)), file=out)
        else:
            print("\n".join(describe_run(info, events, plan=plan, command_args=extra)), file=out)
    return 0


def _check(args: argparse.Namespace, out: TextIO) -> int:
    plan = load_plan(args.plan)
    result = asyncio.run(acheck(plan, args.phase))
    if args.json:
        json.dump(_gate_json(result), out, indent=2)
        out.write("\n")
    else:
        _print_check(result, out)
    return _GATE_EXIT[result.outcome]


def _gate_json(result: GateResult) -> dict[str, Any]:
    from ._engine import measurement_data, verdict_data  # noqa: PLC0415

    return {
        "phase": result.phase,
        "at": result.at.isoformat(),
        "outcome": result.outcome.value,
        "verdicts": [
            {**verdict_data(v), "measurements": [measurement_data(m) for m in v.measurements]}
            for v in result.verdicts
        ],
    }


def _print_check(result: GateResult, out: TextIO) -> None:
    print(
        f"check {result.phase} at {result.at.strftime('%Y-%m-%d %H:%M:%S UTC')}: "
        f"{result.outcome.value.upper()}",
        file=out,
    )
    for verdict in result.verdicts:
        print(f"\n  {verdict.criterion.text}: {verdict.outcome.value.upper()}", file=out)
        print(f"    {verdict.reason}", file=out)
        for m in verdict.measurements:
            value = m.problem if m.value is None or m.problem else f"{m.value:g}"
            counts = ""
            if m.numerator is not None and m.denominator is not None:
                counts = f" ({m.numerator:g} / {m.denominator:g})"
            retries = f", {m.retries} retries" if m.retries else ""
            print(
                f"    {m.variant} from {m.source or '?'}{retries}: {value}{counts}\n"
                f"      query: {m.query or '-'}",
                file=out,
            )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
