"""``file``: the split in a small JSON file (simulations, scripts, the engine's crash tests).

The file holds ``{"canary": 12.5}``; a missing file reads as 0 % (nothing was ever
shifted). Writes are atomic (temp file in the same folder, fsync, rename, fsync of
the folder) and serialised between processes by an ``flock`` on ``PATH.lock``, so a
reader never sees half a file and a process killed mid-write leaves the old split.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._model import Split
from .._options import Options
from .._protocols import PluginContext
from ..exceptions import TrafficError
from . import check_share

__all__ = ["FileBackend", "create"]


class FileBackend:
    """Keeps the canary share in a JSON file other processes can read and write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writes = 0

    def __repr__(self) -> str:
        return f"FileBackend(path={str(self.path)!r})"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self) -> float:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0.0
        except (OSError, ValueError) as exc:
            raise TrafficError(f"file {self.path}: unreadable split: {exc}") from exc
        value = data.get("canary") if isinstance(data, dict) else None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0.0 <= value <= 100.0
        ):
            raise TrafficError(f"file {self.path}: 'canary' must be a number in [0, 100]")
        return float(value)

    def _write(self, canary: float) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"canary": canary}, handle)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.writes += 1

    def get_split(self) -> Split:
        return Split(canary=self._read(), detail=f"file {self.path}")

    def set_split(self, canary_percent: float) -> Split:
        """Write the share (unless it is already there), read it back, verify."""
        check_share(canary_percent)
        try:
            with self._locked():
                current = self._read()
                if current != canary_percent:
                    self._write(float(canary_percent))
                now = self._read()
        except OSError as exc:
            raise TrafficError(f"file {self.path}: {exc}", wanted=canary_percent) from exc
        if now != canary_percent:
            raise TrafficError(
                f"file {self.path}: read back {now}% after writing {canary_percent}%",
                wanted=canary_percent,
                actual=now,
            )
        return Split(canary=now, detail=f"file {self.path}")


def create(options: Mapping[str, Any], context: PluginContext) -> FileBackend:
    """Build the backend from ``path`` (relative to the plan's folder). No I/O."""
    opts = Options(options)
    path = context.base_dir / opts.required_text("path")
    opts.done()
    return FileBackend(path)
