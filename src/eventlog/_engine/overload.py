"""Overload control: classes of service and what each does when the queue is full.

Every event is *kept* or *sheddable* (:mod:`eventlog._config.classes` parses the
rules).  Nothing here runs while the queue has room: a caller's event is
classified only when it finds the queue full, so the hot path costs nothing
more.  Full means ``queue_size`` events, or ``queue_max_bytes`` of them as
:mod:`eventlog._records.caps` estimates (the event's caps applied first).
Then its class's policy decides:

- ``shed_newest``: the new event is dropped (dropped{queue_full}, as before; at
  the byte bound dropped{queue_bytes});
- ``shed_oldest``: the oldest queued event of its class is dropped
  (dropped{shed_oldest}) and the new one queued;
- ``evict`` (kept's default): the oldest queued *sheddable* event is dropped
  (dropped{evicted}) to make room; with none queued, the newest is dropped;
- ``block:S``: the caller waits up to S seconds for room (only when asked),
  then sheds the newest;
- ``spill`` (spool mode only; in memory mode a configure-time error): the event
  is queued past the bounds into a reserve as large again (``queue_size`` events,
  ``queue_max_bytes``), which the worker moves into the spool at its next step;
  the reserve used up, kept events evict and sheddable ones are shed as the newest.

A sheddable log record that would be dropped as the newest is first offered to
its template's repeat summary (``collapse_repeats``, on by default): it counts as
dropped{collapsed}, and once the queue has room again one event per template says
how many were shed, from when to when, with the last arguments.  It costs nothing
while the queue has room, and makes "this message repeated N times" of a burst.

With ``sample_sheddable`` or ``rate_limit_sheddable`` set (off by default), every
event comes here, room or not: the intake's limit is 0 (see
:mod:`eventlog._engine.thinning`); sheddable events are sampled and rate limited
per template, and the rest queued as when the queue has room.

Every event stays in exactly one counter: an evicted event counts as taken
from the queue and dropped, so accepted = sent + dropped + waiting holds.
Drops are also counted by (class, reason) in :attr:`Overload.shed`.

In spool mode the worker marks records of sheddable events
(:func:`tag_records`); the spool keeps them in rows of their own and evicts
those first at its size limit.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from eventlog._config.classes import KEPT, SHEDDABLE, Rule, policies
from eventlog._config.config import Settings
from eventlog._engine.accounting import Accounting
from eventlog._engine.stats import Stats
from eventlog._engine.thinning import Thinning
from eventlog._records.batch import EncodedBatch, Record, SheddableRecord, _new_tuple
from eventlog._records.caps import item_bytes
from eventlog._records.event import Event
from eventlog._records.logrecords import record_to_event

__all__ = ["KEPT", "SHEDDABLE", "Classifier", "Overload", "tag_records"]

_WARNING = logging.WARNING
_first, _levelno = operator.itemgetter(0), operator.attrgetter("levelno")
_TUPLE, _INT = {tuple}, {int}


def _types(values: Iterable[Any]) -> set[type]:
    return set(map(type, values))


#: How long a blocked caller sleeps between looks at the queue.
BLOCK_STEP = 0.001
#: Templates collapsed at once; beyond them, repeats are shed plainly (bounded memory).
REPEAT_KEYS = 1000


class Classifier:
    """``sheddable(item)``: whether a queued item (an Event, or a record tuple) may be shed."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = tuple(rules)

    def sheddable(self, item: Any) -> bool:
        """True for a sheddable event; never raises (what cannot be read is kept)."""
        try:
            if type(item) is tuple:
                record = item[0]
                level, logger = record.levelno, record.name
                action = None
            else:
                action = item.action
                if item.tg_type == "logger" and type(action) is str and action.startswith("log."):
                    level, logger = item.level, item.target  # a log record converted in the caller
                else:
                    level = logger = None  # an application's Event, a counter, a gauge
            for rule in self.rules:
                if _matches(rule, level, logger, action, item):
                    return rule.klass == SHEDDABLE
            return type(level) is int and level < _WARNING
        except Exception:
            return False

    def kinds(self, items: Sequence[Any]) -> set[bool]:
        """``set(map(self.sheddable, items))``: for a batch of log records with no rules (a
        flood), from their levels in C loops (one call of ``sheddable`` costs ~450 instructions,
        callgrind, 3.11); anything else item by item."""
        if not self.rules and _types(items) == _TUPLE:
            try:
                levels = set(map(_levelno, map(_first, items)))
            except Exception:
                levels = None  # an attribute deleted: sheddable() says False for that one
            if levels is not None and _types(levels) <= _INT:
                return {level < _WARNING for level in levels}
        return set(map(self.sheddable, items))

    def klass(self, item: Any) -> str:
        """The class name of ``item``."""
        return SHEDDABLE if self.sheddable(item) else KEPT


def _matches(rule: Rule, level: Any, logger: Any, action: Any, item: Any) -> bool:
    if rule.kind == "level":
        return type(level) is int and str(level) == rule.pattern
    if rule.kind == "logger":
        if type(logger) is not str:
            return False
        pattern = rule.pattern
        return logger == pattern or logger.startswith(pattern + ".") or fnmatchcase(logger, pattern)
    if action is None and type(item) is tuple:
        levelname = getattr(item[0], "levelname", None)
        action = "log." + levelname.lower() if type(levelname) is str else None
    return type(action) is str and fnmatchcase(action, rule.pattern)


class Overload:
    """The queue-full policies of one pipeline (made again in a forked child).

    ``lock`` is the pipeline's overflow lock: callers that find the queue full
    take it, so the class counts and the eviction cache have one writer.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        queue: deque[Any],
        accounts: Accounting,
        stats: Stats,
        lock: threading.Lock,
    ) -> None:
        self.classifier = Classifier(settings.classes)
        self.policy: dict[str, tuple[str, float]] = policies(settings.overload_policy)
        self._queue = queue
        self._maxsize: int = settings.queue_size
        self._max_bytes: int = settings.queue_max_bytes
        self._accounts = accounts
        self._stats = stats
        self._lock = lock
        #: Drops by (class, reason): the queue's here, the spool's added by the delivery.
        self.shed: dict[tuple[str, str], int] = {}
        # Per wanted class: (front pops then, how many items at the queue's front were not of
        # that class then).  A scan for the oldest sheddable event starts past them, so a
        # queue whose front holds kept events is not read again for every eviction.
        self._front: dict[bool, tuple[int, int]] = {True: (0, 0), False: (0, 0)}
        self._evictions = 0  # taken by eviction, not from the front
        self.collapse: bool = settings.collapse_repeats
        #: (logger, level, template) -> [count, first time, last time, last item]
        self._repeats: dict[tuple[str, int, str], list[Any]] = {}
        self._last_pops = 0
        #: Events queued into the spill reserve, past the queue's bounds (spool mode).
        self.spilled = 0
        every, rate = settings.sample_sheddable, settings.rate_limit_sheddable
        #: Sampling and rate limits of sheddable events; None when off (the hot path is as before).
        self.thinning = Thinning(every, rate) if every > 1 or rate else None

    def full(self, item: Any, size: int) -> None:
        """``item`` (of ``size`` bytes) found the queue full: queue it or drop it as its
        class's policy says."""
        sheddable = self.classifier.sheddable(item)
        queue, accounts = self._queue, self._accounts
        if self.thinning is not None:
            # Sampling or a rate limit is on: every event comes here (the intake's limit is 0).
            if sheddable:
                with self._lock:
                    reason = self.thinning.verdict(item)
                    if reason is not None:
                        accounts.gave_up(1, reason)  # never queued: taken and dropped at once
                        self._count(SHEDDABLE, reason)
                        return
            # _no_room() inlined: every event of a pipeline that samples comes this way.
            if len(queue) < self._maxsize and accounts.queued_bytes + size <= self._max_bytes:
                queue.append(item)  # as the intake does (Worker.put)
                accounts.queued_bytes += size
                return
        klass = SHEDDABLE if sheddable else KEPT
        name, wait = self.policy[klass]
        bound = 1  # how many times the queue's bounds this event may fill it to
        if name == "block":
            end = time.monotonic() + wait
            while self._no_room(size) and time.monotonic() < end:
                time.sleep(BLOCK_STEP)
        elif name == "spill":
            # Spool mode only: past the bounds, into a reserve as large again, which the worker
            # moves into the spool at its next step (between sends and retries it does).  The
            # caller never writes the spool itself: a SQLite write takes the file's lock, which
            # another process may hold, and with spool_sync=full an fsync.  The reserve used
            # up, the class's usual policy follows.
            bound, name = 2, ("shed_newest" if sheddable else "evict")
        with self._lock:
            # At the byte bound one eviction may not free enough: evict until it does.  The
            # drop's reason is the bound that refused it when it was checked: read again
            # afterwards, the worker may have taken a batch meanwhile, and a count bound
            # refusal was counted as queue_bytes (tests/test_engine.py's flood, once in 15).
            evictions = 0
            while (full := self._full(size, bound)) is not None:
                evicted = (name == "evict" and self._evict(True, "evicted", SHEDDABLE)) or (
                    name == "shed_oldest" and self._evict(sheddable, "shed_oldest", klass)
                )
                if not evicted:
                    # Nothing to evict; but the worker may have taken a batch since the check
                    # (a kept error was dropped at a queue the worker had just emptied:
                    # test_ledger, 1 run in 3 on CI).
                    full = self._full(size, bound)
                    break
                evictions += 1
            if full is None:
                if bound > 1 and not evictions and self._no_room(size):
                    self.spilled += 1  # the reserve took it
                queue.append(item)  # room made, or the worker took some meanwhile
                accounts.queued_bytes += size
                return
            if sheddable and self.collapse and self._collapse(item):
                return  # counted in its template's repeat summary: dropped{collapsed}
            if full == "queue_full":
                self._stats.overflow += 1  # the newest is dropped: dropped{queue_full}
                self._count(klass, "queue_full")
            else:
                accounts.gave_up(1, "queue_bytes")  # never queued: taken and dropped at once
                self._count(klass, "queue_bytes")

    def _full(self, size: int, bound: int = 1) -> str | None:
        """Which bound refuses ``size`` more bytes now: ``queue_full`` (``queue_size`` items),
        ``queue_bytes`` (the byte bound), or None (room); each times ``bound`` (2 for the
        spill reserve)."""
        if len(self._queue) >= self._maxsize * bound:
            return "queue_full"
        if self._accounts.queued_bytes + size > self._max_bytes * bound:
            return "queue_bytes"
        return None

    def _no_room(self, size: int, bound: int = 1) -> bool:
        """The queue holds ``queue_size`` items, or ``size`` more bytes would pass its byte bound."""
        return self._full(size, bound) is not None

    def _collapse(self, item: Any) -> bool:
        """A log record shed at a full queue joins its template's repeat summary; False if it cannot.

        The record's logger, level and message template are the key; the summary
        keeps the count, the first and last times, and the last record with its
        arguments (immutable: the handler queued them unrendered, or rendered).
        """
        if type(item) is not tuple:
            return False
        try:
            record = item[0]
            key = (record.name, record.levelno, record.msg)
            if type(key[0]) is not str or type(key[1]) is not int or type(key[2]) is not str:
                return False
            created = float(record.created)
        except Exception:
            return False
        repeats = self._repeats
        entry = repeats.get(key)
        if entry is None:
            if len(repeats) >= REPEAT_KEYS:
                return False  # that many templates at once: the rest are shed plainly
            entry = repeats[key] = [0, created, created, item]
        entry[0] += 1
        entry[2] = created
        entry[3] = item
        self._accounts.gave_up(1, "collapsed")
        self._count(SHEDDABLE, "collapsed")
        return True

    def release_repeats(self) -> None:
        """Queue one summary event per collapsed template, when there is room (the worker thread).

        Each is the template's last record with ``(repeated N times)`` added to its
        message and ``fields`` repeated, repeat_first_ms, repeat_last_ms; a new
        event, accepted like any other.
        """
        if not self._repeats or len(self._queue) + len(self._repeats) > self._maxsize:
            return
        with self._lock:
            repeats, self._repeats = self._repeats, {}
        for count, first, last, item in repeats.values():
            summary = _summary(count, first, last, item)
            self._queue.append(summary)
            self._accounts.queued_bytes += item_bytes(summary)

    def _evict(self, sheddable: bool, reason: str, klass: str) -> bool:
        """Drop the oldest queued event whose class is ``sheddable``; False when none is queued."""
        found = self._accounts.evict(self._queue, lambda taken: self._find(sheddable, taken), reason)
        if found is None:
            return False
        self._evictions += 1  # taken + 1 too: the front pops stay as _find saw them
        pops = self._last_pops
        # Before ``found`` nothing of that class; the other class's count loses what went.
        then, known = self._front[not sheddable]
        known = max(0, known - (pops - then))
        self._front[not sheddable] = (pops, known - 1 if found < known else known)
        self._front[sheddable] = (pops, found)
        self._count(klass, reason)
        return True

    def _find(self, sheddable: bool, taken: int) -> int | None:
        """The index of the oldest queued event of that class (the accounting lock is held)."""
        queue, classify = self._queue, self.classifier.sheddable
        # Events taken from the front so far (under-counted is safe: more is read).
        pops = self._last_pops = taken - self._evictions
        then, known = self._front[sheddable]
        end = len(queue)
        for index in range(max(0, known - (pops - then)), end):
            if classify(queue[index]) is sheddable:
                return index
        self._front[sheddable] = (pops, end)
        return None

    def _count(self, klass: str, reason: str) -> None:
        key = (klass, reason)
        self.shed[key] = self.shed.get(key, 0) + 1

    def spool_evicted(self, klass: str, reason: str, count: int) -> None:
        """The spool's limit dropped ``count`` events of ``klass`` (the worker thread)."""
        with self._lock:
            key = (klass, reason)
            self.shed[key] = self.shed.get(key, 0) + count


def _summary(count: int, first: float, last: float, item: Any) -> Event:
    """The event that stands for ``count`` shed repeats of one log record's template."""
    event = record_to_event(*item)
    if count > 1:
        message = event.message if isinstance(event.message, str) else ""
        event.message = f"{message} (repeated {count} times while the queue was full)"
    fields = dict(event.fields or {})
    fields.update(repeated=count, repeat_first_ms=int(first * 1000), repeat_last_ms=int(last * 1000))
    event.fields = fields
    return event


def tag_records(classifier: Classifier, records: Sequence[Record], items: Sequence[Any]) -> Sequence[Record]:
    """``records`` with sheddable events' records as SheddableRecord; ``items[i]`` made ``records[i]``.

    A batch encoded in one piece whose events are all of one class (a flood is) stays one
    piece, marked with its class: no Record is made for it (the spool stores it as it is).
    """
    sheddable = classifier.sheddable
    if type(records) is EncodedBatch and len(records) == len(items):
        kinds = classifier.kinds(items)
        if len(kinds) <= 1:
            records.shed = int(True in kinds)
            return records
        records = records.records()
    return [
        _new_tuple(SheddableRecord, record) if sheddable(item) else record
        for item, record in zip(items, records, strict=True)
    ]
