"""The pipeline: the queue, the worker thread, flush, shutdown, fork, and what is owed.

The caller's side (:meth:`Pipeline.submit`) appends to a deque and returns:
no I/O, no formatting, no hook dispatch, no lock unless the queue is full.
One worker thread per pipeline takes batches and hands them on to its parts:

- :mod:`eventlog._config.builder` made them from the settings, at configure time;
- :class:`eventlog._engine.encoder.Encoder` turns queued items into a batch of bytes;
- :class:`eventlog._engine.sender.Sender` sends it, retrying as the transport says;
- :class:`eventlog._engine.delivery.SpoolDelivery` stores and drains the spool (spool mode);
- :class:`eventlog._engine.accounting.Accounting` keeps accepted = sent + dropped + waiting.

The pipeline owns the threads and the clock: when the worker sleeps, when a
flush is done, and when a shutdown's deadline ends the work.  Transports only
move bytes.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from eventlog._config.builder import build
from eventlog._config.config import Settings
from eventlog._config.registry import Registry, get_registry
from eventlog._core.diagnostics import WORKER_THREADS, Warnings, log
from eventlog._core.errors import ConfigurationError
from eventlog._engine import prometheus
from eventlog._engine.accounting import Accounting
from eventlog._engine.encoder import Encoder
from eventlog._engine.sender import MAX_UNEXPECTED_FAILURES, Sender
from eventlog._engine.stats import Stats
from eventlog._records.event import Event
from eventlog._records.logrecords import record_to_event

if TYPE_CHECKING:
    from eventlog._config.contracts import Transport
    from eventlog._engine.delivery import SpoolDelivery
    from eventlog._records.context import RequestContext
    from eventlog._spool import Spool

__all__ = ["MAX_UNEXPECTED_FAILURES", "Pipeline"]

#: How often a waiting flush checks that the worker is alive (and restarts one that died).
SUPERVISE_EVERY = 1.0


class Pipeline:
    """A queue, a worker and the formatter, enrichers and transport configuration names.

    Build one with :func:`eventlog.configure` (the default pipeline) or
    directly, for a second destination: ``Pipeline(Settings.load({...}))``.
    """

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        registry = registry or get_registry()
        self.settings = settings
        self.name: str = settings.name
        self.stats = Stats()
        # Every setting checked, or raises; plugins count their conversions with the engine's.
        self._parts = parts = build(settings, registry, self.stats.converted)
        self.formatter = parts.formatter
        self.transport_name, self.format_name = parts.transport_name, parts.format_name
        self._caller_enrichers = parts.caller_enrichers
        self._batch_size: int = settings.batch_size
        self._maxsize: int = settings.queue_size
        self._linger: float = settings.linger_ms / 1000.0
        self._delivery: SpoolDelivery | None = None  # spool mode's, made with the worker's parts
        self._spool: Spool | None = self._open_spool() if settings.db else None
        self._setup_runtime(parts.first_transport)
        if self._spool is not None and self._spool.depth():
            self._wake()  # what an earlier run left is sent without waiting for a new event
        prometheus.track(self)
        _live.add(self)
        if settings.metrics_port is not None:
            self.metrics_port: int | None = prometheus.serve(settings.metrics_addr, settings.metrics_port)
        else:
            self.metrics_port = None

    def _setup_runtime(self, transport: Transport | None = None) -> None:
        """Queue, worker state, locks and the worker's parts: made at start and again in a forked child."""
        self._queue: deque[Any] = deque()
        self._sleeping = True  # True also means "worker not started": submit wakes it
        self._wake_event = threading.Event()
        self._stop_event = threading.Event()
        self._hurry = threading.Event()  # a flush or shutdown waits: the linger ends now
        self._start_lock = threading.Lock()
        self._overflow_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._inline = False  # _send_inline is running
        self._died: str | None = None  # why the last worker died, until one is started again
        self._deadline = math.inf
        parts, stats = self._parts, self.stats
        self._warnings = warnings = Warnings(self.name)
        # accepted = sent + dropped + waiting, also when shutdown() gives up on a worker stuck
        # in a send: see eventlog._engine.accounting.
        self._accounts = accounts = Accounting(stats)
        self._encoder = encoder = Encoder(
            parts,
            stats=stats,
            count=accounts.count,
            enricher_failed=_weakly(self._enricher_failed, None),
            warnings=warnings,
        )
        self._sender = sender = Sender(
            parts.transport_factory,
            transport_name=parts.transport_name,
            settings=self.settings,
            stats=stats,
            count=accounts.count,
            wait=_weakly(self._retry_wait, None),
            warnings=warnings,
            mask=parts.mask,
            transport=transport,
        )
        self._delivery = None
        if self._spool is not None:
            from eventlog._engine.delivery import SpoolDelivery

            self._delivery = SpoolDelivery(
                self._spool,
                self.settings,
                queue=self._queue,
                stop_event=self._stop_event,
                deadline=_weakly(self._until, 0.0),
                sender=sender,
                encoder=encoder,
                accounts=accounts,
                stats=stats,
                warnings=warnings,
                wake=_weakly(self._wake, None),
            )

    # ------------------------------------------------------------ the caller's side

    def submit(self, item: Any) -> None:
        """Queue an Event (or a (record, message, context) tuple).  Never blocks, never raises."""
        queue = self._queue
        if len(queue) >= self._maxsize:
            self._overflowed()
            return
        queue.append(item)
        if self._sleeping:
            self._wake()

    def submit_event(self, event: Event) -> None:
        """Run caller-stage enrichers, then queue the event."""
        if self._caller_enrichers:
            for enrich in self._caller_enrichers:
                try:
                    enrich(event)
                except Exception:
                    self._enricher_failed(enrich)
        # submit() inlined: this is every log_event's path.
        queue = self._queue
        if len(queue) >= self._maxsize:
            self._overflowed()
            return
        queue.append(event)
        if self._sleeping:
            self._wake()

    def submit_record(
        self, record: logging.LogRecord, message: str | tuple[str, Any], ctx: RequestContext
    ) -> None:
        """Queue a log record; it becomes an Event in the worker (or now, if caller enrichers run).

        ``message`` is the rendered message, or ``(msg, args)`` of immutable
        arguments that the worker renders.
        """
        if self._caller_enrichers:
            self.submit_event(record_to_event(record, message, ctx))
            return
        # submit() inlined: this is every logging call's path.
        queue = self._queue
        if len(queue) >= self._maxsize:
            self._overflowed()
            return
        queue.append((record, message, ctx))
        if self._sleeping:
            self._wake()

    def _overflowed(self) -> None:
        with self._overflow_lock:
            self.stats.overflow += 1
        if self._sleeping:
            self._wake()

    def _enricher_failed(self, enrich: Callable[[Event], None]) -> None:
        with self._overflow_lock:
            self.stats.converted["enricher_error"] = self.stats.converted.get("enricher_error", 0) + 1
        self._warnings.once(
            f"enricher:{enrich!r}", "an enricher raised; events go on without it", exc_info=True
        )

    def _wake(self) -> None:
        if self._closed:
            self._drop_late()
            return
        # One wake-up is enough: until the worker sleeps again (and sets the flag itself),
        # callers skip Event.set(), which takes a lock; the set() below always follows.
        # Cleared before a start: a new worker that dies at once sets it again after us.
        self._sleeping = False
        if self._worker is None:
            self._start()
        self._wake_event.set()

    def _drop_late(self) -> None:
        """Events that arrive after shutdown: nobody will send them, so count them."""
        if self._drop_queued("closed"):
            self._warnings.once(
                "closed",
                'events logged after shutdown() are dropped, counted as dropped{reason="closed"}; '
                "call eventlog.configure() to log again",
            )

    def _drop_queued(self, reason: str) -> int:
        """Empty the queue, counting its events as dropped for ``reason``; return how many.

        They count as taken too (out of the queue, not by the worker), so the
        accepted metric (taken + queued) still includes them.
        """
        return self._accounts.give_up(self._queue, reason)

    def _start(self) -> None:
        with self._start_lock:
            if self._worker is not None or self._closed:
                return
            worker = threading.Thread(target=self._run, name=f"eventlog-{self.name}", daemon=True)
            died, self._died = self._died, None
            if died is not None:
                self.stats.worker_restarts += 1
                self._warnings.once(  # once: eventlog_worker_restarts_total counts the others
                    "restarted", f"the eventlog worker was started again; it had died of {died}"
                )
            # Set before it runs: a worker that dies at once clears it itself (see _worker_died).
            self._worker = worker
            try:
                worker.start()
            except RuntimeError:
                self._worker = None
                # Python 3.12+ starts no thread once the interpreter is exiting, when atexit
                # hooks (the counters' last flush) may log for the first time: send from here.
                self._send_inline()

    def _supervise(self) -> None:
        """Restart a worker that died, if anything waits for one (a flush, or queued events)."""
        worker = self._worker
        if self._closed or (worker is not None and worker.is_alive()):
            return
        if self._queue or self._accounts.markers:
            self._wake()

    def _send_inline(self) -> None:
        """At interpreter exit, without a worker: what is queued goes out from this thread."""
        if self._inline:
            return  # a send in progress logged again: it is in the queue, the loop takes it
        self._inline = True
        self._stopping = True  # retries end at the deadline: the process is exiting
        self._deadline = min(self._deadline, time.monotonic() + self.settings.shutdown_timeout)
        ident = threading.get_ident()
        WORKER_THREADS.add(ident)
        try:
            while (self._queue or self._accounts.markers) and time.monotonic() <= self._deadline:
                self._round()
        except Exception:
            self._accounts.set_aside("worker_error")
            log.exception("sending at interpreter exit failed; the events were dropped")
        finally:
            WORKER_THREADS.discard(ident)
            self._inline = False

    # ------------------------------------------------------------ flush and shutdown

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call was sent or given up.

        Returns False if that did not happen within ``timeout`` seconds.
        """
        if self._closed:
            return not self._queue
        if not self._queue and self._worker is None and (self._delivery is None or self._delivery.idle()):
            return True
        # Not in the queue: a marker takes no slot and never stops the move to the spool.
        marker = self._accounts.marker(self._queue)
        self._hurry.set()
        self._wake()
        end = math.inf if timeout is None else time.monotonic() + timeout
        while not marker.done.is_set():
            left = end - time.monotonic()
            if left <= 0:
                self._accounts.withdraw(marker)  # timed out: it holds nothing up
                return marker.done.is_set()
            # Every second, a worker that died is started again (a flush must not wait for it).
            if marker.done.wait(min(left, SUPERVISE_EVERY)):
                break
            self._supervise()
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Send what is queued until the deadline, then stop the worker and close the transport.

        Never blocks longer than ``timeout`` (default: the ``shutdown_timeout``
        setting).  In spool mode, what could not be sent stays in the spool.
        When the deadline finds the worker inside a send, what it holds (in
        memory mode) and what is still queued are counted as dropped{shutdown}.
        Returns True when everything was delivered.
        """
        if self._closed:
            return True
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._deadline = deadline
        dropped_before = self.stats.dropped.get("shutdown", 0)
        delivered = self.flush(timeout)
        self._stopping = True
        self._closed = True
        prometheus.untrack(self)
        self._stop_event.set()
        self._hurry.set()
        self._wake_event.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                self._abandon()
                self._say_what_was_left(timeout, dropped_before, stuck=True)
                return False
        else:
            self._sender.close()
            if self._spool is not None:
                self._spool.close()
        self._sleeping = True  # from now on every submit goes through _wake, which counts it
        left = self._drop_queued("shutdown")
        _live.discard(self)
        self._say_what_was_left(timeout, dropped_before, stuck=False)
        return delivered and not left

    def _say_what_was_left(self, timeout: float, dropped_before: int, *, stuck: bool) -> None:
        """One line at shutdown: how many events were not delivered, and why."""
        lost = self.stats.dropped.get("shutdown", 0) - dropped_before
        spooled = self._spooled_left()
        if not lost and not spooled:
            return
        parts = []
        if lost:
            parts.append(
                f'{lost} events were not delivered and are lost (counted as dropped{{reason="shutdown"}})'
            )
        if spooled:
            parts.append(f"{spooled} events wait in the spool {self.settings.db} for the next run")
        why = self._sender.last_error
        if stuck and self._sender.in_send:
            why = "a send was still in progress (the peer takes no more data)"
        elif why is None:
            why = "sending was still under way"
        log.warning(
            "[%s] shutdown deadline of %ss (EVENTLOG_SHUTDOWN_TIMEOUT) passed: %s; %s",
            self.name,
            f"{timeout:g}",
            "; ".join(parts),
            why,
        )

    def _spooled_left(self) -> int:
        """Events this run leaves in the spool (0 in memory mode, or when it cannot be read)."""
        if self._spool is None:
            return 0
        try:
            return self._spool.depth()
        except Exception:
            return 0

    def retire(self) -> None:
        """Shut down in the background (configure() replaced this pipeline): the caller goes on.

        What is queued is still sent until the shutdown deadline; at interpreter
        exit the process waits for it up to that deadline.  It leaves the scrape now:
        its successor exports the same pipeline name, and one name must be one series.
        """
        prometheus.untrack(self)
        thread = threading.Thread(target=self._retire, name=f"eventlog-retire-{self.name}", daemon=True)
        with _retiring_lock:
            _retiring.append(thread)
        try:
            thread.start()
        except RuntimeError:  # interpreter exiting: no new thread, shut down here
            with _retiring_lock:
                _retiring.remove(thread)
            self.shutdown()

    def _retire(self) -> None:
        try:
            self.shutdown()
        except Exception:
            log.exception("[%s] shutting down the replaced pipeline failed", self.name)
        finally:
            with _retiring_lock:
                if threading.current_thread() in _retiring:
                    _retiring.remove(threading.current_thread())

    def _abandon(self) -> None:
        """The deadline passed with the worker stuck (a peer that never reads): count what it holds.

        What the worker took and has not counted, and what is still queued, is
        counted as dropped{shutdown} now, so accepted = sent + dropped + waiting
        holds when shutdown() returns.  The worker is a daemon and may finish its
        send later: it then counts nothing of what was counted here (see
        eventlog._engine.accounting).  Events in the spool stay waiting; a spool.add()
        under way is left to the worker.
        """
        self._sleeping = True  # later submits go through _wake, which counts them as closed
        self._accounts.abandon()
        self._drop_queued("shutdown")

    def queue_depth(self) -> int:
        """Events waiting in memory."""
        return len(self._queue)

    def spool_depth(self) -> int:
        """Events waiting in the spool, or for it in the worker's memory (0 in memory mode)."""
        try:
            return self._delivery.depth() if self._delivery is not None else 0
        except Exception:
            return 0

    # ------------------------------------------------------------ the worker

    def _run(self) -> None:
        queue, accounts = self._queue, self._accounts
        WORKER_THREADS.add(threading.get_ident())
        died: BaseException | None = None
        failures = 0
        try:
            if self._delivery is not None:
                # What an earlier run left goes first, in order.
                self._contained(self._delivery.drain)
            while True:
                if not queue and not accounts.markers:
                    if self._stopping:
                        break
                    self._sleeping = True
                    if not queue and not accounts.markers:  # re-check: a caller may have appended
                        # A transport that needs I/O between batches (heartbeats) gets its idle()
                        # call every idle_interval seconds while nothing wakes the worker.
                        interval = self._sender.idle_interval()
                        if self._wake_event.wait(interval):
                            self._wake_event.clear()
                        else:
                            self._contained(self._sender.idle)
                    self._sleeping = False
                    continue
                if self._contained(self._round):
                    failures = 0
                else:
                    # A failure that repeats must not spin: wait a little longer each time.
                    failures += 1
                    self._stop_event.wait(min(1.0, 0.01 * 2**failures))
                if self._stopping and time.monotonic() > self._deadline:
                    break
        except BaseException as exc:  # SystemExit from a plugin ...: counted, then restarted
            died = exc
        finally:
            WORKER_THREADS.discard(threading.get_ident())
            self._sender.close()
            if died is not None and not self._stopping:
                self._worker_died(died)
            else:
                self._worker_ended()

    def _worker_ended(self) -> None:
        """The worker stops (shutdown): spool what is queued, count what is given up, set markers."""
        if self._delivery is not None:
            try:
                self._delivery.finish()  # what is still queued goes into the spool
            except Exception:
                log.exception("[%s] moving the queue into the spool at shutdown failed", self.name)
        # Past the deadline, memory mode: what is still queued is given up, and counted.
        self._sleeping = True  # later submits go through _wake, which counts them
        self._drop_queued("shutdown")
        self._accounts.set_aside("shutdown")
        self._accounts.release()

    def _worker_died(self, exc: BaseException) -> None:
        """The thread is ending on an exception no round contained: count, then let it restart.

        What the dying round held is counted as dropped{worker_died}; the queue
        and the flush markers stay for the next worker, which the next submit
        or flush starts (counted as worker_restarts, and logged).
        """
        lost = self._accounts.set_aside("worker_died")
        if self._delivery is not None:
            self._delivery.unspooled = []  # counted just now
        self._died = f"{type(exc).__name__}: {exc}"
        self._warnings.once(
            f"died:{type(exc).__name__}",
            f"the eventlog worker died of {self._died}; {lost} events it held are counted as "
            'dropped{reason="worker_died"}; it is restarted by the next event or flush',
            exc_info=exc,
        )
        # Last: from here a caller's submit (or a flush) starts a new worker.
        with self._start_lock:
            if self._worker is threading.current_thread():
                self._worker = None
        self._sleeping = True

    def _contained(self, work: Callable[[], object]) -> bool:
        """Run ``work``; an unexpected failure costs only what it held, counted. False if it failed."""
        try:
            work()
            return True
        except Exception as exc:
            lost = self._accounts.set_aside("worker_error")
            if self._delivery is not None:
                self._delivery.unspooled = []  # counted just now
            if self._delivery is None:
                self._accounts.settled()  # nothing else waits: a flush may return
            self._sender.close()  # the transport may be half way through something
            self._warnings.once(
                f"worker_error:{type(exc).__name__}",
                f"the eventlog worker failed ({type(exc).__name__}: {exc}); the {lost} events "
                'of that round are counted as dropped{reason="worker_error"} and the worker goes on',
                exc_info=True,
            )
            return False

    def _round(self) -> None:
        """One batch: take it, encode, deliver; then set the flushes it completes."""
        queue = self._queue
        if self._linger and len(queue) < self._batch_size and not self._stopping:
            if not self._accounts.markers:
                self._hurry.wait(self._linger)
            self._hurry.clear()
        items = self._accounts.take(queue, self._batch_size) if queue else []
        # In spool mode a flush alone still drains the spool: flush() must not return while
        # events logged before it wait there.
        if self._handle(items):
            self._accounts.settled()

    def _handle(self, items: list[Any]) -> bool:
        """Encode and deliver; False when events of this round still wait (spool mode)."""
        if self._delivery is not None:
            return self._delivery.handle(self._encoder.records(items))
        batch = self._encoder.batch(items)
        if batch and not self._sender.send(batch, self._until):
            # Memory mode at the shutdown deadline: nowhere left to keep them.
            self._accounts.count(len(batch), "shutdown")
        return True

    def _until(self) -> float:
        """When the work ends: the shutdown's (or replay's) deadline once it started, else never.

        Set when shutdown() begins, before its flush: a connect or send started while
        shutdown drains is bounded by it too (Transport.deadline, Transport.time_left).
        """
        return self._deadline

    def _retry_wait(self, delay: float) -> None:
        """The Sender's wait between tries: a shutdown cuts it short for one last try."""
        if self._stopping:
            # Shutdown started: wait for real (the stop event is already set); the Sender
            # keeps the wait within the deadline.
            time.sleep(delay)
        elif self._delivery is not None:
            self._delivery.wait(delay)  # an outage fills the spool, not the memory queue
        else:
            self._stop_event.wait(delay)

    # ------------------------------------------------------------ spool mode

    def _open_spool(self) -> Spool:
        try:
            from eventlog._engine.delivery import (  # needs sqlite3, which a build may lack
                destination_of,
                open_spool,
            )
        except ImportError:
            raise ConfigurationError(
                f"EVENTLOG_DB = {self.settings.db!r}: spool mode is not available in this build"
            ) from None
        # Each row records where it goes: another destination's rows are not sent from here.
        destination = destination_of(self.settings, self.transport_name, self._parts.transport_options)
        spool: Spool = open_spool(
            self.settings, self.format_name, self._spool_evicted, destination=destination
        )
        return spool

    def _spool_evicted(self, reason: str, count: int) -> None:
        """The spool's size or age limit dropped ``count`` events: counted by the delivery."""
        if self._delivery is not None:
            self._delivery.evicted(reason, count)

    def replay(
        self,
        spool: Spool,
        *,
        timeout: float,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send what ``spool`` holds through this pipeline's transport, now; return the count.

        Gives up on retries after ``timeout`` seconds; what is left stays in
        the spool.  ``progress`` receives the number delivered so far.
        """
        from eventlog._engine.delivery import replay

        self._stopping = True  # the Sender retries until the deadline, then leaves the rest
        self._deadline = time.monotonic() + timeout
        return replay(
            spool,
            self._sender,
            batch_size=self._batch_size,
            deadline=self._until,
            count=self._accounts.count_rows,
            progress=progress,
        )

    # ------------------------------------------------------------ fork

    def _after_fork(self) -> None:
        # The child gets a fresh queue, worker and parts; the parent's socket and spool
        # connection belong to the parent, so the child forgets them unclosed.
        if self._spool is not None:
            self._spool.after_fork()
        self.stats = Stats()
        # New parts: no transport (the parent's), no refused batch or held marker (the
        # parent's, not ours to send), no static fields (made again in the worker: the pid
        # enricher's at-fork hook may run later), no warnings given yet.
        self._setup_runtime()


_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()
P = ParamSpec("P")
R = TypeVar("R")


def _weakly(method: Callable[P, R], gone: R) -> Callable[P, R]:
    """``method`` without a strong reference to its pipeline (``gone`` once it is freed).

    The parts a pipeline owns (encoder, sender, spool delivery) call back into it; bound
    methods there would make a cycle, and a pipeline replaced by ``configure()`` would
    live on (its worker, its metrics) until the garbage collector ran.
    """
    ref = weakref.WeakMethod(method)

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = ref()
        return gone if bound is None else bound(*args, **kwargs)

    return call


#: Pipelines configure() replaced, shutting down in the background (see Pipeline.retire).
_retiring: list[threading.Thread] = []
_retiring_lock = threading.Lock()


def flush_retiring(timeout: float | None) -> bool:
    """Wait for the pipelines configure() replaced to finish; False if one is still sending.

    ``eventlog.flush()`` covers every event logged before it, also those logged
    through the pipeline a later ``configure()`` replaced: its background shutdown
    sends them or gives them up (counted), as a flush means; this waits for it, up
    to ``timeout``.
    """
    end = None if timeout is None else time.monotonic() + timeout
    with _retiring_lock:
        threads = list(_retiring)
    finished = True
    for thread in threads:
        thread.join(None if end is None else max(0.0, end - time.monotonic()))
        finished = finished and not thread.is_alive()
    return finished


def _after_fork_in_child() -> None:
    global _retiring_lock
    # The threads that shut replaced pipelines down are not in the child, and one of them
    # may have held this lock at the fork: the child's flush() would wait on it for ever.
    _retiring_lock = threading.Lock()
    _retiring.clear()
    for pipeline in list(_live):
        pipeline._after_fork()


def _shutdown_all() -> None:
    with _retiring_lock:
        retiring = list(_retiring)
    for thread in retiring:
        thread.join()  # each shutdown keeps its own deadline
    for pipeline in list(_live):
        try:
            pipeline.shutdown()
        except Exception:
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_shutdown_all)
