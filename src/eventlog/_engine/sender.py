"""Sending one batch: the transport's lifecycle and the retry policy.

:class:`Sender` owns the transport instance (made by the factory, opened
before its first send, closed after a failure and made again for the next
try) and decides what a failure means: retry with exponential backoff and
jitter (no sooner than a peer's Retry-After), give up after ``max_retry_age``,
set a batch aside when the peer refuses it for good or when a buggy transport
raises something other than :class:`~eventlog._core.errors.TransportError` too
often.  It starts no thread: it runs on the thread that calls
:meth:`Sender.send` (the pipeline's worker), the wait between tries is handed
in, so a test can drive it alone, and every count goes out through ``stats``
and the ``count`` callback (the pipeline's accounting).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from eventlog._config.config import Settings
from eventlog._config.contracts import Transport
from eventlog._core.diagnostics import Warnings
from eventlog._core.errors import SendTimeout, TransportError
from eventlog._engine.stats import Stats
from eventlog._records.batch import Batch

log = logging.getLogger(__name__)

__all__ = ["BACKOFF_START", "MAX_UNEXPECTED_FAILURES", "Count", "Deadline", "Sender"]

#: A transport that raises something other than TransportError this often for one batch is
#: buggy: the batch is set aside (counted as ``transport_bug``) instead of blocking the pipeline.
MAX_UNEXPECTED_FAILURES = 5

#: First wait after a failed send; doubled each retry, with jitter, up to retry_backoff_max.
BACKOFF_START = 0.05

#: ``count(events, None)``: delivered; ``count(events, reason)``: given up for ``reason``.
Count = Callable[[int, str | None], object]

#: When to stop retrying, in ``time.monotonic()`` seconds (``math.inf``: never).  Asked
#: before each retry, so that a shutdown which starts during a send can bring it closer.
Deadline = Callable[[], float]


class Sender:
    """Sends batches through one transport at a time, retrying as the transport's errors say.

    ``wait(seconds)`` is called between tries (the pipeline's: it moves queued
    events into the spool meanwhile, and a shutdown cuts it short); ``count``
    receives the outcome of each batch's events; ``stats`` gets latency,
    transport_up, retries and send_errors.  ``transport`` is the instance to
    start with (else the factory makes one at the first send).
    """

    def __init__(
        self,
        factory: Callable[[], Transport],
        *,
        transport_name: str,
        settings: Settings,
        stats: Stats,
        count: Count,
        wait: Callable[[float], object],
        warnings: Warnings,
        mask: Callable[[str], str],
        transport: Transport | None = None,
    ) -> None:
        self.factory = factory
        self.transport_name = transport_name
        self.settings = settings
        self.stats = stats
        self._count = count
        self._wait = wait
        self._warnings = warnings
        self._mask = mask
        self._transport = transport
        self._opened = False  # has the current transport's open() been called?
        #: Why the last send failed (masked), until one succeeds: said at shutdown.
        self.last_error: str | None = None
        #: True while the transport's open() or send() runs (read at shutdown, to say why).
        self.in_send = False

    @property
    def transport(self) -> Transport | None:
        """The current transport instance (None after a failure until the next send)."""
        return self._transport

    def send(self, batch: Batch, deadline: Deadline, count: Count | None = None) -> bool:
        """Send one batch, retrying as the transport says; False when ``deadline`` cut it short.

        True means every event of the batch was counted: sent, or given up
        (rejected, expired, transport_bug).  ``count`` replaces the Sender's
        own for this batch (the pipeline counts spool rows apart).
        """
        if count is None:
            count = self._count
        attempt = unexpected = 0
        first_failure: float | None = None
        while True:
            try:
                self.in_send = True
                if self._transport is None:
                    self._transport = self.factory()
                # The contract: open() and send() return by this (Transport.time_left bounds
                # their waits), so a shutdown's deadline is not outlived by a connect.
                self._transport.deadline = deadline()
                if not self._opened:
                    # The Transport contract: open() before the first send of each instance.
                    self._transport.open()
                    self._opened = True
                started = time.perf_counter()
                answer = self._transport.send(batch)
                self.in_send = False
                refused = _refusals(answer)
                self.stats.observe_latency(time.perf_counter() - started)
                count(len(batch) - len(refused), None)
                for record, reason in refused:
                    count(1, "rejected")
                    reason = self._mask(reason)
                    self._warnings.once(
                        f"refused:{reason.split(':')[0]}", f"event {record.id} refused: {reason}"
                    )
                if not self.stats.transport_up and first_failure is not None:
                    log.info("sending to %s works again", self.transport_name)
                self.stats.transport_up = 1
                self.last_error = None
                self._warnings.again("send")
                return True
            except TransportError as exc:
                self.in_send = False
                error: BaseException = exc
                retryable = exc.retryable  # the class's, or 0.1's deprecated retryable= argument
            except KeyboardInterrupt:
                raise  # only the main thread gets one, sending at exit: the user wants out
            except BaseException as exc:  # a plugin bug: keep the events a while, say what happened
                # BaseException too: a plugin's SystemExit or GeneratorExit must not end the worker.
                self.in_send = False
                error, retryable = exc, True
                unexpected += 1
                if unexpected >= MAX_UNEXPECTED_FAILURES:
                    # Not a TransportError: retrying forever would block every later event.
                    count(len(batch), "transport_bug")
                    self._warnings.once(
                        f"bug:{type(exc).__name__}",
                        f"{len(batch)} events set aside: the {self.transport_name} transport raised "
                        f"{type(exc).__name__} (not a TransportError) {unexpected} times: "
                        f"{self._mask(str(exc))}",
                    )
                    self.close()
                    return True
            self.stats.transport_up = 0
            kind = type(error).__name__
            # Time running out (Transport.time_left) is not why the peer does not have the events:
            # the error before it is, when there was one.
            if not (isinstance(error, SendTimeout) and self.last_error and time.monotonic() >= deadline()):
                self.last_error = f"the last send failed: {kind}: {self._mask(str(error))}"
            self.stats.send_errors[kind] = self.stats.send_errors.get(kind, 0) + 1
            self.close()
            if not retryable:
                count(len(batch), "rejected")
                self._warnings.once(
                    f"rejected:{type(error).__name__}",
                    f"{len(batch)} events set aside: the {self.transport_name} peer refused "
                    f"them for good: {self._mask(str(error))}",
                )
                return True
            now = time.monotonic()
            if first_failure is None:
                first_failure = now
                self._warnings.once(
                    "send",
                    f"sending failed, will retry: {type(error).__name__}: {self._mask(str(error))}",
                )
            max_age = self.settings.max_retry_age
            if max_age and now - first_failure > max_age:
                count(len(batch), "expired")
                log.warning("gave up on %d events after %.0fs of failures", len(batch), max_age)
                return True
            until = deadline()
            if now > until:
                return False
            attempt += 1
            self.stats.retries += 1
            delay = min(self.settings.retry_backoff_max, BACKOFF_START * 2 ** min(attempt, 20))
            delay *= random.uniform(0.5, 1.0)  # jitter: many processes must not retry in step
            retry_after = _seconds(getattr(error, "retry_after", None))
            if retry_after:  # the peer said when to come back: not sooner
                delay = max(delay, min(retry_after, self.settings.retry_backoff_max))
            # Never past the deadline; a shutdown also cuts the wait short for one last try.
            self._wait(min(delay, max(0.0, until - now)))

    def idle_interval(self) -> float | None:
        """How often the open transport wants :meth:`idle`; None: no transport open, or never."""
        transport = self._transport
        return transport.idle_interval if transport is not None and self._opened else None

    def idle(self) -> None:
        """Between batches: the open transport's idle I/O; a broken connection is closed.

        A TransportError closes the transport (the next batch opens a new one);
        anything else is a plugin bug, logged once, and closes it too.
        """
        transport = self._transport
        if transport is None or not self._opened:
            return
        try:
            transport.deadline = math.inf
            transport.idle()
        except TransportError as exc:
            self._warnings.once(
                f"idle:{type(exc).__name__}",
                f"the {self.transport_name} connection broke while idle, opening again for the next "
                f"batch: {type(exc).__name__}: {self._mask(str(exc))}",
            )
            self.close()
        except Exception as exc:
            self._warnings.once(
                f"idle-bug:{type(exc).__name__}",
                f"the {self.transport_name} transport's idle() raised {type(exc).__name__} (not a "
                f"TransportError): {self._mask(str(exc))}",
            )
            self.close()

    def close(self) -> None:
        """Close the current transport (errors ignored); the next send makes a new one."""
        transport, self._transport = self._transport, None
        self._opened = False
        if transport is not None:
            try:
                transport.close()
            except KeyboardInterrupt:
                raise
            except BaseException:  # a plugin's close() must not end the worker either
                pass


def _seconds(value: object) -> float | None:
    """A Retry-After a transport passed on: a peer's value, so anything; None unless a sane number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int of thousands of digits
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _refusals(answer: object) -> list[tuple[Any, str]]:
    """What ``Transport.send`` returned, checked before anything is counted.

    A transport that returns something else than ``None`` or (record, reason)
    pairs has a bug: raised here (so the batch is retried, then set aside as
    transport_bug), never after part of the batch was counted as sent.
    """
    if answer is None:
        return []
    refused: list[tuple[Any, str]] = list(answer)  # type: ignore[call-overload]
    for pair in refused:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], str)):
            raise TypeError(f"Transport.send returned {pair!r} among its refusals, not (record, reason)")
    return refused
