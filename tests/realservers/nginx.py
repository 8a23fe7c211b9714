"""A real nginx on 127.0.0.1 in front of the two tiny upstreams of ``realservers.haproxy``.

    server = nginx_launcher.start(upstreams)   # url, prefix, conf, include, pid_file, stop
    server = nginx_launcher.start(("127.0.0.1:8001", "127.0.0.1:8002"))   # any two servers

nginx runs in the foreground (``daemon off;``) under Popen with one worker, so the
weighted round robin is exact; every invocation passes ``-p PREFIX -c CONF`` and the
pid file, logs and all ``*_temp_path`` live inside the prefix.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from . import binary, free_port, stop_process, wait_until
from .haproxy import Upstreams, burst

__all__ = ["NginxLauncher", "NginxServer", "nginx_launcher"]

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 256;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;

    include {include};

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

_INITIAL = """\
upstream {upstream} {{
    server {baseline} weight=1000;
    server {canary} down;
}}
"""


@attrs.define(kw_only=True)
class NginxServer:
    """A running nginx: frontend URL, prefix, conf, upstream include, pid file, stop."""

    url: str
    prefix: Path
    conf: Path
    include: Path
    pid_file: Path
    upstream: str
    addresses: tuple[str, str]
    nginx: str
    process: subprocess.Popen[bytes] = attrs.field(repr=False)

    def stop(self) -> None:
        stop_process(self.process)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""


class NginxLauncher:
    """Starts nginx servers in temp prefixes on free ports; stops them all at the end."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: list[NginxServer] = []

    def start(
        self,
        upstreams: Upstreams | tuple[str, str],
        *,
        upstream: str = "app",
        ready_timeout: float = 10.0,
    ) -> NginxServer:
        """Start nginx in front of ``upstreams`` (tiny upstreams, or two ``host:port``
        addresses: baseline, canary), all traffic on the baseline, and wait until it serves."""
        if isinstance(upstreams, Upstreams):
            addresses = (upstreams.baseline.address, upstreams.canary.address)
        else:
            addresses = upstreams
        prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=self._root))
        port = free_port()
        include = prefix / "upstream.conf"
        include.write_text(
            _INITIAL.format(
                upstream=upstream,
                baseline=addresses[0],
                canary=addresses[1],
            )
        )
        conf = prefix / "nginx.conf"
        conf.write_text(_CONF.format(prefix=prefix, include=include, port=port, upstream=upstream))
        exe = binary("nginx", "/usr/sbin/nginx")
        log = (prefix / "stderr.log").open("wb")
        process = subprocess.Popen(
            [exe, "-p", str(prefix), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        server = NginxServer(
            url=f"http://127.0.0.1:{port}",
            prefix=prefix,
            conf=conf,
            include=include,
            pid_file=prefix / "nginx.pid",
            upstream=upstream,
            addresses=addresses,
            nginx=exe,
            process=process,
        )
        self._servers.append(server)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with {process.returncode}: "
                    + (prefix / "stderr.log").read_text()
                    + server.error_log()
                )
            return server.pid_file.exists() and burst(server.url, 1, timeout=2).total() == 1

        wait_until(ready, timeout=ready_timeout, what="nginx")
        return server

    def stop_all(self) -> None:
        for server in self._servers:
            server.stop()


@pytest.fixture(scope="session")
def nginx_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxLauncher]:
    """Start nginx servers with ``.start(upstreams)``; all stopped at session end."""
    launcher = NginxLauncher(tmp_path_factory.mktemp("nginx"))
    yield launcher
    launcher.stop_all()
