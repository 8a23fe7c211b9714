"""``{{name}}`` templates for metric queries, with per-source escaping of values."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(template: str) -> list[str]:
    """The names a template refers to, in order of appearance."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template)]


def render(
    template: str,
    values: Mapping[str, str],
    *,
    escape: Callable[[str], str] | None = None,
) -> str:
    """Replace every ``{{name}}``; an unknown name is a ``KeyError`` naming it.

    The text is scanned once, so a substituted value that itself looks like
    ``{{x}}`` is never expanded again.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join(sorted(values))
            raise KeyError(f"unknown placeholder {{{{{name}}}}} (known: {known})")
        value = values[name]
        return escape(value) if escape is not None else value

    return _PLACEHOLDER.sub(substitute, template)
