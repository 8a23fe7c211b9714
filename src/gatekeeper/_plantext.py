"""A plan's TOML text before and around ``tomllib``: the checks the parser cannot make.

``tomllib`` recurses once per nesting level (5,000 nested arrays exhaust the stack),
takes quadratic time on long dotted keys (``a.a.a…`` of 1 MiB runs for hours), lets
``int()``'s ValueError for a 5,000-digit number out without a position, and on 3.11
gives the line of an error only inside its message. :func:`parse_toml` turns each of
these into one located :class:`PlanError` before or instead of the traceback.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from typing import Any

from ._limits import MAX_DEPTH, MAX_PLAN_BYTES, one_line
from .exceptions import PlanError

__all__ = ["parse_toml"]

_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column \d+\)$|\s*\(at end of document\)$")
# int() refuses more than 4,300 digits (sys.get_int_max_str_digits).
_LONG_NUMBER = re.compile(r"(?<!\d)\d{4000,}")  # from a run's start only: linear
# A key of more than MAX_DEPTH dotted parts nests past the limit anyway, and tomllib
# takes quadratic time on it: found by a linear regex before parsing.
# Possessive quantifiers and a start only where a bare key can start keep the search
# linear: a 100,000-letter key must not be retried from each of its letters.
_KEY_PART = r"""(?:[A-Za-z0-9_-]++|"[^"\n]*+"|'[^'\n]*+')"""
_DOTTED_RUN = re.compile(
    rf"(?<![A-Za-z0-9_-]){_KEY_PART}(?:[ \t]*+\.[ \t]*+{_KEY_PART}){{{MAX_DEPTH},}}"
)


def parse_toml(text: str, *, path: str | None) -> dict[str, Any]:
    """The TOML document of a plan, or a located PlanError."""
    if len(text) > MAX_PLAN_BYTES:
        raise PlanError(
            f"the plan is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB (the limit)", file=path
        )
    if not text.strip():
        raise PlanError(
            "the plan is empty: it needs at least one [[phases]] table", file=path, line=1
        )
    line = _long_dotted_key(text)
    if line is not None:
        raise PlanError(
            f"a dotted key of more than {MAX_DEPTH} parts nests deeper than {MAX_DEPTH} "
            "tables (the limit)",
            file=path,
            line=line,
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, path) from None
    except RecursionError:
        raise PlanError(
            f"not valid TOML: nested deeper than {MAX_DEPTH} arrays and tables (the limit)",
            file=path,
            line=_deep_line(text, MAX_DEPTH),
        ) from None
    except ValueError as exc:  # a number too long for int()
        long = _LONG_NUMBER.search(text)
        found = text.count("\n", 0, long.start()) + 1 if long else 1
        raise PlanError(
            f"not valid TOML: {one_line(str(exc), 200)}", file=path, line=found
        ) from None


def _toml_error(exc: tomllib.TOMLDecodeError, text: str, path: str | None) -> PlanError:
    # Python 3.11's TOMLDecodeError has no lineno/msg attributes (3.14 adds them):
    # its message ends with "(at line N, column M)".
    message = str(getattr(exc, "msg", exc))
    line = getattr(exc, "lineno", None)
    where = _TOML_WHERE.search(message)
    if where is not None:
        message = message[: where.start()].rstrip()
        if where.group(1) is None:  # "(at end of document)": an unclosed array, ...
            message += " at the end of the file"
            found = len(text.rstrip().split("\n"))
        else:
            found = int(where.group(1))
        line = line if line is not None else found
    return PlanError(f"not valid TOML: {one_line(message)}", file=path, line=line or 1)


def _code(text: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, line) of every character outside strings and comments, and
    of every string's opening quote."""
    quote = ""
    line = 1
    index = 0
    while index < len(text):
        ch = text[index]
        if quote:
            if ch == "\\" and quote[0] == '"':
                index += 1  # the escaped character, a line-ending backslash's newline too
                if text[index : index + 1] == "\n":
                    line += 1
            elif text.startswith(quote, index):
                index += len(quote) - 1
                quote = ""
            elif ch == "\n":
                line += 1
        elif ch == "#":
            end = text.find("\n", index)
            index = len(text) if end == -1 else end
            continue
        elif ch in "\"'":
            yield index, ch, line  # the opening quote is code: a quoted key starts there
            quote = ch * 3 if text.startswith(ch * 3, index) else ch
            index += len(quote) - 1
        else:
            if ch == "\n":
                line += 1
            yield index, ch, line
        index += 1


def _deep_line(text: str, limit: int) -> int:
    """The first line where arrays and inline tables nest deeper than ``limit``;
    line 1 when none is found."""
    depth = 0
    for _, ch, line in _code(text):
        if ch in "[{":
            depth += 1
            if depth > limit:
                return line
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return 1


def _long_dotted_key(text: str) -> int | None:
    """The line of the first dotted key of more than :data:`MAX_DEPTH` parts outside
    strings and comments, or ``None``. Cheap when there is none (one regex search);
    linear otherwise (one walk over the text, however many runs there are)."""
    runs = _DOTTED_RUN.finditer(text)
    first = next(runs, None)
    if first is None:
        return None
    code = _code(text)
    position = -1
    line = 1
    for run in (first, *runs):
        while position < run.start():
            step = next(code, None)
            if step is None:
                return None
            position, _, line = step
        if position == run.start():
            return line
    return None
