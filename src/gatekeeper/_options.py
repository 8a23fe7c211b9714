"""Typed reading of a plugin's option table, with errors that name the key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

from ._limits import MAX_TOLERANCE, shorten
from .exceptions import ConfigError

T = TypeVar("T")

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


class Options:
    """Reads one plugin table; every unread key is reported by :meth:`done`.

    >>> opts = Options({"url": "http://x"}); url = opts.text("url"); opts.done()
    """

    def __init__(self, raw: Mapping[str, Any], *, ignore: tuple[str, ...] = ("type",)) -> None:
        self._raw = dict(raw)
        self._seen: set[str] = set(ignore)

    def _get(self, key: str, kind: type[T], default: T | None, required: bool) -> T | None:
        self._seen.add(key)
        if key not in self._raw:
            if required:
                raise ConfigError("missing required option", key=key)
            return default
        value = self._raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > 1e300:  # float() of a huge int overflows
                raise ConfigError(f"expected a finite number, got {shorten(value)}", key=key)
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(
                f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {shorten(value)}", key=key
            )
        return value

    def text(self, key: str, default: str | None = None) -> str | None:
        return self._get(key, str, default, False)

    def required_text(self, key: str) -> str:
        value = self._get(key, str, None, True)
        assert value is not None
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        """A number option; NaN and ±Inf are refused (a plan may write ``nan``), and so
        is a value outside ``[minimum, maximum]`` where they are given."""
        value = self._get(key, float, default, False)
        if value is None or key not in self._raw:
            return value
        if not math.isfinite(value):
            raise ConfigError(f"expected a finite number, got {value!r}", key=key)
        _check_range(key, value, minimum, maximum)
        return value

    def integer(
        self,
        key: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """A whole-number option, within ``[minimum, maximum]`` where they are given."""
        value = self._get(key, int, default, False)
        if value is None or key not in self._raw:
            return value
        _check_range(key, value, minimum, maximum)
        return value

    def tolerance(self, key: str = "tolerance", default: float = 0.01) -> float:
        """A traffic backend's read-back tolerance in percentage points: finite, at
        least 0 and at most :data:`~gatekeeper._limits.MAX_TOLERANCE` (5). NaN or ±Inf
        would switch the comparison of the balancer's split with the intent off."""
        value = self.number(key, default, minimum=0.0, maximum=MAX_TOLERANCE)
        assert value is not None  # the default is a number
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, default, False)
        return default if value is None else value

    def table(self, key: str) -> dict[str, Any]:
        value = self._get(key, dict, {}, False)
        return dict(value or {})

    def items(self, key: str) -> list[Any]:
        value = self._get(key, list, [], False)
        return list(value or [])

    def seconds(self, key: str, default: float) -> float:
        """A duration option in seconds: a number, or text like ``"500ms"``, ``"30s"``;
        it must be more than zero."""
        from ._units import parse_duration  # noqa: PLC0415 - only duration options need it

        raw = self.raw(key)
        if raw is None:
            return default
        try:
            value = parse_duration(raw).total_seconds()
        except ValueError as exc:
            raise ConfigError(str(exc), key=key) from None
        if value <= 0:
            raise ConfigError("must be more than zero", key=key)
        return value

    def raw(self, key: str) -> Any:
        self._seen.add(key)
        return self._raw.get(key)

    def done(self) -> None:
        """Raise for keys nobody read: a misspelled option must not pass silently."""
        extra = sorted(set(self._raw) - self._seen)
        if extra:
            known = ", ".join(sorted(self._seen - {"type"}))
            raise ConfigError(f"unknown option (known: {known})", key=extra[0])


def _check_range(key: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(f"must be at least {minimum:g}, got {value:g}", key=key)
    if maximum is not None and value > maximum:
        raise ConfigError(f"must be at most {maximum:g}, got {value:g}", key=key)
