"""``http-json``: a number out of a JSON answer, for business KPIs and status APIs.

GET (or POST with a JSON body) a URL, then pick one number by a small JSON path.
A non-2xx status, a body that is not JSON, a missing path or a value that is not a
number gives no value and a reason; the criterion becomes INCONCLUSIVE.

JSON path subset: an optional ``$``, then ``.name`` / ``name`` steps, ``[index]``
(negative counts from the end) and ``["any key"]`` / ``['any key']``:
``$.data.items[-1].value``, ``data.items[0]["p99 ms"]``.

Numbers: JSON numbers (not booleans); a string holding a plain decimal number
(``"12.5"``, ``"-3e2"``) is accepted, as many APIs (Prometheus among them) send
numbers as strings; ``"NaN"``, ``"Infinity"`` and other strings are not numbers.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urljoin

import attrs
import httpx

from .._model import Measurement, Query
from .._options import Options
from .._protocols import PluginContext
from .._redact import Redactor, shown
from .._template import render
from ..exceptions import ConfigError
from ._http import (
    HttpSettings,
    HttpSource,
    Sleep,
    check_url,
    http_settings,
    query_budget,
    source_span,
    status_reason,
)

__all__ = ["HttpJsonSource", "JsonPath", "create", "extract_number"]

_STEP = re.compile(
    r"""\.?(?P<name>[A-Za-z_$][A-Za-z0-9_$-]*)"""
    r"""|\[(?P<index>-?\d+)\]"""
    r"""|\[\s*"(?P<dq>(?:[^"\\]|\\.)*)"\s*\]"""
    r"""|\[\s*'(?P<sq>(?:[^'\\]|\\.)*)'\s*\]"""
)
_DECIMAL = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")
METHODS = ("GET", "POST")
METRIC_OPTIONS = ("path", "method", "body", "url")


@attrs.frozen
class JsonPath:
    """A parsed path: a tuple of keys (``str``) and indexes (``int``)."""

    text: str
    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Parse the documented subset; ``ValueError`` says where it stops making sense."""
        raw = text.strip()
        pos = 1 if raw.startswith("$") else 0
        steps: list[str | int] = []
        while pos < len(raw):
            if raw[pos] == "." and pos + 1 < len(raw) and raw[pos + 1] == "[":
                pos += 1
            match = _STEP.match(raw, pos)
            if match is None or match.end() == pos:
                raise ValueError(f"bad JSON path {shown(text)} at {shown(raw[pos:])}")
            if match.group("name") is not None:
                steps.append(match.group("name"))
            elif match.group("index") is not None:
                steps.append(int(match.group("index")))
            else:
                quoted = match.group("dq") if match.group("dq") is not None else match.group("sq")
                steps.append(re.sub(r"\\(.)", r"\1", quoted))
            pos = match.end()
        if not steps:
            raise ValueError(f"empty JSON path {shown(text)}: name at least one key or index")
        return cls(text, tuple(steps))

    def find(self, document: Any) -> Any:
        """The value at the path; ``LookupError`` names the first step that is missing."""
        current = document
        walked = "$"
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(current, list):
                    raise LookupError(f"{walked} is not a list")
                if not -len(current) <= step < len(current):
                    raise LookupError(f"{walked} has no index {step} (length {len(current)})")
                current = current[step]
                walked += f"[{step}]"
            else:
                if not isinstance(current, dict):
                    raise LookupError(f"{walked} is not an object")
                if step not in current:
                    raise LookupError(f"{walked} has no key {shown(step)}")
                current = current[step]
                walked += f".{step}"
        return current


def extract_number(document: Any, path: JsonPath) -> tuple[float | None, str | None]:
    """``(value, None)`` or ``(None, reason)`` for the value at ``path``."""
    try:
        found = path.find(document)
    except LookupError as exc:
        return None, f"missing path {path.text}: {exc.args[0]}"
    if isinstance(found, bool) or found is None:
        return None, f"{path.text} is {json.dumps(found)}, not a number"
    if isinstance(found, int | float) or (isinstance(found, str) and _DECIMAL.fullmatch(found)):
        value = float(found)
    else:
        shown = json.dumps(found)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return None, f"{path.text} is {shown}, not a number"
    if not math.isfinite(value):
        return None, f"{path.text} is {found!r}, not a finite number"
    return value, None


def _render_body(body: Any, values: Mapping[str, str]) -> Any:
    """Placeholders inside the body's strings, substituted after parsing, so a value
    is always one JSON string and cannot change the body's shape."""
    if isinstance(body, str):
        return render(body, values)
    if isinstance(body, list):
        return [_render_body(item, values) for item in body]
    if isinstance(body, dict):
        return {render(k, values): _render_body(v, values) for k, v in body.items()}
    return copy.deepcopy(body)


@attrs.frozen(kw_only=True)
class _Request:
    method: str
    url: str
    path: JsonPath
    body: Any


class HttpJsonSource(HttpSource):
    """Picks a number out of a JSON answer.

    Source options: the HTTP ones (``url``, auth, timeouts, retries, headers),
    ``method`` (GET or POST), ``body`` (a table, sent as JSON), ``path``. Metric
    options override them: ``path``, ``method``, ``body``, ``url``. The metric's
    ``query`` (if not empty) is the URL or a path relative to the source's ``url``;
    values substituted in it are percent-encoded.
    """

    kind = "http-json"

    def __init__(
        self,
        name: str,
        settings: HttpSettings,
        *,
        env: Mapping[str, str],
        method: str = "GET",
        body: Any = None,
        path: JsonPath | None = None,
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
        self.method = method
        self.body = body
        self.path = path

    def validate_metric(self, text: str, options: Mapping[str, Any]) -> None:
        """Check a metric's options (the plan loader may call this)."""
        self._request(Query(metric="-", text=text, at=_EPOCH, window=_ZERO), options, check=True)

    def _request(
        self, query: Query, options: Mapping[str, Any], *, check: bool = False
    ) -> _Request:
        opts = Options(options, ignore=())
        raw_path = opts.text("path")
        method = (opts.text("method") or self.method).upper()
        body = opts.raw("body") if "body" in options else self.body
        url_override = opts.text("url")
        opts.done()
        if method not in METHODS:
            raise ConfigError(f"expected GET or POST, got {shown(method)}", key="method")
        if raw_path is None and self.path is None:
            raise ConfigError("missing required option (a JSON path like $.data.value)", key="path")
        try:
            path = JsonPath.parse(raw_path) if raw_path is not None else self.path
        except ValueError as exc:
            raise ConfigError(str(exc), key="path") from None
        assert path is not None
        if body is not None and not isinstance(body, dict | list):
            raise ConfigError("expected a table or a list (sent as JSON)", key="body")
        if body is not None and method == "GET":
            raise ConfigError('a body needs method = "POST"', key="body")
        if check:
            return _Request(method=method, url="", path=path, body=body)
        values = query.placeholders()
        if url_override is not None:
            target = render(url_override, {k: quote(v, safe="") for k, v in values.items()})
        elif query.text.strip() and query.text != query.metric:
            # (a metric without ``query`` arrives with its own name as the text)
            relative = render(query.text.strip(), {k: quote(v, safe="") for k, v in values.items()})
            target = urljoin(self.settings.url + "/", relative)
        else:
            target = self.settings.url
        if not target:
            raise ConfigError("no URL: set url on the source or the metric", key="url")
        check_url(target, key="url")
        rendered_body = None if body is None else _render_body(body, values)
        return _Request(method=method, url=target, path=path, body=rendered_body)

    async def query(self, query: Query) -> Measurement:
        """The number at the JSON path of the answer."""

        def measurement(**fields: Any) -> Measurement:
            return Measurement(
                metric=query.metric,
                at=query.at,
                variant=query.variant,
                source=self.name,
                **self.clean(fields),
            )

        try:
            request = self._request(query, query.options)
        except (ConfigError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
            return measurement(value=None, query=query.text, reason=f"bad query: {message}")
        shown = f"{request.method} {request.url} {request.path.text}"
        with source_span(self.kind, self.name, query, self._tracer_provider) as span:
            outcome = await self._http.request(
                request.method,
                request.url,
                json=request.body,
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
        response = outcome.response
        if not response.is_success:
            return measurement(
                value=None, query=shown, retries=retries, reason=status_reason(outcome)
            )
        try:
            document = response.json()
        except ValueError:
            return measurement(
                value=None,
                query=shown,
                retries=retries,
                reason=f"garbage JSON: {self._http.scrub(response.text, 60)!r}{suffix}",
            )
        value, problem = extract_number(document, request.path)
        if problem is not None:
            problem += suffix
        return measurement(value=value, query=shown, retries=retries, reason=problem)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = timedelta(0)


def create(
    name: str,
    options: Mapping[str, Any],
    context: PluginContext,
    *,
    client: httpx.AsyncClient | None = None,
    sleep: Sleep | None = None,
    tracer_provider: Any = None,
    redactor: Redactor | None = None,
) -> HttpJsonSource:
    """Build a source from its ``[sources.NAME]`` table (no I/O). See
    ``docs/sources/http-json.md`` for the options."""
    redactor = redactor if redactor is not None else context.redactor
    tracer_provider = tracer_provider if tracer_provider is not None else context.tracer_provider
    opts = Options(options)
    settings = http_settings(opts, url_required=False)
    method = (opts.text("method") or "GET").upper()
    if method not in METHODS:
        raise ConfigError(f"expected GET or POST, got {shown(method)}", key="method")
    body = opts.raw("body")
    if body is not None and not isinstance(body, dict | list):
        raise ConfigError("expected a table or a list (sent as JSON)", key="body")
    raw_path = opts.text("path")
    try:
        path = JsonPath.parse(raw_path) if raw_path is not None else None
    except ValueError as exc:
        raise ConfigError(str(exc), key="path") from None
    opts.done()
    return HttpJsonSource(
        name,
        settings,
        env=context.env,
        method=method,
        body=body,
        path=path,
        client=client,
        sleep=sleep,
        tracer_provider=tracer_provider,
        redactor=redactor,
    )
