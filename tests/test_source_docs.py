"""The plan examples in docs/sources/*.md load, build and pass each source's checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import gatekeeper
from gatekeeper._model import Plan
from gatekeeper._protocols import PluginContext
from gatekeeper.sources import alertmanager, httpjson, prometheus

DOCS = Path(__file__).parent.parent / "docs" / "sources"


def _example(page: str) -> str:
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert blocks, f"{page} has no toml example"
    return str(blocks[0])


def _check_metrics(plan: Plan, tmp_path: Path) -> None:
    context = PluginContext(base_dir=tmp_path, env={})
    for metric in plan.metrics.values():
        config = plan.sources[metric.source]
        source: Any
        if config.type == "prometheus":
            source = prometheus.create(config.name, config.options, context)
            source.validate_metric(metric.query or "", metric.options)
            for text in (metric.query, metric.numerator, metric.denominator):
                if text is not None:
                    values = {"variant": "v2", "phase": "canary", "window": "15m", **plan.args}
                    prometheus.render_promql(text, values)
        elif config.type == "alertmanager":
            source = alertmanager.create(config.name, config.options, context)
            source.validate_metric(metric.query or "", metric.options)
        else:
            source = httpjson.create(config.name, config.options, context)
            source.validate_metric(metric.query or "", metric.options)


@pytest.mark.parametrize("page", ["prometheus.md", "alertmanager.md", "http-json.md"])
def test_doc_example_is_a_valid_plan(page: str, tmp_path: Path) -> None:
    """Each page's plan example validates with the real loader and the source accepts
    every metric's options and query."""
    plan_file = tmp_path / "gates.toml"
    plan_file.write_text(_example(page))
    plan = gatekeeper.validate(plan_file)
    assert plan.metrics
    _check_metrics(plan, tmp_path)
