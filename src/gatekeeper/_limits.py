"""The limits every plan and recording is checked against when it loads.

Each limit is far above anything a person writes and far below what would crash or
stall the tool (an ``OverflowError`` in date arithmetic, a ``RecursionError`` in the
TOML parser, a rehearsal that takes hours, a ``MemoryError``). A value past one is a
:class:`~gatekeeper.exceptions.PlanError` that names the limit; ``docs/plan-file.md``
lists them all.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import stat
import unicodedata
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from .exceptions import PlanError

__all__ = [
    "ARG_PATTERN",
    "MAX_CHECKPOINTS",
    "MAX_CRITERIA",
    "MAX_DEPTH",
    "MAX_DURATION",
    "MAX_ECHO",
    "MAX_ITEMS",
    "MAX_JUDGEMENTS",
    "MAX_NAME",
    "MAX_PLAN_BYTES",
    "MAX_PLAN_DURATION",
    "MAX_RECORDING_BYTES",
    "MAX_RECORDING_ROWS",
    "MAX_TEXT",
    "MAX_TOLERANCE",
    "NAME_PATTERN",
    "bad_name",
    "bad_text",
    "decode_utf8",
    "deepest",
    "one_line",
    "read_bounded",
    "shorten",
]

MAX_PLAN_BYTES = 4 * 1024 * 1024  # a plan file
MAX_RECORDING_BYTES = 256 * 1024 * 1024  # a CSV recording
MAX_RECORDING_ROWS = 1_000_000  # data rows of one recording (4 s and 150 MB to read)
MAX_DEPTH = 32  # arrays and tables nested in one another
MAX_ITEMS = 10_000  # entries of any one array or table
MAX_CHECKPOINTS = 10_000  # checkpoints of a whole plan (series and steps expanded)
MAX_CRITERIA = 100  # criteria of one gate
MAX_JUDGEMENTS = 100_000  # checkpoints x criteria, summed over the phases: a rehearsal's work
MAX_DURATION = timedelta(days=400)  # any one duration, and a phase from start to end
MAX_PLAN_DURATION = timedelta(days=4000)  # all phases one after the other; a recording's 'at'
MAX_TOLERANCE = 5.0  # a traffic backend's read-back tolerance, in percentage points
MAX_NAME = 64  # characters of a phase, metric, source or arg name
MAX_TEXT = 4096  # characters of a plan name, description or approval prompt
MAX_ECHO = 80  # characters of a value quoted back in an error message

# Names (phases, metrics, sources, args) are printable ASCII identifiers: they go into
# test ids, query placeholders, console lines and journal keys.
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.:+-]*"
_NAME = re.compile(NAME_PATTERN)
# An arg is referred to as {{name}}: the placeholder grammar's identifier.
ARG_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
_ARG = re.compile(ARG_PATTERN)
# Bidirectional overrides reorder what a terminal shows ("Trojan Source").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = 2 * MAX_ECHO


def shorten(value: Any, limit: int = MAX_ECHO) -> str:
    """``repr`` of a value for an error message, cut to ``limit`` characters + "…".

    ``repr`` escapes newlines and control characters, so the message stays one line;
    containers show their first few items and levels only (``reprlib``), so a huge or
    deeply nested value is never rendered whole.
    """
    if isinstance(value, int) and value.bit_length() > 256:
        # repr() of an int over 4,300 digits raises ValueError; nobody reads 78 digits.
        digits = int(abs(value).bit_length() * math.log10(2)) + 1
        return f"an integer of about {digits} digits"
    try:
        text = _REPR.repr(value)
    except ValueError:  # a huge int inside a container
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(message: str, limit: int = 1000) -> str:
    """A message as one line: control characters escaped, cut at ``limit``."""
    out = "".join(ch if ch.isprintable() and ch not in _BIDI else ascii(ch)[1:-1] for ch in message)
    return out if len(out) <= limit else out[: limit - 1] + "…"


def bad_name(value: Any, *, pattern: str = "name") -> str | None:
    """Why ``value`` is not a valid name, or ``None`` when it is one.

    ``pattern`` is ``"name"`` (:data:`NAME_PATTERN`) or ``"arg"`` (a placeholder name).
    """
    if not isinstance(value, str) or not value:
        return "a name must be a non-empty string"
    regex, shown = (_ARG, ARG_PATTERN) if pattern == "arg" else (_NAME, NAME_PATTERN)
    if len(value) > MAX_NAME:
        return f"a name is at most {MAX_NAME} characters, got {len(value)}"
    if regex.fullmatch(value) is None:
        return f"a name must match {shown} (letters, digits, _ . : + -), got {shorten(value)}"
    return None


def bad_text(value: str, *, limit: int = MAX_TEXT, multiline: bool = False) -> str | None:
    """Why free text (a description, a prompt) cannot be shown, or ``None``.

    Control characters (an ANSI escape, a carriage return) and bidirectional
    overrides would rewrite what the console shows; newlines and tabs are allowed in
    ``multiline`` text only.
    """
    if len(value) > limit:
        return f"at most {limit} characters, got {len(value)}"
    allowed = "\n\t" if multiline else ""
    for index, ch in enumerate(value):
        if ch in allowed:
            continue
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs"):
            return f"control character {ch!a} at position {index + 1} is not allowed"
    return None


def deepest(data: Any, limit: int = MAX_DEPTH) -> tuple[str, tuple[str | int, ...]] | None:
    """The first problem of a parsed plan's shape, and where: nesting past ``limit``,
    an array or table past :data:`MAX_ITEMS`, a number that is NaN or infinite, an
    integer past 64 bits, or a key that is not a string (a mapping from Python).

    Iterative, so a 5,000-deep (or self-referencing) mapping cannot exhaust the stack.
    """
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(data, (), 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"numbers must be finite, got {value!r}", path
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            # TOML's integers are 64-bit; tomllib reads any size, and str() of one over
            # 4,300 digits raises ValueError wherever it is printed.
            return f"integers are 64-bit, got {shorten(value)}", path
        if not isinstance(value, Mapping | list | tuple):
            continue
        if depth > limit:
            return f"nested deeper than {limit} arrays and tables (the limit)", path
        if len(value) > MAX_ITEMS:
            return (
                f"{len(value)} entries is too many (at most {MAX_ITEMS} in one array or table)",
                path,
            )
        children: Iterator[tuple[str | int, Any]]
        if isinstance(value, Mapping):
            odd = [key for key in value if not isinstance(key, str)]
            if odd:  # TOML's keys are; a mapping from Python may hold None or 1.5
                return f"keys must be strings, got {shorten(odd[0])}", path
            children = iter(value.items())
        else:
            children = enumerate(value)
        items = list(children)
        stack.extend((item, (*path, key), depth + 1) for key, item in reversed(items))
    return None


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Devices, pipes and directories are refused before they are opened (``/dev/zero``
    never ends, a FIFO blocks); the read itself stops at ``limit + 1`` bytes, so a
    file that grows meanwhile cannot exhaust memory either.
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise PlanError(f"the {what} is not a regular file", file=str(path))
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise PlanError(f"cannot read the {what}: {exc.strerror or exc}", file=str(path)) from None
    if len(data) > limit:
        raise PlanError(
            f"the {what} is larger than {limit // (1024 * 1024)} MiB (the limit)", file=str(path)
        )
    return data


def decode_utf8(data: bytes, *, file: str, what: str) -> str:
    """UTF-8 text (a byte order mark dropped); the first bad byte is located."""
    # An editor's or spreadsheet's byte order mark is not content.
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return str(memoryview(data)[bom:], "utf-8")  # no copy of a large file
    except UnicodeDecodeError as exc:
        start = exc.start + bom
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise PlanError(
            f"the {what} is not UTF-8 text: byte 0x{data[start]:02x} at column {column} "
            f"(byte offset {start})",
            file=file,
            line=line,
        ) from None
