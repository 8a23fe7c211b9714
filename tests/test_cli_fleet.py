"""The command line on a fleet plan: validate, rehearse, run, status, rollback --target."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from gatekeeper._cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "multi-region"


def share(path: Path) -> float:
    return float(json.loads(path.read_text())["canary"])


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(args), out=out)
    return code, out.getvalue()


def test_validate_names_the_waves() -> None:
    code, out = cli("validate", str(EXAMPLE / "fleet.toml"))
    assert 0 == code
    assert "fleet 'multi-region': pilot (af-south-1) → latam (sa-east-1)" in out


def test_rehearsing_the_eight_regions_follows_on_fail(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "fleet")
    plan = str(tmp_path / "fleet" / "fleet.toml")
    assert 0 == cli("rehearse", plan, "--metrics", str(tmp_path / "fleet" / "healthy.csv"))[0]
    code, out = cli("rehearse", plan, "--metrics", str(tmp_path / "fleet" / "third-wave-fails.csv"))
    assert 1 == code
    assert "never started" in out  # the waves after the failing one


def test_run_status_and_rollback_of_one_target(tmp_path: Path) -> None:
    """A fleet whose targets use file backends: run to the end, status as a table,
    then a rollback of one target only."""
    (tmp_path / "fleet.toml").write_text(
        """
[plan]
name = "tiny"
[sources.s]
type = "static"
values = { error_rate = 0.001 }
[metrics.error_rate]
source = "s"
[targets.a]
traffic = { type = "file", path = "a.json" }
[targets.b]
traffic = { type = "file", path = "b.json" }
[[waves]]
name = "one"
targets = ["a"]
[[waves]]
name = "two"
targets = ["b"]
[[phases]]
name = "canary"
traffic = 5
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
[[phases]]
name = "full"
traffic = 100
checkpoints = ["1s"]
gate = ["error_rate < 1%"]
"""
    )
    plan = str(tmp_path / "fleet.toml")
    code, out = cli("run", plan)
    assert 0 == code, out
    assert 100.0 == share(tmp_path / "a.json")
    assert 100.0 == share(tmp_path / "b.json")
    code, out = cli("status", "--plan", plan)
    assert 0 == code
    assert "advanced" in out
    code, out = cli("rollback", "fleet", "--plan", plan, "--target", "b", "--by", "sre")
    assert 0 == code, out
    assert 0.0 == share(tmp_path / "b.json")
    assert 100.0 == share(tmp_path / "a.json")  # only the target asked for
