"""``command``: argv templates to set and to read the split (kubectl, cloud CLIs, scripts).

Both commands are lists run without a shell. ``set`` may use the placeholders of
:data:`PLACEHOLDERS` (``{canary}``, ``{baseline}``, ``{canary_weight}``, ...,
with Python format specs such as ``{canary:.1f}``); they are checked when the plan
is loaded. ``get`` takes no placeholders; its stdout's last non-empty line is the
canary share in percent: ``12.5``, ``12.5%`` or ``12.5 %``.

A change runs ``get`` first (no ``set`` when the share is already within
``tolerance``), then ``set``, then ``get`` again to verify. A command that exits
non-zero, prints no number, or outlives ``timeout`` (its whole process group is
killed) raises :class:`TrafficError` with the exit code and the end of stderr.

``secrets_env`` lists environment variables the commands need (a token for a
cloud CLI): their values are given to the commands and masked, in every form the
redactor knows, in every message built from a command's output.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import string
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._model import Split
from .._options import Options
from .._protocols import PluginContext
from .._redact import Redactor, ShortSecretError, shown
from .._units import parse_duration
from ..exceptions import ConfigError, TrafficError
from . import check_share

__all__ = ["PLACEHOLDERS", "CommandBackend", "create", "parse_share"]

PLACEHOLDERS = (
    "canary",
    "baseline",
    "canary_fraction",
    "baseline_fraction",
    "canary_weight",
    "baseline_weight",
    "total_weight",
)
_SHARE = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*%?\s*$")


def parse_share(stdout: str) -> float:
    """The canary percent from a ``get`` command's output (its last non-empty line)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("printed nothing (expected the canary percent, e.g. '12.5')")
    match = _SHARE.match(lines[-1])
    if match is None:
        raise ValueError(f"last line {lines[-1][:80]!r} is not a percent like '12.5' or '12.5%'")
    value = float(match.group(1))
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{value} is outside [0, 100]")
    return value


def placeholder_values(canary_percent: float, total_weight: int) -> dict[str, Any]:
    """What a ``set`` template can refer to, for one canary share."""
    canary_weight = math.floor(canary_percent / 100.0 * total_weight + 0.5)
    return {
        "canary": canary_percent,
        "baseline": 100.0 - canary_percent,
        "canary_fraction": canary_percent / 100.0,
        "baseline_fraction": (100.0 - canary_percent) / 100.0,
        "canary_weight": canary_weight,
        "baseline_weight": total_weight - canary_weight,
        "total_weight": total_weight,
    }


def _format_arg(template: str, values: Mapping[str, Any]) -> str:
    # floats print as %g unless the template gives its own format spec
    plain = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in values.items()}
    out: list[str] = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is not None:
            out.append(format(values[field], spec) if spec else str(plain[field]))
    return "".join(out)


def _check_template(argv: Sequence[Any], key: str, allowed: tuple[str, ...]) -> list[str]:
    if not argv:
        raise ConfigError("expected a non-empty list of strings (argv, no shell)", key=key)
    sample = placeholder_values(12.5, 100)
    checked: list[str] = []
    for index, arg in enumerate(argv):
        if not isinstance(arg, str):
            raise ConfigError(f"expected a string, got {shown(arg)}", key=f"{key}[{index}]")
        try:
            fields = list(string.Formatter().parse(arg))
            for _, field, spec, conversion in fields:
                if field is None:
                    continue
                if field not in allowed or conversion:
                    known = ", ".join("{" + name + "}" for name in allowed) or "none"
                    raise ConfigError(
                        f"unknown placeholder {{{field}}} (known: {known}; write {{{{ and }}}} "
                        "for literal braces)",
                        key=f"{key}[{index}]",
                    )
                if spec:
                    format(sample[field], spec)
        except ValueError as exc:
            raise ConfigError(f"bad template {shown(arg)}: {exc}", key=f"{key}[{index}]") from None
        checked.append(arg)
    return checked


class CommandBackend:
    """Runs a ``set`` and a ``get`` command; the ``get`` output is the truth."""

    def __init__(
        self,
        *,
        set_argv: Sequence[str],
        get_argv: Sequence[str],
        timeout: float = 30.0,
        total_weight: int = 100,
        tolerance: float = 0.01,
        cwd: Path | None = None,
        secrets: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.set_argv = tuple(set_argv)
        self._secrets = dict(secrets or {})
        self.redactor = redactor if redactor is not None else Redactor()
        self.get_argv = tuple(get_argv)
        self.timeout = timeout
        self.total_weight = total_weight
        self.tolerance = tolerance
        self.cwd = cwd
        self.writes = 0

    def _environment(self, wanted: float | None) -> dict[str, str] | None:
        """The commands' environment: ours plus the ``secrets_env`` values (each
        learnt by the redactor first; a 1-3 character one is refused)."""
        if not self._secrets:
            return None
        for name, value in self._secrets.items():
            try:
                self.redactor.add(value)
            except ShortSecretError:
                raise TrafficError(
                    f"environment variable {name} (secrets_env) holds {len(value)} "
                    "character(s), too short to be masked in output: not given to the command",
                    wanted=wanted,
                ) from None
        return {**os.environ, **self._secrets}

    def __repr__(self) -> str:
        return f"CommandBackend(set={self.set_argv[0]!r}, get={self.get_argv[0]!r})"

    def _run(self, argv: Sequence[str], what: str, wanted: float | None) -> str:
        name = Path(argv[0]).name
        env = self._environment(wanted)
        try:
            proc = subprocess.Popen(  # noqa: S603 - argv from the plan, never a shell
                list(argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=self.cwd,
                start_new_session=True,  # so a timeout kills the children too
            )
        except OSError as exc:
            raise TrafficError(
                f"{what} command {name!r} could not start: {self.redactor.redact(str(exc))}",
                wanted=wanted,
            ) from None
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise TrafficError(
                f"{what} command {name!r} did not finish within {self.timeout:g}s (killed)",
                wanted=wanted,
            ) from None
        if proc.returncode != 0:
            raise TrafficError(
                f"{what} command {name!r} exited with {proc.returncode}: "
                f"{_tail(self.redactor.redact(stderr))}",
                wanted=wanted,
            )
        return stdout

    def _read(self, wanted: float | None) -> float:
        stdout = self._run(self.get_argv, "get", wanted)
        try:
            return parse_share(stdout)
        except ValueError:
            pass
        try:  # the message quotes the output: build it from the redacted output
            return parse_share(self.redactor.redact(stdout))
        except ValueError as exc:
            raise TrafficError(
                f"get command {Path(self.get_argv[0]).name!r} {exc}", wanted=wanted
            ) from None

    def get_split(self) -> Split:
        return Split(canary=self._read(None), detail=f"command {Path(self.get_argv[0]).name}")

    def set_split(self, canary_percent: float) -> Split:
        """Read; set unless already there; read back and verify within ``tolerance``."""
        check_share(canary_percent)
        detail = f"command {Path(self.get_argv[0]).name}"
        current = self._read(canary_percent)
        if abs(current - canary_percent) <= self.tolerance:
            return Split(canary=current, detail=detail)
        values = placeholder_values(canary_percent, self.total_weight)
        argv = [_format_arg(arg, values) for arg in self.set_argv]
        try:
            self._run(argv, "set", canary_percent)
        except TrafficError as exc:
            exc.actual = self._read_or_none()
            raise
        self.writes += 1
        actual = self._read(canary_percent)
        if abs(actual - canary_percent) > self.tolerance:
            raise TrafficError(
                f"set command {Path(argv[0]).name!r} succeeded but get reads {actual:g}% "
                f"(wanted {canary_percent:g}% ± {self.tolerance:g})",
                wanted=canary_percent,
                actual=actual,
            )
        return Split(canary=actual, detail=detail)

    def _read_or_none(self) -> float | None:
        try:
            return self._read(None)
        except TrafficError:
            return None


def _tail(stderr: str, limit: int = 400) -> str:
    text = " | ".join(line for line in stderr.strip().splitlines() if line.strip())
    if not text:
        return "(no stderr)"
    return text if len(text) <= limit else "..." + text[-limit:]


def _argv(opts: Options, key: str) -> list[Any]:
    if opts.raw(key) is None:
        raise ConfigError("missing required option (a list of strings: argv, no shell)", key=key)
    if isinstance(opts.raw(key), str):
        raise ConfigError(
            "expected a list of strings (argv), not one string: no shell is used", key=key
        )
    return opts.items(key)


def create(
    options: Mapping[str, Any], context: PluginContext, *, redactor: Redactor | None = None
) -> CommandBackend:
    """Build the backend from the plan's ``[traffic]`` table; templates checked here."""
    redactor = redactor if redactor is not None else context.redactor
    opts = Options(options)
    set_argv = _check_template(_argv(opts, "set"), "set", PLACEHOLDERS)
    get_argv = _check_template(_argv(opts, "get"), "get", ())
    raw_timeout = opts.raw("timeout")
    try:
        timeout = 30.0 if raw_timeout is None else parse_duration(raw_timeout).total_seconds()
    except ValueError as exc:
        raise ConfigError(str(exc), key="timeout") from None
    if timeout <= 0:
        raise ConfigError("must be more than zero", key="timeout")
    total = opts.integer("total_weight", 100)
    assert total is not None
    if total < 1:
        raise ConfigError(f"must be at least 1, got {total}", key="total_weight")
    tolerance = opts.number("tolerance", 0.01)
    assert tolerance is not None
    if tolerance < 0:
        raise ConfigError(f"must not be negative, got {tolerance}", key="tolerance")
    cwd = opts.text("cwd")
    secrets = {}
    for index, name in enumerate(opts.items("secrets_env") if opts.raw("secrets_env") else []):
        if not isinstance(name, str) or not name:
            raise ConfigError(
                "expected the NAME of an environment variable", key=f"secrets_env[{index}]"
            )
        if name in context.env:
            secrets[name] = context.env[name]
    opts.done()
    return CommandBackend(
        set_argv=set_argv,
        get_argv=get_argv,
        timeout=timeout,
        total_weight=total,
        tolerance=tolerance,
        cwd=context.base_dir if cwd is None else context.base_dir / cwd,
        secrets=secrets,
        redactor=redactor,
    )
