"""The ``gatekeeper`` command's arguments: every subcommand and its options."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["EXIT_USAGE", "parser"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own exit code is 2 as well
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"gatekeeper: error: {message}\n")


def parser() -> argparse.ArgumentParser:
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
    _json_option(p)
    p.add_argument(
        "--start",
        help="the rehearsed run's start (ISO 8601, e.g. 2026-11-01T13:00:00Z): start times, "
        "windows and freezes are rehearsed from there",
    )

    p = commands.add_parser("run", help="run a plan with its real sources and traffic backend")
    p.add_argument("plan", type=Path)
    p.add_argument("--phase", action="append", help="run only this phase (repeatable)")
    _json_option(p)
    p.add_argument(
        "--judge-only", action="store_true", help="judge the gates, never change traffic"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="show only what did not pass")
    _store_option(p)
    p.add_argument(
        "--restart",
        action="store_true",
        help="start the plan over: abandon its unfinished run (or ignore its finished one)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run a phase even though the phase before it has not advanced, or the plan's "
        "last run was rolled back",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for an approval nobody gave yet: stop held (exit 3)",
    )
    p.add_argument(
        "--start-at",
        help='when the first phase may start: "14:00" (next, in the plan\'s time zone), '
        '"+1d 16:00" or a timestamp',
    )

    p = commands.add_parser("status", help="where runs are and what they wait for")
    p.add_argument("run", nargs="?", help="a run id (or a unique prefix); default: every run")
    _plan_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object per run (docs/json.md)")

    p = commands.add_parser("history", help="a run's whole journal")
    p.add_argument("run")
    _plan_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object per event")

    _operator_commands(commands)

    p = commands.add_parser(
        "report", help="a run's report: one self-contained HTML file and/or Markdown"
    )
    p.add_argument("run")
    p.add_argument("--html", type=Path, help="write the HTML report here")
    p.add_argument("--markdown", type=Path, help="write the Markdown report here")
    _plan_option(p)

    p = commands.add_parser("check", help="judge one phase's gate once, now; change nothing")
    p.add_argument("plan", type=Path)
    p.add_argument("--phase", required=True)
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    return parser


def _operator_commands(commands: Any) -> None:
    """What a person asks of a run: through its journal, live or not."""
    for name, verb in (("approve", "give"), ("reject", "refuse")):
        p = commands.add_parser(name, help=f"{verb} a phase's go/no-go, recorded in the journal")
        p.add_argument("run")
        p.add_argument("--phase", help="default: the phase waiting for approval")
        p.add_argument("--by", required=True, help="who decides (recorded)")
        p.add_argument("--reason", default="", help="why (recorded)")
        _plan_option(p)

    p = commands.add_parser(
        "rollback",
        help="send all traffic back to the baseline for a run (a live runner applies it "
        "within seconds)",
    )
    p.add_argument("run")
    _plan_option(p)
    p.add_argument("--by", default="", help="who decides (recorded)")
    p.add_argument("--reason", default="rolled back by hand")
    p.add_argument("--target", help="a fleet plan: only this target (default: every one)")

    for name, purpose in (
        (
            "hold",
            "stop a run advancing or raising traffic (it keeps judging; rollback stays allowed)",
        ),
        ("resume", "let a held run advance again"),
    ):
        p = commands.add_parser(name, help=purpose)
        p.add_argument("run")
        p.add_argument("--by", required=True, help="who decides (recorded)")
        p.add_argument("--reason", default="", help="why (recorded)")
        _plan_option(p)

    p = commands.add_parser(
        "freeze",
        help="nothing of this run advances or raises traffic until then (judging and "
        "rollback go on)",
    )
    p.add_argument("run")
    p.add_argument("--until", required=True, help="an ISO 8601 moment, e.g. 2026-11-28T09:00Z")
    p.add_argument("--by", required=True, help="who decides (recorded)")
    p.add_argument("--reason", default="", help="why (recorded)")
    _plan_option(p)


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json", action="store_true", help="one JSON object per event as it happens (docs/json.md)"
    )


def _store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        help="the journal: a SQLite path or postgresql:// URL (default: $GATEKEEPER_STORE, "
        "else PLAN's name with .journal.sqlite3 next to it)",
    )


def _plan_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plan", type=Path, default=Path("gates.toml"), help="the plan (default: gates.toml)"
    )
    _store_option(p)
