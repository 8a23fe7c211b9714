"""The plan loader's ``[phases.watch]``: criteria judged every few seconds between
checkpoints, which may stop a phase and never advance one.

A watch has no limit on its looks (they are not checkpoints: nothing is journaled
per look), only on its cadence: at least a second apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ._locate import PathPart
from ._model import Gate, Kind, Metric, Watch
from ._units import format_duration

if TYPE_CHECKING:
    from ._planload_phases import PhaseLoader

__all__ = ["MIN_EVERY", "WATCH_KEYS", "load_watch"]

WATCH_KEYS = ("every", "gate", "stale")
#: The fastest cadence: a source is asked at most once a second per metric.
MIN_EVERY = timedelta(seconds=1)
#: A watch that saw no data for this many looks (and at least a minute) says so.
STALE_LOOKS = 12


def load_watch(
    loader: PhaseLoader,
    value: Any,
    key: tuple[PathPart, ...],
    metrics: Mapping[str, Metric],
    gate: Gate,
) -> Watch | None:
    """A phase's watch, or None. Its statistical criteria must be in the phase's gate
    too: they share that criterion's evidence and its share of the plan's α."""
    if value is None:
        return None
    table = loader.table(value, key)
    loader.unknown_keys(table, WATCH_KEYS, key)
    if "every" not in table:
        raise loader.error(key, "a watch needs 'every' (e.g. every = \"5s\")")
    every = loader.duration(table["every"], (*key, "every"))
    if every < MIN_EVERY:
        raise loader.error(
            (*key, "every"), f"a watch looks at most once a second, got {format_duration(every)}"
        )
    criteria = loader.criteria(table.get("gate"), (*key, "gate"), metrics, watch=True)
    in_gate = {c.text for c in gate.criteria}
    for index, criterion in enumerate(criteria):
        item = (*key, "gate", index)
        if criterion.kind is Kind.STABLE:
            raise loader.error(
                item, "a stability criterion is judged at checkpoints, not in a watch"
            )
        if criterion.kind is Kind.COMPARE and criterion.text not in in_gate:
            raise loader.error(
                item,
                f"the statistical criterion {criterion.text!r} must also be in the phase's "
                "gate: the watch shares its evidence and its α with the checkpoints",
            )
    stale = max(every * STALE_LOOKS, timedelta(minutes=1))
    if "stale" in table:
        stale = loader.duration(table["stale"], (*key, "stale"))
        if stale < every:
            raise loader.error((*key, "stale"), "must be at least 'every'")
    return Watch(every=every, gate=Gate(criteria=criteria, alpha=gate.alpha), stale=stale)
