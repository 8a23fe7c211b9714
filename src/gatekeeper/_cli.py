"""The ``gatekeeper`` command.

Exit codes: 0 advanced / passed, 1 failed / rolled back, 2 bad usage or a bad
plan, 3 held, inconclusive or interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from ._api import acheck, validate
from ._approval import ApprovalAnswer, ApprovalRequest, ApprovalState
from ._clock import SimulatedClock
from ._engine import Rollout, build_sources, plugin_context
from ._model import GateResult, Outcome, Plan, RunResult
from ._planfile import load_plan
from ._plugins import Plugins, default_plugins
from ._rehearsal import rehearsal
from ._report import ConsoleReporter
from .exceptions import GatekeeperError, PlanError

EXIT_USAGE = 2
_GATE_EXIT = {Outcome.PASS: 0, Outcome.FAIL: 1, Outcome.INCONCLUSIVE: 3}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exit code is 2 as well
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"gatekeeper: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gatekeeper",
        description="Release gates as code: rehearse, run and check progressive rollouts.",
    )
    from . import __version__  # noqa: PLC0415

    parser.add_argument("--version", action="version", version=f"gatekeeper {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("validate", help="check a plan file (and its sources' options)")
    p.add_argument("plan", type=Path)

    p = commands.add_parser(
        "rehearse", help="run a plan on a simulated clock against a recording or past data"
    )
    p.add_argument("plan", type=Path)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--metrics", type=Path, help="a CSV recording (at,metric,value[,variant])")
    what.add_argument(
        "--since",
        help="backtest: query the plan's real sources at each checkpoint's past time, "
        "the run starting at this ISO 8601 moment",
    )
    p.add_argument("--phase", action="append", help="rehearse only this phase (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="show only what did not pass")

    p = commands.add_parser("run", help="run a plan with its real sources and traffic backend")
    p.add_argument("plan", type=Path)
    p.add_argument("--phase", action="append", help="run only this phase (repeatable)")
    p.add_argument(
        "--judge-only", action="store_true", help="judge the gates, never change traffic"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="show only what did not pass")

    p = commands.add_parser("check", help="judge one phase's gate once, now; change nothing")
    p.add_argument("plan", type=Path)
    p.add_argument("--phase", required=True)
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Entry point of the ``gatekeeper`` command; returns the exit code."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            plan = validate(args.plan)
            phases = ", ".join(f"{p.name} ({len(p.checkpoints)} checkpoints)" for p in plan.phases)
            print(f"{args.plan}: ok: plan {plan.name!r}: {phases}", file=out)
            return 0
        if args.command == "rehearse":
            return _rehearse(args, out)
        if args.command == "run":
            return _run(args, out)
        if args.command == "check":
            return _check(args, out)
    except PlanError as exc:
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyError as exc:
        print(f"gatekeeper: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    except GatekeeperError as exc:
        print(f"gatekeeper: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(args.command)  # pragma: no cover - argparse requires a command


def _plugins(out: TextIO, quiet: bool) -> Plugins:
    plugins = default_plugins()
    reporter = ConsoleReporter(out, verbose=not quiet)
    plugins.register(reporter, name=f"console-{id(reporter)}")
    return plugins


def _drive(rollout: Rollout, phases: Sequence[str] | None) -> RunResult:
    """Run to the end; SIGINT and SIGTERM cancel the run, which journals the
    interruption and leaves traffic where it is."""

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
    plugins = _plugins(out, args.quiet)
    if args.metrics is not None:
        rollout = rehearsal(plan, args.metrics, phases=args.phase, plugins=plugins)
    else:
        rollout = _backtest(plan, args.since, args.phase, plugins)
    result = _drive(rollout, args.phase)
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
    probe = Rollout(plan, sources={}, traffic=MemoryBackend(), plugins=plugins)
    selected = probe.select(phases)
    first = selected[0]
    end = origin + plan.phase_offset(first.name) + sum((p.duration for p in selected), timedelta(0))
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
        clock=SimulatedClock(origin + plan.phase_offset(first.name)),
        plugins=plugins,
        approver=_Given(),
        rehearsal=True,
        origin=origin,
    )


def _run(args: argparse.Namespace, out: TextIO) -> int:
    plan = load_plan(args.plan)
    plugins = _plugins(out, args.quiet)
    rollout = Rollout(plan, plugins=plugins, judge_only=args.judge_only)
    result = _drive(rollout, args.phase)
    return result.exit_code


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
