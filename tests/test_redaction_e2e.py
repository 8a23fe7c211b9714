"""Secrets stay secret end to end (promise 10): no form of any planted secret in any
output of a real run.

Secrets of awkward shapes (quotes, a newline, ``/``, ``+``, ``=``, unicode) sit
behind every source type (prometheus with a bearer token, alertmanager with basic
auth, http-json with a secret header) and every backend that reads one (http with a
bearer token, command with ``secrets_env``), plus the PostgreSQL password. Every
server on 127.0.0.1 echoes the credentials back in its error answers, so every
error path is taken. The outputs scanned: the console of ``gatekeeper run``,
``status``, ``history`` and ``history --json``, the journal's bytes (SQLite file and
PostgreSQL rows) and every span and span event of an OpenTelemetry SDK provider.
Each is searched for each secret in each encoding the leak test of the redactor
knows (raw, base64, base64url, JSON, URL-encoded three ways, repr, ascii, bytes repr).
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import gatekeeper
from gatekeeper._cli import main
from realservers.postgres import PostgresServer
from test_redact import encodings
from test_redact_sources import EchoServer, spans_text

SECRETS = {
    "PROM_TOKEN": "prom-\"quoted'-tok/en+=",
    "AM_USER": "gk-alert-user",
    "AM_PASS": "am-p@ss:w/o+rd==",
    "KPI_KEY": "kpi-key/with+plus=and=",
    "ROUTER_TOKEN": 'router/"token"+=',
    "KUBE_TOKEN": "kube\ntoken-\u00fcn\u00efc\u00f8d\u00e9-\u2713",
}
# What must never appear (the user name alone is not a secret; user:pass is).
PLANTED = [
    SECRETS["PROM_TOKEN"],
    SECRETS["AM_PASS"],
    f"{SECRETS['AM_USER']}:{SECRETS['AM_PASS']}",
    SECRETS["KPI_KEY"],
    SECRETS["ROUTER_TOKEN"],
    SECRETS["KUBE_TOKEN"],
]


def _serve(server: EchoServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return thread


@pytest.fixture(scope="module")
def echoes() -> Iterator[tuple[EchoServer, EchoServer]]:
    """Two echoing servers: one answering as Prometheus does, one with a JSON body."""
    prom, other = EchoServer(), EchoServer()
    prom.mode, other.mode = "prometheus", "json"
    prom.status = other.status = 401
    threads = [_serve(prom), _serve(other)]
    yield prom, other
    for server, thread in zip((prom, other), threads, strict=True):
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _plan(tmp_path: Path, prom: str, other: str, traffic: str) -> Path:
    path = tmp_path / "gates.toml"
    path.write_text(
        f"""
[plan]
name = "leaky"

[sources.prom]
type = "prometheus"
url = "{prom}"
bearer_token_env = "PROM_TOKEN"
attempts = 1
deadline = "3s"

[sources.alerts]
type = "alertmanager"
url = "{other}"
basic_auth = {{ username_env = "AM_USER", password_env = "AM_PASS" }}
attempts = 1

[sources.kpi]
type = "http-json"
url = "{other}"
headers_env = {{ X-Api-Key = "KPI_KEY" }}
path = "$.value"
attempts = 1

[metrics.error_rate]
source = "prom"
query = 'sum(rate(errors{{version="{{{{variant}}}}"}}[1m]))'

[metrics.incidents]
source = "alerts"
query = 'severity="critical"'

[metrics.orders]
source = "kpi"

{traffic}

[policy]
on_inconclusive = "fail"

[[phases]]
name = "canary"
traffic = 5
checkpoints = ["1s"]
gate = ["error_rate < 1%", "incidents == 0", "orders > 0"]
"""
    )
    return path


def _traffic(kind: str, tmp_path: Path, other: str) -> str:
    if kind == "file":
        return '[traffic]\ntype = "file"\npath = "split.json"'
    if kind == "http":
        return (
            f'[traffic]\ntype = "http"\nurl = "{other}/split"\n'
            'bearer_token_env = "ROUTER_TOKEN"\nattempts = 1'
        )
    script = tmp_path / "kube.sh"
    script.write_text('#!/bin/sh\necho "using token $KUBE_TOKEN" >&2\nexit 1\n')
    script.chmod(0o755)
    return (
        f'[traffic]\ntype = "command"\nset = ["{script}", "{{canary}}"]\n'
        f'get = ["{script}"]\nsecrets_env = ["KUBE_TOKEN"]'
    )


class Scan:
    """Every output of the test, scanned for every planted secret in every encoding."""

    def __init__(self) -> None:
        self.outputs: dict[str, str] = {}

    def add(self, name: str, text: str) -> None:
        self.outputs[name] = text

    def leaks(self) -> list[str]:
        found = []
        for output, text in self.outputs.items():
            for secret in PLANTED:
                for encoding, form in encodings(secret).items():
                    if form and form in text:
                        found.append(f"{output}: {secret!r} as {encoding}")
        return found

    def checked(self) -> int:
        return len(self.outputs) * len(PLANTED) * len(encodings(PLANTED[0]))


def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEKEEPER_STORE", raising=False)


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def _run_id(plan: Path, store: str) -> str:
    _code, text = _cli("status", "--plan", str(plan), "--store", store)
    for word in text.split():
        if len(word) >= 8 and word.replace("-", "").isalnum() and word != "running":
            return word.strip(":,")
    raise AssertionError(f"no run id in status output: {text!r}")


def _cli_outputs(scan: Scan, label: str, plan: Path, store: str) -> None:
    code, text = _cli("run", str(plan), "--store", store)
    scan.add(f"{label}: run console (exit {code})", text)
    _, status = _cli("status", "--plan", str(plan), "--store", store)
    scan.add(f"{label}: status", status)
    run_id = _run_id(plan, store)
    _, history = _cli("history", run_id, "--plan", str(plan), "--store", store)
    scan.add(f"{label}: history", history)
    _, history_json = _cli("history", run_id, "--plan", str(plan), "--store", store, "--json")
    scan.add(f"{label}: history --json", history_json)
    assert history_json.strip(), "history --json printed nothing"


@pytest.mark.parametrize("traffic", ["file", "http", "command"])
def test_cli_outputs_and_sqlite_journal_hold_no_secret(
    echoes: tuple[EchoServer, EchoServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    traffic: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``run``, ``status``, ``history`` (text and JSON) and the SQLite journal's
    bytes: 0 hits for every secret in every encoding."""
    _env(monkeypatch)
    prom, other = echoes
    plan = _plan(tmp_path, prom.url, other.url, _traffic(traffic, tmp_path, other.url))
    journal = tmp_path / "journal.sqlite3"
    scan = Scan()
    _cli_outputs(scan, traffic, plan, str(journal))
    captured = capsys.readouterr()
    scan.add(f"{traffic}: stdout/stderr", captured.out + captured.err)
    raw = journal.read_bytes()
    for wal in tmp_path.glob("journal.sqlite3-*"):
        raw += wal.read_bytes()
    scan.add(f"{traffic}: sqlite file", raw.decode("utf-8", "replace"))
    with sqlite3.connect(journal) as conn:
        rows = [
            json.dumps(row, default=str)
            for table in ("runs", "events")
            for row in conn.execute(f"SELECT * FROM {_table(conn, table)}")
        ]
    scan.add(f"{traffic}: sqlite rows", "\n".join(rows))
    print(f"e2e {traffic}: {scan.checked()} checks, {len(scan.leaks())} leaks")
    if traffic == "file":  # the error paths were taken, and masked, not skipped
        assert "***" in scan.outputs[f"{traffic}: history --json"]
    assert [] == scan.leaks()


def _table(conn: Any, suffix: str) -> str:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for name in names:
        if name.endswith(suffix):
            return str(name)
    raise AssertionError(f"no *{suffix} table in {names}")


@pytest.mark.servers
def test_postgres_journal_holds_no_secret(
    echoes: tuple[EchoServer, EchoServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
) -> None:
    """The same run journaled in PostgreSQL (its password from PGPASSWORD, planted
    too): every row of every gatekeeper table, 0 hits."""
    _env(monkeypatch)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    prom, other = echoes
    plan = _plan(tmp_path, prom.url, other.url, _traffic("http", tmp_path, other.url))
    url = postgres_server.create_database()
    scan = Scan()
    try:
        _cli_outputs(scan, "postgres", plan, url)
        with psycopg.connect(url, password=postgres_server.password) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE tablename LIKE 'gatekeeper_%'"
                )
            ]
            rows = [
                str(row[0])
                for table in tables
                for row in conn.execute(f"SELECT row_to_json(t)::text FROM {table} t")
            ]
        assert rows
        scan.add("postgres rows", "\n".join(rows))
    finally:
        postgres_server.drop_database(url)
    planted = [*PLANTED, postgres_server.password]
    found = [
        f"{name}: {secret!r}/{enc}"
        for name, text in scan.outputs.items()
        for secret in planted
        for enc, form in encodings(secret).items()
        if form and form in text
    ]
    checks = len(scan.outputs) * len(planted) * len(encodings(planted[0]))
    print(f"e2e postgres: {checks} checks, {len(found)} leaks")
    assert [] == found


@pytest.mark.parametrize("traffic", ["file", "http", "command"])
def test_spans_hold_no_secret(
    echoes: tuple[EchoServer, EchoServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    traffic: str,
) -> None:
    """A library run with an SDK tracer provider: every span's attributes and events
    (``gatekeeper.problem``, reasons, errors), 0 hits."""
    _env(monkeypatch)
    prom, other = echoes
    plan = gatekeeper.load_plan(
        _plan(tmp_path, prom.url, other.url, _traffic(traffic, tmp_path, other.url))
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rollout = gatekeeper.Rollout(
        plan, store=str(tmp_path / "spans.sqlite3"), tracer_provider=provider
    )
    try:
        result = rollout.run_sync()
    except gatekeeper.GatekeeperError as exc:
        error = str(exc)
    else:
        error = repr(result)
    scan = Scan()
    scan.add("spans", spans_text(exporter))
    scan.add("exception", error)
    if traffic == "file":  # the run's own spans are there
        assert exporter.get_finished_spans(), error
    print(f"e2e spans {traffic}: {scan.checked()} checks, {len(scan.leaks())} leaks")
    assert [] == scan.leaks()


def test_source_spans_reach_the_injected_provider_masked(
    echoes: tuple[EchoServer, EchoServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sources' own spans (``gatekeeper.source.query`` with ``gatekeeper.problem``,
    the echoed error, masked) reach the provider the run was given. Today the engine
    builds sources without it (a factory gets only ``PluginContext``), so they go to
    the global provider and this scan cannot see them: the lead's wiring passes the
    run's ``tracer_provider`` (and its redactor) through the context."""
    _env(monkeypatch)
    prom, other = echoes
    plan = gatekeeper.load_plan(
        _plan(tmp_path, prom.url, other.url, _traffic("file", tmp_path, other.url))
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gatekeeper.Rollout(plan, store=str(tmp_path / "s.sqlite3"), tracer_provider=provider).run_sync()
    text = spans_text(exporter)
    scan = Scan()
    scan.add("spans", text)
    assert [] == scan.leaks()
    assert "gatekeeper.source.query" in text
    assert "gatekeeper.problem=" in text
    assert "***" in text
