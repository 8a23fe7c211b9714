"""The resilient HTTP layer shared by the prometheus, alertmanager and http-json sources.

Keep-alive connections (an injected ``httpx.AsyncClient``, or the running loop's
:class:`~._transport.AsyncioTransport`, shared by the sources with the same TLS
settings and closed by the last of them), explicit timeouts, retries on transport
errors and 408/425/429/5xx only, exponential backoff with jitter that yields to a
server's ``Retry-After``, all bounded by attempts *and* by a deadline that fits
inside the checkpoint (one overall timeout: slow headers and dripping or endless
bodies included). Secrets (bearer token, basic-auth password, secret headers) are
read from environment variables named in the plan, at request time; every text a
server sends back passes the source's :class:`~gatekeeper._redact.Redactor` and is
cut short before it reaches a reason, a warning or a span. Connection options live
in :mod:`._settings`, retry policy in :mod:`._retry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from .._httpbase import secret_problem
from .._redact import Redactor, ShortSecretError, clip
from .._units import format_duration
from ._retry import (  # HttpOutcome, query_budget, status_reason: re-exported
    BackoffWait,
    HttpOutcome,
    RetryableStatus,
    RetryPolicy,
    describe_error,
    query_budget,
    retryable,
    retryable_status,
    status_reason,
)
from ._settings import HttpSettings, check_url, http_settings
from ._transport import AsyncioTransport, release_shared, shared_transport

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .._model import Query

__all__ = [
    "HttpOutcome",
    "HttpSettings",
    "ResilientHttp",
    "RetryPolicy",
    "check_url",
    "http_settings",
    "query_budget",
    "source_span",
    "status_reason",
    "unix_time",
]

TEXT_LIMIT = 200  # characters of a server's text (error, warning) a reason may quote
URL_CACHE = 64  # parsed URLs kept per source
#: What ``httpx.AsyncClient`` sends by default.
DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": f"python-httpx/{httpx.__version__}",
}


def merge_headers(*layers: Mapping[str, str]) -> dict[str, str]:
    """Header layers merged by name regardless of case; a later layer wins and keeps
    its own spelling."""
    merged: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.items():
            key = name.lower()
            if key in spelled:
                del merged[spelled[key]]
            spelled[key] = name
            merged[name] = value
    return merged


Sleep = Callable[[float], Awaitable[None]]


class ResilientHttp:
    """Sends a source's requests with its auth, timeouts and retry policy.

    ``client``: an ``httpx.AsyncClient`` the caller owns (tests, embedders); without
    one, the running loop's shared :class:`AsyncioTransport` is taken on first use and
    given back by :meth:`aclose` (the last source to give it back closes it).
    ``sleep`` waits between retries (tests inject a recorder).
    """

    def __init__(
        self,
        settings: HttpSettings,
        *,
        env: Mapping[str, str],
        client: httpx.AsyncClient | None = None,
        sleep: Sleep | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self._env = env
        self._shared = redactor
        self._redactor: Redactor | None = None
        self._redactor_key: tuple[str, ...] = ()
        self._client = client
        self._transport: AsyncioTransport | None = None
        self._transport_loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, httpx.URL] = {}
        self._sleep: Sleep = sleep or asyncio.sleep

    def __repr__(self) -> str:
        return f"ResilientHttp(url={self.settings.url!r})"

    def _make_transport(self) -> AsyncioTransport:
        verify: ssl.SSLContext | bool = self.settings.tls_verify
        if self.settings.tls_verify and self.settings.ca_bundle:
            verify = ssl.create_default_context(cafile=self.settings.ca_bundle)
        return AsyncioTransport(verify=verify)

    def _pool_key(self) -> tuple[bool, str | None]:
        return (self.settings.tls_verify, self.settings.ca_bundle)

    def _get_transport(self) -> AsyncioTransport:
        loop = asyncio.get_running_loop()
        if self._transport is None or self._transport_loop is not loop:
            # A pool belongs to one event loop; a sync facade that runs each
            # checkpoint in a fresh loop gets a fresh one (the old loop is gone).
            # Sources with the same TLS settings share it: see shared_transport.
            self._transport = shared_transport(self._pool_key(), self._make_transport)
            self._transport_loop = loop
        return self._transport

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Any,
        data: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str],
        auth: httpx.Auth | None,
        seconds: float,
    ) -> httpx.Response:
        """One request, whole body read. An injected client sends it its own way;
        otherwise it goes straight to the shared :class:`AsyncioTransport`, with
        what ``httpx.AsyncClient`` would have added (default headers, auth, timeouts)
        and without what it costs per request and the sources never use (cookie
        jar, redirects, event hooks, URL merging): measured in docs/benchmarks.md."""
        if self._client is not None:
            return await self._client.request(
                method,
                url,
                params=params,
                data=data,
                json=json,
                headers=headers,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=httpx.Timeout(seconds),
            )
        transport = self._get_transport()
        target = self._urls.get(url)
        if target is None:
            if len(self._urls) >= URL_CACHE:  # templated URLs: keep the cache bounded
                self._urls.clear()
            target = self._urls[url] = httpx.URL(url)
        merged = merge_headers(DEFAULT_HEADERS, headers)
        request = httpx.Request(
            method,
            target,
            params=params,
            data=data,
            json=json,
            headers=merged,
            extensions={
                "timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
            },
        )
        if auth is not None:
            request = next(auth.sync_auth_flow(request))  # sets Authorization
        response = await transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        """Close what this object made; an injected client stays open."""
        if self._transport is not None:
            transport, self._transport = self._transport, None
            loop, self._transport_loop = self._transport_loop, None
            assert loop is not None
            # RuntimeError: its event loop is already closed, nothing left to free
            with contextlib.suppress(RuntimeError):
                await release_shared(self._pool_key(), transport, loop)

    def _secret_names(self) -> list[str]:
        names = [
            self.settings.bearer_token_env,
            self.settings.basic_username_env,
            self.settings.basic_password_env,
            *self.settings.secret_headers_env.values(),
        ]
        return [name for name in names if name is not None]

    def missing_secret(self) -> str | None:
        """Why a configured secret cannot be sent, if one cannot: its variable is not
        set, holds fewer than 4 characters (too short to be masked in output), or
        holds what a header cannot carry."""
        for name in self._secret_names():
            value = self._env.get(name)
            if name == self.settings.basic_username_env:
                if not value:  # a user name is no secret: it only has to be there
                    return f"environment variable {name} (named in the plan) is not set"
                continue
            in_header = name == self.settings.bearer_token_env or (
                name in self.settings.secret_headers_env.values()
            )
            problem = secret_problem(name, value, in_header=in_header)
            if problem is not None:
                return problem
        return None

    @property
    def redactor(self) -> Redactor:
        """Masks every secret this source sends (token, password, ``user:pass``,
        secret header values), read from the environment now; the shared redactor
        (the run's) learns them too."""
        values = [self._env.get(n, "") for n in self._secret_names()]
        if self.settings.basic_username_env and self.settings.basic_password_env:
            user = self._env.get(self.settings.basic_username_env, "")
            password = self._env.get(self.settings.basic_password_env, "")
            if user and password:
                values.append(f"{user}:{password}")
            if user in values:  # a user name alone is not a secret
                values.remove(user)
        key = tuple(values)
        if self._redactor is None or key != self._redactor_key:
            redactor = self._shared if self._shared is not None else Redactor()
            for value in values:
                with contextlib.suppress(ShortSecretError):  # never sent: see missing_secret
                    redactor.add(value)
            self._redactor, self._redactor_key = redactor, key
        return self._redactor

    def scrub(self, text: str | None, limit: int = TEXT_LIMIT) -> str | None:
        """``text`` with every form of every secret masked, then cut to ``limit``
        characters: a server that echoes a token back must not carry it anywhere."""
        if text is None:
            return None
        return clip(self.redactor.redact(text), limit)

    def _auth_headers(self) -> tuple[dict[str, str], httpx.Auth | None]:
        headers = dict(self.settings.headers)
        for header, env_name in self.settings.secret_headers_env.items():
            headers[header] = self._env[env_name]
        auth: httpx.Auth | None = None
        if self.settings.bearer_token_env is not None:
            headers["Authorization"] = "Bearer " + self._env[self.settings.bearer_token_env]
        elif self.settings.basic_username_env and self.settings.basic_password_env:
            auth = httpx.BasicAuth(
                self._env[self.settings.basic_username_env],
                self._env[self.settings.basic_password_env],
            )
        return headers, auth

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        budget: float | None = None,
        span: Span | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpOutcome:
        """Send ``method url`` with retries; never raises for HTTP or transport trouble.

        ``budget`` (seconds) bounds the whole exchange, slow bodies included: one
        overall timeout surrounds every attempt with its headers, its body however
        slowly it drips, and the waits between attempts (httpx's own timeouts only
        bound each read, so a byte every half second would never trip them).
        ``headers`` are this request's defaults: the plan's headers and the
        credentials override them.
        """
        missing = self.missing_secret()
        if missing is not None:
            return HttpOutcome(response=None, error=missing, attempts=0)
        self.redactor  # noqa: B018 - learn this request's secrets before anything can fail
        policy = self.settings.retry
        total = policy.deadline if budget is None else budget
        started = time.monotonic()
        configured, auth = self._auth_headers()
        # one spelling per name: the plan's headers and the credentials win
        headers = merge_headers(headers, configured) if headers else configured
        attempts = 0

        async def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            left = total - (time.monotonic() - started)
            if left <= 0:
                raise httpx.ReadTimeout("deadline reached")
            response = await self._send(
                method,
                url,
                params=params,
                data=data,
                json=json,
                headers=headers,
                auth=auth,
                seconds=min(self.settings.timeout, left),
            )
            if retryable_status(response.status_code):
                raise RetryableStatus(response)
            return response

        def before_sleep(attempt_number: int, exc: BaseException, wait: float) -> None:
            if span is None:
                return
            cause = (
                f"HTTP {exc.response.status_code}"
                if isinstance(exc, RetryableStatus)
                else describe_error(exc, self.settings.timeout)
            )
            span.add_event(
                "gatekeeper.retry",
                {
                    "gatekeeper.attempt": attempt_number,
                    "gatekeeper.cause": cause,
                    "gatekeeper.wait_s": float(wait),
                },
            )

        # The retry loop, written out: tenacity's AsyncRetrying cost more CPU per
        # request (inspect calls on every attempt) than the rest of this method.
        # Stops after ``policy.attempts`` attempts, or when the next wait would end
        # past the budget (tenacity's stop_before_delay); only retryable failures.
        backoff = BackoffWait(policy)
        try:
            async with asyncio.timeout(max(total, 0.001)):
                while True:
                    try:
                        response = await attempt()
                        break
                    except Exception as exc:
                        if attempts >= policy.attempts or not retryable(exc):
                            raise
                        wait = backoff.seconds(attempts, exc)
                        if time.monotonic() - started + wait >= total:
                            raise
                        before_sleep(attempts, exc, wait)
                        await self._sleep(wait)
        except TimeoutError:
            shown = format_duration(timedelta(seconds=total))
            return HttpOutcome(
                response=None,
                error=f"timed out after {shown} (the deadline of the whole request)",
                attempts=attempts,
            )
        except RetryableStatus as exc:
            return HttpOutcome(response=exc.response, error=None, attempts=attempts)
        except httpx.TransportError as exc:
            timeout = min(self.settings.timeout, total)
            return HttpOutcome(response=None, error=describe_error(exc, timeout), attempts=attempts)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # e.g. a bad URL after rendering
            return HttpOutcome(
                response=None, error=f"request failed ({type(exc).__name__})", attempts=attempts
            )
        except UnicodeEncodeError:  # httpx sends header values as ASCII only
            return HttpOutcome(
                response=None,
                error="request failed: a header or credential holds non-ASCII characters",
                attempts=attempts,
            )
        return HttpOutcome(response=response, error=None, attempts=attempts)


class HttpSource:
    """What every HTTP-backed source shares: a name, its settings, and one resilient
    client it owns (or the injected one), closed by :meth:`aclose`."""

    kind = ""

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
        self.name = name
        self.settings = settings
        self._tracer_provider = tracer_provider
        self._http = ResilientHttp(settings, env=env, client=client, sleep=sleep, redactor=redactor)

    def __repr__(self) -> str:
        # The URL is safe to show: credentials in URLs are refused by http_settings.
        return f"{type(self).__name__}(name={self.name!r}, url={self.settings.url!r})"

    @property
    def redactor(self) -> Redactor:
        """What masks this source's secrets (the run's redactor when one was given)."""
        return self._http.redactor

    def clean(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A measurement's fields with every text a server could have put in them
        (reason, warnings, labels) redacted and cut short, and the query redacted."""
        scrub = self._http.scrub
        out = dict(fields)
        if out.get("reason") is not None:
            out["reason"] = scrub(out["reason"])
        if out.get("query"):
            out["query"] = self.redactor.redact(out["query"])
        for key in ("warnings", "labels"):
            if out.get(key):
                out[key] = tuple(scrub(str(item)) for item in out[key])
        return out

    async def aclose(self) -> None:
        await self._http.aclose()


@contextmanager
def source_span(kind: str, name: str, query: Query, provider: Any = None) -> Iterator[Span]:
    """One span per source query: ``gatekeeper.source.query``, low-cardinality name,
    details in ``gatekeeper.*`` attributes (never a secret, never the raw response).
    ``provider`` is an OpenTelemetry tracer provider (default: the global one)."""
    from .._telemetry import get_tracer  # noqa: PLC0415 - keep telemetry off the import path

    with get_tracer(provider).start_as_current_span(
        "gatekeeper.source.query",
        attributes={
            "gatekeeper.source.type": kind,
            "gatekeeper.source": name,
            "gatekeeper.metric": query.metric,
            "gatekeeper.variant": query.variant,
        },
    ) as span:
        yield span


def unix_time(at: datetime) -> str:
    """A timestamp as Prometheus takes it (unix seconds); naive times are UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{at.timestamp():.3f}"
