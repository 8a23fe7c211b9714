"""Find the line of a key path (``phases[1].gate[2]``) in TOML text.

``tomllib`` gives values without positions, so errors found after parsing are
located by scanning the text: table headers (arrays of tables counted), keys, and
the elements of multi-line arrays. Best effort: the longest prefix of the path
that can be found wins, so an error always points at least at its table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

# No lazy "+?" before "\s*": '[a' + 100,000 spaces + '.b]' would take quadratic time.
_HEADER = re.compile(r"^\[\[?([^\]]*)\]")
_KEY = re.compile(
    r"""^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)

PathPart = str | int

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_MAX_KEY = 80  # characters of one key echoed in a key path


def _split_dotted(name: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", name)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _scan(line: str, quote: str = "") -> tuple[str, str]:
    """The line without its comment, and the quote still open at its end.

    ``quote`` is the string open when the line starts: a multi-line string
    (triple quotes toggle three times, so they leave the string open) carries
    over, and a '#' inside it is text, not a comment.
    """
    out = []
    escaped = False
    for ch in line:
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True  # a basic string's \" does not close it
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out), quote


def format_path(path: Sequence[PathPart]) -> str:
    """``("phases", 1, "gate", 2)`` → ``phases[1].gate[2]``.

    A key that is not a bare TOML key is quoted as TOML quotes it (``metrics."a.b"``),
    control characters escaped, and cut short: a key path is echoed in every error.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + _key_text(part)
    return text


def _key_text(key: str) -> str:
    if _BARE_KEY.fullmatch(key):
        return key if len(key) <= _MAX_KEY else key[: _MAX_KEY - 1] + "…"
    quoted = json.dumps(key[: 4 * _MAX_KEY], ensure_ascii=False)
    quoted = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in quoted)
    return quoted if len(quoted) <= _MAX_KEY else quoted[: _MAX_KEY - 1] + "…"


def locate(text: str, path: Sequence[PathPart]) -> int | None:
    """The 1-based line where ``path`` is written, or the closest enclosing line."""
    # TOML (and tomllib's line numbers) break lines at \n only; splitlines() would also
    # break at U+2028, \x85, \x0c ... inside strings and shift every later line.
    lines = text.split("\n")
    arrays: dict[tuple[PathPart, ...], int] = {}  # array-of-tables path → last index
    current: tuple[PathPart, ...] = ()
    best_line: int | None = None
    best_len = 0
    target = tuple(path)

    def resolve(names: list[str], *, new_array: bool) -> tuple[PathPart, ...]:
        resolved: list[PathPart] = []
        for i, name in enumerate(names):
            resolved.append(name)
            key = tuple(resolved)
            is_last = i == len(names) - 1
            if new_array and is_last:
                arrays[key] = arrays.get(key, -1) + 1
                resolved.append(arrays[key])
            elif key in arrays:
                resolved.append(arrays[key])
        return tuple(resolved)

    def consider(found: tuple[PathPart, ...], lineno: int) -> None:
        nonlocal best_line, best_len
        n = _shared(found, target)
        if n > best_len:
            best_line, best_len = lineno, n

    index = 0
    open_quote = ""
    while index < len(lines):
        lineno = index + 1
        inside = bool(open_quote)  # the line continues a multi-line string
        code, open_quote = _scan(lines[index], open_quote)
        line = code.strip()
        index += 1
        if inside or not line:
            continue
        header = _HEADER.match(line)
        if header and line.startswith("["):
            current = resolve(_split_dotted(header.group(1)), new_array=line.startswith("[["))
            consider(current, lineno)
            continue
        key = _KEY.match(line)
        if not key:
            continue
        full = current + tuple(_split_dotted(key.group(1)))
        consider(full, lineno)
        value = line[key.end() :].strip()
        if value.startswith("[") and len(full) < len(target) and target[: len(full)] == full:
            element = target[len(full)]
            if isinstance(element, int):
                found = _array_element(lines, index - 1, value, element)
                if found is not None:
                    consider((*full, element), found)
    return best_line


def _shared(found: tuple[PathPart, ...], target: tuple[PathPart, ...]) -> int:
    """How much of ``target`` a line with path ``found`` locates: their common start.
    A header ``[sources.a.b]`` is where ``sources.a`` (defined by it) is written, but
    ``[[phases]]`` number 0 is not where number 7 is."""
    n = 0
    while n < min(len(found), len(target)) and found[n] == target[n]:
        n += 1
    if n < min(len(found), len(target)) and isinstance(target[n], int):
        return 0  # another element of the array
    return n


def _array_element(lines: list[str], start: int, value: str, element: int) -> int | None:
    """The line of element ``element`` of an array whose ``[`` opens on line ``start``.

    Elements are counted by their separating commas at the array's own depth, so
    several elements on one line, inline tables and nested arrays spanning lines,
    and brackets or commas inside strings and comments all count right.
    """
    count = -1
    depth = 0
    expecting = False
    quote = ""  # carried across lines: an element may be a multi-line string
    for index in range(start, len(lines)):
        text = value if index == start else _scan(lines[index], quote)[0]
        escaped = False
        for ch in text:
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\" and quote == '"':
                    escaped = True
                elif ch == quote:
                    quote = ""
                continue
            if depth == 1 and expecting and not ch.isspace() and ch not in ",]":
                count += 1
                expecting = False
                if count == element:
                    return index + 1
            if ch in "\"'":
                quote = ch
            elif ch in "[{":
                depth += 1
                if depth == 1:
                    expecting = True
            elif ch in "]}":
                depth -= 1
                if depth == 0:
                    return None
            elif ch == "," and depth == 1:
                expecting = True
    return None
