"""PromQL escaping holds for any arg string: a value cannot change the query's shape."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper._model import Query
from gatekeeper._protocols import PluginContext
from gatekeeper.sources.prometheus import (
    create,
    escape_promql_string,
    render_promql,
    unescape_promql_string,
)
from realservers.prometheus import PrometheusLauncher, PrometheusServer, openmetrics_series

# Any text that can travel as UTF-8 (lone surrogates cannot, and are refused).
values = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def _strings_emptied(query: str) -> str:
    """The query with the inside of every quoted string removed (escapes respected)."""
    out, i, quote = [], 0, None
    while i < len(query):
        char = query[i]
        if quote is None:
            out.append(char)
            if char in "\"'`":
                quote = char
        elif char == "\\" and quote != "`":
            i += 1
        elif char == quote:
            out.append(char)
            quote = None
        i += 1
    assert quote is None, f"unterminated string in {query!r}"
    return "".join(out)


def _string_bodies(query: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"""(["'])((?:\\.|(?!\1).)*)\1""", query, re.S)]


@given(value=values)
def test_escaped_value_reads_back_as_itself(value: str) -> None:
    """Unescaping the escaped value gives the value back, for both quote kinds."""
    for quote in "\"'":
        escaped = escape_promql_string(value, quote)
        assert unescape_promql_string(escaped, quote) == value
        assert "\n" not in escaped


@given(value=values)
def test_value_cannot_change_the_query_shape(value: str) -> None:
    """Outside its strings the rendered query is the template, whatever the value;
    inside, each string reads back as the value."""
    template = "sum(rate(http_requests_total{version=\"{{v}}\",path='{{v}}'}[5m])) / 2"
    rendered = render_promql(template, {"v": value})
    assert _strings_emptied(rendered) == template.replace("{{v}}", "")
    bodies = _string_bodies(rendered)
    assert [unescape_promql_string(bodies[0]), unescape_promql_string(bodies[1], "'")] == [
        value,
        value,
    ]


def test_comments_are_left_alone() -> None:
    """A placeholder inside a PromQL comment is not a substitution site."""
    assert render_promql('up # "{{v}}', {"v": "x"}) == 'up # "{{v}}'


@given(value=values)
def test_bare_values_are_plain_tokens_or_refused(value: str) -> None:
    """A value outside any string is accepted only as a name, number or duration."""
    try:
        rendered = render_promql("rate(x[{{w}}])", {"w": value})
    except ValueError:
        return
    inner = rendered[len("rate(x[") : -2]
    assert inner == value
    assert re.fullmatch(r"[A-Za-z0-9_:.]+", inner)


def test_lone_surrogate_is_refused() -> None:
    """A value that cannot be sent as UTF-8 is refused, not mangled."""
    with pytest.raises(ValueError, match="surrogate"):
        escape_promql_string("a\ud800b")


@pytest.fixture(scope="module")
def empty_prometheus(prometheus_launcher: PrometheusLauncher) -> Iterator[PrometheusServer]:
    server = prometheus_launcher.backfilled("# EOF\n")
    yield server
    server.stop()


@pytest.mark.servers
def test_real_prometheus_reads_the_same_string(empty_prometheus: PrometheusServer) -> None:
    """The real PromQL parser reads an escaped arg back as exactly the arg."""
    source = create("prom", {"url": empty_prometheus.url}, PluginContext(base_dir=Path(), env={}))
    found: list[tuple[str, str]] = []

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(value=values)
    def check(value: str) -> None:
        query = Query(
            metric="m", text='"{{v}}"', at=datetime.now(UTC), window=timedelta(0), args={"v": value}
        )

        async def go() -> str:
            try:
                # A string expression's result is ["time", "the string"].
                outcome = await source._http.request(
                    "POST",
                    empty_prometheus.url + "/api/v1/query",
                    data={"query": render_promql(query.text, query.placeholders())},
                )
                assert outcome.response is not None
                body = outcome.response.json()
                assert body["status"] == "success", body
                return str(body["data"]["result"][1])
            finally:
                await source.aclose()

        found.append((value, asyncio.run(go())))
        assert found[-1][1] == value

    check()
    assert found


def test_arg_in_a_regex_matcher_is_regex_escaped() -> None:
    """``=~"{{arg}}"`` and ``!~ '{{arg}}'``: the arg's regex metacharacters are escaped
    (then the string escaping applies); an equality matcher is left as it was."""
    values = {"v": "a.b+(c)|d\\"}
    assert 'x{l=~"a\\\\.b\\\\+\\\\(c\\\\)\\\\|d\\\\\\\\"}' == render_promql('x{l=~"{{v}}"}', values)
    assert "x{l !~ 'a\\\\.b\\\\+\\\\(c\\\\)\\\\|d\\\\\\\\'}" == render_promql(
        "x{l !~ '{{v}}'}", values
    )
    assert 'x{l="a.b+(c)|d\\\\"}' == render_promql('x{l="{{v}}"}', values)
    assert 'x{l=~"pre-a\\\\.b.*"}' == render_promql('x{l=~"pre-{{v}}.*"}', {"v": "a.b"})


@given(value=values, other=values)
def test_escaped_regex_matches_exactly_the_arg(value: str, other: str) -> None:
    """Read back from the PromQL string, the pattern fully matches the arg and
    nothing else (Python's re stands in for RE2 here; the live test uses RE2)."""
    rendered = render_promql('x{l=~"{{v}}"}', {"v": value})
    pattern = unescape_promql_string(_string_bodies(rendered)[0])
    assert re.fullmatch(pattern, value, re.S)
    if other != value:
        assert not re.fullmatch(pattern, other, re.S)


def test_alertmanager_regex_matchers_escape_args() -> None:
    """The alertmanager source escapes args in ``=~``/``!~`` matchers the same way."""
    from gatekeeper.sources.alertmanager import parse_matchers  # noqa: PLC0415

    (matcher,) = parse_matchers('service=~"{{svc}}"')
    rendered = matcher.rendered({"svc": "api.v2"})
    assert "api\\.v2" == rendered.value
    assert rendered.matches({"service": "api.v2"})
    assert not rendered.matches({"service": "apixv2"})


@pytest.fixture(scope="module")
def labelled_prometheus(prometheus_launcher: PrometheusLauncher) -> Iterator[PrometheusServer]:
    """Series whose label values differ only where a regex would not care."""
    stamp = datetime.now(UTC).timestamp() - 3600
    names = ["a.b", "axb", "a+b", "aab", ".*", "a|b", "a"]
    text = "# TYPE gk_regex gauge\n" + "".join(
        openmetrics_series("gk_regex", {"svc": name}, [(stamp, 1.0)]) for name in names
    )
    server = prometheus_launcher.backfilled(text)
    yield server
    server.stop()


@pytest.mark.servers
@pytest.mark.parametrize(
    ("arg", "op", "expected"),
    [
        ("a.b", "=~", 1.0),  # not axb
        ("a+b", "=~", 1.0),  # not aab
        (".*", "=~", 1.0),  # only the series literally named .*
        ("a|b", "=~", 1.0),  # not a
        ("a.b", "!~", 6.0),
    ],
)
def test_real_prometheus_matches_the_arg_literally(
    labelled_prometheus: PrometheusServer, arg: str, op: str, expected: float
) -> None:
    """Against a real Prometheus (RE2): an arg in a regex matcher matches only the
    series whose label is exactly the arg."""
    source = create(
        "prom", {"url": labelled_prometheus.url}, PluginContext(base_dir=Path(), env={})
    )
    query = Query(
        metric="m",
        text=f'count(gk_regex{{svc{op}"{{{{svc}}}}"}})',
        at=datetime.now(UTC) - timedelta(minutes=59),
        window=timedelta(0),
        args={"svc": arg},
    )

    async def go() -> float | None:
        try:
            return (await source.query(query)).value
        finally:
            await source.aclose()

    assert expected == asyncio.run(go())
