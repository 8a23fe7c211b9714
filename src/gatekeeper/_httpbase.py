"""The HTTP rules every gatekeeper HTTP client shares: the metric sources (async,
``sources/_http.py``) and the http traffic backend (sync, ``traffic/http.py``).

Which URLs are accepted (http(s), never credentials in them), which headers never
belong in a plan, when a secret read from the environment may be sent (long enough
to be masked in output, something a header can carry), and which failures are worth
another attempt (transport errors and 408/425/429/5xx — never a certificate that
failed verification, which fails the same way again).
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import httpx

from ._redact import MIN_SECRET_LENGTH, shown
from .exceptions import ConfigError

__all__ = [
    "RETRY_STATUSES",
    "SECRET_HEADERS",
    "RetryableStatus",
    "check_url",
    "retryable",
    "retryable_status",
    "safe_url",
    "secret_problem",
    "tls_failure",
]

RETRY_STATUSES = frozenset({408, 425, 429})

#: Headers whose values are secrets: refused as plain plan values (use the
#: environment: ``headers_env``, ``bearer_token_env``, ``basic_auth``).
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token", "api-key"}
)


def check_url(url: str, *, key: str) -> None:
    """Refuse URLs that are not http(s), and URLs carrying credentials (checked
    first, so a message never echoes a password)."""
    try:
        parts = urlsplit(url)
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        raise ConfigError("not a valid URL", key=key) from None
    if has_credentials or "@" in parts.netloc:
        raise ConfigError(
            "credentials do not belong in the URL: use basic_auth or bearer_token_env", key=key
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        got = shown(safe_url(url))
        raise ConfigError(f"expected an http:// or https:// URL, got {got}", key=key)


def safe_url(url: str) -> str:
    """The URL without its query string and fragment (where tokens sometimes hide)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path


def secret_problem(name: str, value: str | None, *, in_header: bool = True) -> str | None:
    """Why the secret in environment variable ``name`` cannot be sent, or None: not
    set, too short to be masked in output, or not what a header can carry (httpx
    would refuse it and quote it in its error: refuse it first)."""
    if not value:
        return f"environment variable {name} (named in the plan) is not set"
    if len(value) < MIN_SECRET_LENGTH:
        return (
            f"environment variable {name} holds {len(value)} character(s), too short to be "
            f"masked in output (at least {MIN_SECRET_LENGTH}): not sent"
        )
    if in_header and not (value.isascii() and value.isprintable()):
        return (
            f"environment variable {name} holds characters an HTTP header cannot carry "
            "(non-ASCII or control characters such as a newline): not sent"
        )
    return None


def retryable_status(status: int) -> bool:
    """Whether an HTTP status says "try again": 408, 425, 429 and every 5xx."""
    return status in RETRY_STATUSES or status >= 500


class RetryableStatus(Exception):  # noqa: N818 - an internal signal, not an error shown to anyone
    """A response whose status says "try again" (408, 425, 429, 5xx)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


def tls_failure(exc: BaseException) -> bool:
    """Whether a transport error comes from a certificate that failed verification."""
    cause: BaseException | None = exc
    for _ in range(10):  # a bounded walk down the chain of causes
        if cause is None:
            return False
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            cause
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def retryable(exc: BaseException) -> bool:
    """Transport errors and 408/425/429/5xx; a certificate that fails verification
    will fail the same way again, so it is not retried."""
    if isinstance(exc, RetryableStatus):
        return True
    return isinstance(exc, httpx.TransportError) and not tls_failure(exc)
