"""What one pipeline owes: accepted = sent + dropped + waiting, exactly; and the flush marker.

Events the worker took from the queue are *in flight* until they are counted
(sent, or dropped for a reason) or stored in the spool.  When ``shutdown()``
gives up on a worker stuck in a send, :meth:`Accounting.abandon` counts what is
still in flight as dropped{shutdown} at once; if that send ends later, the
worker counts none of it again (those events were *counted ahead*).  Spool
rows were counted when they were taken: they go through
:meth:`Accounting.count_rows`, which has nothing in flight to settle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from eventlog.batch import Record
from eventlog.stats import Stats


class Flush:
    """A marker in the queue: set once everything before it was sent or given up."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Accounting:
    """The in-flight bookkeeping of one pipeline's worker, counted into ``stats``.

    Made again, with the pipeline's new Stats, in a forked child.
    """

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self._lock = threading.Lock()
        self._in_flight = 0
        self._spooling = 0  # of those, the ones inside a spool.add() right now
        self._counted_ahead = 0  # counted by abandon(): the worker does not count them again

    @property
    def in_flight(self) -> int:
        """Events the worker took and has neither counted nor stored: they wait in its memory."""
        return self._in_flight

    def took(self, count: int) -> None:
        """The worker took ``count`` events from the queue: in flight until counted or spooled."""
        with self._lock:
            self.stats.taken += count
            self._in_flight += count

    def gave_up(self, count: int, reason: str) -> None:
        """``count`` events left the queue without the worker: taken, and dropped for ``reason``."""
        with self._lock:
            self.stats.taken += count
            self.stats.drop(reason, count)

    def count(self, count: int, reason: str | None = None) -> int:
        """Count events the worker took as sent (``reason`` None) or dropped; return how many.

        What :meth:`abandon` already counted is not counted again: the stuck
        send that finishes after shutdown() returned.
        """
        with self._lock:
            ahead = min(count, self._counted_ahead)
            self._counted_ahead -= ahead
            count -= ahead
            self._in_flight -= count
            self._tally(count, reason)
            return count

    def count_rows(self, count: int, reason: str | None = None) -> int:
        """Count spool rows (not events in flight) as sent or dropped; return how many."""
        with self._lock:
            self._tally(count, reason)
            return count

    def _tally(self, count: int, reason: str | None) -> None:
        """Sent (``reason`` None) or dropped for ``reason``; the caller holds the lock."""
        if count:
            if reason is None:
                self.stats.sent += count
            else:
                self.stats.drop(reason, count)

    def store(self, add: Callable[[list[Record]], None], records: list[Record]) -> None:
        """``add(records)`` (a spool's) for events the worker took; raises what ``add`` raises.

        Stored events are no longer in flight: they wait in the spool.  Those
        :meth:`abandon` counted as dropped are not stored as well.
        """
        with self._lock:
            ahead = min(len(records), self._counted_ahead)
            self._counted_ahead -= ahead
            stored = records[ahead:]  # counted as dropped by abandon(): not waiting as well
            self._spooling = len(stored)
        try:
            add(stored)
        except BaseException:
            with self._lock:
                self._spooling = 0
                self._counted_ahead += ahead  # the caller counts all of records: give them back
            raise
        with self._lock:
            self._spooling = 0
            self._in_flight -= len(stored)

    def abandon(self) -> None:
        """Count what is in flight (a spool.add() under way aside) as dropped{shutdown}, now."""
        with self._lock:
            stuck = self._in_flight - self._spooling
            self._in_flight -= stuck
            self._counted_ahead += stuck
            if stuck:
                self.stats.drop("shutdown", stuck)
