"""Durations ("15m", "4h30m", "90") and quantities ("0.5%", "200ms") as plans write them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta

from ._limits import MAX_DURATION, shorten

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# "1d2h3m4s5ms" is 11 characters; a few hundred is room for any spelling of a sane value.
_MAX_DURATION_TEXT = 256


def parse_duration(text: str | int | float, *, limit: timedelta = MAX_DURATION) -> timedelta:
    """``"15m"`` → 15 minutes; ``"4h30m"``, ``"1d"``, ``"90"`` (seconds) and numbers too.

    Raises ``ValueError`` with a message that shows the accepted forms, for anything
    else too (an array, a table, a boolean), and for a duration over ``limit``
    (400 days unless told): past it, date arithmetic overflows.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"expected a duration like '15m', got {_kind(text)}")
    if isinstance(text, int | float):
        if abs(text) > 1e300:  # float() of a huge int overflows
            raise ValueError(
                f"a duration is at most {format_duration(limit)} (the limit), got {shorten(text)}"
            )
        seconds = float(text)
    else:
        raw = text.strip()
        if len(raw) > _MAX_DURATION_TEXT:
            raise ValueError(f"expected a duration like '15m', got {shorten(text)}")
        try:
            seconds = float(raw)
        except ValueError:
            pos = 0
            seconds = 0.0
            if not raw:
                raise ValueError("expected a duration like '15m', got an empty string") from None
            for match in _DURATION_PART.finditer(raw):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(raw):
                raise ValueError(
                    f"expected a duration like '90', '15m', '4h30m' or '1d', got {shorten(text)}"
                ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and not negative, got {shorten(text)}")
    if seconds > limit.total_seconds():
        raise ValueError(
            f"a duration is at most {format_duration(limit)} (the limit), got {shorten(text)}"
        )
    return timedelta(seconds=seconds)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def format_duration(delta: timedelta) -> str:
    """The shortest plan spelling: 15 minutes → ``"15m"``, 4.5 hours → ``"4h30m"``.

    Whole milliseconds at most (rounded, never below 1ms for a positive duration), so
    the text is also a valid Prometheus duration: ``{{window}}`` renders through here.
    """
    if delta < timedelta(0):
        return "-" + format_duration(-delta)
    if not delta:
        return "0s"
    # From the exact integer fields, not total_seconds(): floats drift for long spans.
    total_ms, micros = divmod(
        (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds, 1000
    )
    if micros >= 500:
        total_ms += 1
    # A positive duration must not vanish: "" would parse as nothing at all.
    whole, millis = divmod(max(total_ms, 1), 1000)
    parts = []
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    for value, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")):
        if value:
            parts.append(f"{value}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


# Units a bound may carry, and what they multiply the number by to reach the base unit
# of their dimension (ratio for %, seconds for time).
QUANTITY_UNITS: dict[str, tuple[str, float]] = {
    "%": ("ratio", 0.01),
    "ms": ("time", 0.001),
    "s": ("time", 1.0),
}

# Metric units and how a base value (ratio or seconds) converts into them.
METRIC_UNITS: dict[str, tuple[str | None, float]] = {
    "": (None, 1.0),  # a plain number: % means /100, time means seconds
    "ratio": ("ratio", 1.0),
    "percent": ("ratio", 100.0),
    "s": ("time", 1.0),
    "ms": ("time", 1000.0),
    "count": (None, 1.0),
}


def format_number(value: float) -> str:
    """A number as a person reads it: no float noise, no exponent for everyday values."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.6g}"
    if "e" not in text:
        return text
    if abs(value) < 1e-20 or abs(value) >= 1e15:
        return text  # no everyday value: the exponent is clearer than 20 digits
    if abs(value) >= 1:
        return f"{value:.6f}".rstrip("0").rstrip(".")
    # Six significant digits after the leading zeros: a fixed 6 decimals would show
    # an error rate of 1e-9 as "0".
    decimals = 5 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


def format_quantity(value: float, unit: str) -> str:
    """A base value shown in a display unit: ``0.0042, "%"`` → ``"0.42%"``."""
    if unit == "%":
        return format_number(value * 100) + "%"
    if unit == "ms":
        return format_number(value * 1000) + "ms"
    if unit == "s":
        return format_number(value) + "s"
    return format_number(value)
