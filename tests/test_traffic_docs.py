"""Every ``[traffic]`` example in docs/traffic/*.md builds a backend of its type."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

from gatekeeper._protocols import PluginContext, TrafficBackend

DOCS = Path(__file__).resolve().parent.parent / "docs" / "traffic"
_TOML_BLOCK = re.compile(r"```toml\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for page in sorted(DOCS.glob("*.md")):
        found.extend((page.name, block) for block in _TOML_BLOCK.findall(page.read_text()))
    return found


def test_every_backend_page_has_an_example() -> None:
    """One page per built-in backend, each with at least one TOML example."""
    pages = {name for name, _ in examples()}
    assert pages == {f"{n}.md" for n in ("command", "file", "haproxy", "http", "memory", "nginx")}


@pytest.mark.parametrize(("page", "block"), examples())
def test_the_example_table_is_accepted_by_its_backend(page: str, block: str) -> None:
    """The documented options are exactly what create() accepts (unknown keys fail)."""
    table = tomllib.loads(block)["traffic"]
    module = importlib.import_module(f"gatekeeper.traffic.{table['type']}")
    backend = module.create(table, PluginContext(base_dir=Path("/plans"), env={}))
    assert page == f"{table['type']}.md"
    assert isinstance(backend, TrafficBackend)
