"""Retries of the HTTP sources: which failures are retried (transport errors and
408/425/429/5xx, never a certificate that failed verification), how long to wait
(exponential backoff with jitter, yielding to a capped ``Retry-After``), and the
short, secret-free reason a transport failure is reported with."""

from __future__ import annotations

import email.utils
import math
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs
import httpx

from .._httpbase import (
    RETRY_STATUSES,
    RetryableStatus,
    retryable,
    retryable_status,
    tls_failure,
)
from .._units import format_duration

if TYPE_CHECKING:
    from .._model import Query

__all__ = [
    "RETRY_STATUSES",
    "BackoffWait",
    "HttpOutcome",
    "RetryPolicy",
    "RetryableStatus",
    "describe_error",
    "query_budget",
    "retryable",
    "retryable_status",
    "status_reason",
    "tls_failure",
]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How often and how long a request is retried.

    ``attempts`` counts the first try; ``deadline`` bounds one query with all its
    retries and waits (a checkpoint's own deadline may shorten it further);
    ``max_retry_after`` caps how long a server's ``Retry-After`` may make us wait.
    """

    attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    backoff: float = 0.2
    max_backoff: float = 5.0
    jitter: float = 0.2
    deadline: float = 30.0
    max_retry_after: float = 30.0


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


class BackoffWait:
    """Exponential backoff with jitter; a ``Retry-After`` (capped) takes precedence."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._cap = policy.max_retry_after

    def seconds(self, attempt_number: int, exc: BaseException | None) -> float:
        """The wait after attempt ``attempt_number`` (1 = the first) failed with ``exc``."""
        if isinstance(exc, RetryableStatus):
            after = _retry_after(exc.response)
            if after is not None:
                return min(after, self._cap)
        # backoff * 2^(n-1), capped, plus up to `jitter` seconds of random spread
        policy = self._policy
        exponential = policy.backoff * 2 ** (attempt_number - 1)
        spread = random.uniform(0, policy.jitter)  # noqa: S311 - jitter, not cryptography
        return float(min(exponential, policy.max_backoff) + spread)


def describe_error(exc: BaseException, timeout: float) -> str:
    """A short reason for a transport failure, without URLs, headers or secrets."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {format_duration(timedelta(seconds=timeout))}"
    if tls_failure(exc):
        return "TLS certificate verification failed"
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return "cannot connect"
    if isinstance(exc, httpx.TransportError):
        return f"transport error ({type(exc).__name__})"
    return f"{type(exc).__name__}"


@attrs.frozen(kw_only=True)
class HttpOutcome:
    """The end of a request with its retries.

    ``response`` is the last response (possibly a 5xx after the last attempt);
    ``error`` says why there is no response (timed out, connection refused, ...);
    ``attempts`` is how many requests were sent.
    """

    response: httpx.Response | None
    error: str | None
    attempts: int

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)

    def attempts_text(self) -> str:
        return f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"

    def failure(self) -> str:
        """Why there is no response: ``connection refused (3 attempts)``."""
        if self.attempts == 0:
            return str(self.error)
        return f"{self.error} ({self.attempts_text()})"


def query_budget(query: Query, policy: RetryPolicy) -> float:
    """Seconds one query may take with its retries: the source's ``deadline``,
    shortened to what is left of the checkpoint (``query.deadline - query.at``).

    Measured from the query's own ``at`` so a simulated clock (a rehearsal of a past
    window) gets the same budget as a live run.
    """
    budget = policy.deadline
    if query.deadline is not None:
        left = (query.deadline - query.at).total_seconds()
        if left > 0:
            # End a little before the checkpoint's deadline, so the caller gets this
            # source's own reason rather than its own time-out racing ours.
            budget = min(budget, left - min(0.25, left * 0.1))
    return budget


def status_reason(outcome: HttpOutcome) -> str:
    """``HTTP 503 after 3 attempts`` for a response that was not a success."""
    assert outcome.response is not None
    return f"HTTP {outcome.response.status_code} after {outcome.attempts_text()}"
