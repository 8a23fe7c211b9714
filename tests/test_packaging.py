"""Install like a tool: the wheel builds (``python -m build``), installs into a fresh
virtual environment with pip, and its ``gatekeeper`` console script works there.

The environment gets the dependencies the way the machine installs packages (pip's
own configuration: its index, or a local mirror it is configured with). About 20 s,
bounded by the timeouts below.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import gatekeeper

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "progressive-rollout"


def _run(*args: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the tree (the shared working tree gets
    no ``build/`` or ``*.egg-info`` from it)."""
    work = tmp_path_factory.mktemp("wheel")
    tree = work / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = work / "dist"
    if importlib.util.find_spec("build") is not None:
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), "."]
    else:  # pragma: no cover - the test extra installs build
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), "."]
    done = _run(*command, cwd=tree, timeout=120)
    assert 0 == done.returncode, done.stdout[-2000:] + done.stderr[-2000:]
    (built,) = dist.glob("gatekeeper-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its dependencies; its bin/."""
    env = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    bin_dir = env / ("Scripts" if sys.platform == "win32" else "bin")
    done = _run(
        bin_dir / "python",
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        wheel,
        cwd=env,
        timeout=180,
    )
    assert 0 == done.returncode, done.stdout[-2000:] + done.stderr[-2000:]
    return bin_dir


def test_the_wheel_carries_both_packages_their_types_and_entry_points(wheel: Path) -> None:
    """Both packages with ``py.typed``; the console script, the pytest plugin and no
    test or example files."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")
        )
    assert {"gatekeeper/py.typed", "pytest_gatekeeper/py.typed", "gatekeeper/__init__.py"} <= names
    assert "gatekeeper = gatekeeper._cli:main" in entry_points
    assert "[pytest11]" in entry_points
    assert not [n for n in names if n.startswith(("tests/", "examples/"))]


def test_the_installed_command_validates_and_rehearses_the_reference_plan(
    installed: Path, tmp_path: Path
) -> None:
    """From the fresh environment, outside the source tree: ``--version`` says the
    package's version, ``validate`` accepts the reference plan and a rehearsal of the
    healthy recording advances (exit 0)."""
    gk = installed / "gatekeeper"
    version = _run(gk, "--version", cwd=tmp_path, timeout=60)
    assert f"gatekeeper {gatekeeper.__version__}" == version.stdout.strip(), version.stderr
    valid = _run(gk, "validate", EXAMPLE / "gates.toml", cwd=tmp_path, timeout=60)
    assert 0 == valid.returncode, valid.stderr
    assert "ok: plan 'progressive-rollout'" in valid.stdout
    rehearsed = _run(
        gk,
        "rehearse",
        EXAMPLE / "gates.toml",
        "--metrics",
        EXAMPLE / "healthy.csv",
        "--json",
        cwd=tmp_path,
        timeout=60,
    )
    assert 0 == rehearsed.returncode, rehearsed.stderr
    last = json.loads(rehearsed.stdout.splitlines()[-1])
    assert ("run_ended", "advanced") == (last["kind"], last["data"]["outcome"])
    where = _run(
        installed / "python",
        "-c",
        "import gatekeeper; print(gatekeeper.__file__)",
        cwd=tmp_path,
        timeout=60,
    )
    assert str(installed.parent) in where.stdout, "imported from the source tree, not the wheel"


def test_the_installed_pytest_finds_the_plugin(installed: Path, tmp_path: Path) -> None:
    """pytest in the fresh environment loads the plugin from the entry point."""
    helped = _run(installed / "python", "-m", "pytest", "--help", cwd=tmp_path, timeout=60)
    assert 0 == helped.returncode, helped.stderr
    assert "--gate=" in helped.stdout
