"""``alertmanager``: counts active alerts matching label matchers (API v2).

For "critical incidents == 0": the value is the number of alerts whose state is
``active`` (not suppressed by a silence or an inhibition, not unprocessed) that
match every matcher; ``labels`` lists their names so a report says which incidents
blocked the gate. Alertmanager keeps no history, so a query for a moment further in
the past than ``max_age`` (a rehearsal) has no answer rather than today's answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import httpx

from .._model import Measurement, Query
from .._options import Options
from .._protocols import PluginContext
from .._redact import Redactor, shown
from .._template import render
from .._units import format_duration, parse_duration
from ..exceptions import ConfigError
from ._http import (
    HttpSettings,
    HttpSource,
    Sleep,
    http_settings,
    query_budget,
    source_span,
    status_reason,
)
from ._regex import escape_regex

__all__ = ["AlertmanagerSource", "Matcher", "create", "parse_matchers"]

_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*")
_OPS = ("=", "!=", "=~", "!~")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}
METRIC_OPTIONS = ("matchers",)


@attrs.frozen(kw_only=True)
class Matcher:
    """One label matcher: ``name op "value"``; ``value`` may hold ``{{placeholders}}``."""

    name: str
    op: str = attrs.field(validator=attrs.validators.in_(_OPS))
    value: str

    def rendered(self, values: Mapping[str, str]) -> Matcher:
        """The matcher with its placeholders filled in; in a regex matcher (``=~``,
        ``!~``) each value is regex-escaped, so it matches only itself."""
        escape = escape_regex if self.op in ("=~", "!~") else None
        return attrs.evolve(self, value=render(self.value, values, escape=escape))

    def __str__(self) -> str:
        """The Alertmanager filter text, the value quoted and escaped."""
        escaped = "".join(_ESCAPES.get(c, c) for c in self.value)
        return f'{self.name}{self.op}"{escaped}"'

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Client-side check of what the server filtered (regexes are anchored)."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The value of a double-quoted string starting at ``text[start] == '"'``."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(char)
        i += 1
    raise ValueError("unterminated quoted value")


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """``{severity="critical", service=~"api|web"}`` (braces optional) → matchers.

    Values are double-quoted (``\\"``, ``\\\\`` and ``\\n`` escapes) or bare words up
    to the next comma. Raises ``ValueError`` saying where the text is wrong.
    """
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers = []
    i = 0
    while i < len(body):
        if body[i].isspace() or body[i] == ",":
            i += 1
            continue
        head = _NAME.match(body, i)
        if head is None:
            raise ValueError(f'expected name="value" at {body[i : i + 20]!r}')
        i = head.end()
        if i < len(body) and body[i] == '"':
            value, i = _quoted(body, i)
        else:
            end = body.find(",", i)
            end = len(body) if end < 0 else end
            value, i = body[i:end].strip(), end
        matchers.append(Matcher(name=head.group(1), op=head.group(2), value=value))
    return tuple(matchers)


def _option_matchers(raw: Any) -> tuple[Matcher, ...]:
    """``matchers`` as a list of matcher strings or a table of label = value."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        if not all(isinstance(v, str) for v in raw.values()):
            raise ConfigError('expected label = "value" strings', key="matchers")
        return tuple(Matcher(name=str(k), op="=", value=v) for k, v in raw.items())
    if isinstance(raw, list | tuple):
        found: list[Matcher] = []
        for index, item in enumerate(raw):
            if not isinstance(item, str):
                raise ConfigError(f"expected a string, got {shown(item)}", key=f"matchers[{index}]")
            try:
                found.extend(parse_matchers(item))
            except ValueError as exc:
                raise ConfigError(str(exc), key=f"matchers[{index}]") from None
        return tuple(found)
    raise ConfigError("expected a list of matchers or a table of label = value", key="matchers")


def metric_matchers(text: str, options: Mapping[str, Any]) -> tuple[Matcher, ...]:
    """The matchers of a metric: its query text plus its ``matchers`` option."""
    for key in options:
        if key not in METRIC_OPTIONS:
            raise ConfigError(f"unknown option (known: {', '.join(METRIC_OPTIONS)})", key=key)
    try:
        from_text = parse_matchers(text)
    except ValueError as exc:
        raise ConfigError(str(exc), key="query") from None
    return from_text + _option_matchers(options.get("matchers"))


def _own_text(query: Query) -> str:
    """The query text, or "" when the engine passed the metric's name for a metric
    without a ``query`` (its matchers then come from options only)."""
    return "" if query.text == query.metric else query.text


STATES = ("active", "suppressed", "unprocessed")


def _malformed(alerts: list[Mapping[str, Any]]) -> str | None:
    """Why the answer is not a list of Alertmanager v2 alerts, or ``None``: every
    alert needs a ``labels`` object and a ``status.state`` of :data:`STATES`."""
    for index, alert in enumerate(alerts, 1):
        where = f"malformed alert #{index} of {len(alerts)}"
        labels, status = alert.get("labels"), alert.get("status")
        if "status" not in alert:
            return f"{where}: no status"
        if not isinstance(status, Mapping):
            return f"{where}: status is not an object"
        state = status.get("state")
        if "state" not in status:
            return f"{where}: status.state is missing"
        if state not in STATES:
            shown = repr(state)  # redacted, then cut short, with the reason
            return f"{where}: status.state {shown} is not one of {', '.join(STATES)}"
        if not isinstance(labels, Mapping):
            return f"{where}: labels is not an object"
    return None


def _describe(alerts: list[Mapping[str, Any]]) -> tuple[str, ...]:
    names = Counter(str((a.get("labels") or {}).get("alertname", "?")) for a in alerts)
    return tuple(
        name if count == 1 else f"{name} ({count})" for name, count in sorted(names.items())
    )


class AlertmanagerSource(HttpSource):
    """Counts active alerts on one Alertmanager (``GET /api/v2/alerts``).

    Source options: the HTTP ones (``url``, auth, timeouts, retries), ``matchers``
    applied to every metric, ``max_age`` (default 5m). Metric: ``query`` holds
    matchers (``'severity="critical", service="{{service}}"'``), and/or the
    ``matchers`` option (a list of matcher strings or a table of equalities).
    """

    kind = "alertmanager"

    def __init__(
        self,
        name: str,
        settings: HttpSettings,
        *,
        env: Mapping[str, str],
        matchers: tuple[Matcher, ...] = (),
        max_age: timedelta = timedelta(minutes=5),
        client: httpx.AsyncClient | None = None,
        sleep: Sleep | None = None,
        tracer_provider: Any = None,
        redactor: Redactor | None = None,
    ) -> None:
        super().__init__(
            name,
            settings,
            env=env,
            client=client,
            sleep=sleep,
            tracer_provider=tracer_provider,
            redactor=redactor,
        )
        self.matchers = matchers
        self.max_age = max_age

    def validate_metric(self, text: str, options: Mapping[str, Any]) -> None:
        """Check a metric's query text and options (the plan loader may call this)."""
        metric_matchers(text, options)

    async def query(self, query: Query) -> Measurement:
        """How many matching alerts are active now (``query.at`` must be recent)."""

        def measurement(**fields: Any) -> Measurement:
            return Measurement(
                metric=query.metric,
                at=query.at,
                variant=query.variant,
                source=self.name,
                **self.clean(fields),
            )

        try:
            matchers = tuple(
                m.rendered(query.placeholders())
                for m in self.matchers + metric_matchers(_own_text(query), query.options)
            )
        except (ConfigError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
            return measurement(value=None, query=query.text, reason=f"bad query: {message}")
        shown = ", ".join(str(m) for m in matchers)
        at = query.at if query.at.tzinfo is not None else query.at.replace(tzinfo=UTC)
        age = datetime.now(UTC) - at
        if age > self.max_age:
            return measurement(
                value=None,
                query=shown,
                reason=(
                    f"Alertmanager keeps no history: cannot count alerts at a moment "
                    f"{format_duration(age)} ago (max_age {format_duration(self.max_age)})"
                ),
            )
        params: list[tuple[str, str]] = [
            ("active", "true"),
            ("silenced", "false"),
            ("inhibited", "false"),
            ("unprocessed", "false"),
        ]
        params += [("filter", str(m)) for m in matchers]
        with source_span(self.kind, self.name, query, self._tracer_provider) as span:
            outcome = await self._http.request(
                "GET",
                self.settings.url + "/api/v2/alerts",
                params=params,
                budget=query_budget(query, self.settings.retry),
                span=span,
            )
            span.set_attribute("gatekeeper.retries", outcome.retries)
            retries = outcome.retries
            suffix = f" ({retries} retr{'y' if retries == 1 else 'ies'})" if retries else ""
            if outcome.response is None:
                return measurement(
                    value=None,
                    query=shown,
                    retries=retries,
                    reason=outcome.failure(),
                )
            if not outcome.response.is_success:
                detail = self._http.scrub(outcome.response.text.strip(), 120)
                return measurement(
                    value=None,
                    query=shown,
                    retries=retries,
                    reason=status_reason(outcome) + (f": {detail}" if detail else ""),
                )
            try:
                body = outcome.response.json()
            except ValueError:
                body = None
            if not isinstance(body, list) or not all(isinstance(a, Mapping) for a in body):
                return measurement(
                    value=None,
                    query=shown,
                    retries=retries,
                    reason=f"garbage JSON: expected a list of alerts{suffix}",
                )
            malformed = _malformed(body)
            if malformed is not None:
                # a count of 0 would pass "critical_incidents == 0": no count at all
                return measurement(
                    value=None, query=shown, retries=retries, reason=malformed + suffix
                )
            active = [
                a
                for a in body
                if a["status"]["state"] == "active"
                and all(m.matches(a["labels"]) for m in matchers)
            ]
            span.set_attribute("gatekeeper.alerts", len(active))
            return measurement(
                value=float(len(active)),
                query=shown,
                retries=retries,
                labels=_describe(active),
            )


def create(
    name: str,
    options: Mapping[str, Any],
    context: PluginContext,
    *,
    client: httpx.AsyncClient | None = None,
    sleep: Sleep | None = None,
    tracer_provider: Any = None,
    redactor: Redactor | None = None,
) -> AlertmanagerSource:
    """Build a source from its ``[sources.NAME]`` table (no I/O). See
    ``docs/sources/alertmanager.md`` for the options."""
    redactor = redactor if redactor is not None else context.redactor
    tracer_provider = tracer_provider if tracer_provider is not None else context.tracer_provider
    opts = Options(options)
    settings = http_settings(opts)
    matchers = _option_matchers(opts.raw("matchers"))
    raw_age = opts.raw("max_age")
    try:
        max_age = timedelta(minutes=5) if raw_age is None else parse_duration(raw_age)
    except ValueError as exc:
        raise ConfigError(str(exc), key="max_age") from None
    opts.done()
    return AlertmanagerSource(
        name,
        settings,
        env=context.env,
        matchers=matchers,
        max_age=max_age,
        client=client,
        sleep=sleep,
        tracer_provider=tracer_provider,
        redactor=redactor,
    )
