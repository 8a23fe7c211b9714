"""The haproxy backend against a real HAProxy in front of two real upstreams.

Split tolerance: HAProxy's weighted round robin is deterministic, so over a burst
of 2000 requests the canary's measured share is within 1.5 percentage points of
the share the weights give (in practice within 0.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper._protocols import PluginContext, TrafficBackend
from gatekeeper.exceptions import ConfigError, TrafficError
from gatekeeper.traffic.haproxy import HAProxyBackend, Weights, create, weights_for
from realservers.haproxy import HAProxyLauncher, HAProxyServer, Upstreams, burst

pytestmark = pytest.mark.servers

BURST = 2000
TOLERANCE_PP = 1.5


def context(tmp: Path = Path("/nonexistent")) -> PluginContext:
    return PluginContext(base_dir=tmp, env={})


@pytest.fixture(scope="module")
def haproxy(haproxy_launcher: HAProxyLauncher, upstreams: Upstreams) -> Iterator[HAProxyServer]:
    server = haproxy_launcher.start(upstreams)
    yield server
    server.stop()


@pytest.fixture
def backend(haproxy: HAProxyServer) -> HAProxyBackend:
    built = create({"socket": str(haproxy.socket_path), "backend": "app"}, context())
    built.set_split(0)
    built.writes = 0
    return built


def measured_canary(url: str) -> float:
    counts = burst(url, BURST)
    assert set(counts) <= {"baseline", "canary"}, counts
    return 100.0 * counts["canary"] / BURST


def test_set_split_applies_reads_back_and_really_moves_traffic(
    backend: HAProxyBackend, haproxy: HAProxyServer
) -> None:
    """10 % becomes weights 230/26; the actual share is reported and the real traffic
    follows it within the stated tolerance."""
    split = backend.set_split(10)
    assert split.canary == pytest.approx(100 * 26 / 256)
    assert split.detail == "haproxy app/baseline=230 app/canary=26"
    assert backend.get_split() == split
    assert haproxy.command("get weight app/canary").startswith("26 ")
    assert abs(measured_canary(haproxy.url) - split.canary) <= TOLERANCE_PP


def test_sub_percent_share_uses_the_smallest_weight_and_reports_it(
    backend: HAProxyBackend, haproxy: HAProxyServer
) -> None:
    """0.5 % is one weight unit out of 256: the split says 0.39 %, and about that
    many requests reach the canary."""
    split = backend.set_split(0.5)
    assert split.canary == pytest.approx(100 / 256)
    share = measured_canary(haproxy.url)
    assert 0 < share <= 1.0


def test_share_too_small_for_the_weight_range_is_refused_without_a_write(
    backend: HAProxyBackend,
) -> None:
    """0.1 % cannot be expressed with weights up to 256: refused, nothing written."""
    with pytest.raises(TrafficError, match="smallest step") as info:
        backend.set_split(0.1)
    assert info.value.wanted == 0.1
    assert backend.writes == 0
    assert backend.get_split().canary == 0


def test_setting_the_current_share_writes_nothing(backend: HAProxyBackend) -> None:
    """A second set_split of the same share reads, finds it in place and does not write."""
    backend.set_split(40)
    writes = backend.writes
    assert backend.set_split(40).canary == pytest.approx(100 * 102 / 256)
    assert backend.writes == writes


class RecordingBackend(HAProxyBackend):
    """Records the runtime API commands sent (the real server still answers)."""

    sent: list[str]

    def command(self, line: str) -> str:
        self.sent.append(line)
        return super().command(line)


def test_the_growing_weight_is_written_before_the_shrinking_one(
    haproxy: HAProxyServer,
) -> None:
    """Going up raises the canary first; going down raises the baseline first, so the
    balancer never sees one server with (almost) all the weight by accident."""
    backend = RecordingBackend(backend="app", socket_path=haproxy.socket_path)
    backend.sent = []
    backend.set_split(0)
    backend.sent.clear()
    backend.set_split(50)
    sets = [line for line in backend.sent if line.startswith("set")]
    assert sets == ["set weight app/canary 128", "set weight app/baseline 128"]
    backend.sent.clear()
    backend.set_split(0)
    sets = [line for line in backend.sent if line.startswith("set")]
    assert sets == ["set weight app/baseline 256", "set weight app/canary 0"]


def test_reload_reset_is_detected_and_reapplied(
    backend: HAProxyBackend, haproxy: HAProxyServer
) -> None:
    """A reload puts the configured weights back: get_split reports the real 0 % and
    says so, and set_split of the same share writes it again."""
    backend.set_split(25)
    haproxy.reload()
    after_reload = backend.get_split()
    assert after_reload.canary == 0
    assert "reset to configured weights" in after_reload.detail
    writes = backend.writes
    split = backend.set_split(25)
    assert backend.writes == writes + 2
    assert split.canary == 25
    assert abs(measured_canary(haproxy.url) - 25) <= TOLERANCE_PP


def test_reconcile_reapplies_the_last_share_after_a_reload(
    backend: HAProxyBackend, haproxy: HAProxyServer
) -> None:
    """reconcile() with no argument restores what this backend last set."""
    backend.set_split(5)
    haproxy.reload()
    assert backend.reconcile().canary == pytest.approx(100 * 13 / 256)
    assert backend.get_split().detail == "haproxy app/baseline=243 app/canary=13"


def test_tcp_admin_address_works_like_the_socket(haproxy: HAProxyServer) -> None:
    """The runtime API over 127.0.0.1 TCP gives the same split."""
    backend = create({"address": haproxy.admin_address, "backend": "app"}, context())
    assert backend.set_split(50).canary == 50
    assert backend.get_split().canary == 50
    backend.set_split(0)


def test_a_socket_that_is_gone_raises_traffic_error(tmp_path: Path) -> None:
    """No socket at the path: a TrafficError naming the socket, not a crash."""
    backend = create({"socket": "gone.sock", "backend": "app"}, context(tmp_path))
    with pytest.raises(TrafficError, match=r"gone\.sock"):
        backend.get_split()
    with pytest.raises(TrafficError, match=r"gone\.sock") as info:
        backend.set_split(10)
    assert info.value.wanted == 10


def test_haproxy_error_replies_are_surfaced(haproxy: HAProxyServer) -> None:
    """A server name HAProxy does not know: its own error text is in the TrafficError."""
    backend = create(
        {"socket": str(haproxy.socket_path), "backend": "app", "canary": "nosuch"}, context()
    )
    with pytest.raises(TrafficError, match=r"(?i)no such server"):
        backend.set_split(10)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"backend": "app"}, "socket"),
        ({"backend": "app", "socket": "a", "address": "127.0.0.1:1"}, "socket"),
        ({"socket": "a"}, "backend"),
        ({"backend": "app", "address": "localhost"}, "address"),
        ({"backend": "app", "socket": "a", "total_weight": 300}, "total_weight"),
        ({"backend": "app", "socket": "a", "canary": "baseline"}, "canary"),
        ({"backend": "app", "socket": "a", "weight": 1}, "weight"),
        ({"backend": "a b", "socket": "a"}, "backend"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(options: dict[str, object], key: str) -> None:
    """Each invalid table raises ConfigError with the offending key, without I/O."""
    with pytest.raises(ConfigError) as info:
        create(options, context())
    assert info.value.key == key


def test_create_does_no_io_and_satisfies_the_protocol(tmp_path: Path) -> None:
    """Building against a socket that does not exist works (the plan validator does it)."""
    backend = create({"socket": "x.sock", "backend": "app"}, context(tmp_path))
    assert isinstance(backend, TrafficBackend)
    assert backend.socket_path == tmp_path / "x.sock"


@pytest.mark.parametrize(
    ("percent", "total", "expected"),
    [
        (0, 256, Weights(baseline=256, canary=0)),
        (100, 256, Weights(baseline=0, canary=256)),
        (10, 256, Weights(baseline=230, canary=26)),
        (50, 256, Weights(baseline=128, canary=128)),
        (0.5, 256, Weights(baseline=255, canary=1)),
        (99.5, 256, Weights(baseline=1, canary=255)),
        (12.5, 1000, Weights(baseline=875, canary=125)),
    ],
)
def test_weights_round_to_the_nearest_step(percent: float, total: int, expected: Weights) -> None:
    """Weights are the nearest integers and always sum to the total."""
    assert weights_for(percent, total) == expected


@pytest.mark.parametrize("percent", [0.1, 99.9, -1, 101, float("nan")])
def test_inexpressible_or_invalid_shares_are_refused(percent: float) -> None:
    """A share that would round to all-or-nothing, or is out of range, is a ValueError."""
    with pytest.raises(ValueError, match=r"\S"):
        weights_for(percent, 256)


def test_same_share_with_other_weights_is_a_no_op_and_order_follows_the_share(
    haproxy: HAProxyServer,
) -> None:
    """Weights 1/1 set by hand already give 50 %: no write. Going from there to 10 %
    raises the baseline first (its share grows), even though the canary's weight
    number grows too: 1/26 would send 96 % to the canary for a moment."""
    backend = RecordingBackend(backend="app", socket_path=haproxy.socket_path)
    backend.sent = []
    haproxy.command("set weight app/baseline 1")
    haproxy.command("set weight app/canary 1")
    assert backend.set_split(50).detail == "haproxy app/baseline=1 app/canary=1"
    assert backend.writes == 0
    backend.set_split(10)
    sets = [line for line in backend.sent if line.startswith("set")]
    assert sets == ["set weight app/baseline 230", "set weight app/canary 26"]
    backend.set_split(0)
