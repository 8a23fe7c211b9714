"""PromQL templates: ``{{name}}`` substituted by context, so no value can change a
query's shape (string escaping, regex escaping in matcher patterns, plain tokens
outside strings)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .._redact import shown
from ._regex import escape_regex, regex_matcher_before

__all__ = ["escape_promql_string", "render_promql", "unescape_promql_string"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# What may stand outside a string: a metric/label name, a number, a duration ("5m", "1h30m").
_BARE_SAFE = re.compile(
    r"[A-Za-z_:][A-Za-z0-9_:]*|[0-9]+(?:\.[0-9]+)?(?:ms|[smhdwy])?(?:[0-9]+(?:ms|[smhdwy]))*"
)
_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_promql_string(value: str, quote: str = '"') -> str:
    """Escape ``value`` for the inside of a PromQL string quoted with ``quote``.

    Backslash, the quote itself and every control character are escaped (PromQL
    follows Go's escapes), so the value ends exactly where the string ends.
    Lone surrogates cannot be sent as UTF-8 and raise ``ValueError``.
    """
    out = []
    for char in value:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif char == quote:
            out.append("\\" + quote)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError("a lone surrogate cannot be part of a query")
        else:
            out.append(char)
    return "".join(out)


def unescape_promql_string(text: str, quote: str = '"') -> str:
    """The inverse of :func:`escape_promql_string` for the escapes it emits (tests)."""
    out = []
    i = 0
    simple = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t", quote: quote}
    while i < len(text):
        char = text[i]
        if char == quote:
            raise ValueError(f"unescaped quote at {i}")
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "x":
            out.append(chr(int(text[i + 2 : i + 4], 16)))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{nxt}")
    return "".join(out)


def render_promql(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``{{name}}`` in a PromQL template, escaping by context.

    Inside ``"..."`` or ``'...'`` the value is escaped for that string; inside a
    backtick raw string it may not contain a backtick; outside any string it must
    be a plain identifier, number or duration (``ValueError`` otherwise). A string
    that is the pattern of a regex matcher (``=~`` / ``!~``) gets the value
    regex-escaped first (:func:`escape_regex`), so ``a.b`` matches only ``a.b``.
    Unknown names raise ``KeyError``.
    """
    out: list[str] = []
    quote: str | None = None
    pattern = False  # the current string is a regex matcher's pattern
    i = 0
    while i < len(template):
        match = _PLACEHOLDER.match(template, i)
        if match is not None:
            name = match.group(1)
            if name not in values:
                known = ", ".join(sorted(values))
                raise KeyError(f"unknown placeholder {{{{{name}}}}} (known: {known})")
            value = escape_regex(values[name]) if pattern else values[name]
            if quote in ('"', "'"):
                out.append(escape_promql_string(value, quote))
            elif quote == "`":
                if "`" in value:
                    raise ValueError(f"{{{{{name}}}}}: a backtick cannot go in a raw string")
                out.append(value)
            elif _BARE_SAFE.fullmatch(value):
                out.append(value)
            else:
                raise ValueError(
                    f"{{{{{name}}}}} stands outside a quoted string, so its value must be a "
                    f"plain name, number or duration; got {shown(value)}"
                )
            i = match.end()
            continue
        char = template[i]
        out.append(char)
        if quote is None:
            if char in "\"'`":
                quote = char
                pattern = regex_matcher_before("".join(out[:-1])[-16:])
            elif char == "#":  # a comment runs to the end of the line
                end = template.find("\n", i + 1)
                end = len(template) if end < 0 else end
                out.append(template[i + 1 : end])
                i = end
                continue
        elif char == "\\" and quote != "`" and i + 1 < len(template):
            out.append(template[i + 1])
            i += 2
            continue
        elif char == quote:
            quote = None
        i += 1
    return "".join(out)
