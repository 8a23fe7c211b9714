"""The one exception tree of gatekeeper.

Verdicts are values, not exceptions: a failing gate returns a FAIL verdict. These
exceptions are for things that stop the tool itself: a bad plan, a source or a
balancer that cannot be reached, a journal that cannot be written.
"""

from __future__ import annotations

__all__ = [
    "ApprovalError",
    "ConfigError",
    "GatekeeperError",
    "PlanError",
    "SourceError",
    "StoreError",
    "TrafficError",
]


class GatekeeperError(Exception):
    """Root of every error gatekeeper raises on purpose."""


class PlanError(GatekeeperError):
    """A plan (or a recording) is invalid.

    ``str()`` gives one line a person can act on:
    ``gates.toml:27: phases[1].gate[2]: unknown metric 'eror_rate' (known: ...)``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def with_location(
        self, *, file: str | None = None, key: str | None = None, line: int | None = None
    ) -> PlanError:
        """A copy with the location filled in where it was missing."""
        return PlanError(
            self.message,
            file=self.file if self.file is not None else file,
            key=self.key if self.key is not None else key,
            line=self.line if self.line is not None else line,
        )


class ConfigError(GatekeeperError):
    """A plugin's configuration is invalid; ``key`` is relative to the plugin's table.

    Raised by source and backend factories; the plan loader turns it into a
    :class:`PlanError` that names the file and the line.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        self.message = message
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class SourceError(GatekeeperError):
    """A metric source could not answer (after its retries).

    The engine turns it into an INCONCLUSIVE verdict; it never becomes a PASS.
    """


class TrafficError(GatekeeperError):
    """A traffic change could not be applied or verified.

    ``wanted`` is the canary share asked for, ``actual`` what the balancer reports
    (``None`` when it could not be read).
    """

    def __init__(
        self, message: str, *, wanted: float | None = None, actual: float | None = None
    ) -> None:
        self.wanted = wanted
        self.actual = actual
        super().__init__(message)


class StoreError(GatekeeperError):
    """The run journal could not be read or written."""


class ApprovalError(GatekeeperError):
    """An approval could not be read (not the same as a 'no-go', which is a value)."""
