"""The one redactor: every form of every secret masked, short secrets refused, and
every secret a plan names found."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper import load_plan
from gatekeeper._redact import (
    MASK,
    SECRET_OPTION_KEYS,
    Redactor,
    ShortSecretError,
    clip,
    secret_forms,
    secrets_of,
)
from gatekeeper.exceptions import ConfigError

AWKWARD = [
    "plain-token-value-123",
    "quo\"te's-token",
    "new\nline\r\ttoken",
    "sla/sh+plus=equals==",
    "ünïcødé-tøken-✓-😀",
    "back\\slash\\token",
    "%41percent%2F",
    "<html>&amp;</html>",
]


def encodings(secret: str) -> dict[str, str]:
    """The forms an output may carry a secret in (what the leak scans look for)."""
    raw = secret.encode()
    json_form, repr_form = json.dumps(secret)[1:-1], repr(secret)[1:-1]
    return {
        "json-in-repr": repr(json_form)[1:-1],
        "json-in-json": json.dumps(json_form)[1:-1],
        "repr-in-json": json.dumps(repr_form)[1:-1],
        "raw": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
        "json": json.dumps(secret)[1:-1],
        "json-ascii": json.dumps(secret, ensure_ascii=False)[1:-1],
        "quote": quote(secret, safe=""),
        "quote-path": quote(secret),
        "quote_plus": quote_plus(secret),
        "repr": repr(secret)[1:-1],
        "ascii": ascii(secret)[1:-1],
        "bytes-repr": repr(raw)[2:-1],
    }


@pytest.mark.parametrize("secret", AWKWARD)
def test_every_encoding_is_masked(secret: str) -> None:
    """Each encoding of an awkward secret, embedded in text, comes out as ``***``."""
    redactor = Redactor.from_secrets([secret])
    for name, form in encodings(secret).items():
        out = redactor.redact(f"auth failed for Bearer {form} (retry)")
        assert form not in out, name
        assert MASK in out, name


@pytest.mark.parametrize("secret", AWKWARD)
def test_base64_inside_a_longer_value_is_masked(secret: str) -> None:
    """``Basic base64(user:pass)`` and a token inside any longer base64 blob: masked
    whatever the byte alignment."""
    redactor = Redactor.from_secrets([secret])
    for prefix in (b"", b"u:", b"ab:", b"Bearer "):
        blob = base64.b64encode(prefix + secret.encode() + b"!").decode()
        out = redactor.redact(blob)
        assert MASK in out
        core = base64.b64encode(secret.encode()).decode().rstrip("=")
        assert core not in out


def test_basic_auth_pair_is_masked() -> None:
    """``user:pass`` (what goes over the wire in base64) is masked as a whole."""
    redactor = Redactor.from_secrets(["gkuser:pa:ss/w+rd", "pa:ss/w+rd"])
    header = "Basic " + base64.b64encode(b"gkuser:pa:ss/w+rd").decode()
    assert "Basic ***" == redactor.redact(header)


def test_longest_form_wins() -> None:
    """A secret that contains another is masked whole, not as a half-masked mix."""
    redactor = Redactor.from_secrets(["abcd", "abcdefgh"])
    assert "x *** y" == redactor.redact("x abcdefgh y")


def test_short_secrets_are_refused_and_empty_ones_ignored() -> None:
    """1-3 characters cannot be masked without masking ordinary text: refused."""
    with pytest.raises(ShortSecretError):
        Redactor.from_secrets(["abc"])
    redactor = Redactor.from_secrets(["", "abcd"])
    assert 1 == len(redactor)
    assert "***" == redactor.redact("abcd")


def test_empty_redactor_is_false_and_changes_nothing() -> None:
    """No secrets: falsy, text and data come back unchanged."""
    redactor = Redactor()
    assert not redactor
    assert "text" == redactor.redact("text")
    assert {"a": [1, "b"]} == redactor.redact_data({"a": [1, "b"]})


def test_add_learns_a_secret() -> None:
    """``add`` takes effect on the next call (the compiled pattern is rebuilt)."""
    redactor = Redactor.from_secrets(["first-secret"])
    assert "second-secret" == redactor.redact("second-secret")
    redactor.add("second-secret")
    assert bool(redactor)
    assert "*** ***" == redactor.redact("first-secret second-secret")


def test_redact_data_walks_keys_values_lists_and_tuples() -> None:
    """Nested dicts, lists, tuples, sets and bytes; keys too; other values untouched."""
    redactor = Redactor.from_secrets(["hunter22"])
    data = {
        "hunter22": ["x hunter22", ("hunter22", 3, None)],
        "n": 1.5,
        "s": {"hunter22"},
        "b": b"hunter22",
    }
    assert {
        "***": ["x ***", ("***", 3, None)],
        "n": 1.5,
        "s": {"***"},
        "b": b"***",
    } == redactor.redact_data(data)


def test_repr_never_shows_a_secret() -> None:
    """``repr`` counts secrets, never shows them."""
    assert "hunter22" not in repr(Redactor.from_secrets(["hunter22"]))


def test_clip() -> None:
    """Long text is cut with an ellipsis; short text is unchanged."""
    assert "abc" == clip("abc", 10)
    assert 10 == len(clip("x" * 50, 10))


@given(secret=st.text(min_size=4, max_size=30), before=st.text(max_size=20))
def test_any_secret_is_masked_in_any_context(secret: str, before: str) -> None:
    """Whatever the secret and the text around it, the raw secret never survives."""
    try:
        secret.encode()
    except UnicodeEncodeError:
        return
    redactor = Redactor.from_secrets([secret])
    assert secret not in redactor.redact(before + secret + before)


def test_fast_on_large_text() -> None:
    """One compiled alternation: a megabyte with 20 secrets takes well under a second."""
    redactor = Redactor.from_secrets([f"secret-number-{i:04d}-{'x' * i}" for i in range(20)])
    text = "ordinary log text, nothing to hide. " * 30000
    started = time.perf_counter()
    redactor.redact(text + "secret-number-0003-xxx")
    assert time.perf_counter() - started < 1.0


def test_forms_include_json_repr_and_url() -> None:
    """``secret_forms`` lists what the scanners look for."""
    forms = secret_forms('a"b/c d')
    assert {'a\\"b/c d', "a%22b%2Fc%20d", "a%22b/c%20d", "a%22b%2Fc+d"} <= forms


PLAN = """
[plan]
name = "secrets"
[sources.prom]
type = "prometheus"
url = "http://127.0.0.1:9"
bearer_token_env = "PROM_TOKEN"
headers_env = {X-Api-Key = "PROM_KEY"}
[sources.am]
type = "alertmanager"
url = "http://127.0.0.1:9"
basic_auth = {username_env = "AM_USER", password_env = "AM_PASS"}
[traffic]
type = "http"
url = "http://127.0.0.1:9/split"
bearer_token_env = "ROUTER_TOKEN"
[metrics.up]
source = "prom"
query = "up"
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["1m"]
gate = ["up > 0"]
"""


def test_secrets_of_finds_every_named_secret(tmp_path: Path) -> None:
    """Tokens, secret headers, basic auth (password and user:pass), the router's
    token, PGPASSWORD and the journal URL's password."""
    path = tmp_path / "gates.toml"
    path.write_text(PLAN)
    plan = load_plan(path)
    env = {
        "PROM_TOKEN": "prom-token-1",
        "PROM_KEY": "prom-key-22",
        "AM_USER": "gkuser",
        "AM_PASS": "am-pass-333",
        "ROUTER_TOKEN": "router-tok-4444",
        "PGPASSWORD": "pg-pass-55555",
        "UNRELATED": "not-a-secret",
    }
    found = secrets_of(plan, env, store="postgresql://gk:url%2Fpass@127.0.0.1/db")
    assert {
        "prom-token-1",
        "prom-key-22",
        "am-pass-333",
        "gkuser:am-pass-333",
        "router-tok-4444",
        "pg-pass-55555",
        "url/pass",
        "url%2Fpass",
        "postgresql://gk:url%2Fpass@127.0.0.1/db",
    } == set(found)


def test_secrets_of_refuses_a_short_secret_naming_the_variable(tmp_path: Path) -> None:
    """A 3-character token is a located error naming the variable, not the value."""
    path = tmp_path / "gates.toml"
    path.write_text(PLAN)
    with pytest.raises(ConfigError, match="PROM_TOKEN") as info:
        secrets_of(load_plan(path), {"PROM_TOKEN": "xyz"})
    assert "xyz" not in str(info.value)
    assert "bearer_token_env" in str(info.value)


def test_secrets_of_ignores_unset_variables_and_plain_store_paths(tmp_path: Path) -> None:
    """An unset variable is no secret; a SQLite path in GATEKEEPER_STORE is no secret."""
    path = tmp_path / "gates.toml"
    path.write_text(PLAN)
    assert [] == secrets_of(load_plan(path), {"GATEKEEPER_STORE": "/tmp/j.sqlite3"})


def test_registry_names_the_options_sources_and_backends_read() -> None:
    """Every ``*_env`` option the built-in sources and backends read is registered."""
    assert {"bearer_token_env", "headers_env", "basic_auth", "password_env"} <= set(
        SECRET_OPTION_KEYS
    )


def test_secrets_of_walks_every_table_of_the_plan(tmp_path: Path) -> None:
    """Secret-naming keys anywhere in the plan count: notification channels (a
    webhook URL that is a secret as a whole, an SMTP password) and a command
    backend's ``secrets_env``."""

    path = tmp_path / "gates.toml"
    path.write_text(PLAN)
    plan = attrs.evolve(
        load_plan(path),
        notify={
            "ops": {"type": "slack", "url_env": "SLACK_URL"},
            "mail": {"type": "email", "username_env": "SMTP_USER", "password_env": "SMTP_PASS"},
        },
    )
    plan = attrs.evolve(
        plan,
        traffic=attrs.evolve(plan.traffic, options={"type": "command", "secrets_env": ["KUBE"]}),
    )
    env = {
        "SLACK_URL": "https://hooks.example/T000/B000/XXXX",
        "SMTP_USER": "mailer",
        "SMTP_PASS": "smtp-pass-1",
        "KUBE": "kube-token-2",
    }
    assert {"https://hooks.example/T000/B000/XXXX", "smtp-pass-1", "kube-token-2"} <= set(
        secrets_of(plan, env)
    )
