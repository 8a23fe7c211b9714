"""``prometheus``: instant and range PromQL queries at the checkpoint's time.

Templates are rendered with :func:`render_promql`: a value substituted inside a
quoted PromQL string is escaped for that string, and a value substituted outside
any string must be a plain word, number or duration, so no argument can change the
query's shape. Anything that is not one clean number (an error status, an empty
result, several series without ``pick``, warnings, NaN, ±Inf) becomes a
:class:`~gatekeeper.Measurement` that says so, never a value that could pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import httpx

from .._model import Measurement, Query
from .._options import Options
from .._protocols import PluginContext
from .._redact import Redactor, shown
from .._template import render
from .._units import parse_duration
from ..exceptions import ConfigError
from ._http import (
    HttpOutcome,
    HttpSettings,
    HttpSource,
    Sleep,
    http_settings,
    query_budget,
    source_span,
    status_reason,
    unix_time,
)
from ._promql import escape_promql_string, render_promql, unescape_promql_string
from ._regex import escape_regex

__all__ = [
    "PrometheusSource",
    "create",
    "escape_promql_string",
    "escape_regex",
    "render_promql",
    "unescape_promql_string",
]

_AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "sum": math.fsum,
    "max": max,
    "min": min,
    "avg": lambda values: math.fsum(values) / len(values),
}
METRIC_OPTIONS = ("pick", "step")
# An instant query's answer is a few hundred bytes: asking Prometheus to gzip it
# costs more than it saves. Measured (docs/benchmarks.md): 10 concurrent instant
# queries took 8-9 ms with ``Accept-Encoding: gzip`` and 1.9 ms without, on 2 cores,
# with a client costing under 0.1 ms per request either way. Range queries, whose
# answers can be large, keep httpx's default (gzip). A plan's own header wins.
INSTANT_HEADERS = {"Accept-Encoding": "identity"}


def _parse_sample(raw: Any) -> float:
    """A sample value: Prometheus sends strings, including "NaN", "+Inf", "-Inf"."""
    if not isinstance(raw, str):
        raise TypeError(f"sample value is not a string: {shown(raw)}")
    return float(raw)


def _series_name(labels: Mapping[str, str]) -> str:
    name = labels.get("__name__", "")
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


class _Pick:
    """How to reduce several series to one: by label values or by an aggregation."""

    def __init__(self, raw: Any) -> None:
        self.matchers: dict[str, str] | None = None
        self.aggregation: str | None = None
        if isinstance(raw, str):
            if raw not in _AGGREGATIONS:
                raise ConfigError(
                    f"expected a label table or one of {', '.join(_AGGREGATIONS)}, "
                    f"got {shown(raw)}",
                    key="pick",
                )
            self.aggregation = raw
        elif (
            isinstance(raw, Mapping)
            and raw
            and all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items())
        ):
            self.matchers = dict(raw)
        else:
            raise ConfigError(
                "expected a table of label = value (templates allowed) or an aggregation "
                f"({', '.join(_AGGREGATIONS)}), got {shown(raw)}",
                key="pick",
            )

    def describe(self, values: Mapping[str, str]) -> str:
        if self.aggregation is not None:
            return self.aggregation
        return _series_name(self._rendered(values))

    def _rendered(self, values: Mapping[str, str]) -> dict[str, str]:
        assert self.matchers is not None
        return {k: render(v, values) for k, v in self.matchers.items()}

    def select(
        self, series: list[tuple[dict[str, str], Any]], values: Mapping[str, str]
    ) -> list[tuple[dict[str, str], Any]]:
        if self.matchers is None:
            return series
        wanted = self._rendered(values)
        return [s for s in series if all(s[0].get(k) == v for k, v in wanted.items())]


def _nan_reason(aggregation: str, count: int, names: list[str]) -> str:
    shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    return (
        f"NaN in {len(names)} of the {count} series pick = {aggregation!r} would combine "
        f"({shown}): no value"
    )


def validate_metric_options(options: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for metric-level options this source does not take."""
    for key in options:
        if key not in METRIC_OPTIONS:
            raise ConfigError(f"unknown option (known: {', '.join(METRIC_OPTIONS)})", key=key)
    if "pick" in options:
        _Pick(options["pick"])
    if "step" in options:
        try:
            parse_duration(options["step"])
        except ValueError as exc:
            raise ConfigError(str(exc), key="step") from None


class PrometheusSource(HttpSource):
    """Queries one Prometheus server (``/api/v1/query`` and ``/api/v1/query_range``).

    Metric options (``[metrics.X]`` keys): ``pick`` reduces several series to one,
    either by labels (``pick = {version = "{{variant}}"}``: exactly one series must
    match) or by an aggregation (``"sum"``, ``"max"``, ``"min"``, ``"avg"``);
    ``step`` is the resolution of range queries (default: window / 60, at least 1s).
    """

    kind = "prometheus"

    def __init__(
        self,
        name: str,
        settings: HttpSettings,
        *,
        env: Mapping[str, str],
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

    def validate_metric(self, text: str, options: Mapping[str, Any]) -> None:
        """Check a metric's source-specific options (the plan loader may call this)."""
        validate_metric_options(options)

    def _measurement(self, query: Query, rendered: str, **fields: Any) -> Measurement:
        return Measurement(
            metric=query.metric,
            at=query.at,
            variant=query.variant,
            source=self.name,
            **self.clean({"query": rendered, **fields}),
        )

    def _prepare(self, query: Query) -> tuple[str, _Pick | None, str | None]:
        try:
            validate_metric_options(query.options)
            pick = _Pick(query.options["pick"]) if "pick" in query.options else None
            rendered = render_promql(query.text, query.placeholders())
        except (ConfigError, KeyError, ValueError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
            return query.text, None, f"bad query: {message}"
        return rendered, pick, None

    async def query(self, query: Query) -> Measurement:
        """The value of an instant query at ``query.at``."""
        rendered, pick, problem = self._prepare(query)
        if problem is not None:
            return self._measurement(query, rendered, value=None, reason=problem)
        with source_span(self.kind, self.name, query, self._tracer_provider) as span:
            outcome = await self._http.request(
                "POST",
                self.settings.url + "/api/v1/query",
                data={"query": rendered, "time": unix_time(query.at)},
                budget=query_budget(query, self.settings.retry),
                span=span,
                headers=INSTANT_HEADERS,
            )
            span.set_attribute("gatekeeper.retries", outcome.retries)
            measurement = self._interpret(query, rendered, pick, outcome, ranged=False)
            if measurement.reason:
                span.set_attribute("gatekeeper.problem", measurement.reason)
            return measurement

    async def query_range(self, query: Query, *, step: timedelta | None = None) -> Measurement:
        """The samples of ``query.window`` ending at ``query.at``, in ``series``;
        ``value`` is the last sample."""
        rendered, pick, problem = self._prepare(query)
        if problem is not None:
            return self._measurement(query, rendered, value=None, reason=problem)
        if step is None:
            if "step" in query.options:
                step = parse_duration(query.options["step"])
            else:
                step = max(query.window / 60, timedelta(seconds=1))
        start = query.at - query.window
        with source_span(self.kind, self.name, query, self._tracer_provider) as span:
            outcome = await self._http.request(
                "POST",
                self.settings.url + "/api/v1/query_range",
                data={
                    "query": rendered,
                    "start": unix_time(start),
                    "end": unix_time(query.at),
                    "step": f"{max(step.total_seconds(), 0.001):g}",
                },
                budget=query_budget(query, self.settings.retry),
                span=span,
            )
            span.set_attribute("gatekeeper.retries", outcome.retries)
            return self._interpret(query, rendered, pick, outcome, ranged=True)

    def _interpret(  # noqa: PLR0915 - one flat walk over every shape an answer can take
        self,
        query: Query,
        rendered: str,
        pick: _Pick | None,
        outcome: HttpOutcome,
        *,
        ranged: bool,
    ) -> Measurement:
        retries = outcome.retries

        def problem(
            reason: str, warnings: tuple[str, ...] = (), *, counted: bool = False
        ) -> Measurement:
            if retries and not counted:
                reason += f" ({retries} retr{'y' if retries == 1 else 'ies'})"
            return self._measurement(
                query, rendered, value=None, reason=reason, retries=retries, warnings=warnings
            )

        if outcome.response is None:
            return problem(outcome.failure(), counted=True)
        response = outcome.response
        try:
            body = response.json()
        except ValueError:
            if response.is_success:
                return problem(f"garbage JSON: {self._http.scrub(response.text, 80)!r}")
            return problem(status_reason(outcome), counted=True)
        if not isinstance(body, dict):
            if not response.is_success:
                return problem(status_reason(outcome), counted=True)
            return problem(f"garbage JSON: not an object: {self._http.scrub(str(body), 80)!r}")
        warnings = tuple(str(w) for w in body.get("warnings") or ())
        if body.get("status") != "success":
            kind = body.get("errorType", "")
            error = str(body.get("error", "no error message"))
            http = f"HTTP {response.status_code}, " if not response.is_success else ""
            return problem(f"status error: {http}{kind + ': ' if kind else ''}{error}", warnings)
        if not response.is_success:
            return problem(status_reason(outcome), warnings, counted=True)
        data = body.get("data")
        if not isinstance(data, dict):
            return problem("garbage JSON: no data object", warnings)
        result_type = data.get("resultType")
        result: Any = data.get("result")
        values = query.placeholders() if pick is not None else {}  # only pick renders
        try:
            if result_type == "scalar":
                if ranged:
                    return problem("a range query returned a scalar", warnings)
                value = _parse_sample(result[1])
                return self._measurement(
                    query, rendered, value=value, retries=retries, warnings=warnings
                )
            if result_type == "string":
                return problem("the query returned a string, not a number", warnings)
            expected = "matrix" if ranged else "vector"
            if result_type != expected:
                return problem(
                    f"expected a {'range' if ranged else 'instant'} vector, the query returned "
                    f"a {result_type}",
                    warnings,
                )
            series = [
                (dict(item.get("metric") or {}), item["values"] if ranged else item["value"])
                for item in result
            ]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return problem(f"garbage JSON: unexpected result shape ({exc})", warnings)
        if not series:
            # Not an error: a ratio's numerator reads "no series" as 0 events.
            return attrs.evolve(problem("empty result: no series matched", warnings), empty=True)
        if pick is not None:
            selected = pick.select(series, values)
            if not selected:
                names = ", ".join(sorted(_series_name(s[0]) for s in series))
                return problem(
                    f"pick {pick.describe(values)} matched none of the {len(series)} series: "
                    f"{names}",
                    warnings,
                )
        else:
            selected = series
        try:
            if len(selected) > 1 and (pick is None or pick.aggregation is None):
                names = ", ".join(sorted(_series_name(s[0]) for s in selected))
                how = (
                    'add pick = {label = "value"} or pick = "sum" to the metric'
                    if pick is None
                    else f"pick {pick.describe(values)} is ambiguous"
                )
                return problem(
                    f"{len(selected)} series where one was expected ({how}): {names}", warnings
                )
            if ranged:
                return self._ranged(query, rendered, selected, pick, retries, warnings)
            samples = [_parse_sample(s[1][1]) for s in selected]
        except (IndexError, TypeError, ValueError) as exc:
            return problem(f"garbage JSON: unexpected sample ({exc})", warnings)
        if len(samples) == 1:
            value = samples[0]
        else:
            assert pick is not None and pick.aggregation is not None
            nan = [
                _series_name(s[0]) for s, v in zip(selected, samples, strict=True) if math.isnan(v)
            ]
            if nan:
                # max()/min() keep or drop a NaN depending on where it stands: never guess
                return problem(_nan_reason(pick.aggregation, len(samples), nan), warnings)
            value = _AGGREGATIONS[pick.aggregation](samples)
        labels = tuple(_series_name(s[0]) for s in selected) if len(selected) == 1 else ()
        return self._measurement(
            query, rendered, value=value, retries=retries, warnings=warnings, labels=labels
        )

    def _ranged(
        self,
        query: Query,
        rendered: str,
        selected: list[tuple[dict[str, str], Any]],
        pick: _Pick | None,
        retries: int,
        warnings: tuple[str, ...],
    ) -> Measurement:
        by_time: dict[float, list[float]] = {}
        nan: dict[float, list[str]] = {}
        for labels, samples in selected:
            for stamp, raw in samples:
                value = _parse_sample(raw)
                by_time.setdefault(float(stamp), []).append(value)
                if math.isnan(value):
                    nan.setdefault(float(stamp), []).append(_series_name(labels))
        reduce = _AGGREGATIONS[pick.aggregation] if pick and pick.aggregation else None
        if reduce is not None and pick is not None and pick.aggregation is not None:
            for stamp, names in sorted(nan.items()):
                if len(by_time[stamp]) > 1:
                    when = datetime.fromtimestamp(stamp, UTC).strftime("%H:%M:%S")
                    return self._measurement(
                        query,
                        rendered,
                        value=None,
                        reason=f"at {when}: "
                        + _nan_reason(pick.aggregation, len(by_time[stamp]), names),
                        retries=retries,
                        warnings=warnings,
                    )
        points = tuple(
            (
                datetime.fromtimestamp(stamp, UTC),
                reduce(vals) if reduce is not None else vals[0],
            )
            for stamp, vals in sorted(by_time.items())
        )
        if not points:
            return self._measurement(
                query,
                rendered,
                value=None,
                reason="empty result: no samples in the window",
                retries=retries,
                warnings=warnings,
            )
        return self._measurement(
            query, rendered, value=points[-1][1], series=points, retries=retries, warnings=warnings
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
) -> PrometheusSource:
    """Build a source from its ``[sources.NAME]`` table (no I/O). See
    ``docs/sources/prometheus.md`` for the options."""
    redactor = redactor if redactor is not None else context.redactor
    tracer_provider = tracer_provider if tracer_provider is not None else context.tracer_provider
    opts = Options(options)
    settings = http_settings(opts)
    opts.done()
    return PrometheusSource(
        name,
        settings,
        env=context.env,
        client=client,
        sleep=sleep,
        tracer_provider=tracer_provider,
        redactor=redactor,
    )
