"""What one pipeline owes: accepted = sent + dropped + waiting, exactly; and the flush markers.

Events the worker took from the queue are *in flight* until they are counted
(sent, or dropped for a reason) or stored in the spool.  When ``shutdown()``
gives up on a worker stuck in a send, :meth:`Accounting.abandon` counts what is
still in flight as dropped{shutdown} at once; if that send ends later, the
worker counts none of it again (those events were *counted ahead*).  Spool
rows were counted when they were taken: they go through
:meth:`Accounting.count_rows`, which has nothing in flight to settle.

A flush marker is never in the queue (it would take a slot, and stop whoever
moves the queue): it holds the number of events that had to be taken when it
was made (taken so far + queued then), and is set once the worker says that
everything taken is settled (:meth:`Accounting.settled`).  Taking from the
queue and making a marker hold one lock, so that number is exact.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from eventlog._engine.stats import Stats
from eventlog._records.batch import Record
from eventlog._records.caps import item_bytes, retrack

#: A sentinel no queue item is: iter(popleft, _NEVER) never stops by itself.
_NEVER = object()


class Flush:
    """A flush waiting: set once the first ``target`` events taken were sent or given up."""

    __slots__ = ("done", "target")

    def __init__(self, target: int = 0) -> None:
        self.done = threading.Event()
        self.target = target


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
        #: Flushes waiting, oldest first (read without the lock: a list's truth is atomic).
        self.markers: list[Flush] = []
        #: Estimated bytes of the queued items (eventlog._records.caps), for ``queue_max_bytes``.
        #: Callers add to it after appending, without a lock (an int ``+=`` makes no call, so
        #: CPython does not switch threads inside it); what leaves the queue is taken off here.
        #: Whenever the worker finds the queue empty it is set to 0: an estimate that drifted (an
        #: Event changed after it was queued) is right again.
        self.queued_bytes = 0

    def take(self, queue: deque[Any], most: int) -> list[Any]:
        """Take up to ``most`` items from the front of ``queue``: in flight until counted or spooled.

        The caller hands them to :func:`done_with` once it has delivered or spooled them
        (whatever happened meanwhile, ``finally``).
        """
        with self._lock:
            # In C: iter(popleft, ...) calls popleft() and islice stops after n (a Python loop
            # costs ~800 instructions an event).
            items = list(islice(iter(queue.popleft, _NEVER), min(len(queue), most)))
            self.stats.taken += len(items)
            self._in_flight += len(items)
            self._released(items, queue)
        return items

    def _released(self, items: list[Any], queue: deque[Any]) -> None:
        """``items`` left the queue: their bytes with them (the lock is held).

        The worker's batches take their share of the total, not each item's size again
        (measuring costs the worker as much as it cost the caller, per event, in a flood
        whose queue never empties); the exact total comes back whenever the queue is empty.
        """
        if not queue:
            self.queued_bytes = 0
        elif items:
            total = self.queued_bytes
            self.queued_bytes = total - total * len(items) // (len(items) + len(queue))

    def give_up(self, queue: deque[Any], reason: str) -> int:
        """Empty ``queue`` without the worker: taken, and dropped for ``reason``; return how many."""
        with self._lock:
            left = 0
            while True:  # one at a time: callers may still append
                try:
                    item = queue.popleft()
                except IndexError:
                    break
                done_with([item])
                left += 1
            self._released([], queue)
            if left:
                self.stats.taken += left
                self.stats.drop(reason, left)
        return left

    def evict(self, queue: deque[Any], find: Callable[[int], int | None], reason: str) -> int | None:
        """Drop the queued item at ``find(taken)`` (overload control); return its index, or None.

        Under the lock that taking holds, so the index stays right; counted as
        taken and dropped for ``reason``, like an event given up without the worker.
        """
        with self._lock:
            taken = self.stats.taken
            index = find(taken)
            if index is not None:
                # Flushes that did not cover this item (queued after them) must not count it:
                # the items before it, which they do cover, move one place back.
                for marker in self.markers:
                    if marker.target <= taken + index:
                        marker.target += 1
                # One item, evicted to make room: its own size, so the room is known.
                self.queued_bytes = max(0, self.queued_bytes - item_bytes(queue[index]))
                done_with([queue[index]])
                del queue[index]
                self.stats.taken += 1
                self.stats.drop(reason)
            return index

    def marker(self, queue: deque[Any]) -> Flush:
        """A flush of everything accepted so far: set by :meth:`settled` (or :meth:`release`)."""
        with self._lock:
            marker = Flush(self.stats.taken + len(queue))
            self.markers.append(marker)
        return marker

    def withdraw(self, marker: Flush) -> None:
        """A flush that timed out: nobody waits for its marker any more."""
        with self._lock:
            if marker in self.markers:
                self.markers.remove(marker)

    def settled(self) -> None:
        """Everything taken so far was sent or given up: set the markers that waited for it."""
        with self._lock:
            taken = self.stats.taken
            done = [marker for marker in self.markers if marker.target <= taken]
            if not done:
                return
            self.markers = [marker for marker in self.markers if marker.target > taken]
        for marker in done:
            marker.done.set()

    def release(self) -> None:
        """The worker stops: set every marker, so that no flush waits for nothing."""
        with self._lock:
            markers, self.markers = self.markers, []
        for marker in markers:
            marker.done.set()

    def took(self, count: int) -> None:
        """The worker took ``count`` events from the queue: in flight until counted or spooled."""
        with self._lock:
            self.stats.taken += count
            self._in_flight += count

    def gave_up(self, count: int, reason: str) -> None:
        """``count`` events that never entered the queue (collapsed repeats): taken, and dropped.

        No waiting flush covered them: its target moves with ``taken``, or the flush
        would end that many events early, before events it does cover were sent.
        """
        with self._lock:
            self.stats.taken += count
            self.stats.drop(reason, count)
            for marker in self.markers:
                marker.target += count

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

    def store(self, add: Callable[[Sequence[Record]], None], records: Sequence[Record]) -> None:
        """``add(records)`` (a spool's) for events the worker took; raises what ``add`` raises.

        Stored events are no longer in flight: they wait in the spool.  Those
        :meth:`abandon` counted as dropped are not stored as well.
        """
        with self._lock:
            ahead = min(len(records), self._counted_ahead)
            self._counted_ahead -= ahead
            # Those counted as dropped by abandon() are not waiting as well (a batch in one
            # piece is kept whole when none was: slicing it would make a Record per event).
            stored = records[ahead:] if ahead else records
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

    def set_aside(self, reason: str) -> int:
        """Count what is in flight (a spool.add() under way aside) as dropped for ``reason``.

        The worker's last resort when a failure it did not expect ended a round:
        the events of that round are given up, counted, and the loop goes on.
        """
        with self._lock:
            lost = self._in_flight - self._spooling
            self._in_flight -= lost
            if lost:
                self.stats.drop(reason, lost)
            return lost

    def abandon(self) -> None:
        """Count what is in flight (a spool.add() under way aside) as dropped{shutdown}, now."""
        with self._lock:
            stuck = self._in_flight - self._spooling
            self._in_flight -= stuck
            self._counted_ahead += stuck
            if stuck:
                self.stats.drop("shutdown", stuck)


def done_with(items: list[Any]) -> None:
    """``items`` leave eventlog's hands (delivered, spooled or failed by the worker, given up,
    evicted): what the compiled caller's side hid from the garbage collector while they
    were queued is shown to it again, before the last reference goes.  The worker calls it
    at the end of its round, not at :meth:`Accounting.take`: the collector's passes during
    the round (spool mode allocates while it stores) would walk every record taken (~1k
    instructions an event, callgrind, 3.11)."""
    if retrack is not None:
        retrack(items)
