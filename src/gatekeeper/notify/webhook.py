"""``type = "webhook"``: the message as JSON (schema ``gatekeeper.notification/1``)
POSTed to a URL. See ``docs/notify/webhook.md``.

Hand-written on httpx (already a dependency) rather than through apprise: apprise's
JSON notifier posts its own envelope (title/message/type), which cannot carry the
structured, versioned payload a receiver parses, and reports a failed attempt as a
bare ``False`` where the journal needs the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from .._options import Options
from ..exceptions import ConfigError
from .base import DeliveryError, NotificationEvent, env_value

__all__ = ["WebhookNotifier", "create", "url_options"]

# HTTP answers another attempt may fix: timeouts, too early, too many, server errors.
TRANSIENT_STATUS = frozenset({408, 425, 429})


def check_url(url: str, *, key: str) -> None:
    """http(s) only, and no credentials in the URL (checked first, so a message
    never echoes a password)."""
    try:
        parts = urlsplit(url)
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        raise ConfigError("not a valid URL", key=key) from None
    if has_credentials or "@" in parts.netloc:
        raise ConfigError(
            "credentials do not belong in the URL: put the whole URL in url_env", key=key
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"expected an http:// or https:// URL, got {url!r}", key=key)


def _env_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            "expected the NAME of an environment variable (the secret itself never goes "
            "in the plan)",
            key=key,
        )
    return value


def url_options(opts: Options) -> tuple[str | None, str | None]:
    """``url`` or ``url_env`` (exactly one): the URL itself, or the name of the
    environment variable that holds it (for URLs that are secrets, like Slack's)."""
    url = opts.text("url")
    url_env = opts.raw("url_env")
    if (url is None) == (url_env is None):
        raise ConfigError("give exactly one of url and url_env", key="url")
    if url is not None:
        check_url(url, key="url")
        return url, None
    return None, _env_name(url_env, "url_env")


class WebhookNotifier:
    """POSTs a JSON body to a URL; 2xx is delivered, anything else a failure."""

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        url_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        headers_env: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        body: Callable[[NotificationEvent], Any] | None = None,
    ) -> None:
        if (url is None) == (url_env is None):
            raise ValueError("give exactly one of url and url_env")
        self.name = name
        self._url = url
        self._url_env = url_env
        self._headers = dict(headers or {})
        self._headers_env = dict(headers_env or {})
        self._env = env if env is not None else {}
        self._owns_client = client is None
        self._client = client or httpx.Client(follow_redirects=False)
        self._body = body or NotificationEvent.to_json

    def __repr__(self) -> str:
        target = self._url if self._url is not None else f"${self._url_env}"
        return f"{type(self).__name__}({self.name!r}, {target!r})"

    def secret_env_names(self) -> tuple[str, ...]:
        """The environment variables whose values must be redacted."""
        names = [self._url_env] if self._url_env else []
        return (*names, *self._headers_env.values())

    def _target(self) -> str:
        if self._url is not None:
            return self._url
        assert self._url_env is not None
        url = env_value(self._env, self._url_env, "the URL")
        try:
            check_url(url, key="url_env")
        except ConfigError as exc:
            raise DeliveryError(
                f"environment variable {self._url_env}: {exc.message}", transient=False
            ) from None
        return url

    def send(self, event: NotificationEvent, *, timeout: float) -> None:
        url = self._target()
        headers = {"Content-Type": "application/json", "User-Agent": "gatekeeper"}
        headers.update(self._headers)
        for header, env_name in self._headers_env.items():
            headers[header] = env_value(self._env, env_name, f"header {header}")
        content = json.dumps(self._body(event), ensure_ascii=False).encode()
        try:
            response = self._client.post(
                url, content=content, headers=headers, timeout=httpx.Timeout(timeout)
            )
        except httpx.TimeoutException:
            raise DeliveryError(f"timed out after {timeout:g}s", transient=True) from None
        except httpx.TransportError as exc:
            raise DeliveryError(_transport_reason(exc), transient=True) from None
        if response.is_success:
            return
        status = response.status_code
        detail = response.text.strip().replace("\n", " ")[:200]
        raise DeliveryError(
            f"HTTP {status} {response.reason_phrase}" + (f": {detail}" if detail else ""),
            transient=status in TRANSIENT_STATUS or status >= 500,
        )

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


def _transport_reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return f"{type(exc).__name__}: {text}"


def header_options(opts: Options) -> tuple[dict[str, str], dict[str, str]]:
    """``headers`` (plain values) and ``headers_env`` (header → environment variable)."""
    headers = {}
    for header, value in opts.table("headers").items():
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", key=f"headers.{header}")
        headers[header] = value
    headers_env = {
        header: _env_name(value, f"headers_env.{header}")
        for header, value in opts.table("headers_env").items()
    }
    return headers, headers_env


def create(name: str, options: Mapping[str, Any], env: Mapping[str, str]) -> WebhookNotifier:
    """Build from a ``[notify.NAME]`` table's type options (no I/O)."""
    opts = Options(options)
    url, url_env = url_options(opts)
    headers, headers_env = header_options(opts)
    opts.done()
    return WebhookNotifier(
        name, url=url, url_env=url_env, headers=headers, headers_env=headers_env, env=env
    )
