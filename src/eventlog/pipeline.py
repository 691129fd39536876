"""The pipeline engine: queue, worker thread, batching, retries, flush, shutdown, fork.

The caller's side (:meth:`Pipeline.submit`) appends to a deque and returns:
no I/O, no formatting, no hook dispatch, no lock unless the queue is full.
One worker thread per pipeline takes batches, converts log records to events,
runs worker-stage enrichers, formats, optionally spools, and sends with
retries.  Transports only move bytes.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any

from eventlog import prometheus
from eventlog.batch import Batch, EncodedBatch, Record
from eventlog.config import Settings
from eventlog.contracts import Formatter, PluginContext, Transport, batch_encoder
from eventlog.diagnostics import WORKER_THREADS, log
from eventlog.errors import ConfigurationError, TransportError
from eventlog.event import Event
from eventlog.logrecords import record_to_event, wires_of
from eventlog.masking import SecretMask
from eventlog.registry import Registry, get_registry
from eventlog.selection import select_plugins
from eventlog.stats import Stats
from eventlog.wire import to_wire

if TYPE_CHECKING:
    from eventlog.context import RequestContext
    from eventlog.spool import Spool

#: A transport that raises something other than TransportError this often for one batch is
#: buggy: the batch is set aside (counted as ``transport_bug``) instead of blocking the pipeline.
MAX_UNEXPECTED_FAILURES = 5

#: First wait after a failed send; doubled each retry, with jitter, up to retry_backoff_max.
BACKOFF_START = 0.05
#: In spool mode with linger_ms=0, how often a retry wait moves queued events to the spool.
SPOOL_WHILE_WAITING = 0.005


_new_tuple = tuple.__new__

#: A sentinel no queue item is: iter(popleft, _NEVER) never stops by itself.
_NEVER = object()


class _Flush:
    """A marker in the queue: set once everything before it was sent or given up."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


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
        selection = select_plugins(settings, registry)  # every setting checked, or raises
        transport_name, transport_spec = selection.transport_name, selection.transport.spec
        format_name, formatter_reg = selection.format_name, selection.formatter
        formatter_options = settings.plugin_options(format_name, formatter_reg.spec.options)
        self.formatter: Formatter = formatter_reg.spec.factory(PluginContext(settings, formatter_options))
        transport_options = settings.plugin_options(transport_name, transport_spec.options)
        # Every transport's error text passes this before it leaves the process (warnings),
        # so a plugin that quotes its own secret in an exception does not leak it.
        self._mask = SecretMask.for_options(transport_spec.options, transport_options)
        self._transport_factory: Callable[[], Transport] = lambda: transport_spec.factory(
            PluginContext(settings, transport_options, self.formatter, format_name)
        )
        # Build one now so that configuration errors surface at configure time.
        self._transport: Transport | None = self._transport_factory()
        self.transport_name, self.format_name = transport_name, format_name
        self._caller_enrichers: list[Callable[[Event], None]] = []
        self._worker_enrichers: list[Callable[[Event], None]] = []
        # The built-in host, site and context enrichers set what the fast path merges
        # itself (see _encode); any other enricher makes every event take the careful path.
        self._fast = True
        self._static_enrichers: list[Callable[[Event], None]] = []
        self._with_context = False
        for enricher_name, enricher_reg in selection.enrichers:
            spec = enricher_reg.spec
            enricher_options = settings.plugin_options(enricher_name, spec.options)
            func = spec.factory(PluginContext(settings, enricher_options))
            (self._caller_enrichers if spec.stage == "caller" else self._worker_enrichers).append(func)
            builtin = spec.factory.__module__ == "eventlog.builtin.enrichers"
            if builtin and enricher_name in ("host", "site"):
                self._static_enrichers.append(func)
            elif builtin and enricher_name == "context":
                self._with_context = True
            else:
                self._fast = False
        self._static: dict[str, Any] | None = None  # made by the worker, once
        self._format = self.formatter.format
        encoder = batch_encoder(self.formatter)
        self._format_many: Callable[[list[dict[str, Any]]], bytes] | None = None
        self._split_many: Callable[[bytes], list[bytes]] | None = None
        if encoder is not None:
            self._format_many, self._split_many = encoder
        self._batch_size: int = settings.batch_size
        self._maxsize: int = settings.queue_size
        self._linger: float = settings.linger_ms / 1000.0
        self._spool: Spool | None = self._open_spool() if settings.db else None
        self._unspooled: list[Record] = []  # encoded, but the spool could not take them
        self._held_markers: list[_Flush] = []  # flushes passed over while spooling in an outage
        self._warned: set[str] = set()
        self._setup_runtime()
        if self._spool is not None and self._spool.depth():
            self._wake()  # what an earlier run left is sent without waiting for a new event
        prometheus.track(self)
        _live.add(self)
        if settings.metrics_port is not None:
            self.metrics_port: int | None = prometheus.serve(settings.metrics_addr, settings.metrics_port)
        else:
            self.metrics_port = None

    # ------------------------------------------------------------ the caller's side

    def _setup_runtime(self) -> None:
        """Queue, worker state and locks: made at start and again in a forked child."""
        self._queue: deque[Any] = deque()
        self._sleeping = True  # True also means "worker not started": submit wakes it
        self._wake_event = threading.Event()
        self._stop_event = threading.Event()
        self._start_lock = threading.Lock()
        self._overflow_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._opened = False  # has the current transport's open() been called?
        self._stopping = False
        self._closed = False
        self._inline = False  # _send_inline is running
        self._deadline = float("inf")
        # accepted = sent + dropped + waiting, also when shutdown() gives up on a worker stuck
        # in a send: events the worker took are "in flight" until it counts them (sent,
        # dropped) or stores them in the spool; _abandon counts those still in flight, once.
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self._spooling = 0  # of those, the ones inside a spool.add() right now
        self._counted_ahead = 0  # counted by _abandon: the worker does not count them again

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
        self._warn_once(f"enricher:{enrich!r}", "an enricher raised; events go on without it", exc_info=True)

    def _wake(self) -> None:
        if self._closed:
            self._drop_late()
            return
        if self._worker is None:
            self._start()
        # One wake-up is enough: until the worker sleeps again (and sets the flag itself),
        # callers skip Event.set(), which takes a lock; the set() below always follows.
        self._sleeping = False
        self._wake_event.set()

    def _drop_late(self) -> None:
        """Events that arrive after shutdown: nobody will send them, so count them."""
        if self._drop_queued("closed"):
            self._warn_once(
                "closed",
                'events logged after shutdown() are dropped, counted as dropped{reason="closed"}; '
                "call eventlog.configure() to log again",
            )

    def _drop_queued(self, reason: str) -> int:
        """Empty the queue, counting its events as dropped for ``reason``; return how many.

        They count as taken too (out of the queue, not by the worker), so the
        accepted metric (taken + queued) still includes them.
        """
        left = self._give_up_queue()
        if left:
            with self._count_lock:
                self.stats.taken += left
                self.stats.drop(reason, left)
        return left

    def _give_up_queue(self) -> int:
        """Empty the queue (one item at a time: callers may still append); return the events.

        Flush markers found on the way are set, so no waiter hangs.
        """
        events = 0
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                return events
            if type(item) is _Flush:
                item.done.set()
            else:
                events += 1

    def _start(self) -> None:
        with self._start_lock:
            if self._worker is not None or self._closed:
                return
            worker = threading.Thread(target=self._run, name=f"eventlog-{self.name}", daemon=True)
            try:
                worker.start()
            except RuntimeError:
                # Python 3.12+ starts no thread once the interpreter is exiting, when atexit
                # hooks (the counters' last flush) may log for the first time: send from here.
                self._send_inline()
                return
            self._worker = worker

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
            while self._queue and time.monotonic() <= self._deadline:
                items, markers = self._take(self._queue)
                sending = items or (markers and self._spool is not None)
                if sending and not self._handle(items):
                    self._held_markers.extend(markers)
                    continue
                for marker in markers:
                    marker.done.set()
        except Exception:
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
        if (
            not self._queue
            and self._worker is None
            and not self._unspooled
            and (self._spool is None or not self._spool.depth())
        ):
            return True
        marker = _Flush()
        self._queue.append(marker)  # a marker is never refused, even when the queue is full
        self._wake()
        return marker.done.wait(timeout)

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
        delivered = self.flush(timeout)
        self._stopping = True
        self._closed = True
        self._stop_event.set()
        self._wake_event.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                self._abandon()
                self._warn_once("shutdown", f"shutdown deadline of {timeout}s passed with a send in progress")
                return False
        else:
            self._close_transport()
            if self._spool is not None:
                self._spool.close()
        self._sleeping = True  # from now on every submit goes through _wake, which counts it
        left = self._drop_queued("shutdown")
        _live.discard(self)
        return delivered and not left

    def _abandon(self) -> None:
        """The deadline passed with the worker stuck (a peer that never reads): count what it holds.

        What the worker took and has not counted, and what is still queued, is
        counted as dropped{shutdown} now, so accepted = sent + dropped + waiting
        holds when shutdown() returns.  The worker is a daemon and may finish its
        send later: it then counts nothing of what was counted here (see _count).
        Events in the spool stay waiting; a spool.add() under way is left to the worker.
        """
        self._sleeping = True  # later submits go through _wake, which counts them as closed
        with self._count_lock:
            stuck = self._in_flight - self._spooling
            self._in_flight -= stuck
            self._counted_ahead += stuck
            if stuck:
                self.stats.drop("shutdown", stuck)
        self._drop_queued("shutdown")

    def _took(self, count: int) -> None:
        """The worker took ``count`` events from the queue: in flight until counted or spooled."""
        with self._count_lock:
            self.stats.taken += count
            self._in_flight += count

    def _count(self, count: int, reason: str | None = None, *, taken: bool = True) -> int:
        """Count events as sent (``reason`` None) or dropped for ``reason``; return how many.

        ``taken``: events the worker took from the queue (not spool rows).  Of
        those, what _abandon already counted is not counted again: the stuck
        send that finishes after shutdown() returned.
        """
        with self._count_lock:
            if taken:
                ahead = min(count, self._counted_ahead)
                self._counted_ahead -= ahead
                count -= ahead
                self._in_flight -= count
            if count:
                if reason is None:
                    self.stats.sent += count
                else:
                    self.stats.drop(reason, count)
            return count

    def _store(self, records: list[Record]) -> None:
        """``spool.add`` for records of events the worker took; raises what it raises (OSError)."""
        assert self._spool is not None
        with self._count_lock:
            ahead = min(len(records), self._counted_ahead)
            self._counted_ahead -= ahead
            stored = records[ahead:]  # counted as dropped by _abandon: not waiting as well
            self._spooling = len(stored)
        try:
            self._spool.add(stored)
        except BaseException:
            with self._count_lock:
                self._spooling = 0
                self._counted_ahead += ahead  # the caller counts all of records: give them back
            raise
        with self._count_lock:
            self._spooling = 0
            self._in_flight -= len(stored)

    def queue_depth(self) -> int:
        """Events waiting in memory."""
        return sum(1 for item in list(self._queue) if type(item) is not _Flush)

    def spool_depth(self) -> int:
        """Events waiting in the spool (0 in memory mode)."""
        try:
            return self._spool.depth() if self._spool is not None else 0
        except Exception:
            return 0

    # ------------------------------------------------------------ the worker

    def _run(self) -> None:
        queue = self._queue
        WORKER_THREADS.add(threading.get_ident())
        try:
            if self._spool is not None:
                self._drain_spool()  # what an earlier run left goes first, in order
            while True:
                if not queue:
                    if self._stopping:
                        break
                    self._sleeping = True
                    if not queue:  # re-check: a caller may have appended before seeing the flag
                        self._wake_event.wait()
                        self._wake_event.clear()
                    self._sleeping = False
                    continue
                if self._linger and len(queue) < self._batch_size and not self._stopping:
                    self._stop_event.wait(self._linger)
                items, markers = self._take(queue)
                # In spool mode a marker alone still drains the spool: flush() must not
                # return while events logged before it wait there.
                done = self._handle(items) if items or (markers and self._spool is not None) else True
                if done:
                    for marker in markers:
                        marker.done.set()
                else:
                    self._held_markers.extend(markers)  # set once the spool is empty
                if self._stopping and time.monotonic() > self._deadline:
                    break
        except Exception:
            log.exception("eventlog worker failed; events logged from now on are dropped")
        finally:
            WORKER_THREADS.discard(threading.get_ident())
            self._close_transport()
            if self._spool is not None:
                try:
                    self._spool_queued(everything=True)  # past the deadline: keep, not lose
                    if self._unspooled:  # a batch the spool refused a moment ago
                        try:
                            self._store(self._unspooled)
                        except OSError:
                            self._count(len(self._unspooled), "shutdown")
                        self._unspooled = []
                    self._release_markers()
                    self._spool.close()
                except Exception:
                    pass
            if self._stopping:
                # Past the deadline, memory mode: what is still queued is given up, and counted.
                self._sleeping = True  # later submits go through _wake, which counts them
                self._drop_queued("shutdown")
            for item in list(queue):
                if type(item) is _Flush:
                    item.done.set()

    def _take(self, queue: deque[Any]) -> tuple[list[Any], list[_Flush]]:
        """Up to batch_size items; a flush marker ends the batch."""
        # In C: iter(popleft, ...) calls popleft() and islice stops after n, and the marker
        # check compares types without a Python loop (a loop costs ~800 instructions an event).
        items = list(islice(iter(queue.popleft, _NEVER), min(len(queue), self._batch_size)))
        markers: list[_Flush] = []
        if _Flush in map(type, items):
            index = list(map(type, items)).index(_Flush)
            markers.append(items[index])
            queue.extendleft(reversed(items[index + 1 :]))  # back in front, in order
            del items[index:]
        self._took(len(items))
        return items, markers

    def _handle(self, items: list[Any]) -> bool:
        """Encode and deliver; False when events of this round still wait (spool mode)."""
        if self._spool is not None:
            return self._spool_and_send(self._encode(items))
        batch = self._encode_batch(items)
        if batch and not self._send(batch):
            # Memory mode at the shutdown deadline: nowhere left to keep them.
            self._count(len(batch), "shutdown")
        return True

    def _static_fields(self) -> dict[str, Any]:
        """What the host and site enrichers set on an event, as wire fields in wire order."""
        blank = Event.__new__(Event)
        blank.site = blank.cluster = blank.host = blank.pid = None
        for enrich in self._static_enrichers:
            enrich(blank)
        static = {"site": blank.site, "cluster": blank.cluster, "host": blank.host, "pid": blank.pid}
        return {key: value for key, value in static.items() if value is not None}

    def _wires(self, items: list[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        """The wire dicts of the items, and the items they came from (poison events left out).

        The fast path builds each wire dict in one pass from the log record or
        Event; what it does not take (and every event, when other enrichers are
        configured) goes the careful way: an Event, the enrichers, ``to_wire``.
        """
        conversions = self.stats.converted
        if not self._fast:
            wires: list[dict[str, Any]] = []
            sources: list[Any] = []
            for item in items:
                wire = self._careful_wire(item)
                if wire is not None:
                    wires.append(wire)
                    sources.append(item)
            return wires, sources
        static = self._static
        if static is None:
            static = self._static = self._static_fields()
        return wires_of(items, static, self._with_context, conversions, self._careful_wire)

    def _careful_wire(self, item: Any) -> dict[str, Any] | None:
        """An Event, the worker enrichers, ``to_wire``; None (counted, warned) if that fails."""
        try:
            event = item if type(item) is Event else record_to_event(*item)
            for enrich in self._worker_enrichers:
                try:
                    enrich(event)
                except Exception:
                    self._enricher_failed(enrich)
            return to_wire(event, self.stats.converted)
        except Exception as exc:
            self._set_aside(exc)
            return None

    def _set_aside(self, exc: Exception) -> None:
        # A poison event: set aside with its reason; the rest of the batch goes on.
        self._count(1, "unencodable")
        self._warn_once(
            f"encode:{type(exc).__name__}",
            f"an event could not be formatted as {self.format_name!r} and was set "
            f"aside: {type(exc).__name__}: {exc}",
        )

    def _encode_batch(self, items: list[Any]) -> Batch:
        """The batch for the transport: encoded in one call where the formatter can."""
        format_many, split_many = self._format_many, self._split_many
        if format_many is None or split_many is None:
            return self._records(*self._wires(items))
        wires, sources = self._wires(items)
        if not wires:
            return []
        try:
            body = format_many(wires)
        except Exception:
            return self._records(wires, sources)  # one by one, to find what cannot be encoded
        return EncodedBatch(body, wires, lambda: [_time_ns(item) for item in sources], split_many)

    def _encode(self, items: list[Any]) -> list[Record]:
        """One Record per event (spool mode, and formats that encode one event at a time)."""
        batch = self._encode_batch(items)
        return batch.records() if type(batch) is EncodedBatch else list(batch)

    def _records(self, wires: list[dict[str, Any]], sources: list[Any]) -> list[Record]:
        records: list[Record] = []
        fmt = self._format
        for wire, item in zip(wires, sources):
            try:
                payload = fmt(wire)
            except Exception as exc:
                self._set_aside(exc)
                continue
            # tuple.__new__ skips the NamedTuple's Python-level __new__: same Record, less cost.
            records.append(_new_tuple(Record, (wire["id"], wire["action"], _time_ns(item), payload)))
        return records

    # ------------------------------------------------------------ sending

    def _send(self, batch: Batch, *, taken: bool = True) -> bool:
        """Send one batch, retrying as the transport says; False if shutdown cut it short.

        ``taken``: the batch holds events the worker took (not spool rows), see _count.
        """
        attempt = unexpected = 0
        first_failure: float | None = None
        while True:
            try:
                if self._transport is None:
                    self._transport = self._transport_factory()
                if not self._opened:
                    # The Transport contract: open() before the first send of each instance.
                    self._transport.open()
                    self._opened = True
                started = time.perf_counter()
                refused = self._transport.send(batch) or ()
                self.stats.observe_latency(time.perf_counter() - started)
                self._count(len(batch) - len(refused), taken=taken)
                for record, reason in refused:
                    self._count(1, "rejected", taken=taken)
                    reason = self._mask(reason)
                    self._warn_once(f"refused:{reason.split(':')[0]}", f"event {record.id} refused: {reason}")
                if not self.stats.transport_up and first_failure is not None:
                    log.info("sending to %s works again", self.transport_name)
                self.stats.transport_up = 1
                self._warned.discard("send")
                return True
            except TransportError as exc:
                error: BaseException = exc
                retryable = exc.retryable
            except Exception as exc:  # a plugin bug: keep the events a while, say what happened
                error, retryable = exc, True
                unexpected += 1
                if unexpected >= MAX_UNEXPECTED_FAILURES:
                    # Not a TransportError: retrying forever would block every later event.
                    self._count(len(batch), "transport_bug", taken=taken)
                    self._warn_once(
                        f"bug:{type(exc).__name__}",
                        f"{len(batch)} events set aside: the {self.transport_name} transport raised "
                        f"{type(exc).__name__} (not a TransportError) {unexpected} times: "
                        f"{self._mask(str(exc))}",
                    )
                    self._close_transport()
                    return True
            self.stats.transport_up = 0
            kind = type(error).__name__
            self.stats.send_errors[kind] = self.stats.send_errors.get(kind, 0) + 1
            self._close_transport()
            if not retryable:
                self._count(len(batch), "rejected", taken=taken)
                self._warn_once(
                    f"rejected:{type(error).__name__}",
                    f"{len(batch)} events set aside: the {self.transport_name} peer refused "
                    f"them for good: {self._mask(str(error))}",
                )
                return True
            now = time.monotonic()
            if first_failure is None:
                first_failure = now
                self._warn_once(
                    "send",
                    f"sending failed, will retry: {type(error).__name__}: {self._mask(str(error))}",
                )
            max_age = self.settings.max_retry_age
            if max_age and now - first_failure > max_age:
                self._count(len(batch), "expired", taken=taken)
                log.warning("gave up on %d events after %.0fs of failures", len(batch), max_age)
                return True
            if self._stopping and now > self._deadline:
                return False
            attempt += 1
            self.stats.retries += 1
            delay = min(self.settings.retry_backoff_max, BACKOFF_START * 2 ** min(attempt, 20))
            delay *= random.uniform(0.5, 1.0)  # jitter: many processes must not retry in step
            retry_after = getattr(error, "retry_after", None)
            if retry_after:  # the peer said when to come back: not sooner
                delay = max(delay, min(retry_after, self.settings.retry_backoff_max))
            if self._stopping:
                # Shutdown started: wait for real (the stop event is already set), within the deadline.
                time.sleep(min(delay, max(0.0, self._deadline - now)))
            else:
                self._backoff_wait(delay)  # shutdown cuts the wait short for one last try

    def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        self._opened = False
        if transport is not None:
            try:
                transport.close()
            except Exception:
                pass

    # ------------------------------------------------------------ spool mode

    def _open_spool(self) -> Spool:
        try:
            from eventlog.spool import open_spool
        except ImportError:
            raise ConfigurationError(
                f"EVENTLOG_DB = {self.settings.db!r}: spool mode is not available in this build"
            ) from None
        spool: Spool = open_spool(self.settings, self.format_name, self._spool_evicted)
        return spool

    def _spool_evicted(self, reason: str, count: int) -> None:
        """The spool's size or age limit dropped ``count`` events (the worker thread)."""
        self.stats.drop(reason, count)
        self._warn_once(
            f"evict:{reason}",
            f"the spool {self.settings.db} reached its {reason.removeprefix('spool_')} limit; "
            f"the oldest events are dropped (counted as {reason!r})",
        )

    def _spool_and_send(self, records: list[Record]) -> bool:
        """Spool the records, then drain; True when nothing of this process waits."""
        assert self._spool is not None
        if self._unspooled:
            records, self._unspooled = self._unspooled + records, []
        if records:
            try:
                self._store(records)
            except OSError as exc:  # the spool's SpoolUnavailable: disk full, read-only ...
                self._count_fallback(exc, len(records))
                if not self._send(records):  # memory mode for this batch
                    self._count(len(records), "shutdown")
                    return False
                # Sent from memory; what the unwritable spool holds waits until it recovers.
                return True
        return self._drain_spool()

    def _drain_spool(self) -> bool:
        """Send what the spool holds for this process, oldest first, until none is left.

        Between batches, newly queued events move into the spool (behind the
        older rows), so a long backlog never makes the memory queue overflow.
        Returns True when the spool had nothing left (held flush markers are
        then set) or cannot be used now; False at the shutdown deadline.
        """
        assert self._spool is not None
        while True:
            if self._stopping and time.monotonic() > self._deadline:
                return False  # the rest stays in the spool for the next run
            try:
                batch = self._spool.pending(self._batch_size)
            except OSError:
                # Unusable for now (read-only, unreadable): new events go from memory, and
                # flush() covers those, as when a batch is sent from memory because the
                # spool refused it; the rows already there wait until it recovers.
                return True
            if not batch:
                self._release_markers()  # everything spooled before them was sent
                return True
            if not self._send(batch, taken=False):
                return False  # shutdown deadline: the rest stays in the spool
            self._spool.remove(batch)
            self._spool_queued()

    def _spool_queued(self, *, everything: bool = False) -> None:
        """Move queued events into the spool while the worker is busy elsewhere.

        Called between send retries (a peer outage must fill the disk, not the
        memory queue) and, with ``everything``, when the worker stops.  A flush
        marker normally ends the move (it is set once what came before it was
        sent); when the queue is half full it is held instead, and set once the
        spool has nothing left to send.
        """
        spool, queue = self._spool, self._queue
        if spool is None or (self._unspooled and not everything):
            return  # the spool failed a moment ago: events stay in the bounded queue
        while queue:
            items: list[Any] = []
            # Two batches per write: each SQLite call gives the GIL away for a while, so fewer
            # writes move more; but what one move holds (items, wire dicts, payloads, the row's
            # bytes, SQLite's copies) is the worker's working set, which the allocator keeps.
            while queue and len(items) < self._batch_size * 2:
                if type(queue[0]) is _Flush:
                    if not everything and len(queue) < self._maxsize // 2:
                        break
                    self._held_markers.append(queue.popleft())
                    continue
                items.append(queue.popleft())
            if not items:
                return
            self._took(len(items))
            records = self._unspooled + self._encode(items)
            self._unspooled = []
            try:
                self._store(records)
            except OSError as exc:
                self._count_fallback(exc, len(records))
                self._unspooled = records  # sent from memory with the next batch
                if everything:
                    self._count(len(records), "shutdown")
                    self._unspooled = []
                return

    def _release_markers(self) -> None:
        markers, self._held_markers = self._held_markers, []
        for marker in markers:
            marker.done.set()

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
        self._stopping = True  # _send: retry until the deadline, then leave the rest
        self._deadline = time.monotonic() + timeout
        done = 0
        try:
            while time.monotonic() <= self._deadline:
                batch = spool.pending(self._batch_size)
                if not batch or not self._send(batch, taken=False):
                    break
                spool.remove(batch)
                done += len(batch)
                if progress is not None:
                    progress(done)
        finally:
            self._close_transport()
        return done

    def _backoff_wait(self, delay: float) -> None:
        """Wait between send retries; in spool mode keep moving new events to the spool.

        An outage must fill the disk, not the bounded memory queue (which drops).
        """
        if self._spool is None:
            self._stop_event.wait(delay)
            return
        end = time.monotonic() + delay
        while True:
            self._spool_queued()
            left = end - time.monotonic()
            # Every linger window, as when the peer is up: that bounds what a kill -9 loses.
            step = self._linger or SPOOL_WHILE_WAITING
            if left <= 0 or self._stop_event.wait(min(left, step)):
                return

    def _count_fallback(self, exc: OSError, count: int) -> None:
        reason = getattr(exc, "reason", "io_error")
        fallback = self.stats.spool_fallback
        fallback[reason] = fallback.get(reason, 0) + count

    # ------------------------------------------------------------ diagnostics

    def _warn_once(self, key: str, message: str, exc_info: bool = False) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        log.warning("[%s] %s", self.name, message, exc_info=exc_info)

    def _after_fork(self) -> None:
        # The child gets a fresh queue and worker; the parent's socket and spool
        # connection belong to the parent, so the child forgets them unclosed.
        self._transport = None
        if self._spool is not None:
            self._spool.after_fork()
        self.stats = Stats()
        self._warned = set()
        self._static = None  # made again in the worker: the pid enricher's at-fork hook may run later
        self._unspooled = []  # the parent's, not ours to send
        self._held_markers = []
        self._setup_runtime()


def _time_ns(item: Any) -> int:
    """The event time of a queued item (an Event, or a log record with its message and context)."""
    if type(item) is tuple:
        return int(item[0].created * 1_000_000_000)
    time_ns: int = item.time_ns
    return time_ns


_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pipeline in list(_live):
        pipeline._after_fork()


def _shutdown_all() -> None:
    for pipeline in list(_live):
        try:
            pipeline.shutdown()
        except Exception:
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_shutdown_all)
