"""Plan args inside regex matchers match themselves, never act as a pattern.

Prometheus and Alertmanager use Go's RE2. :func:`escape_regex` escapes what
``regexp.QuoteMeta`` escapes (``\\.+*?()|[]{}^$``), so the result means the
literal text to RE2 and to Python's ``re`` alike; PromQL string escaping is applied
on top of it by the caller.
"""

from __future__ import annotations

import re

__all__ = ["escape_regex", "regex_matcher_before"]

_META = re.compile(r"[\\.+*?()|\[\]{}^$]")
_MATCHER_OP = re.compile(r"[=!]~\s*\Z")


def escape_regex(value: str) -> str:
    """``value`` as an RE2 (and Python ``re``) pattern that matches exactly it."""
    return _META.sub(lambda m: "\\" + m.group(0), value)


def regex_matcher_before(text: str) -> bool:
    """Whether ``text`` (what precedes a string's opening quote) ends with a regex
    matcher operator, ``=~`` or ``!~``: the string is then a pattern."""
    return _MATCHER_OP.search(text) is not None
