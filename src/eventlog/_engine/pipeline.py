"""The pipeline: settings, parts, stats and metrics, and the one submit path of every door.

The caller's side (:meth:`Pipeline.submit_event`, :meth:`Pipeline.submit_record`)
appends to the worker's queue and returns: no I/O, no formatting, no hook
dispatch, no lock unless the queue is full.  The rest is the pipeline's parts:

- :mod:`eventlog._config.builder` made them from the settings, at configure time;
- :class:`eventlog._engine.worker.Worker` owns the queue, the thread, wake-ups,
  flushes, deadlines and shutdown, in one :class:`~eventlog._engine.worker.State`;
- a delivery strategy, :class:`eventlog._engine.memory.MemoryDelivery` or
  :class:`eventlog._engine.delivery.SpoolDelivery` (spool mode), takes each round;
- :class:`eventlog._engine.encoder.Encoder` turns queued items into a batch of bytes;
- :class:`eventlog._engine.sender.Sender` sends it, retrying as the transport says;
- :class:`eventlog._engine.accounting.Accounting` keeps accepted = sent + dropped + waiting.

A fork gives the child a fresh worker and parts.  Transports only move bytes.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eventlog._config.builder import build
from eventlog._config.config import Settings
from eventlog._config.registry import Registry, get_registry
from eventlog._core.diagnostics import Warnings
from eventlog._core.errors import ConfigurationError
from eventlog._engine import prometheus
from eventlog._engine.accounting import Accounting
from eventlog._engine.encoder import Encoder
from eventlog._engine.ledger import Ledger
from eventlog._engine.memory import MemoryDelivery
from eventlog._engine.overload import Overload, tag_records
from eventlog._engine.sender import MAX_UNEXPECTED_FAILURES, Sender
from eventlog._engine.stats import Stats
from eventlog._engine.worker import Delivery, Worker, set_bounds, weakly
from eventlog._records.caps import ITEM_BYTES, SMALL_BYTES, cap_event, event_bytes, event_size, record_bytes
from eventlog._records.event import Event
from eventlog._records.logrecords import record_to_event

if TYPE_CHECKING:
    from eventlog._config.contracts import Transport
    from eventlog._engine.delivery import SpoolDelivery
    from eventlog._records.context import RequestContext
    from eventlog._spool import Spool


log = logging.getLogger(__name__)
__all__ = ["MAX_UNEXPECTED_FAILURES", "Pipeline"]


class Pipeline:
    """A worker and the formatter, enrichers and transport configuration names.

    Build one with :func:`eventlog.configure` (the default pipeline) or
    directly, for a second destination: ``Pipeline(Settings.load({...}))``.

    The doors (the logging handler, ``log_event``, counters, the structlog and
    loguru bridges) queue only through its submit contract: :meth:`submit_event`,
    :meth:`submit_record`, :meth:`submit`, ``caller_enrichers`` and ``worker``
    (an :class:`eventlog._engine.worker.Intake`, which the handler inlines), and
    count what they convert with :meth:`count_converted` and :meth:`warn_once`.
    """

    def __init__(self, settings: Settings, registry: Registry | None = None, *, start: bool = True) -> None:
        registry = registry or get_registry()
        self.settings = settings
        self.name: str = settings.name
        self.stats = Stats()
        # Every setting checked, or raises; plugins count their conversions with the engine's.
        self._parts = parts = build(settings, registry, self.stats.converted)
        self.formatter = parts.formatter
        self.transport_name, self.format_name = parts.transport_name, parts.format_name
        #: Enrichers run on the caller's thread, before the event is queued (part of the contract).
        self.caller_enrichers = parts.caller_enrichers
        self.metrics_port: int | None = None
        self._spool: Spool | None = self._open_spool() if settings.db else None
        self._setup_runtime(parts.first_transport)
        prometheus.track(self)
        _live.add(self)
        if start:
            self.start()

    def start(self) -> None:
        """Serve the metrics endpoint (``metrics_port``), and send what an earlier run spooled.

        ``Pipeline(settings)`` calls it; ``start=False`` leaves it to the caller.
        """
        settings = self.settings
        if settings.metrics_port is not None and self.metrics_port is None:
            self.metrics_port = prometheus.serve(settings.metrics_addr, settings.metrics_port)
        if self._spool is not None and self._spool.depth():
            self.worker.wake()  # what an earlier run left is sent without waiting for a new event

    def _setup_runtime(self, transport: Transport | None = None) -> None:
        """The worker and its parts: made at start and again in a forked child."""
        parts, stats, settings = self._parts, self.stats, self.settings
        self._warnings = warnings = Warnings(self.name, log)
        # accepted = sent + dropped + waiting, also when shutdown() gives up on a worker stuck
        # in a send: see eventlog._engine.accounting.
        self._accounts = accounts = Accounting(stats)
        self.worker = worker = Worker(
            self.name,
            batch_size=settings.batch_size,
            queue_size=settings.queue_size,
            queue_max_bytes=settings.queue_max_bytes,
            linger=settings.linger_ms / 1000.0,
            shutdown_timeout=settings.shutdown_timeout,
            stats=stats,
            accounts=accounts,
            warnings=warnings,
            keep=self,
        )
        self._encoder = encoder = Encoder(
            parts,
            stats=stats,
            count=accounts.count,
            enricher_failed=weakly(self._enricher_failed, None),
            warnings=warnings,
        )
        # Overload control and the loss ledger (issue 24).
        self._overload, self._ledger = _overload_control(self.name, settings, worker, encoder)
        self._sender = sender = Sender(
            parts.transport_factory,
            transport_name=parts.transport_name,
            settings=settings,
            stats=stats,
            count=accounts.count,
            wait=weakly(worker.retry_wait, None),
            warnings=warnings,
            mask=parts.mask,
            transport=transport,
        )
        until = weakly(worker.until, 0.0)
        self._delivery: SpoolDelivery | None = None
        delivery: Delivery
        if self._spool is not None:
            from eventlog._engine.delivery import SpoolDelivery

            delivery = self._delivery = SpoolDelivery(
                self._spool,
                settings,
                queue=worker.queue,
                stop_event=worker.stopped,
                deadline=until,
                sender=sender,
                encoder=encoder,
                accounts=accounts,
                stats=stats,
                warnings=warnings,
                wake=weakly(worker.wake, None),
                tag=functools.partial(tag_records, self._overload.classifier),  # overload control
            )
            self._spool.on_evict_class = self._overload.spool_evicted  # overload control
        else:
            delivery = MemoryDelivery(
                encoder=encoder, sender=sender, accounts=accounts, stopped=worker.stopped, deadline=until
            )
        worker.attach(delivery, sender, self._overload)

    # ------------------------------------------------------------ the submit contract

    def submit(self, item: Any) -> None:
        """Queue an Event (or a (record, message, context) tuple).  Never blocks, never raises."""
        self.worker.put(item)

    def submit_event(self, event: Event) -> None:
        """Run caller-stage enrichers, then queue the event itself (log_event hands over a snapshot)."""
        if self.caller_enrichers:
            for enrich in self.caller_enrichers:
                try:
                    enrich(event)
                except Exception:
                    self._enricher_failed(enrich)
        # Measured only with text to measure (a call costs ~1k instructions); cut before queued.
        has_text = event.message or event.tags or event.fields or event.metrics or event.exc_info
        if (size := event_size(event) if has_text else ITEM_BYTES) > SMALL_BYTES:
            size = cap_event(event, self.count_converted)
        # Worker.put inlined: this is every log_event's path (a call costs ~1k instructions).
        worker = self.worker
        queue, accounts = worker.queue, worker.accounts
        if len(queue) >= worker.limit or accounts.queued_bytes + size > worker.max_bytes:
            worker.overflowed(event, size)
            return
        queue.append(event)
        accounts.queued_bytes += size
        if worker.wake_needed:
            worker.wake()

    def submit_record(
        self, record: logging.LogRecord, message: str | tuple[str, Any], ctx: RequestContext
    ) -> None:
        """Queue a log record; an Event in the worker (now, if caller enrichers run or it is large).

        ``message`` is the rendered message, or ``(msg, args)`` of immutable
        arguments that the worker renders.
        """
        size = record_bytes(message)  # past SMALL_BYTES: an Event now, cut, the record not kept
        if self.caller_enrichers or size > SMALL_BYTES:
            self.submit_event(record_to_event(record, message, ctx))
            return
        # Worker.put inlined: this is every logging call's path.
        worker = self.worker
        queue, accounts = worker.queue, worker.accounts
        if len(queue) >= worker.limit or accounts.queued_bytes + size > worker.max_bytes:
            worker.overflowed((record, message, ctx), size)
            return
        queue.append((record, message, ctx))
        accounts.queued_bytes += size
        if worker.wake_needed:
            worker.wake()

    def count_converted(self, reason: str) -> None:
        """A door converted or left out a value it could not take (counted as converted{reason})."""
        with self.worker.caller_lock:
            self.stats.converted[reason] = self.stats.converted.get(reason, 0) + 1

    def warn_once(self, key: str, message: str, *, exc_info: bool = False) -> None:
        """Log ``message`` on eventlog's logger, once per ``key`` for this pipeline."""
        self._warnings.once(key, message, exc_info=exc_info)

    def _enricher_failed(self, enrich: Callable[[Event], None]) -> None:
        self.count_converted("enricher_error")
        self.warn_once(f"enricher:{enrich!r}", "an enricher raised; events go on without it", exc_info=True)

    # ------------------------------------------------------------ flush and shutdown

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call was sent or given up.

        Returns False if that did not happen within ``timeout`` seconds.
        """
        return self.worker.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Send what is queued until the deadline, then stop the worker and close the transport.

        Never blocks longer than ``timeout`` (default: the ``shutdown_timeout``
        setting).  In spool mode, what could not be sent stays in the spool.
        When the deadline finds the worker inside a send, what it holds (in
        memory mode) and what is still queued are counted as dropped{shutdown}.
        Returns True when everything was delivered.
        """
        worker = self.worker
        if worker.closed:
            return True
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        worker.deadline = deadline
        worker.retry_cut.set()  # a backoff under way (up to 30 s) ends: the peer may be back
        dropped_before = self.stats.dropped.get("shutdown", 0)
        if self._ledger is not None:  # the loss ledger's last word, sent like any event
            self.submit_event(self._ledger.event(final=True))
        delivered = worker.flush(timeout)
        prometheus.untrack(self)
        if not worker.close(deadline):
            self._say_what_was_left(timeout, dropped_before, stuck=True)
            return False
        self._accounts.give_up(worker.queue, "shutdown")
        _live.discard(self)
        # The flush may have ended because the worker gave its batch up at the deadline
        # (counted, so "settled"): True only when this shutdown lost nothing.  (Rows in the
        # spool are not counted against it: the file holds every process's rows.)
        lost = self._say_what_was_left(timeout, dropped_before, stuck=False)
        return delivered and not lost

    def _say_what_was_left(self, timeout: float, dropped_before: int, *, stuck: bool) -> int:
        """One line at shutdown: how many events were not delivered, and why; return those lost."""
        lost = self.stats.dropped.get("shutdown", 0) - dropped_before
        spooled = _spooled_left(self._spool)
        if not lost and not spooled:
            return 0
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
        return lost

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

    def queue_depth(self) -> int:
        """Events waiting in memory."""
        return len(self.worker.queue)

    def shed_counts(self) -> dict[tuple[str, str], int]:
        """Events dropped under pressure, by (class of service, reason): see eventlog._engine.overload."""
        return dict(self._overload.shed)

    def spilled_count(self) -> int:
        """Events queued past a full queue into the spill reserve (``overload_policy`` spill)."""
        return self._overload.spilled

    def spool_depth(self) -> int:
        """Events waiting in the spool, or for it in the worker's memory (0 in memory mode)."""
        try:
            return self.worker.delivery.depth()
        except Exception:
            return 0

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

        # The Sender retries until the deadline, then leaves the rest.
        self.worker.stop_at(time.monotonic() + timeout)
        return replay(
            spool,
            self._sender,
            batch_size=self.settings.batch_size,
            deadline=self.worker.until,
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


def _overload_control(
    name: str, settings: Settings, worker: Worker, encoder: Encoder
) -> tuple[Overload, Ledger | None]:
    """Issue 24's parts: classes of service and queue-full policies, and the loss ledger (when on)."""
    overload = Overload(
        settings, queue=worker.queue, accounts=worker.accounts, stats=worker.stats, lock=worker.caller_lock
    )
    if overload.thinning is not None:
        set_bounds(worker, 0, worker.max_bytes)  # every event goes to Overload.full, which samples
    if not settings.ledger_interval:
        return overload, None
    ledger = Ledger(name, settings.ledger_interval, stats=worker.stats, overload=overload, queue=worker.queue)
    encoder.stamp = ledger.stamp  # sequence numbers on the events, in the worker
    return overload, ledger


_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()


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


def _spooled_left(spool: Spool | None) -> int:
    """Events a run leaves in the spool (0 in memory mode, or when it cannot be read)."""
    if spool is None:
        return 0
    try:
        return spool.depth()
    except Exception:
        return 0


#: The reference submit_event, in Python.  eventlog-speedups' compiled one does the same for
#: an Event with plain text slots, no caller enrichers, within SMALL_BYTES and room in the
#: queue, and calls this one for anything else; tests hold the two equal.
python_submit_event = Pipeline.submit_event


def _load_compiled_submit_event() -> Callable[[Pipeline, Event], None] | None:
    """eventlog-speedups' submit_event for Pipeline, unless absent or EVENTLOG_SPEEDUPS=0.

    It measures with the compiled event_bytes, so only where ``event_size`` is that one.
    The Python method costs ~2.5k instructions a log_event in bytecode dispatch (callgrind,
    3.11: see docs/benchmarks.md).
    """
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0" or event_size is event_bytes:
        return None
    try:
        from eventlog_speedups._caps import (  # type: ignore[import-not-found, unused-ignore]
            setup_submit_event,
        )
    except ImportError:
        return None
    compiled: Callable[[Pipeline, Event], None] = setup_submit_event(
        cls=Pipeline, python_submit_event=python_submit_event, small_bytes=SMALL_BYTES, deque_type=deque
    )
    return compiled


#: Pipeline.submit_event where eventlog-speedups is installed (None where not): a method
#: descriptor, so ``pipeline.submit_event(event)`` calls the C function directly.
compiled_submit_event = _load_compiled_submit_event()
if compiled_submit_event is not None:
    Pipeline.submit_event = compiled_submit_event  # type: ignore[method-assign, assignment]
