"""``http``: PUT/POST a JSON body to an API, GET it back (feature flags, admin APIs, routers).

``body`` is a table rendered for each change: a string that is exactly one
placeholder (``"{canary}"``) becomes the number itself, other strings are
formatted as text; the placeholders are those of the ``command`` backend. The read
back is a GET of ``get_url`` (default ``url``) whose JSON ``path`` (dots and list
indexes: ``"routes.0.weight"``) holds the canary share, in percent or, with
``scale = "fraction"``, in [0, 1].

Requests retry (tenacity) on transport errors and on 408/425/429/5xx only, up to
``attempts``; other statuses fail at once. The bearer token comes from the
environment variable named by ``bearer_token_env`` at request time and never
appears in ``repr`` or error messages: an API's error body and httpx's exception
text go through the redactor (every form of the token: raw, base64, JSON, URL,
repr) and are cut to 200 characters. A token of 1-3 characters, or one httpx
cannot send (non-ASCII, a newline), is refused before anything is sent.
"""

from __future__ import annotations

import math
import string
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import tenacity

from .._httpbase import (
    SECRET_HEADERS,
    RetryableStatus,
    check_url,
    retryable,
    retryable_status,
    safe_url,
    secret_problem,
)
from .._model import Split
from .._options import Options
from .._protocols import PluginContext
from .._redact import MIN_SECRET_LENGTH, Redactor, clip, shown
from ..exceptions import ConfigError, TrafficError
from . import check_share
from ._watchdog import Watchdog
from .command import PLACEHOLDERS, placeholder_values

__all__ = ["HttpBackend", "create", "extract"]


def extract(document: Any, path: str) -> Any:
    """The value at a dotted path (``"a.b.0.c"``; a leading ``"$."`` is allowed)."""
    value = document
    parts = path.removeprefix("$").removeprefix(".").split(".") if path not in ("", "$") else []
    for part in parts:
        if isinstance(value, list) and part.lstrip("-").isdigit():
            try:
                value = value[int(part)]
            except IndexError:
                raise KeyError(f"index {part} out of range in {path!r}") from None
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(f"no {part!r} in {path!r}")
    return value


def _render(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        fields = [f for _, f, _, _ in string.Formatter().parse(node) if f is not None]
        if len(fields) == 1 and node == "{" + fields[0] + "}":
            return values[fields[0]]
        return node.format(**values)
    if isinstance(node, Mapping):
        return {k: _render(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, values) for v in node]
    return node


def _check_body(node: Any, key: str) -> None:
    if isinstance(node, str):
        try:
            fields = list(string.Formatter().parse(node))
        except ValueError as exc:
            raise ConfigError(f"bad template {shown(node)}: {exc}", key=key) from None
        for _, field, _, _ in fields:
            if field is not None and field not in PLACEHOLDERS:
                raise ConfigError(
                    f"unknown placeholder {{{field}}} (known: {', '.join(PLACEHOLDERS)})", key=key
                )
        try:
            _render(node, placeholder_values(12.5, 100))
        except (ValueError, KeyError, IndexError) as exc:
            raise ConfigError(f"bad template {shown(node)}: {exc}", key=key) from None
    elif isinstance(node, Mapping):
        for k, v in node.items():
            _check_body(v, f"{key}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_body(v, f"{key}[{i}]")


class HttpBackend:
    """Sets the split with one request and verifies it with a GET."""

    def __init__(
        self,
        *,
        url: str,
        get_url: str | None = None,
        method: str = "PUT",
        body: Mapping[str, Any] | None = None,
        path: str = "canary",
        scale: str = "percent",
        headers: Mapping[str, str] | None = None,
        bearer_token_env: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.2,
        tolerance: float = 0.01,
        total_weight: int = 100,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.url = url
        self.get_url = get_url or url
        self.method = method
        self.body: Mapping[str, Any] = body if body is not None else {"canary": "{canary}"}
        self.path = path
        self.scale = scale
        self._headers = dict(headers or {})
        self.bearer_token_env = bearer_token_env
        self._env = env if env is not None else {}
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.tolerance = tolerance
        self.total_weight = total_weight
        self._client = client
        self._owns_client = client is None
        self._sleep = sleep
        self.redactor = redactor if redactor is not None else Redactor()
        self.writes = 0

    def __repr__(self) -> str:
        return f"HttpBackend(method={self.method!r}, url={self.url!r})"

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            # No kept-alive connections: each request opens its own, so the watchdog
            # sees (and can cut) the socket of every request.
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_keepalive_connections=0),
                trust_env=False,
            )
        return self._client

    def _request_headers(self, wanted: float | None) -> dict[str, str]:
        headers = {"Accept": "application/json", **self._headers}
        if self.bearer_token_env is not None:
            token = self._env.get(self.bearer_token_env)
            problem = secret_problem(self.bearer_token_env, token)
            if token is not None and len(token) >= MIN_SECRET_LENGTH:
                self.redactor.add(token)  # before anything could quote it
            if problem is not None or token is None:
                raise TrafficError(f"http: {problem}", wanted=wanted)
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _clean(self, text: str, limit: int = 200) -> str:
        """Server or library text, every form of the token masked, cut short."""
        return clip(self.redactor.redact(text), limit)

    def _send(
        self, method: str, url: str, wanted: float | None, json_body: Any = None
    ) -> httpx.Response:
        headers = self._request_headers(wanted)
        client = self._http()

        def attempt() -> httpx.Response:
            with Watchdog(self.timeout) as dog:
                try:
                    response = client.request(
                        method, url, headers=headers, json=json_body, extensions=dog.extensions
                    )
                except httpx.TransportError:
                    if dog.fired:
                        raise httpx.ReadTimeout(
                            f"no whole answer within {self.timeout:g}s"
                        ) from None
                    raise
            if retryable_status(response.status_code):
                raise RetryableStatus(response)
            return response

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff, max=5.0),
            retry=tenacity.retry_if_exception(retryable),
            reraise=True,
            sleep=self._sleep or time.sleep,
        )
        try:
            response = retrying(attempt)
        except RetryableStatus as exc:
            response = exc.response
        except (httpx.HTTPError, UnicodeEncodeError) as exc:
            raise TrafficError(
                f"http {method} {safe_url(url)} failed after {self.attempts} attempt(s): "
                f"{type(exc).__name__}: {self._clean(str(exc))}",
                wanted=wanted,
            ) from None
        if not response.is_success:
            raise TrafficError(
                f"http {method} {safe_url(url)} answered {response.status_code} "
                f"{self._clean(response.reason_phrase, 80)}: "
                f"{self._clean(response.text)!r}",
                wanted=wanted,
            )
        return response

    def _read(self, wanted: float | None) -> float:
        response = self._send("GET", self.get_url, wanted)
        try:
            value = extract(response.json(), self.path)
        except (ValueError, KeyError) as exc:
            raise TrafficError(
                f"http GET {safe_url(self.get_url)}: cannot read {self.path!r}: "
                f"{self._clean(str(exc))}",
                wanted=wanted,
            ) from None
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            raise TrafficError(
                f"http GET {safe_url(self.get_url)}: {self.path!r} is "
                f"{self._clean(repr(value), 80)}, not a number",
                wanted=wanted,
            )
        share = float(value) * (100.0 if self.scale == "fraction" else 1.0)
        if not 0.0 <= share <= 100.0:
            raise TrafficError(
                f"http GET {safe_url(self.get_url)}: {self.path!r} gives {share:g}%, "
                "outside [0, 100]",
                wanted=wanted,
            )
        return share

    def get_split(self) -> Split:
        return Split(canary=self._read(None), detail=f"http {safe_url(self.get_url)}")

    def set_split(self, canary_percent: float) -> Split:
        """GET; PUT/POST unless already there; GET again and verify within ``tolerance``."""
        check_share(canary_percent)
        detail = f"http {safe_url(self.get_url)}"
        current = self._read(canary_percent)
        if abs(current - canary_percent) <= self.tolerance:
            return Split(canary=current, detail=detail)
        body = _render(self.body, placeholder_values(canary_percent, self.total_weight))
        try:
            self._send(self.method, self.url, canary_percent, body)
        except TrafficError as exc:
            try:
                exc.actual = self._read(None)
            except TrafficError:
                exc.actual = None
            raise
        self.writes += 1
        actual = self._read(canary_percent)
        if abs(actual - canary_percent) > self.tolerance:
            raise TrafficError(
                f"http {self.method} {safe_url(self.url)} succeeded but GET reads {actual:g}% "
                f"(wanted {canary_percent:g}% ± {self.tolerance:g})",
                wanted=canary_percent,
                actual=actual,
            )
        return Split(canary=actual, detail=detail)


def _url(opts: Options, key: str, *, required: bool) -> str | None:
    url = opts.required_text(key) if required else opts.text(key)
    if url is not None:
        check_url(url, key=key)
    return url


def create(
    options: Mapping[str, Any], context: PluginContext, *, redactor: Redactor | None = None
) -> HttpBackend:
    """Build the backend from the plan's ``[traffic]`` table (no I/O, no secret read)."""
    redactor = redactor if redactor is not None else context.redactor
    opts = Options(options)
    url = _url(opts, "url", required=True)
    assert url is not None
    get_url = _url(opts, "get_url", required=False)
    method = (opts.text("method", "PUT") or "PUT").upper()
    if method not in ("PUT", "POST", "PATCH"):
        raise ConfigError(f"expected PUT, POST or PATCH, got {shown(method)}", key="method")
    body = opts.table("body") if opts.raw("body") is not None else {"canary": "{canary}"}
    _check_body(body, "body")
    path = opts.text("path", "canary") or "canary"
    scale = opts.text("scale", "percent") or "percent"
    if scale not in ("percent", "fraction"):
        raise ConfigError(f"expected 'percent' or 'fraction', got {shown(scale)}", key="scale")
    headers = opts.table("headers")
    for name, value in headers.items():
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {shown(value)}", key=f"headers.{name}")
        if name.lower() in SECRET_HEADERS:
            raise ConfigError(
                "secrets do not belong in the plan: use bearer_token_env", key=f"headers.{name}"
            )
    token_env = opts.text("bearer_token_env")
    timeout = opts.seconds("timeout", 5.0)
    backoff = opts.seconds("backoff", 0.2)
    attempts = opts.integer("attempts", 3)
    assert attempts is not None
    if not 1 <= attempts <= 10:
        raise ConfigError(f"must be within 1..10, got {attempts}", key="attempts")
    tolerance = opts.tolerance()  # finite, 0..5 percentage points
    total = opts.integer("total_weight", 100)
    assert total is not None
    if total < 1:
        raise ConfigError(f"must be at least 1, got {total}", key="total_weight")
    opts.done()
    return HttpBackend(
        url=url,
        get_url=get_url,
        method=method,
        body=body,
        path=path,
        scale=scale,
        headers=headers,
        bearer_token_env=token_env,
        env=context.env,
        timeout=timeout,
        attempts=attempts,
        backoff=backoff,
        tolerance=tolerance,
        total_weight=total,
        redactor=redactor,
    )
