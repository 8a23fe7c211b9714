"""The nginx backend against a real nginx (one worker) in front of two real upstreams.

Split tolerance: nginx's smooth weighted round robin is deterministic with one
worker, so over a burst of 1000 requests the canary's measured share is within
1.5 percentage points of the share the weights give.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper._protocols import PluginContext, TrafficBackend
from gatekeeper.exceptions import ConfigError, TrafficError
from gatekeeper.traffic.haproxy import Weights
from gatekeeper.traffic.nginx import NginxBackend, create, parse_weights
from realservers.haproxy import Upstreams, burst
from realservers.nginx import NginxLauncher, NginxServer

pytestmark = pytest.mark.servers

BURST = 1000
TOLERANCE_PP = 1.5


def context(tmp: Path = Path("/nonexistent")) -> PluginContext:
    return PluginContext(base_dir=tmp, env={})


@pytest.fixture(scope="module")
def nginx(nginx_launcher: NginxLauncher, upstreams: Upstreams) -> Iterator[NginxServer]:
    server = nginx_launcher.start(upstreams)
    yield server
    server.stop()


def options(server: NginxServer, **extra: object) -> dict[str, object]:
    return {
        "include": str(server.include),
        "conf": str(server.conf),
        "prefix": str(server.prefix),
        "nginx": server.nginx,
        "baseline": server.addresses[0],
        "canary": server.addresses[1],
        **extra,
    }


@pytest.fixture
def backend(nginx: NginxServer) -> NginxBackend:
    built = create(options(nginx), context())
    built.set_split(0)
    built.writes = 0
    return built


def measured_canary(url: str, count: int = BURST) -> float:
    counts = burst(url, count)
    assert set(counts) <= {"baseline", "canary"}, counts
    return 100.0 * counts["canary"] / count


def test_set_split_rewrites_the_include_reloads_and_moves_traffic(
    backend: NginxBackend, nginx: NginxServer
) -> None:
    """10 % becomes weights 900/100 in the live file; real traffic follows."""
    split = backend.set_split(10)
    assert split.canary == 10
    assert f"server {nginx.addresses[1]} weight=100;" in nginx.include.read_text()
    assert backend.get_split() == split
    assert abs(measured_canary(nginx.url) - 10) <= TOLERANCE_PP


def test_requests_right_after_set_split_see_the_new_weights(
    backend: NginxBackend, nginx: NginxServer
) -> None:
    """set_split waits for the old workers to stop serving: the very next requests
    after 100 % all reach the canary, and after 0 % none do."""
    backend.set_split(100)
    assert burst(nginx.url, 50) == {"canary": 50}
    backend.set_split(0)
    assert burst(nginx.url, 50) == {"baseline": 50}


def test_a_zero_weight_is_written_as_down(backend: NginxBackend, nginx: NginxServer) -> None:
    """nginx refuses weight=0, so the server with no share is marked down and kept."""
    backend.set_split(100)
    text = nginx.include.read_text()
    assert f"server {nginx.addresses[0]} down;" in text
    assert "weight=0" not in text
    assert backend.get_split().canary == 100


def test_sub_percent_shares_use_the_thousandths_and_report_the_actual_share(
    backend: NginxBackend, nginx: NginxServer
) -> None:
    """0.5 % is 5/1000; 0.25 % rounds to 3/1000 and the split says 0.3 %."""
    assert backend.set_split(0.5).canary == 0.5
    assert backend.set_split(0.25).canary == pytest.approx(0.3)
    with pytest.raises(TrafficError, match="smallest step"):
        backend.set_split(0.04)


def test_setting_the_current_share_touches_nothing(
    backend: NginxBackend, nginx: NginxServer
) -> None:
    """No write, no reload when the live file already has the weights."""
    backend.set_split(20)
    before = nginx.include.stat().st_mtime_ns, backend.writes
    backend.set_split(20)
    assert (nginx.include.stat().st_mtime_ns, backend.writes) == before


def test_a_template_that_fails_nginx_t_is_refused_and_the_old_file_kept(
    nginx: NginxServer,
) -> None:
    """A rendered file nginx -t rejects: TrafficError with nginx's message, the
    previous file restored byte for byte, and traffic still split as before."""
    good = create(options(nginx), context())
    good.set_split(30)
    before = nginx.include.read_bytes()
    broken = create(
        options(nginx, template="upstream {{upstream}} { server {{canary}} {{canary_params}} x; }"),
        context(),
    )
    with pytest.raises(TrafficError, match=r"nginx -t refused.*invalid parameter") as info:
        broken.set_split(60)
    assert (info.value.wanted, info.value.actual) == (60, 30)
    assert nginx.include.read_bytes() == before
    assert good.get_split().canary == 30
    assert abs(measured_canary(nginx.url) - 30) <= TOLERANCE_PP


def test_a_failed_reload_restores_the_previous_file(nginx: NginxServer, tmp_path: Path) -> None:
    """nginx -t passes but the reload fails: the old file is back and the error
    carries the reload's exit code and stderr."""
    wrapper = tmp_path / "nginx-no-reload"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *"-s reload"*) echo "reload refused by test" >&2; exit 7;; esac\n'
        f'exec {nginx.nginx} "$@"\n'
    )
    wrapper.chmod(0o755)
    create(options(nginx), context()).set_split(15)
    before = nginx.include.read_bytes()
    backend = create(options(nginx, nginx=str(wrapper)), context())
    with pytest.raises(TrafficError, match=r"exit 7.*reload refused by test"):
        backend.set_split(70)
    assert nginx.include.read_bytes() == before
    assert backend.get_split().canary == 15


def test_a_missing_nginx_binary_is_a_traffic_error_and_the_file_is_kept(
    nginx: NginxServer,
) -> None:
    """The binary is gone: the error names it, the live file is unchanged."""
    create(options(nginx), context()).set_split(5)
    before = nginx.include.read_bytes()
    backend = create(options(nginx, nginx="/nonexistent/nginx"), context())
    with pytest.raises(TrafficError, match="nonexistent/nginx"):
        backend.set_split(50)
    assert nginx.include.read_bytes() == before


def test_a_custom_template_file_is_used(nginx: NginxServer, tmp_path: Path) -> None:
    """template_file (relative to the plan's folder) renders the include; extra
    directives survive, and the read-back still parses the weights."""
    (tmp_path / "upstream.tmpl").write_text(
        "upstream {{upstream}} {\n"
        "    keepalive 4;\n"
        "    server {{baseline}} {{baseline_params}} max_fails=3;\n"
        "    server {{canary}} {{canary_params}} max_fails=3;\n"
        "}\n"
    )
    backend = create(options(nginx, template_file="upstream.tmpl"), context(tmp_path))
    assert backend.set_split(50).canary == 50
    assert "keepalive 4;" in nginx.include.read_text()
    assert abs(measured_canary(nginx.url, 400) - 50) <= TOLERANCE_PP
    create(options(nginx), context()).set_split(0)


def test_get_split_reports_an_unreadable_include(tmp_path: Path) -> None:
    """A missing file, or one without the canary server, is a TrafficError."""
    conf = tmp_path / "nginx.conf"
    backend = create(
        {
            "include": "up.conf",
            "conf": str(conf),
            "baseline": "127.0.0.1:1",
            "canary": "127.0.0.1:2",
        },
        context(tmp_path),
    )
    with pytest.raises(TrafficError, match="does not exist"):
        backend.get_split()
    (tmp_path / "up.conf").write_text("upstream app { server 127.0.0.1:1; }\n")
    with pytest.raises(TrafficError, match=r"no 'server 127\.0\.0\.1:2' line"):
        backend.get_split()


def test_parse_weights_reads_nginx_semantics() -> None:
    """weight defaults to 1, down and backup count as 0, comments are ignored."""
    text = (
        "upstream app {\n"
        "    # server 10.0.0.2:80 weight=999;\n"
        "    server 10.0.0.1:80 max_fails=2;\n"
        "    server 10.0.0.2:80 weight=3 down;\n"
        "}\n"
    )
    assert parse_weights(text, baseline="10.0.0.1:80", canary="10.0.0.2:80") == Weights(
        baseline=1, canary=0
    )
    assert parse_weights(
        "server a:1 weight=7; server b:1 backup;", baseline="a:1", canary="b:1"
    ) == Weights(baseline=7, canary=0)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"template": "upstream {{nope}} {}"}, "template"),
        ({"template": "x", "template_file": "y"}, "template"),
        ({"total_weight": 0}, "total_weight"),
        ({"timeout": 0}, "timeout"),
        ({"canary": "127.0.0.1:1", "baseline": "127.0.0.1:1"}, "canary"),
        ({"reload": True}, "reload"),
    ],
)
def test_bad_options_are_config_errors(extra: dict[str, object], key: str) -> None:
    """Invalid tables raise ConfigError naming the key, without touching the disk."""
    raw: dict[str, object] = {
        "include": "u.conf",
        "conf": "n.conf",
        "baseline": "127.0.0.1:1",
        "canary": "127.0.0.1:2",
        **extra,
    }
    with pytest.raises(ConfigError) as info:
        create(raw, context())
    assert info.value.key == key


def test_relative_paths_resolve_against_the_plan_folder(tmp_path: Path) -> None:
    """include, conf and the default prefix (conf's folder) come from base_dir."""
    backend = create(
        {"include": "u.conf", "conf": "etc/n.conf", "baseline": "a:1", "canary": "b:1"},
        context(tmp_path),
    )
    assert isinstance(backend, TrafficBackend)
    assert (backend.include, backend.conf, backend.prefix) == (
        tmp_path / "u.conf",
        tmp_path / "etc/n.conf",
        tmp_path / "etc",
    )
    assert not os.path.exists(tmp_path / "u.conf")


def test_same_share_with_other_weights_is_a_no_op(
    backend: NginxBackend, nginx: NginxServer
) -> None:
    """A hand-written file with weights 1/1 already gives 50 %: set_split(50) keeps it."""
    nginx.include.write_text(
        f"upstream app {{ server {nginx.addresses[0]}; server {nginx.addresses[1]} weight=1; }}\n"
    )
    assert backend.set_split(50).canary == 50
    assert backend.writes == 0
    backend.set_split(0)
