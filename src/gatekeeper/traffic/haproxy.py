"""``haproxy``: server weights through HAProxy's runtime API (a unix socket or TCP).

The canary share becomes two integer weights summing to ``total_weight`` (at most
256, HAProxy's range), so the share really applied is ``canary / total``; the
split reports that actual share. The weight that grows is written before the one
that shrinks: lowering first leaves a moment where one server has (almost) all the
weight, and with ``balance roundrobin`` the next few hundred requests land on it.

A reload resets runtime weights to the configuration's values. ``get_split`` says
so (``reset`` in the detail when the live weights equal the configured initial
weights but differ from what this backend last set); ``set_split`` of the share
already asked for re-applies it whenever the live weights differ, and
``reconcile`` does the same on demand.
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._model import Split
from .._options import Options
from .._protocols import PluginContext
from .._redact import shown
from ..exceptions import ConfigError, TrafficError
from . import check_share

__all__ = ["HAProxyBackend", "Weights", "create", "share_or_none", "weights_for"]

HAPROXY_MAX_WEIGHT = 256
_WEIGHT_REPLY = re.compile(r"^\s*(\d+)\s+\(initial\s+(\d+)\)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


@attrs.frozen(kw_only=True)
class Weights:
    """Integer weights of the two servers; the share is derived from them."""

    baseline: int
    canary: int

    @property
    def canary_percent(self) -> float:
        total = self.baseline + self.canary
        if total <= 0:
            raise ValueError("both weights are 0: no server gets traffic")
        return 100.0 * self.canary / total


def weights_for(canary_percent: float, total: int) -> Weights:
    """The nearest integer weights for a share, summing to ``total``.

    A share strictly between 0 and 100 that would round to an all-or-nothing split
    is refused (``ValueError``): silently sending 0 % (or 100 %) when a small share
    was asked for would make the phase judge something else than the plan says.
    """
    if not (0.0 <= canary_percent <= 100.0) or math.isnan(canary_percent):
        raise ValueError(f"canary share must be within [0, 100], got {canary_percent}")
    canary = math.floor(canary_percent / 100.0 * total + 0.5)
    if 0.0 < canary_percent < 100.0 and canary in (0, total):
        step = 100.0 / total
        raise ValueError(
            f"{canary_percent:g}% cannot be expressed with a total weight of {total} "
            f"(smallest step {step:.3g}%)"
        )
    return Weights(baseline=total - canary, canary=canary)


def share_or_none(weights: Weights) -> float | None:
    """The canary share of ``weights``, or ``None`` when both are 0."""
    return weights.canary_percent if weights.baseline + weights.canary > 0 else None


class HAProxyBackend:
    """Drives two servers of one HAProxy backend through the runtime API.

    One command per connection (HAProxy's non-interactive mode answers and closes);
    success of ``set weight`` is an empty reply, anything else is the error text.
    """

    def __init__(
        self,
        *,
        backend: str,
        baseline: str = "baseline",
        canary: str = "canary",
        socket_path: Path | None = None,
        address: tuple[str, int] | None = None,
        total_weight: int = HAPROXY_MAX_WEIGHT,
        timeout: float = 5.0,
    ) -> None:
        if (socket_path is None) == (address is None):
            raise ValueError("give exactly one of socket_path and address")
        self.backend = backend
        self.baseline = baseline
        self.canary = canary
        self.socket_path = socket_path
        self.address = address
        self.total_weight = total_weight
        self.timeout = timeout
        self.last_set: Weights | None = None
        self.writes = 0

    def __repr__(self) -> str:
        where = self.socket_path if self.socket_path is not None else self.address
        return f"HAProxyBackend(backend={self.backend!r}, at={str(where)!r})"

    # -- the runtime API -------------------------------------------------------------

    def command(self, line: str) -> str:
        """Send one runtime API command and return the whole reply."""
        family = socket.AF_UNIX if self.socket_path is not None else socket.AF_INET
        target: Any = str(self.socket_path) if self.socket_path is not None else self.address
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(target)
                sock.sendall(line.encode() + b"\n")
                chunks: list[bytes] = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except OSError as exc:
            raise TrafficError(
                f"haproxy runtime API at {target} failed on {line.split(maxsplit=1)[0]!r}: {exc}"
            ) from exc
        return b"".join(chunks).decode(errors="replace")

    def _weight(self, server: str) -> tuple[int, int]:
        reply = self.command(f"get weight {self.backend}/{server}")
        match = _WEIGHT_REPLY.match(reply)
        if match is None:
            raise TrafficError(
                f"haproxy: get weight {self.backend}/{server}: unexpected reply "
                f"{shown(reply.strip())}"
            )
        return int(match.group(1)), int(match.group(2))

    def _set_weight(self, server: str, weight: int, wanted: float) -> None:
        reply = self.command(f"set weight {self.backend}/{server} {weight}")
        self.writes += 1
        if reply.strip():
            actual = self._actual_or_none()
            raise TrafficError(
                f"haproxy refused set weight {self.backend}/{server} {weight}: {reply.strip()}",
                wanted=wanted,
                actual=actual,
            )

    def _actual_or_none(self) -> float | None:
        try:
            return share_or_none(self.live_weights()[0])
        except TrafficError:
            return None

    def live_weights(self) -> tuple[Weights, Weights]:
        """The current runtime weights and the configuration's initial ones."""
        base_now, base_initial = self._weight(self.baseline)
        can_now, can_initial = self._weight(self.canary)
        return (
            Weights(baseline=base_now, canary=can_now),
            Weights(baseline=base_initial, canary=can_initial),
        )

    def _detail(self, live: Weights, note: str = "") -> str:
        text = (
            f"haproxy {self.backend}/{self.baseline}={live.baseline} "
            f"{self.backend}/{self.canary}={live.canary}"
        )
        return f"{text} ({note})" if note else text

    # -- the backend contract --------------------------------------------------------

    def reset_detected(self, live: Weights, initial: Weights) -> bool:
        """Whether a reload put the configured weights back over the ones we set."""
        return self.last_set is not None and live != self.last_set and live == initial

    def get_split(self) -> Split:
        """The share the live weights give the canary now."""
        live, initial = self.live_weights()
        try:
            share = live.canary_percent
        except ValueError as exc:
            raise TrafficError(f"haproxy {self.backend}: {exc}", actual=None) from exc
        note = ""
        if self.reset_detected(live, initial):
            note = f"reset to configured weights; last set {self.last_set}"
        return Split(canary=share, detail=self._detail(live, note))

    def set_split(self, canary_percent: float) -> Split:
        """Apply, read back, verify. No write when the live weights already match."""
        try:
            return self._set_split(canary_percent)
        except TrafficError as exc:
            if exc.wanted is None:
                exc.wanted = canary_percent
            raise

    def _set_split(self, canary_percent: float) -> Split:
        check_share(canary_percent)
        try:
            target = weights_for(canary_percent, self.total_weight)
        except ValueError as exc:
            raise TrafficError(f"haproxy: {exc}", wanted=canary_percent) from exc
        live, _ = self.live_weights()
        live_share = share_or_none(live)
        if live_share is not None and abs(live_share - target.canary_percent) < 1e-9:
            # already there (perhaps with other weights for the same share): no write
            self.last_set = live
            return Split(canary=live_share, detail=self._detail(live))
        # the side whose share grows is written first: the moment in between then lies
        # between the old and the new split, never "(almost) everything to one server"
        steps = [(self.canary, target.canary), (self.baseline, target.baseline)]
        if live_share is None or target.canary_percent < live_share:
            steps.reverse()
        for server, weight in steps:
            self._set_weight(server, weight, canary_percent)
        now, _ = self.live_weights()
        if now != target:
            actual = share_or_none(now)
            raise TrafficError(
                f"haproxy {self.backend}: weights read back as {self._detail(now)}, "
                f"expected {target.baseline}/{target.canary} for {canary_percent:g}%",
                wanted=canary_percent,
                actual=actual,
            )
        self.last_set = target
        return Split(canary=target.canary_percent, detail=self._detail(now))

    def reconcile(self, expected: float | None = None) -> Split:
        """Re-apply ``expected`` (default: the share this backend last set) when the
        live weights differ, e.g. after a reload reset them. Returns the live split."""
        if expected is None:
            if self.last_set is None:
                return self.get_split()
            expected = self.last_set.canary_percent
        return self.set_split(expected)


def _parse_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"expected HOST:PORT, got {shown(value)}", key="address")
    return host, int(port)


def _name(opts: Options, key: str, default: str | None) -> str:
    value = opts.required_text(key) if default is None else opts.text(key, default)
    assert value is not None
    if not _NAME.match(value):
        raise ConfigError(f"not a valid haproxy name: {shown(value)}", key=key)
    return value


def create(options: Mapping[str, Any], context: PluginContext) -> HAProxyBackend:
    """Build the backend from the plan's ``[traffic]`` table (no I/O)."""
    opts = Options(options)
    sock = opts.text("socket")
    address = opts.text("address")
    if (sock is None) == (address is None):
        raise ConfigError("give exactly one of 'socket' and 'address'", key="socket")
    backend = _name(opts, "backend", None)
    baseline = _name(opts, "baseline", "baseline")
    canary = _name(opts, "canary", "canary")
    if baseline == canary:
        raise ConfigError("baseline and canary must be different servers", key="canary")
    total = opts.integer("total_weight", HAPROXY_MAX_WEIGHT)
    assert total is not None
    if not 1 <= total <= HAPROXY_MAX_WEIGHT:
        raise ConfigError(
            f"must be within 1..{HAPROXY_MAX_WEIGHT}, got {total}", key="total_weight"
        )
    timeout = opts.seconds("timeout", 5.0)
    opts.done()
    socket_path = None if sock is None else context.base_dir / Path(sock)
    return HAProxyBackend(
        backend=backend,
        baseline=baseline,
        canary=canary,
        socket_path=socket_path,
        address=None if address is None else _parse_address(address),
        total_weight=total,
        timeout=timeout,
    )
