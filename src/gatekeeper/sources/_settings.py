"""The connection options every HTTP source shares (``url``, timeouts, retries,
headers, auth by environment variable names, TLS), read from a source's table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._httpbase import SECRET_HEADERS, check_url
from .._options import Options
from ..exceptions import ConfigError
from ._retry import RetryPolicy

__all__ = ["SECRET_HEADERS", "HttpSettings", "check_url", "http_settings"]


#: Headers whose value is a credential: refused in plain ``headers``.
@attrs.frozen(kw_only=True)
class HttpSettings:
    """The connection part of a source's options (no secret values, only names)."""

    url: str
    timeout: float = 5.0
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    secret_headers_env: Mapping[str, str] = attrs.field(factory=dict)
    bearer_token_env: str | None = None
    basic_username_env: str | None = None
    basic_password_env: str | None = None
    tls_verify: bool = True
    ca_bundle: str | None = None


def _env_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            "expected the NAME of an environment variable (the secret itself never goes "
            "in the plan)",
            key=key,
        )
    return value


def http_settings(opts: Options, *, url_required: bool = True) -> HttpSettings:
    """Read the shared connection options from a source's table.

    Keys: ``url``, ``timeout`` (per request, default 5s), ``attempts`` (default 3),
    ``backoff`` (first wait, default 0.2s), ``max_backoff`` (5s), ``deadline`` (one
    query with its retries, 30s), ``max_retry_after`` (30s), ``headers`` (a table of
    plain values), ``headers_env`` (header name → environment variable holding the
    value), ``bearer_token_env``, ``basic_auth = {username_env, password_env}``,
    ``tls_verify`` (default true), ``ca_bundle`` (a PEM file).
    """
    url = opts.required_text("url") if url_required else (opts.text("url") or "")
    if url:
        check_url(url, key="url")
    attempts = opts.integer("attempts", 3)
    if attempts is None or attempts < 1:
        raise ConfigError("must be at least 1", key="attempts")
    retry = RetryPolicy(
        attempts=attempts,
        backoff=opts.seconds("backoff", 0.2),
        max_backoff=opts.seconds("max_backoff", 5.0),
        deadline=opts.seconds("deadline", 30.0),
        max_retry_after=opts.seconds("max_retry_after", 30.0),
    )
    headers = opts.table("headers")
    for name, value in headers.items():
        if str(name).lower() in SECRET_HEADERS:
            # the value would sit in the plan and in every copy of it: say where it goes
            raise ConfigError(
                "secrets do not belong in the plan: use headers_env (header name → the "
                "NAME of an environment variable), bearer_token_env or basic_auth",
                key=f"headers.{name}",
            )
        if not isinstance(value, str):
            raise ConfigError(
                f"expected a string, got {type(value).__name__}", key=f"headers.{name}"
            )
    secret_headers = {
        name: _env_name(value, f"headers_env.{name}")
        for name, value in opts.table("headers_env").items()
    }
    bearer = opts.raw("bearer_token_env")
    basic = opts.table("basic_auth")
    username_env = password_env = None
    if basic:
        unknown = sorted(set(basic) - {"username_env", "password_env"})
        if unknown:
            raise ConfigError(
                "unknown key (known: password_env, username_env)", key=f"basic_auth.{unknown[0]}"
            )
        username_env = _env_name(basic.get("username_env"), "basic_auth.username_env")
        password_env = _env_name(basic.get("password_env"), "basic_auth.password_env")
    if bearer is not None and basic:
        raise ConfigError("use either bearer_token_env or basic_auth, not both", key="basic_auth")
    return HttpSettings(
        url=url.rstrip("/"),
        timeout=opts.seconds("timeout", 5.0),
        retry=retry,
        headers={str(k): str(v) for k, v in headers.items()},
        secret_headers_env=secret_headers,
        bearer_token_env=None if bearer is None else _env_name(bearer, "bearer_token_env"),
        basic_username_env=username_env,
        basic_password_env=password_env,
        tls_verify=opts.flag("tls_verify", True),
        ca_bundle=opts.text("ca_bundle"),
    )
