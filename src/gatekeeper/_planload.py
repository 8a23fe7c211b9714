"""What every part of the plan loader shares: located errors and checked readers.

:class:`LoaderBase` turns a key path into a :class:`PlanError` with the file and the
line, and reads the small things every section has (tables, strings, names,
durations, choices), each against the limits of :mod:`gatekeeper._limits`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from ._limits import MAX_DURATION, bad_name, bad_text, one_line, shorten
from ._locate import PathPart, format_path, locate
from ._units import parse_duration
from .exceptions import PlanError

__all__ = ["LoaderBase", "kind"]

E = TypeVar("E", bound=enum.Enum)


class LoaderBase:
    """The loader's state (the raw data, its file and text) and its checked readers."""

    def __init__(self, data: Mapping[str, Any], *, path: str | None, text: str | None) -> None:
        self.data = data
        self.path = path
        self.text = text

    # -- errors ---------------------------------------------------------------------

    def error(self, key: Sequence[PathPart], message: str) -> PlanError:
        """A located error: the line of ``key`` (or of its closest enclosing table);
        line 1 for what the file lacks altogether (no ``[[phases]]`` at all)."""
        line = None
        if self.text is not None:
            line = locate(self.text, key) or 1
        return PlanError(one_line(message), file=self.path, key=format_path(key) or None, line=line)

    # -- readers --------------------------------------------------------------------

    def table(self, value: Any, key: Sequence[PathPart]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {kind(value)}")
        return value

    def unknown_keys(
        self, table: Mapping[str, Any], allowed: Sequence[str], key: Sequence[PathPart]
    ) -> None:
        for name in table:
            if name not in allowed:
                raise self.error((*key, name), f"unknown key (known: {', '.join(sorted(allowed))})")

    def string(self, table: Mapping[str, Any], name: str, key: Sequence[PathPart]) -> str:
        value = table.get(name)
        if not isinstance(value, str) or not value.strip():
            got = "nothing" if value is None else kind(value)
            raise self.error((*key, name), f"expected a non-empty string, got {got}")
        return value

    def name(self, value: Any, key: Sequence[PathPart], *, pattern: str = "name") -> str:
        """A phase, metric, source or arg name: a printable identifier."""
        problem = bad_name(value, pattern=pattern)
        if problem is not None:
            raise self.error(key, problem)
        assert isinstance(value, str)
        return value

    def names(
        self, table: Mapping[str, Any], key: Sequence[PathPart], *, pattern: str = "name"
    ) -> None:
        """Every key of ``table`` is a valid name."""
        for name in table:
            self.name(name, (*key, name), pattern=pattern)

    def free_text(
        self, value: Any, key: Sequence[PathPart], *, multiline: bool = False, limit: int = 4096
    ) -> str:
        """Text shown to people (a description, a prompt): a string without control
        characters that could rewrite the console."""
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {kind(value)}")
        problem = bad_text(value, multiline=multiline, limit=limit)
        if problem is not None:
            raise self.error(key, problem)
        return value

    def duration(
        self, value: Any, key: Sequence[PathPart], *, limit: timedelta = MAX_DURATION
    ) -> timedelta:
        try:
            return parse_duration(value, limit=limit)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def choice(self, value: Any, options: type[E], key: Sequence[PathPart]) -> E:
        values = [member.value for member in options]
        if not isinstance(value, str) or value not in values:
            raise self.error(key, f"expected one of {', '.join(values)}, got {shorten(value)}")
        return options(value)


def kind(value: Any) -> str:
    """What a value is, for "expected X, got Y" (a long value cut short)."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({shorten(value)})"
    if isinstance(value, int | float):
        return f"a number ({shorten(value)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__
