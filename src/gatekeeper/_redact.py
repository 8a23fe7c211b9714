"""One redactor for every string bound for the console, the journal, JSON, spans,
logs and exception messages.

A :class:`Redactor` knows the secrets of a run (values, never names) and masks
each of them as ``***`` in every form it may take on the way out: raw, base64
(standard and URL-safe, at any byte alignment, so a secret inside a longer
encoded value such as ``Basic base64(user:pass)`` is caught too), JSON-escaped,
URL-encoded (``quote``, ``quote(safe="")`` and ``quote_plus``, upper- and
lower-case hex), Python ``repr``/``ascii`` (of the string and of its UTF-8
bytes, as httpx shows a bad header value) and one level of JSON/repr of those.
All forms of all secrets go into one compiled alternation, longest first.

Short secrets: a value of 1 to 3 characters cannot be masked without masking
ordinary text ("1", "ok", "GET"), so it is refused: :meth:`Redactor.add` raises
:class:`ShortSecretError` and :func:`secrets_of` raises :class:`ConfigError`
naming the environment variable. An empty value is nothing to mask (an unset
variable is the caller's "not set" error) and is ignored.

:func:`secrets_of` walks a plan for every option that names a secret (the
registry :data:`SECRET_OPTION_KEYS`) and reads the values from ``env``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

import attrs

from .exceptions import ConfigError

__all__ = [
    "ENV_SECRETS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "SECRET_OPTION_KEYS",
    "Redactor",
    "ShortSecretError",
    "clip",
    "secret_forms",
    "secrets_of",
    "shown",
]

MASK = "***"
MIN_SECRET_LENGTH = 4

#: Every plan option that names a secret, and how: ``"name"`` (an environment
#: variable holding the secret), ``"table"`` (a table whose values are such names,
#: e.g. ``headers_env = {X-Api-Key = "API_KEY"}``), ``"list"`` (a list of names),
#: ``"basic"`` (``{username_env, password_env}``: the password, and ``user:pass``
#: whose base64 goes over the wire), ``"url"`` (a variable holding a URL that is
#: a secret as a whole, and its password part), ``"dsn"`` (a connection URL whose
#: password part is secret, and the whole URL only when it has one).
SECRET_OPTION_KEYS: Mapping[str, str] = {
    "api_key_env": "name",
    "basic_auth": "basic",
    "bearer_token_env": "name",
    "dsn_env": "dsn",
    "headers_env": "table",
    "password_env": "name",
    "secret_env": "name",
    "secrets_env": "list",
    "token_env": "name",
    "url_env": "url",
    "webhook_url_env": "url",
}

#: Environment variables that hold secrets whatever the plan says: libpq's password
#: and the journal URL (whose password part is secret).
ENV_SECRETS: Mapping[str, str] = {"PGPASSWORD": "name", "GATEKEEPER_STORE": "dsn"}

_MAX_DEPTH = 64


class ShortSecretError(ValueError):
    """A secret too short to mask without masking ordinary text."""


def _b64_fragments(raw: bytes) -> set[str]:
    """The part of ``raw``'s base64 that is the same wherever ``raw`` sits in a longer
    encoded value: for each of the three byte alignments, the characters whose six
    bits all come from ``raw`` (plus the plain, padded encoding of ``raw`` alone)."""
    found = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    n = len(raw)
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw + b"\0\0").decode().rstrip("=")
        first = -(-8 * shift // 6)  # first char whose bits start inside raw
        last = (8 * (shift + n)) // 6  # chars before this end inside raw
        piece = encoded[first:last]
        if len(piece) >= MIN_SECRET_LENGTH:
            found.add(piece)
            found.add(piece.replace("+", "-").replace("/", "_"))
    return found


def _repr_inner(value: str | bytes) -> set[str]:
    """What ``repr`` shows between the quotes, for either choice of quote."""
    forms = {repr(value)[1:-1] if isinstance(value, str) else repr(value)[2:-1]}
    # with a '"' in it, repr picks single quotes and escapes "'": the other variant
    if isinstance(value, str):
        forms.add(repr('"' + value)[2:-1])
        forms.add(ascii(value)[1:-1])
        forms.add(ascii('"' + value)[2:-1])
    else:
        forms.add(repr(b'"' + value)[3:-1])
    return forms


def _json_inner(value: str) -> set[str]:
    return {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


def _url_forms(value: str) -> set[str]:
    forms = {quote(value, safe=""), quote(value), quote_plus(value)}
    return forms | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in forms}


def secret_forms(secret: str) -> frozenset[str]:
    """Every form of ``secret`` the redactor masks (tests scan output for these)."""
    raw = secret.encode("utf-8", "surrogatepass")
    first = {secret} | _json_inner(secret) | _repr_inner(secret) | _url_forms(secret)
    first |= _repr_inner(raw)
    first |= _b64_fragments(raw)
    forms = set(first)
    for form in first:  # one more level: a JSON document inside a repr, and so on
        forms |= _json_inner(form) | _repr_inner(form)
    return frozenset(f for f in forms if len(f) >= MIN_SECRET_LENGTH)


@attrs.define(kw_only=True)
class Redactor:
    """Masks known secrets in text and data. Build it with :meth:`from_secrets`;
    :meth:`add` learns one more. ``repr`` never shows a secret."""

    _secrets: set[str] = attrs.field(factory=set, repr=False, alias="secrets")
    _pattern: re.Pattern[str] | None = attrs.field(default=None, repr=False, init=False)
    # sources (event loop) and backends (worker threads) share one redactor
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, init=False, eq=False)

    @classmethod
    def from_secrets(cls, values: Iterable[str]) -> Redactor:
        """A redactor for ``values`` (empty ones ignored, 1-3 characters refused)."""
        redactor = cls()
        for value in values:
            redactor.add(value)
        return redactor

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on. Raises :class:`ShortSecretError` for 1 to 3
        characters; an empty string is ignored."""
        if not secret or secret in self._secrets:
            return
        if len(secret) < MIN_SECRET_LENGTH:
            raise ShortSecretError(
                f"a secret of {len(secret)} character(s) is too short to mask in output "
                f"(at least {MIN_SECRET_LENGTH})"
            )
        with self._lock:
            self._secrets.add(secret)
            self._pattern = None

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._secrets:
            with self._lock:
                forms: set[str] = set()
                for secret in self._secrets:
                    forms |= secret_forms(secret)
                ordered = sorted(forms, key=lambda f: (-len(f), f))
                pattern = self._pattern = re.compile("|".join(map(re.escape, ordered)))
        return pattern

    def redact(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``***``."""
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def redact_data(self, obj: Any, *, _depth: int = 0) -> Any:
        """``obj`` with every string in it redacted: dict keys and values, list, tuple
        and set items, recursively (other values are returned as they are)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if not self or _depth > _MAX_DEPTH:
            return obj
        depth = _depth + 1
        if isinstance(obj, bytes):
            return self.redact(obj.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            )
        if isinstance(obj, Mapping):
            return {
                self.redact_data(k, _depth=depth): self.redact_data(v, _depth=depth)
                for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [self.redact_data(v, _depth=depth) for v in obj]
        if isinstance(obj, tuple):
            items = (self.redact_data(v, _depth=depth) for v in obj)
            return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
        if isinstance(obj, set | frozenset):
            return type(obj)(self.redact_data(v, _depth=depth) for v in obj)
        return obj


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for echoing what a plan or a
    server gave in a message (a megabyte value must not become a megabyte error)."""
    return clip(repr(value), limit)


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis says it was cut). Redact
    first, then clip: a cut through a secret would leave a prefix unmasked."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _env_names(options: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """``(key path, how, env name)`` for each secret-naming option in ``options``."""
    for key, value in options.items():
        how = SECRET_OPTION_KEYS.get(str(key))
        if how in ("name", "url", "dsn") and isinstance(value, str):
            yield str(key), how, value
        elif how == "table" and isinstance(value, Mapping):
            for header, name in value.items():
                if isinstance(name, str):
                    yield f"{key}.{header}", "name", name
        elif how == "list" and isinstance(value, list | tuple):
            for index, name in enumerate(value):
                if isinstance(name, str):
                    yield f"{key}[{index}]", "name", name
        elif how == "basic" and isinstance(value, Mapping):
            user, password = value.get("username_env"), value.get("password_env")
            if isinstance(password, str):
                yield f"{key}.password_env", "name", password
            if isinstance(user, str) and isinstance(password, str):
                yield f"{key}", "basic", f"{user}\0{password}"


def _walk(obj: Any, path: str, depth: int = 0) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping inside ``obj`` (attrs instances, mappings, lists), with its path."""
    if depth > _MAX_DEPTH:
        return
    if attrs.has(type(obj)):
        for field in attrs.fields(type(obj)):
            yield from _walk(getattr(obj, field.name), f"{path}.{field.name}", depth + 1)
    elif isinstance(obj, Mapping):
        yield path, obj
        for key, value in obj.items():
            yield from _walk(value, f"{path}.{key}", depth + 1)
    elif isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            yield from _walk(value, f"{path}[{index}]", depth + 1)


def _url_secrets(url: str, *, whole: bool) -> list[str]:
    """A URL's password (as written and decoded), and the URL itself when it is a
    secret as a whole or carries a password."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return [url]
    if not password:
        return [url] if whole else []
    return [url, password, unquote(password)]


def secrets_of(plan: Any, env: Mapping[str, str], *, store: str | None = None) -> list[str]:
    """Every secret value ``plan`` names (through :data:`SECRET_OPTION_KEYS`, anywhere
    in it), plus those of :data:`ENV_SECRETS` and the password of ``store`` (a
    journal URL), read from ``env``; unset variables are skipped.

    Raises :class:`ConfigError` (key path and variable name, never the value) for a
    value of 1 to 3 characters, which cannot be masked safely.
    """
    found: list[str] = []

    def take(key: str, how: str, name: str) -> None:
        if how == "basic":
            user_env, password_env = name.split("\0")
            user, password = env.get(user_env), env.get(password_env)
            if user and password:
                found.append(f"{user}:{password}")
            return
        value = env.get(name)
        if not value:
            return
        if how in ("url", "dsn"):
            parts = _url_secrets(value, whole=how == "url")
            if any(0 < len(p) < MIN_SECRET_LENGTH for p in parts):
                raise ConfigError(
                    f"the URL in environment variable {name} has a password shorter than "
                    f"{MIN_SECRET_LENGTH} characters, too short to be masked in output",
                    key=key,
                )
            found.extend(parts)
            return
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"environment variable {name} holds {len(value)} character(s): a secret "
                f"must have at least {MIN_SECRET_LENGTH} to be masked in output",
                key=key,
            )
        found.append(value)

    for path, table in _walk(plan, "plan"):
        for key, how, name in _env_names(table):
            take(f"{path.removeprefix('plan.')}.{key}", how, name)
    for name, how in ENV_SECRETS.items():
        take(name, how, name)
    if store:
        found.extend(_url_secrets(store, whole=False))
    unique = dict.fromkeys(s for s in found if len(s) >= MIN_SECRET_LENGTH)
    return list(unique)
