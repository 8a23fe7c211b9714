"""Observers: hooks, the console reporter and notifiers hear of what already happened.

The engine applies and journals a decision's effect first, then tells observers.
Each hook implementation is called on its own, so one that raises, hangs or
writes into a closed pipe is logged and journaled as an observer failure and
never stops, delays (past ``timeout``) or changes a decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import pluggy

from .. import hookspecs
from .._plugins import Plugins

__all__ = ["OBSERVER_TIMEOUT", "Observers"]

log = logging.getLogger("gatekeeper")

OBSERVER_TIMEOUT = 10.0  # seconds one hook implementation may take in a real run

Failure = Callable[[str, str, str], None]  # (plugin, hook, what went wrong)


class Observers:
    """Calls the ``gatekeeper_<event>`` hooks of every registered plugin.

    ``threaded`` (real runs): each implementation runs in a daemon thread and is
    waited for at most ``timeout`` seconds — a hung webhook is abandoned, not
    waited on. Rehearsals call implementations inline (a simulated clock has no
    time to bound), still isolated from each other's exceptions.
    """

    def __init__(
        self,
        plugins: Plugins,
        *,
        threaded: bool,
        timeout: float = OBSERVER_TIMEOUT,
        on_failure: Failure | None = None,
    ) -> None:
        self.plugins = plugins
        # Observers of this run only (its notifications), beside the process's plugins.
        self.local = pluggy.PluginManager("gatekeeper")
        self.local.add_hookspecs(hookspecs)
        self.threaded = threaded
        self.timeout = timeout
        self.on_failure = on_failure
        self.failures = 0

    async def emit(self, event: str, **kwargs: Any) -> None:
        """Tell every implementation of ``gatekeeper_<event>``, newest plugin first
        (pluggy's order). Never raises."""
        name = f"gatekeeper_{event}"
        impls = [
            *reversed(getattr(self.plugins.pm.hook, name).get_hookimpls()),
            *reversed(getattr(self.local.hook, name).get_hookimpls()),
        ]
        for impl in impls:
            if impl.hookwrapper or impl.wrapper:
                continue  # event hooks have nothing to wrap
            args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
            problem = await self._call(impl.function, args)
            if problem is not None:
                self._failed(impl.plugin_name, event, problem)

    async def _call(self, function: Callable[..., Any], args: dict[str, Any]) -> str | None:
        if not self.threaded:
            return _guarded(function, args)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str | None] = loop.create_future()

        def target() -> None:
            problem = _guarded(function, args)
            # An abandoned observer may finish after the run (and its loop) ended.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, done, problem)

        threading.Thread(target=target, name="gatekeeper-observer", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(done), self.timeout)
        except TimeoutError:
            return f"did not return within {self.timeout:g}s (abandoned)"

    def _failed(self, plugin: str, event: str, problem: str) -> None:
        self.failures += 1
        log.warning("observer %s failed on %s: %s", plugin, event, problem)
        if self.on_failure is not None:
            self.on_failure(plugin, event, problem)


def _guarded(function: Callable[..., Any], args: dict[str, Any]) -> str | None:
    try:
        function(**args)
    except Exception as exc:  # noqa: BLE001 - an observer's failure is journaled, not raised
        return f"{type(exc).__name__}: {exc}"
    return None


def _settle(future: asyncio.Future[str | None], problem: str | None) -> None:
    if not future.done():
        future.set_result(problem)
