"""Loading a fleet plan: ``[targets.*]``, ``[[waves]]`` and ``[fleet]`` beside a plan.

:func:`load_fleet` reads the TOML file, takes the three fleet tables out and
hands the rest to the plan loader (``Plan.from_mapping``), with every target's
arg names added to ``[args]`` so ``{{region}}`` in a query is known; an error the
plan loader reports without a line is located in the file's text here. Every
fleet error is located too (file:line: key path: message).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._limits import MAX_PLAN_BYTES, decode_utf8, read_bounded, shorten
from .._locate import PathPart, locate
from .._model import Approval, Criterion, Plan, TrafficConfig
from .._planfile import plan_from_mapping
from .._planload import LoaderBase, kind
from ..exceptions import PlanError
from .model import ENTRY_PHASE, Bake, Fleet, FleetOnFail, FleetPolicy, Target, Wave, _digest

__all__ = [
    "FLEET_KEYS",
    "fleet_from_mapping",
    "fleet_from_text",
    "is_fleet",
    "load_fleet",
    "load_plan_or_fleet",
]

#: The top-level tables that make a plan a fleet plan.
FLEET_KEYS = ("targets", "waves", "fleet")
_TARGET_KEYS = ("traffic", "args")
_WAVE_KEYS = ("name", "targets", "bake", "approval")
_BAKE_KEYS = ("for", "requests", "recheck", "limit")
_FLEET_KEYS = (
    "on_fail",
    "entry",
    "entry_window",
    "entry_recheck",
    "entry_limit",
    "pairs",
    "requests",
)
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_PART = re.compile(r"\[(\d+)\]|\.?(\"(?:[^\"\\]|\\.)*\"|[^.\[]+)")


def is_fleet(data: Mapping[str, Any]) -> bool:
    """Whether a parsed plan file has fleet tables (the plan loader's one test)."""
    return any(key in data for key in FLEET_KEYS)


def load_fleet(path: str | Path) -> Fleet:
    """Read a fleet plan file; a :class:`PlanError` with file and line otherwise."""
    path = Path(path)
    data = read_bounded(path, MAX_PLAN_BYTES, "plan")
    return fleet_from_text(decode_utf8(data, file=str(path), what="plan"), path=str(path))


def load_plan_or_fleet(path: str | Path) -> Plan | Fleet:
    """What the command line loads: a :class:`Fleet` when the file has ``[targets]``,
    ``[[waves]]`` or ``[fleet]``, else the plan (through the plan loader)."""
    from .._planfile import load_plan  # noqa: PLC0415
    from .._plantext import parse_toml  # noqa: PLC0415

    path = Path(path)
    text = decode_utf8(read_bounded(path, MAX_PLAN_BYTES, "plan"), file=str(path), what="plan")
    # The plan loader's own parse: its linear checks refuse what makes tomllib slow
    # (a million-part dotted key) before tomllib sees it, with a located message.
    data = parse_toml(text, path=str(path))
    if not is_fleet(data):
        return load_plan(path)
    return fleet_from_mapping(data, path=str(path), text=text)


def fleet_from_text(text: str, *, path: str | None = None) -> Fleet:
    from .._plantext import _long_dotted_key  # noqa: PLC0415

    line = _long_dotted_key(text)
    if line is not None:
        raise PlanError("a dotted key of too many parts", file=path, line=line)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        message = _TOML_LINE.sub("", str(exc)).strip()
        raise PlanError(
            f"not valid TOML: {message}", file=path, line=int(found.group(1)) if found else None
        ) from None
    except RecursionError:
        raise PlanError("not valid TOML: nested too deep", file=path) from None
    return fleet_from_mapping(data, path=path, text=text)


def fleet_from_mapping(
    data: Mapping[str, Any], *, path: str | None = None, text: str | None = None
) -> Fleet:
    """Build a fleet from a mapping shaped like the TOML file."""
    return _FleetLoader(data, path=path, text=text).fleet()


class _FleetLoader(LoaderBase):
    def fleet(self) -> Fleet:
        data = self.table(self.data, ())
        if "targets" not in data or "waves" not in data:
            missing = "targets" if "targets" not in data else "waves"
            raise self.error((missing,), f"a fleet plan needs [{missing}] (and [targets.*])")
        rest = {k: v for k, v in data.items() if k not in FLEET_KEYS}
        targets = self.targets(data["targets"])
        fleet_table = self.table(data.get("fleet", {}), ("fleet",))
        self.unknown_keys(fleet_table, _FLEET_KEYS, ("fleet",))
        arg_names = self.arg_names(targets, rest)
        args = dict(self.table(rest.get("args", {}), ("args",)))
        first = next(iter(targets.values()))
        for name in arg_names:
            args.setdefault(name, first.args[name])
        rest["args"] = args
        plan = self.located(lambda: plan_from_mapping(rest, path=self.path))
        waves = self.waves(data["waves"], targets)
        policy = self.policy(fleet_table, targets, waves, rest, plan.metrics)
        for index, wave in enumerate(waves):
            if wave.bake.requests is not None and policy.requests is None:
                raise self.error(
                    ("waves", index, "bake", "requests"),
                    "a bake on requests needs [fleet] requests = METRIC (the metric they "
                    "are read from; a ratio's denominator)",
                )
        digest = _digest(plan.digest, {"fleet": {k: data.get(k) for k in FLEET_KEYS}})
        return Fleet(plan=plan, targets=targets, waves=waves, policy=policy, digest=digest)

    # -- errors of the plan loader, located in this file ------------------------------

    def located(self, build: Any) -> Any:
        try:
            return build()
        except PlanError as exc:
            if exc.line is not None or self.text is None:
                raise
            key = _parse_key(exc.key or "")
            line = locate(self.text, key) or 1
            raise PlanError(exc.message, file=self.path, key=exc.key, line=line) from None

    # -- [targets.*] ------------------------------------------------------------------

    def targets(self, value: Any) -> dict[str, Target]:
        table = self.table(value, ("targets",))
        if not table:
            raise self.error(("targets",), "a fleet needs at least one target")
        out: dict[str, Target] = {}
        for name, raw in table.items():
            key: tuple[PathPart, ...] = ("targets", name)
            self.name(name, key)
            entry = self.table(raw, key)
            self.unknown_keys(entry, _TARGET_KEYS, key)
            traffic = self.table(entry.get("traffic"), (*key, "traffic"))
            type_name = self.string(traffic, "type", (*key, "traffic"))
            options = {k: v for k, v in traffic.items() if k != "type"}
            args = self.table(entry.get("args", {}), (*key, "args"))
            strings: dict[str, str] = {}
            for arg, item in args.items():
                self.name(arg, (*key, "args", arg), pattern="arg")
                if isinstance(item, bool) or not isinstance(item, str | int | float):
                    raise self.error((*key, "args", arg), f"expected a string, got {kind(item)}")
                strings[arg] = str(item)
            out[name] = Target(
                name=name, traffic=TrafficConfig(type=type_name, options=options), args=strings
            )
        return out

    def arg_names(self, targets: Mapping[str, Target], rest: Mapping[str, Any]) -> list[str]:
        """The arg names targets add to the plan's; every target must give each one
        (a target without ``region`` would query another target's region)."""
        plan_args = self.table(rest.get("args", {}), ("args",))
        names: list[str] = []
        for target in targets.values():
            names += [a for a in target.args if a not in plan_args and a not in names]
        for target in targets.values():
            for name in names:
                if name not in target.args:
                    raise self.error(
                        ("targets", target.name, "args"),
                        f"missing arg {name!r}: every target gives the args any target "
                        "adds (or [args] gives a default)",
                    )
        return names

    # -- [[waves]] --------------------------------------------------------------------

    def waves(self, value: Any, targets: Mapping[str, Target]) -> tuple[Wave, ...]:
        if not isinstance(value, list) or not value:
            raise self.error(("waves",), "expected [[waves]] tables (at least one)")
        seen: dict[str, int] = {}
        names: set[str] = set()
        out: list[Wave] = []
        for index, raw in enumerate(value):
            key: tuple[PathPart, ...] = ("waves", index)
            entry = self.table(raw, key)
            self.unknown_keys(entry, _WAVE_KEYS, key)
            name = self.name(entry.get("name"), (*key, "name"))
            if name in names:
                raise self.error((*key, "name"), f"wave {name!r} is named twice")
            names.add(name)
            listed = entry.get("targets")
            if not isinstance(listed, list) or not listed:
                raise self.error((*key, "targets"), "expected a non-empty array of target names")
            for item in listed:
                if not isinstance(item, str) or item not in targets:
                    raise self.error(
                        (*key, "targets"),
                        f"unknown target {shorten(item)} (known: {', '.join(sorted(targets))})",
                    )
                if item in seen:
                    raise self.error(
                        (*key, "targets"), f"target {item!r} is already in wave {seen[item]}"
                    )
                seen[item] = index
            bake = self.bake(entry.get("bake", {}), (*key, "bake"))
            approval = self.approval(entry.get("approval"), (*key, "approval"))
            out.append(Wave(name=name, targets=tuple(listed), bake=bake, approval=approval))
        for name in targets:
            if name not in seen:
                raise self.error(("targets", name), "this target is in no wave")
        return tuple(out)

    def bake(self, value: Any, key: tuple[PathPart, ...]) -> Bake:
        table = self.table(value, key)
        self.unknown_keys(table, _BAKE_KEYS, key)
        requests = table.get("requests")
        if requests is not None and (
            isinstance(requests, bool) or not isinstance(requests, int) or requests < 1
        ):
            raise self.error(
                (*key, "requests"), f"expected a whole number >= 1, got {kind(requests)}"
            )
        bake = Bake(
            duration=self.duration(table.get("for", "0s"), (*key, "for")),
            requests=requests,
        )
        if "recheck" in table:
            recheck = self.duration(table["recheck"], (*key, "recheck"))
            if recheck.total_seconds() <= 0:
                raise self.error((*key, "recheck"), "expected a duration above 0")
            bake = Bake(duration=bake.duration, requests=requests, recheck=recheck)
        if "limit" in table:
            limit = self.duration(table["limit"], (*key, "limit"))
            bake = Bake(
                duration=bake.duration, requests=requests, recheck=bake.recheck, limit=limit
            )
        return bake

    def approval(self, value: Any, key: tuple[PathPart, ...]) -> Approval | None:
        if value is None:
            return None
        if isinstance(value, str):
            return Approval(prompt=self.free_text(value, key, limit=500))
        table = self.table(value, key)
        self.unknown_keys(table, ("prompt", "timeout"), key)
        prompt = self.free_text(table.get("prompt", "go/no-go"), (*key, "prompt"), limit=500)
        timeout = table.get("timeout")
        return Approval(
            prompt=prompt,
            timeout=None if timeout is None else self.duration(timeout, (*key, "timeout")),
        )

    # -- [fleet] ----------------------------------------------------------------------

    def policy(
        self,
        table: Mapping[str, Any],
        targets: Mapping[str, Target],
        waves: Sequence[Wave],
        rest: Mapping[str, Any],
        metrics: Mapping[str, Any],
    ) -> FleetPolicy:
        key: tuple[PathPart, ...] = ("fleet",)
        on_fail = self.choice(table.get("on_fail", "rollback-wave"), FleetOnFail, (*key, "on_fail"))
        window = self.duration(table.get("entry_window", "10m"), (*key, "entry_window"))
        if window.total_seconds() <= 0:
            raise self.error((*key, "entry_window"), "expected a duration above 0")
        recheck = self.duration(table.get("entry_recheck", "5m"), (*key, "entry_recheck"))
        if recheck.total_seconds() <= 0:
            raise self.error((*key, "entry_recheck"), "expected a duration above 0")
        limit = self.duration(table.get("entry_limit", "1h"), (*key, "entry_limit"))
        pairs = self.pairs(table.get("pairs", []), targets, waves)
        requests = table.get("requests")
        if requests is not None and (not isinstance(requests, str) or requests not in metrics):
            raise self.error(
                (*key, "requests"),
                f"unknown metric {shorten(requests)} (known: {', '.join(sorted(metrics))})",
            )
        entry = self.entry(table.get("entry", []), rest, window)
        return FleetPolicy(
            on_fail=on_fail,
            entry=entry,
            entry_window=window,
            entry_recheck=recheck,
            entry_limit=limit,
            pairs=pairs,
            requests=requests,
        )

    def pairs(
        self, value: Any, targets: Mapping[str, Target], waves: Sequence[Wave]
    ) -> tuple[tuple[str, str], ...]:
        key: tuple[PathPart, ...] = ("fleet", "pairs")
        if not isinstance(value, list):
            raise self.error(key, f"expected an array of [target, target] pairs, got {kind(value)}")
        out: list[tuple[str, str]] = []
        for index, pair in enumerate(value):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(p, str) and p in targets for p in pair)
                or pair[0] == pair[1]
            ):
                raise self.error(
                    (*key, index),
                    f"expected two different known targets (known: {', '.join(sorted(targets))})",
                )
            out.append((pair[0], pair[1]))
        for index, wave in enumerate(waves):
            for first, second in out:
                if first in wave.targets and second in wave.targets:
                    raise self.error(
                        ("waves", index, "targets"),
                        f"{first} and {second} are a pair ([fleet] pairs): they never share a wave",
                    )
        return tuple(out)

    def entry(self, value: Any, rest: Mapping[str, Any], window: Any) -> tuple[Criterion, ...]:
        key: tuple[PathPart, ...] = ("fleet", "entry")
        if not isinstance(value, list):
            raise self.error(key, f"expected an array of criteria, got {kind(value)}")
        if not value:
            return ()
        # The criteria are read by the plan loader itself, as the gate of a phase.
        probe = dict(rest)
        seconds = int(window.total_seconds())
        probe["phases"] = [
            {"name": ENTRY_PHASE, "traffic": 0, "checkpoints": [f"{seconds}s"], "gate": value}
        ]
        try:
            plan = plan_from_mapping(probe, path=self.path)
        except PlanError as exc:
            where = exc.key or ""
            found = re.match(r"phases\[0\]\.gate(\[\d+\])?", where)
            if found is None:
                raise self.error(key, exc.message) from None
            index = int(found.group(1)[1:-1]) if found.group(1) else None
            raise self.error(key if index is None else (*key, index), exc.message) from None
        return plan.phases[0].gate.criteria


def _parse_key(text: str) -> tuple[PathPart, ...]:
    """``phases[1].gate[2]`` -> ``("phases", 1, "gate", 2)`` (the inverse of format_path)."""
    out: list[PathPart] = []
    for index, name in _PART.findall(text):
        if index:
            out.append(int(index))
        elif name.startswith('"'):
            out.append(name[1:-1])
        elif name:
            out.append(name)
    return tuple(out)
