"""The worker: one pipeline's queue, thread, wake-ups, flushes, deadlines, shutdown and fork.

Generic in what it delivers, as OpenTelemetry's ``BatchProcessor``: each round
takes a batch from the queue and hands it to a :class:`Delivery` strategy,
:class:`eventlog._engine.delivery.MemoryDelivery` (send now) or
:class:`eventlog._engine.delivery.SpoolDelivery` (store, then drain the spool).

Where the worker is in its life is one :class:`State`; the queue and its policy
(bounded by ``queue_size`` items and ``queue_max_bytes``, overflow counted) are
:meth:`Worker.put`, which the
doors reach through :class:`eventlog._engine.pipeline.Pipeline`'s submit methods
(the logging handler inlines it, see :class:`Intake`).  Transports only move bytes.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from eventlog._core.diagnostics import WORKER_THREADS, Warnings
from eventlog._engine.accounting import Accounting, done_with
from eventlog._engine.stats import Stats
from eventlog._records.caps import item_bytes

if TYPE_CHECKING:
    from eventlog._engine.overload import Overload
    from eventlog._engine.sender import Sender


log = logging.getLogger(__name__)
__all__ = ["SUPERVISE_EVERY", "Delivery", "Intake", "State", "Worker", "weakly"]

#: How often a waiting flush checks that the worker is alive (and restarts one that died).
SUPERVISE_EVERY = 1.0


class State(enum.Enum):
    """Where a worker is in its life; every change goes through :meth:`Worker._enter`."""

    IDLE = "idle"  # no thread: not started yet, or it died; the next event or flush starts one
    SLEEPING = "sleeping"  # the thread waits for a wake-up (or its transport's idle interval)
    RUNNING = "running"  # the thread works, or a caller has woken it
    STOPPING = "stopping"  # replay, or after sending at exit: retries end at the deadline
    INLINE = "inline"  # interpreter exit, no thread could start: the caller's thread sends
    CLOSING = "closing"  # shutdown(): the thread sends until the deadline, then ends
    CLOSED = "closed"  # shut down: events that still come are dropped, counted as closed


#: The states in which a caller that queued an event must call wake(): nobody awake would see
#: it (or, closed, nobody will send it: wake() counts it).
_WAKE = frozenset({State.IDLE, State.SLEEPING, State.CLOSED})
#: The states in which retries end at the deadline and the thread ends once nothing is queued.
_STOPPING = frozenset({State.STOPPING, State.INLINE, State.CLOSING, State.CLOSED})
_CLOSED = frozenset({State.CLOSING, State.CLOSED})


class Delivery(Protocol):
    """How a round's events reach the peer: the worker's one strategy, memory or spool.

    The worker calls every method on its own thread (``idle`` and ``depth``
    are also read by flush and the metrics); a method that raises costs only
    the round it ran in (counted as dropped{worker_error}).
    """

    #: A round that failed leaves nothing waiting (memory mode): its flushes may return.
    settles_on_failure: bool

    def begin(self) -> None:
        """The thread starts: spool mode first sends what an earlier run left."""

    def deliver(self, items: list[Any]) -> bool:
        """Encode and deliver ``items`` (maybe none); True when nothing of this process waits."""

    def wait(self, delay: float, cut: threading.Event | None = None) -> None:
        """Between send retries (until ``cut`` is set): spool mode moves queued events meanwhile."""

    def finish(self) -> None:
        """The thread ends at shutdown: spool mode stores what is queued and closes the spool."""

    def close(self) -> None:
        """Shutdown without a thread: release what the strategy holds open."""

    def forget(self) -> None:
        """The events of a failed round were counted: hold none of them any more."""

    def idle(self) -> bool:
        """Nothing of this process waits outside the queue (a flush may return at once)."""

    def depth(self) -> int:
        """Events waiting outside the memory queue (the spool's, and those held for it)."""


class Intake(Protocol):
    """The queue's side a door may inline (the logging handler: a call costs ~1k instructions).

    The reference is :meth:`Worker.put`; code that inlines it must do exactly
    what it does: ``len(queue) >= limit or accounts.queued_bytes + size > max_bytes``
    -> ``overflowed(item, size)``, else append and add ``size`` to
    ``accounts.queued_bytes``, then ``wake()`` if ``wake_needed``.  ``size`` is
    the item's :func:`eventlog._records.caps.item_bytes`, after the caps.  ``limit``
    is ``queue_size``, or 0 while sampling or rate limits are on: then every event
    goes to ``overflowed``, and the hot path costs nothing more while they are off.
    """

    queue: deque[Any]
    limit: int
    max_bytes: int
    accounts: Accounting
    wake_needed: bool
    #: ``(queue, accounts, limit, max_bytes)``, changed with them (:func:`set_bounds`).
    gate: tuple[deque[Any], Accounting, int, int]

    def overflowed(self, item: Any, size: int) -> None: ...
    def wake(self) -> None: ...


def set_bounds(worker: Worker, limit: int, max_bytes: int) -> None:
    """Change a worker's queue bounds (``limit``, ``max_bytes``) and ``gate`` with them.

    ``gate`` is ``(queue, accounts, limit, max_bytes)``: what a compiled door reads in one
    attribute read instead of four (~200 instructions each, CPython 3.13).
    """
    worker.limit, worker.max_bytes = limit, max_bytes
    worker.gate = (worker.queue, worker.accounts, limit, max_bytes)


class Worker:
    """One pipeline's queue and the thread that empties it into a :class:`Delivery`.

    Made again, with fresh parts, in a forked child; ``attach`` gives it its parts.
    """

    delivery: Delivery
    sender: Sender
    overload: Overload  # the queue-full policies by class of service (issue 24)

    def __init__(
        self,
        name: str,
        *,
        batch_size: int,
        queue_size: int,
        queue_max_bytes: int = 128 * 1024 * 1024,
        linger: float,
        shutdown_timeout: float,
        stats: Stats,
        accounts: Accounting,
        warnings: Warnings,
        keep: object = None,
    ) -> None:
        self.name = name
        self.queue: deque[Any] = deque()
        self.limit, self.max_bytes = queue_size, queue_max_bytes  # max_bytes: accounts.queued_bytes
        self.state = State.IDLE
        #: ``state in _WAKE``, kept beside it for the hot path: one attribute test per event.
        self.wake_needed = True
        self.deadline = math.inf  # when the work ends (shutdown, replay, exit); inf until one starts
        self.thread: threading.Thread | None = None
        self.died: str | None = None  # why the last thread died, until one is started again
        self.stats, self.accounts, self.warnings = stats, accounts, warnings
        self.gate = (self.queue, accounts, queue_size, queue_max_bytes)  # see set_bounds()
        #: Guards counts made on callers' threads (overflow, enricher and value conversions).
        self.caller_lock = threading.Lock()
        self.stopped = threading.Event()  # shutdown: waits end
        self.retry_cut = threading.Event()  # shutdown began: a backoff ends, for one more try
        self._woken = threading.Event()
        self._hurry = threading.Event()  # a flush or shutdown waits: the linger ends now
        self._lock = threading.Lock()  # state changes, and starting the thread
        self._batch_size = batch_size
        self._linger = linger
        self._shutdown_timeout = shutdown_timeout
        # The running thread holds its pipeline (weakly here: no cycle), as a thread whose
        # target is a bound method would: a pipeline whose worker runs is not freed.
        self._keep = weakref.ref(keep) if keep is not None else None

    def attach(self, delivery: Delivery, sender: Sender, overload: Overload) -> None:
        """The parts this worker drives (made after it: they call back into it weakly)."""
        self.delivery, self.sender, self.overload = delivery, sender, overload

    def _enter(self, state: State) -> None:
        """Change the state (the caller holds ``_lock``)."""
        self.state = state
        self.wake_needed = state in _WAKE

    def _swap(self, old: State, new: State) -> None:
        """``old`` -> ``new``; in any other state, nothing (another thread changed it first)."""
        with self._lock:
            if self.state is old:
                self._enter(new)

    @property
    def stopping(self) -> bool:
        """Retries end at the deadline, and the thread ends once nothing is queued."""
        return self.state in _STOPPING

    @property
    def closed(self) -> bool:  # shutdown() began: nothing new is started
        return self.state in _CLOSED

    # ------------------------------------------------------------ the caller's side

    def put(self, item: Any) -> None:
        """Queue one (capped) item, or count it as overflow when the queue is full.  Never blocks."""
        queue, accounts, size = self.queue, self.accounts, item_bytes(item)
        if len(queue) >= self.limit or accounts.queued_bytes + size > self.max_bytes:
            self.overflowed(item, size)
            return
        queue.append(item)
        accounts.queued_bytes += size
        if self.wake_needed:
            self.wake()

    def overflowed(self, item: Any, size: int) -> None:
        """The queue was full: ``item``'s class decides (queued by evicting, or dropped, counted)."""
        self.overload.full(item, size)
        if self.wake_needed:
            self.wake()

    def wake(self) -> None:
        """Something was queued (or a flush waits): make sure a thread will see it."""
        state = self.state
        if state is State.CLOSED:
            self._drop_late()
            return
        # One wake-up is enough: until the worker sleeps again (and says so itself), callers
        # skip this call, and Event.set(), which takes a lock.
        with self._lock:
            if self.state is State.SLEEPING or self.state is State.IDLE:
                self._enter(State.RUNNING)
            start = self.thread is None and self.state not in _CLOSED
        if start:
            self._start()
        self._woken.set()

    def _drop_late(self) -> None:
        """Events that arrive after shutdown: nobody will send them, so count them."""
        if self.accounts.give_up(self.queue, "closed"):
            self.warnings.once(
                "closed",
                'events logged after shutdown() are dropped, counted as dropped{reason="closed"}; '
                "call eventlog.configure() to log again",
            )

    def _start(self) -> None:
        inline = False
        with self._lock:
            if self.thread is not None or self.state in _CLOSED:
                return
            keep = self._keep() if self._keep is not None else None
            thread = threading.Thread(
                target=self._run, args=(keep,), name=f"eventlog-{self.name}", daemon=True
            )
            died, self.died = self.died, None
            if died is not None:
                self.stats.worker_restarts += 1
                self.warnings.once(  # once: eventlog_worker_restarts_total counts the others
                    "restarted", f"the eventlog worker was started again; it had died of {died}"
                )
            # Set before it runs: a thread that dies at once clears it itself (see _died).
            self.thread = thread
            try:
                thread.start()
            except RuntimeError:
                self.thread = None
                # Python 3.12+ starts no thread once the interpreter is exiting, when atexit
                # hooks (the counters' last flush) may log for the first time: send from here.
                inline = True
        if inline:
            self._send_inline()

    def _supervise(self) -> None:
        """Restart a thread that died, if anything waits for one (a flush, or queued events)."""
        thread = self.thread
        if self.closed or (thread is not None and thread.is_alive()):
            return
        if self.queue or self.accounts.markers:
            self.wake()

    def _send_inline(self) -> None:
        """At interpreter exit, without a thread: what is queued goes out from this one."""
        with self._lock:
            if self.state is State.INLINE or self.state in _CLOSED:
                return  # a send in progress logged again: it is in the queue, the loop takes it
            self._enter(State.INLINE)  # retries end at the deadline: the process is exiting
        self.deadline = min(self.deadline, time.monotonic() + self._shutdown_timeout)
        ident = threading.get_ident()
        WORKER_THREADS.add(ident)
        try:
            while (self.queue or self.accounts.markers) and time.monotonic() <= self.deadline:
                self._round()
        except Exception:
            self.accounts.set_aside("worker_error")
            log.exception("sending at interpreter exit failed; the events were dropped")
        finally:
            WORKER_THREADS.discard(ident)
            self._swap(State.INLINE, State.STOPPING)

    # ------------------------------------------------------------ flush, stop, shutdown

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call was sent or given up (False: timed out)."""
        if self.closed:
            return not self.queue
        if not self.queue and self.thread is None and self.delivery.idle():
            return True
        # Not in the queue: a marker takes no slot and never stops the move to the spool.
        marker = self.accounts.marker(self.queue)
        self._hurry.set()
        self.wake()
        end = math.inf if timeout is None else time.monotonic() + timeout
        while not marker.done.is_set():
            left = end - time.monotonic()
            if left <= 0:
                self.accounts.withdraw(marker)  # timed out: it holds nothing up
                return marker.done.is_set()
            # Every second, a thread that died is started again (a flush must not wait for it).
            if marker.done.wait(min(left, SUPERVISE_EVERY)):
                break
            self._supervise()
        return True

    def stop_at(self, deadline: float) -> None:
        """Retries end at ``deadline`` (replay borrows the sender this way); nothing is closed."""
        with self._lock:
            if self.state not in _STOPPING:
                self._enter(State.STOPPING)
        self.deadline = deadline

    def close(self, deadline: float) -> bool:
        """shutdown(): the thread sends until ``deadline``, then ends; False if it is stuck in a send.

        When it is stuck, what it holds (in memory mode) and what is still queued
        are counted as dropped{shutdown} now (see :meth:`Accounting.abandon`).
        """
        with self._lock:
            self._enter(State.CLOSING)
        self.stopped.set()
        self.retry_cut.set()
        self._hurry.set()
        self._woken.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                with self._lock:
                    self._enter(State.CLOSED)  # later submits go through wake(), which counts them
                self.accounts.abandon()
                self.accounts.give_up(self.queue, "shutdown")
                return False
        else:
            self.sender.close()
            self.delivery.close()
        with self._lock:
            self._enter(State.CLOSED)  # from now on every submit goes through wake(), which counts it
        return True

    def until(self) -> float:
        """``deadline``, set when shutdown() begins: sends then are bounded by it (time_left)."""
        return self.deadline

    def retry_wait(self, delay: float) -> None:
        """Between tries: one begun before shutdown() ends when it begins (for one more try)."""
        if self.stopping:
            time.sleep(delay)  # the Sender keeps this within the deadline
        else:  # spool mode moves events meanwhile, also while a shutdown sends
            self.delivery.wait(delay, self.stopped if self.retry_cut.is_set() else self.retry_cut)

    # ------------------------------------------------------------ the thread

    def _run(self, keep: object = None) -> None:
        queue, accounts = self.queue, self.accounts
        WORKER_THREADS.add(threading.get_ident())
        died: BaseException | None = None
        failures = 0
        try:
            # What an earlier run left goes first, in order (spool mode).
            self._contained(self.delivery.begin)
            while True:
                if not queue and not accounts.markers:
                    if self.stopping:
                        break
                    self._sleep()
                    continue
                if self._contained(self._round):
                    failures = 0
                else:
                    # A failure that repeats must not spin: wait a little longer each time.
                    failures += 1
                    self.stopped.wait(min(1.0, 0.01 * 2**failures))
                if self.stopping and time.monotonic() > self.deadline:
                    break
        except BaseException as exc:  # SystemExit from a plugin ...: counted, then restarted
            died = exc
        finally:
            WORKER_THREADS.discard(threading.get_ident())
            self.sender.close()
            if died is not None and not self.stopping:
                self._died(died)
            else:
                self._ended()

    def _sleep(self) -> None:
        self._swap(State.RUNNING, State.SLEEPING)
        if not self.queue and not self.accounts.markers:  # re-check: a caller may have appended
            # A transport that needs I/O between batches (heartbeats) gets its idle()
            # call every idle_interval seconds while nothing wakes the worker.
            if self._woken.wait(self.sender.idle_interval()):
                self._woken.clear()
            else:
                self._contained(self.sender.idle)
        self._swap(State.SLEEPING, State.RUNNING)

    def _ended(self) -> None:
        """The thread stops (shutdown): spool what is queued, count what is given up, set markers."""
        try:
            self.delivery.finish()  # spool mode: what is still queued goes into the spool
        except Exception:
            log.exception("[%s] moving the queue into the spool at shutdown failed", self.name)
        self._swap(State.CLOSING, State.CLOSED)  # later submits go through wake(), which counts them
        # Past the deadline, memory mode: what is still queued is given up, and counted.
        self.accounts.give_up(self.queue, "shutdown")
        self.accounts.set_aside("shutdown")
        self.accounts.release()

    def _died(self, exc: BaseException) -> None:
        """The thread ends on an exception no round contained: what that round held is counted
        (dropped{worker_died}); queue and markers wait for the next thread (worker_restarts)."""
        lost = self.accounts.set_aside("worker_died")
        self.delivery.forget()  # counted just now
        self.died = f"{type(exc).__name__}: {exc}"
        self.warnings.once(
            f"died:{type(exc).__name__}",
            f"the eventlog worker died of {self.died}; {lost} events it held are counted as "
            'dropped{reason="worker_died"}; it is restarted by the next event or flush',
            exc_info=exc,
        )
        # Last: from here a caller's submit (or a flush) starts a new thread.
        with self._lock:
            if self.thread is threading.current_thread():
                self.thread = None
            if self.state not in _STOPPING:
                self._enter(State.IDLE)

    def _contained(self, work: Callable[[], object]) -> bool:
        """Run ``work``; an unexpected failure costs only what it held, counted. False if it failed."""
        try:
            work()
            return True
        except Exception as exc:
            lost = self.accounts.set_aside("worker_error")
            self.delivery.forget()  # counted just now
            if self.delivery.settles_on_failure:
                self.accounts.settled()  # nothing else waits: a flush may return
            self.sender.close()  # the transport may be half way through something
            self.warnings.once(
                f"worker_error:{type(exc).__name__}",
                f"the eventlog worker failed ({type(exc).__name__}: {exc}); the {lost} events "
                'of that round are counted as dropped{reason="worker_error"} and the worker goes on',
                exc_info=True,
            )
            return False

    def _round(self) -> None:
        """One batch: take it, deliver it; then set the flushes it completes."""
        queue = self.queue
        if self._linger and len(queue) < self._batch_size and not self.stopping:
            if not self.accounts.markers:
                self._hurry.wait(self._linger)
            self._hurry.clear()
        items = self.accounts.take(queue, self._batch_size) if queue else []
        try:  # (in spool mode a flush alone still drains the spool: what it covers waits there)
            self.overload.release_repeats()  # summaries of repeats collapsed while the queue was full
            if self.delivery.deliver(items):
                self.accounts.settled()
        finally:
            done_with(items)


P = ParamSpec("P")
R = TypeVar("R")


def weakly(method: Callable[P, R], gone: R) -> Callable[P, R]:
    """``method`` without a strong reference to its object (``gone`` once it is freed).

    The parts (encoder, sender, deliveries) call back into the pipeline and its
    worker; bound methods there would make cycles, and a pipeline replaced by
    ``configure()`` would live on (its worker, its metrics) until the garbage collector ran.
    """
    ref = weakref.WeakMethod(method)

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        bound = ref()
        return gone if bound is None else bound(*args, **kwargs)

    return call
