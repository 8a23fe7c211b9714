"""The built-in sources and backends, registered through the public hooks.

Factories import their module on first use so ``import gatekeeper`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from ._protocols import MetricSource, PluginContext, TrafficBackend
from ._registry import BackendRegistry, SourceRegistry
from .hookspecs import hookimpl

_SOURCES = {
    "static": "gatekeeper.sources.static",
    "python": "gatekeeper.sources.python",
    "replay": "gatekeeper.sources.replay",
    "prometheus": "gatekeeper.sources.prometheus",
    "alertmanager": "gatekeeper.sources.alertmanager",
    "http-json": "gatekeeper.sources.httpjson",
}

_BACKENDS = {
    "memory": "gatekeeper.traffic.memory",
    "file": "gatekeeper.traffic.file",
    "haproxy": "gatekeeper.traffic.haproxy",
    "nginx": "gatekeeper.traffic.nginx",
    "command": "gatekeeper.traffic.command",
    "http": "gatekeeper.traffic.http",
}


def _lazy_source(module: str) -> Any:
    def factory(name: str, options: Mapping[str, Any], context: PluginContext) -> MetricSource:
        built: MetricSource = importlib.import_module(module).create(name, options, context)
        return built

    return factory


def _lazy_backend(module: str) -> Any:
    def factory(options: Mapping[str, Any], context: PluginContext) -> TrafficBackend:
        built: TrafficBackend = importlib.import_module(module).create(options, context)
        return built

    return factory


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@hookimpl
def gatekeeper_add_sources(sources: SourceRegistry) -> None:
    for type_name, module in _SOURCES.items():
        if _available(module):
            sources.add(type_name, _lazy_source(module), owner="gatekeeper")


@hookimpl
def gatekeeper_add_traffic_backends(backends: BackendRegistry) -> None:
    for type_name, module in _BACKENDS.items():
        if _available(module):
            backends.add(type_name, _lazy_backend(module), owner="gatekeeper")
