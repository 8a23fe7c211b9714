"""Typed reading of a plugin's option table, with errors that name the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

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
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(
                f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {value!r}", key=key
            )
        return value

    def text(self, key: str, default: str | None = None) -> str | None:
        return self._get(key, str, default, False)

    def required_text(self, key: str) -> str:
        value = self._get(key, str, None, True)
        assert value is not None
        return value

    def number(self, key: str, default: float | None = None) -> float | None:
        return self._get(key, float, default, False)

    def integer(self, key: str, default: int | None = None) -> int | None:
        return self._get(key, int, default, False)

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
        from ._units import parse_duration  # noqa: PLC0415 - keep this module dependency-free

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
