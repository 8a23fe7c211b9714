"""The file backend: atomic, process-safe JSON split for simulations and crash tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper._protocols import PluginContext
from gatekeeper.exceptions import ConfigError, TrafficError
from gatekeeper.traffic.file import FileBackend, create


def build(base: Path, name: str = "split.json") -> FileBackend:
    return create({"path": name}, PluginContext(base_dir=base, env={}))


def test_missing_file_reads_as_zero_and_set_writes_it(tmp_path: Path) -> None:
    """Nothing shifted yet is 0 %; set_split writes the JSON and reads it back."""
    backend = build(tmp_path)
    assert backend.get_split().canary == 0
    assert backend.set_split(0.5).canary == 0.5
    assert json.loads((tmp_path / "split.json").read_text()) == {"canary": 0.5}
    assert build(tmp_path).get_split().canary == 0.5


def test_setting_the_current_share_does_not_rewrite(tmp_path: Path) -> None:
    """Same share twice: one write, the file untouched the second time."""
    backend = build(tmp_path)
    backend.set_split(10)
    stamp = (tmp_path / "split.json").stat().st_mtime_ns
    backend.set_split(10)
    assert backend.writes == 1
    assert (tmp_path / "split.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("content", ["{not json", '{"canary": 120}', '{"canary": "5"}', "[]"])
def test_a_corrupt_file_is_a_traffic_error(tmp_path: Path, content: str) -> None:
    """Invalid JSON or an out-of-range value is reported, never read as 0 %."""
    (tmp_path / "split.json").write_text(content)
    with pytest.raises(TrafficError, match=r"split\.json"):
        build(tmp_path).get_split()


@pytest.mark.parametrize("share", [-0.1, 100.5, float("nan")])
def test_out_of_range_shares_are_refused_without_a_write(tmp_path: Path, share: float) -> None:
    """Outside [0, 100] (or NaN): TrafficError, no file written."""
    with pytest.raises(TrafficError, match="within"):
        build(tmp_path).set_split(share)
    assert not (tmp_path / "split.json").exists()


def test_an_unwritable_folder_is_a_traffic_error(tmp_path: Path) -> None:
    """The folder does not exist: TrafficError with the share asked for."""
    with pytest.raises(TrafficError) as info:
        build(tmp_path, "missing/split.json").set_split(5)
    assert info.value.wanted == 5


def test_concurrent_processes_never_leave_a_torn_file(tmp_path: Path) -> None:
    """Four processes writing 40 shares each while this one reads: every read is a
    valid split and the last value is one that was written."""
    code = (
        "import sys; from pathlib import Path; from gatekeeper.traffic.file import FileBackend\n"
        "b = FileBackend(Path(sys.argv[1]))\n"
        "for i in range(40): b.set_split(float(int(sys.argv[2]) * 10 + i % 7))\n"
    )
    path = tmp_path / "split.json"
    writers = [subprocess.Popen([sys.executable, "-c", code, str(path), str(n)]) for n in range(4)]
    reader = FileBackend(path)
    seen = set()
    for _ in range(2000):
        seen.add(reader.get_split().canary)
        if all(w.poll() is not None for w in writers):
            break
    for writer in writers:
        assert writer.wait(timeout=30) == 0
    final = reader.get_split().canary
    assert final in {float(n * 10 + i) for n in range(4) for i in range(7)}
    assert all(0 <= s <= 100 for s in seen)
    assert not list(tmp_path.glob(".split.json.*"))


def test_path_is_required_and_unknown_options_refused(tmp_path: Path) -> None:
    """A missing path and a misspelled option are ConfigErrors naming the key."""
    ctx = PluginContext(base_dir=tmp_path, env={})
    with pytest.raises(ConfigError) as info:
        create({}, ctx)
    assert info.value.key == "path"
    with pytest.raises(ConfigError) as info:
        create({"path": "x", "pth": "y"}, ctx)
    assert info.value.key == "pth"
