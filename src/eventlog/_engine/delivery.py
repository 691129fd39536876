"""Spool mode's delivery: every batch is stored, then the spool is drained through the Sender.

:class:`SpoolDelivery` owns what happens between the worker's encoded batch
and the peer when ``EVENTLOG_DB`` is set: storing batches (the accounting of
what is stored is :meth:`eventlog._engine.accounting.Accounting.store`), draining the
spool oldest first, moving queued events into the spool while a send waits to
retry (an outage fills the disk, not the bounded memory queue), saying when
nothing of this process waits (the pipeline then sets its flush markers), and
sending from memory when the
spool is unavailable (:class:`~eventlog._spool.SpoolUnavailable`: disk full,
read-only ...).  :func:`replay` sends another spool's rows (``eventlog spool
replay``).  The pipeline imports this module only in spool mode, so a Python
built without sqlite3 still runs memory mode.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from eventlog._config.config import Settings
from eventlog._core.diagnostics import Warnings
from eventlog._engine.accounting import Accounting, done_with
from eventlog._engine.encoder import Encoder
from eventlog._engine.sender import Count, Deadline, Sender
from eventlog._engine.stats import Stats
from eventlog._records.batch import Record
from eventlog._spool import Spool, SpoolUnavailable, open_spool
from eventlog._spool.sqlite import destination_of

__all__ = ["SPOOL_WHILE_WAITING", "SpoolDelivery", "destination_of", "open_spool", "replay"]

#: In spool mode with linger_ms=0, how often a retry wait moves queued events to the spool.
SPOOL_WHILE_WAITING = 0.005


class SpoolDelivery:
    """The worker's spool mode (a :class:`eventlog._engine.worker.Delivery`), made again in a forked child.

    ``queue`` and ``stop_event`` are the worker's; ``deadline()`` is when a
    shutdown ends the work (``math.inf`` until one starts).
    """

    #: A failed round's events may wait in the spool: only a drain that finds none sets flushes.
    settles_on_failure = False

    def __init__(
        self,
        spool: Spool,
        settings: Settings,
        *,
        queue: deque[Any],
        stop_event: threading.Event,
        deadline: Deadline,
        sender: Sender,
        encoder: Encoder,
        accounts: Accounting,
        stats: Stats,
        warnings: Warnings,
        wake: Callable[[], None] | None = None,
        tag: Callable[[Sequence[Record], list[Any]], Sequence[Record]] | None = None,
    ) -> None:
        self.spool = spool
        #: Marks the records of sheddable events (overload control), which the spool evicts first.
        self.tag = tag or _untagged
        self.settings = settings
        self._queue = queue
        self._stop_event = stop_event
        self._deadline = deadline
        self._sender = sender
        self._encoder = encoder
        self._accounts = accounts
        self._stats = stats
        self._warnings = warnings
        self._batch_size: int = settings.batch_size
        self._linger: float = settings.linger_ms / 1000.0
        self.unspooled: Sequence[Record] = []  # encoded, but the spool could not take them
        self._sending_from_memory = 0  # events of a batch the spool refused, being sent now
        self._count_rows: Count = accounts.count_rows
        # What the spool sets aside or notices is counted in this (this process's) Stats.
        spool.on_drop = self.dropped
        spool.on_quarantine = self.quarantined
        spool.on_reopen = self.reopened
        self._wake = wake
        spool.on_released = self.released

    def begin(self) -> None:
        """The worker starts: what an earlier run left goes first, in order."""
        self.drain()

    def deliver(self, items: list[Any]) -> bool:
        """Encode, spool and drain; True when nothing of this process waits."""
        return self.handle(self.tag(*self._encoder.sourced(items)))

    def forget(self) -> None:
        """A failed round's events were counted: the batch the spool refused is not kept."""
        self.unspooled = []

    def close(self) -> None:
        """Shutdown without a worker thread: close the spool."""
        self.spool.close()

    def idle(self) -> bool:
        """Nothing of this process waits: no refused batch in memory, no row in the spool."""
        return not self.unspooled and not self.spool.depth()

    def handle(self, records: Sequence[Record]) -> bool:
        """Spool the records, then drain; True when nothing of this process waits."""
        if self.unspooled:
            records, self.unspooled = [*self.unspooled, *records], []
        if records:
            try:
                self._store(records)
            except SpoolUnavailable as exc:  # disk full, read-only ...
                self._count_fallback(exc, len(records))
                self._sending_from_memory = len(records)  # waiting in memory: depth() shows them
                try:
                    sent = self._sender.send(records, self._deadline)  # memory mode for this batch
                finally:
                    self._sending_from_memory = 0
                if not sent:
                    self._accounts.count(len(records), "shutdown")
                    return False
                # Sent from memory; what the unwritable spool holds waits until it recovers.
                return True
        return self.drain()

    def drain(self) -> bool:
        """Send what the spool holds for this process, oldest first, until none is left.

        Between batches, newly queued events move into the spool (behind the
        older rows), so a long backlog never makes the memory queue overflow.
        Returns True when nothing of this process waits any more (the spool
        had nothing left, or cannot be used now); False at the shutdown
        deadline, or when a batch the spool refused waits to be sent.
        """
        reclaimed = False
        while True:
            if time.monotonic() > self._deadline():
                return False  # the rest stays in the spool for the next run
            try:
                batch = self.spool.pending(self._batch_size)
            except SpoolUnavailable:
                # Unusable for now (read-only, unreadable): new events go from memory, and
                # flush() covers those, as when a batch is sent from memory because the
                # spool refused it; the rows already there wait until it recovers.
                return True
            if not batch:
                if self._accounts.markers and not reclaimed:
                    # A flush waits: rows of this process's events may be held by a child that
                    # claimed them and died; take them over now, not at the next check.
                    reclaimed = True
                    if self.spool.reclaim():
                        continue
                return not self.unspooled  # everything spooled was sent
            if not self._sender.send(batch, self._deadline, self._count_rows):
                return False  # shutdown deadline: the rest stays in the spool
            self.spool.remove(batch)
            self.spool_queued()

    def spool_queued(self, *, everything: bool = False) -> None:
        """Move queued events into the spool while the worker is busy elsewhere.

        Called between send retries (a peer outage must fill the disk, not the
        memory queue) and, with ``everything``, when the worker stops.  Flush
        markers are not in the queue, so nothing stops the move.
        """
        queue = self._queue
        if self.unspooled and not everything:
            # The spool failed a moment ago: what it refused goes first, once it works again
            # (until its next try this fails at once, without I/O); meanwhile queued events
            # stay in the bounded queue.  Not waiting for the next batch: in an outage the
            # worker retries one send from memory, and the queue would wait for it.
            try:
                self._store(self.unspooled)
            except SpoolUnavailable:
                return  # counted as a fallback when it was refused
            self.unspooled = []
        while queue:
            # Two batches per write: each SQLite call gives the GIL away for a while, so fewer
            # writes move more; but what one move holds (items, wire dicts, payloads, the row's
            # bytes, SQLite's copies) is the worker's working set, which the allocator keeps.
            items = self._accounts.take(queue, self._batch_size * 2)
            if not items:
                return
            try:
                tagged = self.tag(*self._encoder.sourced(items))
                records = [*self.unspooled, *tagged] if self.unspooled else tagged
                self.unspooled = []
                try:
                    self._store(records)
                except SpoolUnavailable as exc:
                    self._count_fallback(exc, len(records))
                    self.unspooled = records  # sent from memory with the next batch
                    if everything:
                        self._accounts.count(len(records), "shutdown")
                        self.unspooled = []
                    return
            finally:
                done_with(items)

    def wait(self, delay: float, cut: threading.Event | None = None) -> None:
        """Wait between send retries, moving new events to the spool meanwhile.

        An outage must fill the disk, not the bounded memory queue (which drops).  A
        shutdown (or ``cut``) ends the wait.
        """
        stop = cut or self._stop_event
        end = time.monotonic() + delay
        while True:
            self.spool_queued()
            self.spool.watch()  # a spool file deleted meanwhile is noticed without a new event
            left = end - time.monotonic()
            # Every linger window, as when the peer is up: that bounds what a kill -9 loses.
            step = self._linger or SPOOL_WHILE_WAITING
            if left <= 0 or stop.wait(min(left, step)):
                return

    def finish(self) -> None:
        """The worker stops: what is still queued goes into the spool, which is closed."""
        self.spool_queued(everything=True)  # past the deadline: keep, not lose
        if self.unspooled:  # a batch the spool refused a moment ago
            try:
                self._store(self.unspooled)
            except SpoolUnavailable:
                self._accounts.count(len(self.unspooled), "shutdown")
            self.unspooled = []
        self.spool.close()

    def released(self) -> None:
        """Another pipeline of this process handed rows back (configure() again): drain them now.

        A flush marker alone makes the worker drain the spool; nobody waits on this one
        (the round that drains sets it and lets it go).
        """
        if self._wake is not None:
            self._accounts.marker(self._queue)
            self._wake()

    def depth(self) -> int:
        """Events waiting in the spool, and those the worker holds for it.

        While the spool cannot be written (read-only, full), events wait in the
        worker's memory, not in the queue nor the file: they count here, so the
        depths add up to what waits anywhere.
        """
        # What the spool refused, kept or being sent from memory; not events on their way into
        # the spool (a reader waiting until all are spooled must not count those).
        return self.spool.depth() + len(self.unspooled) + self._sending_from_memory

    def dropped(self, reason: str, count: int) -> None:
        """The spool set ``count`` events aside: a quarantined row's, an unstorable one (worker)."""
        self._stats.drop(reason, count)

    def quarantined(self, reason: str, rows: int) -> None:
        """The spool moved ``rows`` unreadable rows to its quarantine table (the worker thread)."""
        counts = self._stats.spool_quarantined
        counts[reason] = counts.get(reason, 0) + rows

    def reopened(self, reason: str) -> None:
        """The spool file was deleted or replaced under us, and a fresh one opened (worker)."""
        counts = self._stats.spool_reopened
        counts[reason] = counts.get(reason, 0) + 1

    def evicted(self, reason: str, count: int) -> None:
        """The spool's size or age limit dropped ``count`` events (the worker thread)."""
        self._stats.drop(reason, count)
        self._warnings.once(
            f"evict:{reason}",
            f"the spool {self.settings.db} reached its {reason.removeprefix('spool_')} limit; "
            f"the oldest events are dropped (counted as {reason!r})",
        )

    def _store(self, records: Sequence[Record]) -> None:
        """``spool.add`` for records of events the worker took; raises SpoolUnavailable."""
        self._accounts.store(self.spool.add, records)

    def _count_fallback(self, exc: SpoolUnavailable, count: int) -> None:
        fallback = self._stats.spool_fallback
        fallback[exc.reason] = fallback.get(exc.reason, 0) + count


def _untagged(records: Sequence[Record], items: list[Any]) -> Sequence[Record]:
    return records


def replay(
    spool: Spool,
    sender: Sender,
    *,
    batch_size: int,
    deadline: Deadline,
    count: Count,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send what ``spool`` holds through ``sender`` until ``deadline``; return how many went.

    What is left stays in the spool; the sender's transport is closed at the end.
    """
    done = 0
    try:
        while time.monotonic() <= deadline():
            batch = spool.pending(batch_size)
            if not batch or not sender.send(batch, deadline, count):
                break
            spool.remove(batch)
            done += len(batch)
            if progress is not None:
                progress(done)
    finally:
        sender.close()
    return done
