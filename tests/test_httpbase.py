"""The HTTP rules the metric sources and the http traffic backend share."""

from __future__ import annotations

import ssl

import httpx
import pytest

from gatekeeper._httpbase import (
    RetryableStatus,
    check_url,
    retryable,
    retryable_status,
    secret_problem,
)
from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import ConfigError
from gatekeeper.sources import _retry, _settings
from gatekeeper.traffic import http


def test_both_clients_use_the_same_rules() -> None:
    """One layer, not two copies: the sources' names are the shared ones."""
    assert _retry.retryable is retryable
    assert _retry.retryable_status is retryable_status
    assert _settings.check_url is check_url
    assert retryable is vars(http)["retryable"]


@pytest.mark.parametrize(
    ("status", "again"),
    [
        (408, True),
        (425, True),
        (429, True),
        (500, True),
        (503, True),
        (400, False),
        (401, False),
        (404, False),
    ],
)
def test_which_statuses_are_worth_another_attempt(status: int, again: bool) -> None:
    assert again == retryable_status(status)


def test_a_certificate_that_failed_verification_is_not_retried() -> None:
    failed = httpx.ConnectError("handshake")
    failed.__cause__ = ssl.SSLCertVerificationError("CERTIFICATE_VERIFY_FAILED")
    assert not retryable(failed)
    assert retryable(httpx.ConnectError("refused"))
    assert retryable(RetryableStatus(httpx.Response(503)))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "is not set"),
        ("abc", "too short"),
        ("tok\nen-1234", "cannot carry"),
        ("tökén-1234", "cannot carry"),
        ("a-good-token", None),
    ],
)
def test_when_a_secret_may_be_sent(value: str | None, problem: str | None) -> None:
    found = secret_problem("TOKEN", value)
    assert (problem is None) == (found is None)
    if problem is not None:
        assert found is not None and problem in found
        assert value is None or value not in found  # the message never quotes it


def context() -> PluginContext:
    from pathlib import Path  # noqa: PLC0415

    return PluginContext(base_dir=Path("."), env={})


@pytest.mark.parametrize("header", ["Cookie", "X-Api-Key", "Authorization"])
def test_the_http_backend_refuses_secret_headers_like_the_sources(header: str) -> None:
    with pytest.raises(ConfigError) as info:
        http.create({"url": "http://127.0.0.1:1/split", "headers": {header: "x"}}, context())
    assert f"headers.{header}" == info.value.key


def test_the_http_backend_refuses_credentials_in_a_url_like_the_sources() -> None:
    with pytest.raises(ConfigError) as info:
        http.create({"url": "http://user:hunter2@127.0.0.1:1/split"}, context())
    assert "hunter2" not in str(info.value)


def test_a_refused_url_is_echoed_without_its_query_string() -> None:
    """A token in a query string never reaches the message of a refused URL."""
    from gatekeeper._httpbase import check_url  # noqa: PLC0415
    from gatekeeper.exceptions import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as caught:
        check_url("ftp://flags.internal/api?token=hunter2-secret#frag", key="url")
    assert "hunter2" not in str(caught.value)
    assert "ftp://flags.internal/api" in str(caught.value)
