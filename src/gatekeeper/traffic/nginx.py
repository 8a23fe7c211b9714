"""``nginx``: a weighted upstream include file, tested and reloaded.

OSS nginx has no runtime weight API, so a change is: render the include file from
a template, write it atomically (temp file, fsync, rename), ``nginx -t``, ``nginx -s
reload`` — every invocation with ``-p PREFIX -c CONF`` — and wait (bounded) until
the old workers stopped taking requests. When the test or the reload fails, the
previous file is put back (and nginx reloaded onto it if needed), so the traffic
keeps flowing as before; the error says what nginx printed.

nginx refuses ``weight=0``: a server with no share is rendered ``down`` (kept in
the file so the read-back still finds it). Weights are integers summing to
``total_weight`` (default 1000, so 0.1 % steps); the split reports the actual share.
``get_split`` parses the live include file: ``server ADDR ...;`` lines, ``weight=N``
(1 when absent), ``down`` meaning 0.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._model import Split
from .._options import Options
from .._protocols import PluginContext
from .._redact import shown
from .._template import placeholders, render
from ..exceptions import ConfigError, TrafficError
from .haproxy import Weights, share_or_none, weights_for

__all__ = ["DEFAULT_TEMPLATE", "NginxBackend", "create", "parse_weights"]

DEFAULT_TEMPLATE = """\
# written by gatekeeper: canary {{canary_percent}}% ({{canary_weight}}/{{total_weight}})
upstream {{upstream}} {
    server {{baseline}} {{baseline_params}};
    server {{canary}} {{canary_params}};
}
"""

PLACEHOLDERS = (
    "upstream",
    "baseline",
    "canary",
    "baseline_weight",
    "canary_weight",
    "baseline_params",
    "canary_params",
    "canary_percent",
    "total_weight",
)

_SERVER = re.compile(r"\bserver\s+([^\s;]+)([^;]*);")
_COMMENT = re.compile(r"#[^\n]*")
_PID = re.compile(r"(?m)^\s*pid\s+([^;\s]+)\s*;")


def _server_weight(params: str) -> int:
    words = params.split()
    if "down" in words or "backup" in words:
        return 0
    for word in words:
        if word.startswith("weight="):
            return int(word.removeprefix("weight="))
    return 1


def parse_weights(text: str, *, baseline: str, canary: str) -> Weights:
    """The effective weights of the two servers in an upstream file (``down`` is 0)."""
    found: dict[str, int] = {}
    for match in _SERVER.finditer(_COMMENT.sub("", text)):
        address, params = match.group(1), match.group(2)
        if address in (baseline, canary):
            if address in found:
                raise ValueError(f"server {address} appears twice")
            try:
                found[address] = _server_weight(params)
            except ValueError:
                raise ValueError(
                    f"server {address}: bad weight in {shown(params.strip())}"
                ) from None
    missing = [a for a in (baseline, canary) if a not in found]
    if missing:
        raise ValueError(f"no 'server {missing[0]}' line")
    return Weights(baseline=found[baseline], canary=found[canary])


def _params(weight: int) -> str:
    # nginx has no weight=0; a down server gets no requests and stays in the file
    return f"weight={weight}" if weight > 0 else "down"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class NginxBackend:
    """Moves traffic by rewriting one upstream include file and reloading nginx."""

    def __init__(
        self,
        *,
        include: Path,
        conf: Path,
        prefix: Path,
        baseline: str,
        canary: str,
        upstream: str = "app",
        nginx: str = "nginx",
        template: str = DEFAULT_TEMPLATE,
        template_file: Path | None = None,
        total_weight: int = 1000,
        timeout: float = 10.0,
        pid_file: Path | None = None,
    ) -> None:
        self.include = include
        self.conf = conf
        self.prefix = prefix
        self.baseline = baseline
        self.canary = canary
        self.upstream = upstream
        self.nginx = nginx
        self.template = template
        self.template_file = template_file
        self.total_weight = total_weight
        self.timeout = timeout
        self.pid_file = pid_file
        self.writes = 0

    def __repr__(self) -> str:
        return f"NginxBackend(include={str(self.include)!r}, conf={str(self.conf)!r})"

    # -- reading -------------------------------------------------------------------

    def _live(self) -> tuple[str | None, Weights | None, str]:
        """The file's text, its weights (``None`` when unreadable) and why not."""
        try:
            text = self.include.read_text()
        except FileNotFoundError:
            return None, None, f"{self.include} does not exist"
        except OSError as exc:
            raise TrafficError(f"nginx: cannot read {self.include}: {exc}") from exc
        try:
            return text, parse_weights(text, baseline=self.baseline, canary=self.canary), ""
        except ValueError as exc:
            return text, None, f"{self.include}: {exc}"

    def _detail(self, weights: Weights) -> str:
        return (
            f"nginx {self.upstream} {self.baseline}={weights.baseline} "
            f"{self.canary}={weights.canary}"
        )

    def get_split(self) -> Split:
        """The share the live include file gives the canary."""
        _, weights, why = self._live()
        if weights is None:
            raise TrafficError(f"nginx: {why}")
        try:
            share = weights.canary_percent
        except ValueError as exc:
            raise TrafficError(f"nginx {self.include}: {exc}") from exc
        return Split(canary=share, detail=self._detail(weights))

    # -- writing -------------------------------------------------------------------

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self.nginx, "-p", str(self.prefix), "-c", str(self.conf), *args]
        try:
            return subprocess.run(  # noqa: S603 - argv from the plan, never a shell
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess(argv, -1, "", f"{type(exc).__name__}: {exc}")

    def render(self, target: Weights) -> str:
        """The include file for ``target`` from the template."""
        template = self.template
        if self.template_file is not None:
            try:
                template = self.template_file.read_text()
            except OSError as exc:
                raise TrafficError(f"nginx: cannot read template: {exc}") from exc
        values = {
            "upstream": self.upstream,
            "baseline": self.baseline,
            "canary": self.canary,
            "baseline_weight": str(target.baseline),
            "canary_weight": str(target.canary),
            "baseline_params": _params(target.baseline),
            "canary_params": _params(target.canary),
            "canary_percent": f"{target.canary_percent:g}",
            "total_weight": str(self.total_weight),
        }
        try:
            return render(template, values)
        except KeyError as exc:
            raise TrafficError(f"nginx template: {exc.args[0]}") from exc

    def set_split(self, canary_percent: float) -> Split:
        """Render, write, test, reload, read back; restore the old file on failure."""
        try:
            return self._set_split(canary_percent)
        except TrafficError as exc:
            if exc.wanted is None:
                exc.wanted = canary_percent
            raise

    def _set_split(self, canary_percent: float) -> Split:
        try:
            target = weights_for(canary_percent, self.total_weight)
        except ValueError as exc:
            raise TrafficError(f"nginx: {exc}", wanted=canary_percent) from exc
        old_text, old_weights, _ = self._live()
        old_share = None if old_weights is None else share_or_none(old_weights)
        if old_share is not None and abs(old_share - target.canary_percent) < 1e-9:
            assert old_weights is not None  # a share implies weights
            return Split(canary=old_share, detail=self._detail(old_weights))
        new_text = self.render(target)
        workers = self._workers()
        self._write(new_text, canary_percent, old_share)
        test = self._run("-t")
        if test.returncode != 0:
            self._restore(old_text)
            raise TrafficError(
                f"nginx -t refused the new {self.include.name}, previous file restored: "
                f"{_last_lines(test.stderr)}",
                wanted=canary_percent,
                actual=old_share,
            )
        reload = self._run("-s", "reload")
        if reload.returncode != 0:
            self._restore(old_text)
            self._run("-s", "reload")
            raise TrafficError(
                f"nginx -s reload failed (exit {reload.returncode}), previous file restored: "
                f"{_last_lines(reload.stderr)}",
                wanted=canary_percent,
                actual=old_share,
            )
        _, now, why = self._live()
        if now != target:
            self._restore(old_text)
            self._run("-s", "reload")
            seen = why if now is None else self._detail(now)
            raise TrafficError(
                f"nginx: {self.include.name} reads back as {seen}, expected "
                f"{target.baseline}/{target.canary} (does the template use the weights?); "
                "previous file restored",
                wanted=canary_percent,
                actual=old_share,
            )
        self._wait_workers(workers, canary_percent)
        return Split(canary=target.canary_percent, detail=self._detail(target))

    def _write(self, text: str, wanted: float, actual: float | None) -> None:
        try:
            _atomic_write(self.include, text)
        except OSError as exc:
            raise TrafficError(
                f"nginx: cannot write {self.include}: {exc}", wanted=wanted, actual=actual
            ) from exc
        self.writes += 1

    def _restore(self, old_text: str | None) -> None:
        if old_text is None:
            with contextlib.suppress(FileNotFoundError):
                self.include.unlink()
        else:
            _atomic_write(self.include, old_text)

    # -- waiting for the new workers ----------------------------------------------------

    def _master_pid(self) -> int | None:
        pid_file = self.pid_file
        if pid_file is None:
            try:
                match = _PID.search(self.conf.read_text())
            except OSError:
                return None
            if match is None:
                return None
            pid_file = self.prefix / match.group(1)
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _workers(self) -> set[int] | None:
        """The master's worker processes now (``None`` where /proc cannot tell)."""
        master = self._master_pid()
        if master is None:
            return None
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            return None
        return {int(pid) for pid in children if "worker process" in _cmdline(int(pid))}

    def _wait_workers(self, old: set[int] | None, wanted: float) -> None:
        """Bounded wait until every old worker exited or is shutting down (it then
        accepts no new requests), so a request sent after ``set_split`` returns
        already sees the new weights."""
        if old is None:
            return
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if all(not _alive(pid) or "shutting down" in _cmdline(pid) for pid in old):
                current = self._workers()
                if current is None or current - old:
                    return
            time.sleep(0.01)
        raise TrafficError(
            f"nginx reloaded but the old workers {sorted(old)} still serve after {self.timeout:g}s",
            wanted=wanted,
        )


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "(no output)"


def create(options: Mapping[str, Any], context: PluginContext) -> NginxBackend:
    """Build the backend from the plan's ``[traffic]`` table (no I/O)."""
    opts = Options(options)
    base = context.base_dir
    include = base / opts.required_text("include")
    conf = base / opts.required_text("conf")
    prefix_text = opts.text("prefix")
    prefix = conf.parent if prefix_text is None else base / prefix_text
    baseline = opts.required_text("baseline")
    canary = opts.required_text("canary")
    if baseline == canary:
        raise ConfigError("baseline and canary must be different servers", key="canary")
    upstream = opts.text("upstream", "app") or "app"
    nginx = opts.text("nginx", "nginx") or "nginx"
    template = opts.text("template")
    template_file = opts.text("template_file")
    if template is not None and template_file is not None:
        raise ConfigError("give 'template' or 'template_file', not both", key="template")
    if template is not None:
        unknown = [name for name in placeholders(template) if name not in PLACEHOLDERS]
        if unknown:
            raise ConfigError(
                f"unknown placeholder {{{{{unknown[0]}}}}} (known: {', '.join(PLACEHOLDERS)})",
                key="template",
            )
    total = opts.integer("total_weight", 1000)
    assert total is not None
    if not 1 <= total <= 1_000_000:
        raise ConfigError(f"must be within 1..1000000, got {total}", key="total_weight")
    timeout = opts.seconds("timeout", 10.0)
    pid_file = opts.text("pid_file")
    opts.done()
    return NginxBackend(
        include=include,
        conf=conf,
        prefix=prefix,
        baseline=baseline,
        canary=canary,
        upstream=upstream,
        nginx=nginx,
        template=template or DEFAULT_TEMPLATE,
        template_file=None if template_file is None else base / template_file,
        total_weight=total,
        timeout=timeout,
        pid_file=None if pid_file is None else base / pid_file,
    )
