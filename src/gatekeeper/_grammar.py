"""The criterion grammar: a small hand-written parser, never ``eval``.

::

    criterion  := metric [ "canary" ] op rhs [ "for" duration ]
                | metric "stable" "within" quantity [ "over" duration ]
    rhs        := quantity
                | ref [ ("*" | "/") number ] [ ("+" | "-") quantity ]
    ref        := "baseline" | "prerun"
    quantity   := number [ "%" | "ms" | "s" ]
    op         := "<" | "<=" | ">" | ">=" | "==" | "!="

``metric canary <= baseline * 1.2`` (with the word ``canary``) is the statistical
``compare`` kind; without it, ``metric >= baseline * 1.058`` is ``relative``.
``for 1m`` (watches only) asks a threshold to fail that long before it counts.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import attrs

from ._limits import shorten
from ._units import QUANTITY_UNITS, parse_duration
from ._vocab import COMPARISONS, Reference

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<arith>[*/+-])
  | (?P<unit>%)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.:]*)
    """,
    re.VERBOSE,
)

MAX_CRITERION = 1000  # characters of one criterion; a real one is under 100
KEYWORDS = frozenset({"baseline", "prerun", "canary", "stable", "within", "over", "for"})


def _cut(token: str) -> str:
    """A number token as written, cut short: "1e999", or 41 of its 10,000 digits."""
    return token if len(token) <= 40 else token[:40] + "…"


class GrammarError(ValueError):
    """A criterion that does not parse; ``column`` is 1-based."""

    def __init__(self, message: str, text: str, column: int) -> None:
        self.message = message
        self.text = text
        self.column = column
        super().__init__(f"{message} at column {column} in {shorten(text)}")


@attrs.frozen(kw_only=True)
class Quantity:
    """A number and the unit it was written with ("" for none)."""

    value: float
    unit: str = ""

    @property
    def dimension(self) -> str | None:
        return QUANTITY_UNITS[self.unit][0] if self.unit else None

    @property
    def base(self) -> float:
        """The value in its dimension's base unit (ratio, seconds)."""
        return self.value * QUANTITY_UNITS[self.unit][1] if self.unit else self.value


@attrs.frozen(kw_only=True)
class Parsed:
    """A criterion as written, before its metric's unit is known."""

    text: str
    metric: str
    op: str | None = None
    bound: Quantity | None = None
    reference: Reference | None = None
    factor: float = 1.0
    offset: Quantity | None = None
    canary: bool = False
    stable_within: Quantity | None = None
    window: timedelta | None = None
    persist: timedelta | None = None


@attrs.frozen
class _Token:
    kind: str
    text: str
    column: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise GrammarError(f"unexpected character {text[pos]!a}", text, pos + 1)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), pos + 1))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise GrammarError("unexpected end", self.text, len(self.text) + 1)
        self.pos += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.peek()
        if token is None:
            raise GrammarError(f"expected {what}, got the end", self.text, len(self.text) + 1)
        if token.kind != kind:
            raise GrammarError(
                f"expected {what}, got {shorten(token.text)}", self.text, token.column
            )
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text == word:
            self.pos += 1
            return True
        return False

    def number(self, token: _Token) -> float:
        value = float(token.text)
        if not math.isfinite(value):  # "1e999": an infinite bound would always pass
            raise GrammarError(f"number out of range: {_cut(token.text)}", self.text, token.column)
        return value

    def quantity(self) -> Quantity:
        number = self.expect("number", "a number")
        value = self.number(number)
        token = self.peek()
        if token is not None and token.kind == "unit":
            self.pos += 1
            return Quantity(value=value, unit="%")
        if (
            token is not None
            and token.kind == "name"
            and token.column == number.column + len(number.text)
        ):
            if token.text not in QUANTITY_UNITS:
                known = ", ".join(QUANTITY_UNITS)
                raise GrammarError(
                    f"unknown unit {shorten(token.text)} (known: {known})", self.text, token.column
                )
            self.pos += 1
            return Quantity(value=value, unit=token.text)
        if token is not None and token.kind == "name" and token.text in QUANTITY_UNITS:
            # "200 ms": say how to write it rather than a bare "unexpected 'ms'".
            raise GrammarError(
                f"write the unit next to the number: '{_cut(number.text)}{token.text}'",
                self.text,
                token.column,
            )
        return Quantity(value=value)

    def parse(self) -> Parsed:
        metric = self.expect("name", "a metric name")
        if metric.text in KEYWORDS:
            raise GrammarError(
                f"expected a metric name, got the keyword {metric.text!r}", self.text, 1
            )
        if self.keyword("stable"):
            return self.stable(metric.text)
        canary = self.keyword("canary")
        op_token = self.expect("op", "a comparison (<, <=, >, >=, ==, !=)")
        op = op_token.text
        assert op in COMPARISONS
        token = self.peek()
        if token is not None and token.kind == "name" and token.text in ("baseline", "prerun"):
            return self.relative(metric.text, op, canary)
        bound = self.quantity()
        persist = self.persistence(canary)
        self.end()
        return Parsed(
            text=self.text, metric=metric.text, op=op, bound=bound, canary=canary, persist=persist
        )

    def relative(self, metric: str, op: str, canary: bool) -> Parsed:
        ref_token = self.take()
        reference = Reference(ref_token.text)
        if canary and reference is not Reference.BASELINE:
            raise GrammarError(
                "'canary' compares against the concurrent 'baseline' only",
                self.text,
                ref_token.column,
            )
        factor = 1.0
        offset: Quantity | None = None
        token = self.peek()
        if token is not None and token.kind == "arith" and token.text in "*/":
            self.pos += 1
            number = self.expect("number", "a factor")
            value = self.number(number)
            if token.text == "/":
                if value == 0:
                    raise GrammarError("division by zero", self.text, number.column)
                value = 1.0 / value
            factor = value
            token = self.peek()
        if token is not None and token.kind == "arith" and token.text in "+-":
            self.pos += 1
            quantity = self.quantity()
            offset = Quantity(
                value=-quantity.value if token.text == "-" else quantity.value,
                unit=quantity.unit,
            )
        persist = self.persistence(canary)
        self.end()
        return Parsed(
            text=self.text,
            metric=metric,
            op=op,
            reference=reference,
            factor=factor,
            offset=offset,
            canary=canary,
            persist=persist,
        )

    def stable(self, metric: str) -> Parsed:
        if not self.keyword("within"):
            token = self.peek()
            raise GrammarError(
                "expected 'within' after 'stable' (e.g. 'latency_p99 stable within 10%')",
                self.text,
                token.column if token else len(self.text) + 1,
            )
        start = self.peek()
        tolerance = self.quantity()
        if tolerance.unit != "%":
            raise GrammarError(
                "a stability tolerance is a percentage (e.g. 'within 10%')",
                self.text,
                start.column if start else len(self.text) + 1,  # the tolerance, not the end
            )
        window = self.rest_duration() if self.keyword("over") else None
        self.end()
        return Parsed(text=self.text, metric=metric, stable_within=tolerance, window=window)

    def persistence(self, canary: bool) -> timedelta | None:
        """``for DURATION``: how long a threshold must fail before it counts."""
        token = self.peek()
        if not self.keyword("for"):
            return None
        assert token is not None
        if canary:
            raise GrammarError(
                "a statistical criterion needs no 'for': its judge is valid at every look",
                self.text,
                token.column,
            )
        persist = self.rest_duration()
        if persist <= timedelta(0):
            raise GrammarError("'for' needs a duration longer than 0s", self.text, token.column)
        return persist

    def rest_duration(self) -> timedelta:
        """The rest of the text as a duration ("10m", "1h30m")."""
        start = self.peek()
        column = start.column if start else len(self.text) + 1
        parts = []
        while self.peek() is not None:
            parts.append(self.take().text)
        if not parts:
            raise GrammarError("expected a duration (e.g. '1m')", self.text, column)
        try:
            return parse_duration("".join(parts))
        except ValueError as exc:
            raise GrammarError(str(exc), self.text, column) from None

    def end(self) -> None:
        token = self.peek()
        if token is not None:
            raise GrammarError(f"unexpected {shorten(token.text)}", self.text, token.column)


def parse_criterion(text: str) -> Parsed:
    """Parse one criterion; a :class:`GrammarError` says where it went wrong."""
    if not isinstance(text, str) or not text.strip():
        raise GrammarError("empty criterion", shorten(text), 1)
    if len(text) > MAX_CRITERION:
        raise GrammarError(
            f"a criterion is at most {MAX_CRITERION} characters, got {len(text)}",
            shorten(text),
            MAX_CRITERION + 1,
        )
    return _Parser(text.strip()).parse()
