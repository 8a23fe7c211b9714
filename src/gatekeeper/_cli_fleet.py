"""The command line for fleet plans (``[targets]`` and ``[[waves]]``, docs/waves.md).

``validate``, ``run``, ``rehearse``, ``status`` and ``rollback [--target T]`` on a
fleet file go here; a plain plan file goes on to the ordinary commands.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TextIO

from .exceptions import PlanError

__all__ = ["fleet_command"]

_COMMANDS = frozenset({"validate", "run", "rehearse", "status", "rollback"})


def fleet_command(args: argparse.Namespace, out: TextIO) -> int | None:
    """Run ``args`` as a fleet command, or return None when the plan is no fleet."""
    path = getattr(args, "plan", None)
    if args.command not in _COMMANDS or path is None or not Path(path).is_file():
        return None
    from ._fleet import Fleet, load_plan_or_fleet  # noqa: PLC0415

    loaded = load_plan_or_fleet(path)
    if not isinstance(loaded, Fleet):
        return None
    fleet = loaded
    if args.command == "validate":
        waves = " → ".join(f"{w.name} ({', '.join(w.targets)})" for w in fleet.waves)
        print(f"{path}: ok: fleet {fleet.name!r}: {waves}", file=out)
        return 0
    if args.command == "run":
        if args.phase:
            raise PlanError("--phase: a fleet runs every phase in every target, wave by wave")
        from ._fleet import run_fleet  # noqa: PLC0415

        result = asyncio.run(
            run_fleet(
                fleet,
                store=args.store,
                restart=args.restart,
                out=out,
                wait_for_approval=not args.no_wait,
            )
        )
        return result.exit_code
    if args.command == "rehearse":
        if args.metrics is None:
            raise PlanError("rehearse a fleet with --metrics RECORDING (a 'target' column)")
        from ._fleet import rehearse_fleet  # noqa: PLC0415

        return rehearse_fleet(fleet, args.metrics, out=out).exit_code
    from ._fleet import fleet_rollback, fleet_status  # noqa: PLC0415
    from ._run.build import open_run_store  # noqa: PLC0415

    store, owned = open_run_store(fleet.plan, args.store)
    try:
        if args.command == "status":
            return fleet_status(fleet, store, out=out)
        target = getattr(args, "target", None)
        return fleet_rollback(
            fleet,
            store,
            targets=[target] if target else None,
            by=args.by,
            reason=args.reason,
            out=out,
        )
    finally:
        if owned:
            store.close()
