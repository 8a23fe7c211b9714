"""The plugin host: built-ins and third-party plugins register through the same hooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import gatekeeper
from gatekeeper import Measurement, PluginContext, Query, SourceRegistry


class ConstantSource:
    def __init__(self, value: float) -> None:
        self.value = value

    async def query(self, query: Query) -> Measurement:
        return Measurement(metric=query.metric, at=query.at, value=self.value)


class ThirdParty:
    """A plugin as a package would ship it."""

    @gatekeeper.hookimpl
    def gatekeeper_add_sources(self, sources: SourceRegistry) -> None:
        def factory(
            name: str, options: Mapping[str, Any], context: PluginContext
        ) -> ConstantSource:
            return ConstantSource(float(options.get("value", 0.0)))

        sources.add("constant", factory, owner="third-party")


def test_builtins_are_registered_through_the_hooks() -> None:
    """The built-in sources and backends are there like any plugin's."""
    plugins = gatekeeper.Plugins(load_entry_points=False)
    assert {"static", "python", "replay", "prometheus", "alertmanager", "http-json"} <= set(
        plugins.sources.names()
    )
    assert {"memory", "file", "haproxy", "nginx"} <= set(plugins.backends.names())


def test_a_third_party_source_is_usable_from_a_plan() -> None:
    """A registered type is built from the plan and judged like a built-in."""
    plugins = gatekeeper.Plugins(load_entry_points=False, plugins=[ThirdParty()])
    plan = gatekeeper.Plan.from_mapping(
        {
            "sources": {"c": {"type": "constant", "value": 0.002}},
            "metrics": {"m": {"source": "c"}},
            "phases": [{"name": "p", "traffic": 1, "checkpoints": ["1m"], "gate": ["m < 1%"]}],
        }
    )
    rollout = gatekeeper.Rollout(plan, plugins=plugins, clock=gatekeeper.SimulatedClock())
    assert gatekeeper.RunOutcome.ADVANCED == rollout.run_sync().outcome


def test_a_misspelled_hook_fails_loudly() -> None:
    """A hook implementation with a typo in its name is an error at start-up."""

    class Typo:
        @gatekeeper.hookimpl
        def gatekeeper_add_sourcse(self, sources: SourceRegistry) -> None:
            raise AssertionError("never called")

    with pytest.raises(Exception, match="gatekeeper_add_sourcse"):
        gatekeeper.Plugins(load_entry_points=False, plugins=[Typo()])


def test_a_type_registered_twice_names_both_owners() -> None:
    """Two plugins claiming one type name is an error naming both."""

    class Clash:
        @gatekeeper.hookimpl
        def gatekeeper_add_sources(self, sources: SourceRegistry) -> None:
            sources.add("static", object(), owner="clash")

    with pytest.raises(
        gatekeeper.GatekeeperError, match="source type 'static' registered twice"
    ) as info:
        gatekeeper.Plugins(load_entry_points=False, plugins=[Clash()])
    assert "clash" in str(info.value)
    assert "gatekeeper" in str(info.value)


def test_unknown_source_type_suggests_the_closest(tmp_path: Any) -> None:
    """A misspelled type lists the known ones and the closest match, with the line."""
    path = tmp_path / "gates.toml"
    path.write_text(
        '[sources.p]\ntype = "promethues"\n[metrics.m]\nsource = "p"\nquery = "up"\n'
        '[[phases]]\nname = "x"\ntraffic = 1\ncheckpoints = ["1m"]\ngate = ["m < 1"]\n'
    )
    with pytest.raises(gatekeeper.PlanError) as info:
        gatekeeper.validate(path, plugins=gatekeeper.Plugins(load_entry_points=False))
    message = str(info.value)
    assert message.startswith(f"{path}:2: sources.p.type: unknown source type 'promethues'")
    assert message.endswith("did you mean 'prometheus'?")
