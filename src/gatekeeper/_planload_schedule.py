"""The plan loader's schedule of a phase: its share, its steps and its checkpoints.

Checkpoints are where a plan's size turns into run time (a rehearsal judges every one
of them), so their count is held to :data:`gatekeeper._limits.MAX_CHECKPOINTS` here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ._limits import MAX_CHECKPOINTS, MAX_DURATION, shorten
from ._locate import PathPart
from ._model import Checkpoint, Step
from ._planload_calendar import CalendarLoader
from ._units import format_duration

__all__ = ["ScheduleLoader"]


class ScheduleLoader(CalendarLoader):
    """Reads a phase's ``traffic``, ``steps`` and ``checkpoints``."""

    def share(self, traffic: Any, key: tuple[PathPart, ...]) -> float:
        if (
            isinstance(traffic, bool)
            or not isinstance(traffic, int | float)
            or not math.isfinite(traffic)
            or not 0 <= traffic <= 100
        ):
            raise self.error(
                key, f"expected the canary's share in percent, 0 to 100, got {shorten(traffic)}"
            )
        return float(traffic)

    def steps(
        self, value: Any, key: tuple[PathPart, ...]
    ) -> tuple[tuple[Step, ...], tuple[Checkpoint, ...]]:
        """Steps of a phase, and their checkpoints flattened onto the phase's clock:
        each step starts when the previous one's last checkpoint passed."""
        if not isinstance(value, list) or not value:
            raise self.error(key, "expected a non-empty array of {traffic, checkpoints} tables")
        steps: list[Step] = []
        flat: list[Checkpoint] = []
        start = timedelta(0)
        for index, raw in enumerate(value):
            step_key = (*key, index)
            table = self.table(raw, step_key)
            self.unknown_keys(table, ("traffic", "checkpoints"), step_key)
            share = self.share(table.get("traffic"), (*step_key, "traffic"))
            own = self.checkpoints(table.get("checkpoints"), (*step_key, "checkpoints"))
            steps.append(
                Step(
                    traffic=share,
                    checkpoints=tuple(c.offset for c in own),
                    names=tuple(c.name for c in own),
                )
            )
            label = f"{share:g}%"
            flat.extend(
                Checkpoint(
                    name=f"{c.name}@{label}",
                    offset=start + c.offset,
                    traffic=share,
                    step_start=start,
                )
                for c in own
            )
            start += own[-1].offset
            if start > MAX_DURATION:
                raise self.error(
                    step_key,
                    f"the phase's steps last more than {format_duration(MAX_DURATION)} "
                    "(the limit for one phase)",
                )
            if len(flat) > MAX_CHECKPOINTS:
                raise self.error(step_key, f"more than {MAX_CHECKPOINTS} checkpoints (the limit)")
        seen: set[str] = set()
        for checkpoint in flat:
            if checkpoint.name in seen:
                raise self.error(
                    key,
                    f"two steps give the checkpoint {checkpoint.name!r}: use different shares",
                )
            seen.add(checkpoint.name)
        return tuple(steps), tuple(flat)

    def checkpoints(self, value: Any, key: tuple[PathPart, ...]) -> tuple[Checkpoint, ...]:
        offsets: list[tuple[str, timedelta, tuple[PathPart, ...]]] = []
        if isinstance(value, Mapping):
            self.unknown_keys(value, ("every", "until"), key)
            if "every" not in value or "until" not in value:
                raise self.error(key, "a checkpoint series needs both 'every' and 'until'")
            every = self.duration(value["every"], (*key, "every"))
            until = self.duration(value["until"], (*key, "until"))
            if every <= timedelta(0):
                raise self.error((*key, "every"), "must be longer than 0s")
            if until < every:
                raise self.error((*key, "until"), "must be at least 'every'")
            count = until // every
            if count > MAX_CHECKPOINTS:
                raise self.error(
                    key, f"{count} checkpoints is too many (at most {MAX_CHECKPOINTS})"
                )
            offsets = [(format_duration(every * i), every * i, key) for i in range(1, count + 1)]
        elif isinstance(value, list) and value:
            if len(value) > MAX_CHECKPOINTS:
                raise self.error(
                    key, f"{len(value)} checkpoints is too many (at most {MAX_CHECKPOINTS})"
                )
            for index, raw in enumerate(value):
                item_key = (*key, index)
                offset = self.duration(raw, item_key)
                # Keep the name as written ("36h", not "1d12h"): it is the test id.
                name = raw.strip() if isinstance(raw, str) else format_duration(offset)
                offsets.append((name, offset, item_key))
        else:
            raise self.error(
                key, "expected a list of offsets like ['15m', '30m', '1h'] or {every, until}"
            )
        previous = timedelta(0)
        names: set[str] = set()
        for name, offset, item_key in offsets:
            if offset <= previous:
                raise self.error(
                    item_key,
                    "checkpoints must be after the phase start and in increasing order",
                )
            if name in names:  # 0.0001 and 0.0002 are both "1ms": one test id, one journal key
                raise self.error(item_key, f"two checkpoints are named {name!r}")
            names.add(name)
            previous = offset
        return tuple(Checkpoint(name=name, offset=offset) for name, offset, _ in offsets)
