"""Delivering notifications without ever holding up the run.

``submit()`` puts the event on one queue per channel and returns; a worker thread
per channel redacts the event, sends it with a timeout
per attempt and bounded, backed-off retries of transient failures, and reports
every attempt through ``on_attempt``. A dead, slow or failing receiver delays
only its own channel's later messages, never the caller or another channel.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

import attrs
import tenacity

from ._channels import Channel
from .base import DeliveryError, NotificationEvent

__all__ = ["Dispatcher", "OnAttempt"]

# (notifier name, the event as sent (redacted), delivered, why, attempt number)
OnAttempt = Callable[[str, NotificationEvent, bool, str, int], None]

_log = logging.getLogger("gatekeeper.notify")


def _unchanged(text: str) -> str:
    return text


class _ClosedError(Exception):
    """The dispatcher closed while an event waited for another attempt."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.transient


@attrs.define
class _Lane:
    """One channel's queue and worker."""

    channel: Channel
    queue: queue.SimpleQueue[NotificationEvent | None] = attrs.field(factory=queue.SimpleQueue)
    thread: threading.Thread | None = None


class Dispatcher:
    """Sends each submitted event to every channel that wants it, in the background.

    ``redact`` sees every string of the event (and every failure reason) before it
    leaves the process or reaches ``on_attempt``. ``on_attempt`` is called from a
    worker thread after each attempt; an exception it raises is logged and
    otherwise ignored. ``backoff`` is the first wait before a retry (doubling up to
    ``max_backoff``); ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        redact: Callable[[str], str] | None = None,
        on_attempt: OnAttempt | None = None,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
    ) -> None:
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique: {names}")
        self._lanes = [_Lane(channel) for channel in channels]
        self._redact = redact or _unchanged
        self._on_attempt = on_attempt
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._cond = threading.Condition()
        self._pending = 0
        self._closed = False
        self._stop = threading.Event()
        # Workers start now, not on the first event: starting a thread waits for it
        # to run, a wait submit() must not have.
        for lane in self._lanes:
            lane.thread = threading.Thread(
                target=self._work,
                args=(lane,),
                name=f"gatekeeper-notify-{lane.channel.name}",
                daemon=True,
            )
            lane.thread.start()

    @property
    def channels(self) -> tuple[Channel, ...]:
        return tuple(lane.channel for lane in self._lanes)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, event: NotificationEvent) -> int:
        """Queue ``event`` for every channel that wants it and return at once: how
        many channels it was queued for (0 after :meth:`close`)."""
        queued = 0
        with self._cond:
            if self._closed:
                return 0
            for lane in self._lanes:
                if lane.channel.wants(event):
                    lane.queue.put(event)
                    self._pending += 1
                    queued += 1
        return queued

    @property
    def pending(self) -> int:
        """Events queued or being delivered (counted once per channel)."""
        with self._cond:
            return self._pending

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued event to be delivered or
        given up on; True when nothing is left."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float = 0.0) -> None:
        """Drain for up to ``timeout`` seconds, then stop: events still queued are
        reported (``delivered=False``, attempt 0) and dropped; retries stop; an
        attempt in flight is not waited for beyond its own timeout and is not
        reported. Closes every notifier. Idempotent."""
        deadline = time.monotonic() + timeout
        self.drain(timeout)
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        for lane in self._lanes:
            while True:
                try:
                    event = lane.queue.get_nowait()
                except queue.Empty:
                    break
                if event is not None:
                    self._report(
                        lane.channel.name,
                        event.redacted(self._redact),
                        delivered=False,
                        why="not sent: the run ended before its turn",
                        attempt=0,
                    )
                    self._done()
            lane.queue.put(None)
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join(max(0.0, deadline - time.monotonic()))
        self._on_attempt = None
        for lane in self._lanes:
            try:
                lane.channel.notifier.close()
            except Exception:  # noqa: BLE001 - closing must not fail the run's end
                _log.warning("closing notifier %s failed", lane.channel.name, exc_info=True)

    def _done(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def _work(self, lane: _Lane) -> None:
        while True:
            event = lane.queue.get()
            if event is None:
                return
            try:
                self._deliver(lane.channel, event)
            except Exception:  # noqa: BLE001 - a worker must outlive any one message
                _log.exception("notifier %s: delivery crashed", lane.channel.name)
            finally:
                self._done()

    def _deliver(self, channel: Channel, event: NotificationEvent) -> None:
        try:
            safe = event.redacted(self._redact)
        except Exception as exc:  # noqa: BLE001 - never send what could not be redacted
            reason = f"not sent: redacting the message failed ({type(exc).__name__})"
            _log.warning("notifier %s: %s", channel.name, reason)
            self._report(channel.name, event, delivered=False, why=reason, attempt=0)
            return
        attempt = 0

        def once() -> None:
            nonlocal attempt
            if self._stop.is_set():
                raise _ClosedError
            attempt += 1
            try:
                channel.notifier.send(safe, timeout=channel.timeout)
            except DeliveryError as exc:
                self._report(channel.name, safe, delivered=False, why=exc.reason, attempt=attempt)
                raise
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                self._report(channel.name, safe, delivered=False, why=why, attempt=attempt)
                raise DeliveryError(why, transient=False) from exc
            self._report(channel.name, safe, delivered=True, why="delivered", attempt=attempt)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(channel.attempts),
            wait=tenacity.wait_exponential(multiplier=self._backoff, max=self._max_backoff),
            retry=tenacity.retry_if_exception(_transient),
            reraise=True,
            sleep=self._pause,
        )
        try:
            retrying(once)
        except DeliveryError:
            return
        except _ClosedError:
            why = "not sent again: the run ended before the next attempt"
            self._report(channel.name, safe, delivered=False, why=why, attempt=attempt)

    def _pause(self, seconds: float) -> None:
        """Wait before a retry; cut short when the dispatcher closes."""
        self._stop.wait(seconds)

    def _report(
        self, name: str, event: NotificationEvent, *, delivered: bool, why: str, attempt: int
    ) -> None:
        try:
            why = self._redact(why)
        except Exception:  # noqa: BLE001 - a reason that cannot be redacted is withheld
            why = "(reason withheld: redacting it failed)"
        if not delivered:
            _log.info("notifier %s: attempt %d failed: %s", name, attempt, why)
        callback = self._on_attempt
        if callback is None:
            return
        try:
            callback(name, event, delivered, why, attempt)
        except Exception:  # noqa: BLE001 - an observer of an observer never stops delivery
            _log.warning("on_attempt for notifier %s raised", name, exc_info=True)
