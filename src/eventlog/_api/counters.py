"""Counters and gauges: aggregated in the process, sent as one metric event per series.

``Counter.inc()`` and ``Gauge.set()`` only touch memory.  A background thread
(started with the first series) turns each series into one event per interval
(the ``counter_interval`` setting, 60 s by default), and ``eventlog.flush()``,
``eventlog.shutdown()`` and interpreter exit send whatever is still held, so a
process that stops normally loses no count.

A counter event carries ``metrics={"count": <increments since the last
event>, "intervalMs": <time since the last event>}``; a gauge event carries
``metrics={"value": <last value>}``.  Both have ``fields["metric"]`` set to
``counter`` or ``gauge`` plus the series' own fields.  A counter with nothing
counted, or a gauge that did not change, sends nothing for that interval.

>>> requests = Counter("shop.checkout", "eu-west")   # doctest: +SKIP
>>> requests.inc()                                   # doctest: +SKIP
>>> Gauge("queue.depth", "orders").set(17)           # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self, cast

from eventlog._api import api
from eventlog._records.context import EMPTY
from eventlog._records.event import Event

if TYPE_CHECKING:
    from eventlog._engine.pipeline import Pipeline

log = logging.getLogger(__name__)

Number = int | float
SeriesKey = tuple[str, str | None, str | None, tuple[str, ...], tuple[tuple[str, str], ...]]

#: Seconds between emissions when no setting says otherwise.
DEFAULT_INTERVAL = 60.0
#: Amounts of ``Counter.inc(n)`` queued before the caller sums them up.
FOLD_AT = 1024


class _Series:
    """What counters and gauges share: identity, registration, turning into an Event."""

    kind = "series"
    action: str
    target: str | None
    tg_type: str | None
    tags: list[str] | None
    fields: dict[str, Any]
    pipeline: Pipeline | None
    _last_ns: int

    def __new__(
        cls,
        action: str,
        target: str | None = None,
        tg_type: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        fields: Mapping[str, Any] | None = None,
        pipeline: Pipeline | None = None,
    ) -> Self:
        tag_list = [tags] if isinstance(tags, str) else list(tags) if tags is not None else None
        field_map = dict(fields) if fields else {}
        # Check the arguments once, with Event's own checks and error messages.
        Event(action, target, tg_type, tags=tag_list, fields=field_map)
        key: SeriesKey = (
            action,
            target,
            tg_type,
            tuple(tag_list or ()),
            tuple(sorted((str(k), repr(v)) for k, v in field_map.items())),
        )
        series = _registry.get_or_add(cls, key, action, target, tg_type, tag_list, field_map, pipeline)
        return cast(Self, series)

    def _setup(
        self,
        action: str,
        target: str | None,
        tg_type: str | None,
        tags: list[str] | None,
        fields: dict[str, Any],
        pipeline: Pipeline | None,
    ) -> None:
        self.action, self.target, self.tg_type = action, target, tg_type
        self.tags, self.fields, self.pipeline = tags, fields, pipeline
        self._last_ns = time.monotonic_ns()
        self._reset_after_fork()

    def _reset_after_fork(self) -> None:
        raise NotImplementedError

    def _collect(self, now_ns: int) -> dict[str, Number] | None:
        """The metrics to send now, or None when there is nothing new (registry lock held)."""
        raise NotImplementedError

    def _event(self, metrics: dict[str, Number]) -> Event:
        event = Event(
            self.action,
            self.target,
            self.tg_type,
            tags=self.tags,
            fields={**self.fields, "metric": self.kind},
            metrics=metrics,
        )
        # A series belongs to the process, not to the request that happened to flush it.
        event.context = EMPTY
        return event

    def __repr__(self) -> str:
        args = ", ".join(repr(a) for a in (self.action, self.target, self.tg_type) if a is not None)
        return f"{type(self).__name__}({args})"


def _add(total: Number, amount: Number) -> Number:
    """``total + amount``; a float and an int past float's range add as ints (no OverflowError)."""
    try:
        return total + amount
    except OverflowError:  # the int is exact, the float's fraction is what is lost
        return int(total) + int(amount)


class Counter(_Series):
    """A count of things that happened, sent as the increase per interval.

    ``tags`` and ``fields`` are added to every event of the series;
    ``pipeline`` sends them to that pipeline instead of the default one.
    Creating a counter with the same action, target, tg_type, tags and fields
    again returns the same object, so ``Counter("x").inc()`` anywhere is safe.
    ``inc()`` and ``inc(n)`` are thread-safe and take no lock (an
    ``itertools.count`` tick, a ``deque.append``).

    >>> hits = Counter("cache.hit", "sessions")   # doctest: +SKIP
    >>> hits.inc()                                # doctest: +SKIP
    """

    kind = "counter"
    _tick: Any
    _ticks: itertools.count[int]
    _ticks_read: int
    _ticks_sent: int
    _amounts: deque[Number]
    _extra: Number
    _lock: threading.Lock

    def _reset_after_fork(self) -> None:
        # next() on an itertools.count is one C call: atomic under the GIL, no lock needed.
        self._ticks = itertools.count()
        self._tick = self._ticks.__next__
        self._ticks_read = 0  # how many of the ticks were the reader's own
        self._ticks_sent = 0
        self._amounts = deque()
        self._extra = 0
        self._lock = threading.Lock()

    def inc(self, n: Number = 1) -> None:
        """Add ``n`` (default 1) to the count.  Never blocks on I/O, never raises.

        ``n`` is a finite int or float, 0 or more.  Anything else (negative,
        NaN, infinite, not a number such as ``"5"``) is refused: not counted,
        counted instead as ``eventlog_values_converted{reason="bad_increment"}``
        on the series' pipeline, with one warning naming the value.
        """
        if n == 1 and type(n) is int:
            self._tick()
            return
        kind = type(n)
        if (kind is int and n >= 0) or (kind is float and 0 <= n < math.inf):
            amounts = self._amounts
            amounts.append(n)  # deque.append is atomic: no lock on this path either
            if len(amounts) > FOLD_AT:
                self._fold()
            return
        try:
            number = float(n) if kind is not bool and isinstance(n, (int, float)) else math.nan
        except Exception:
            number = math.nan
        if 0 <= number < math.inf:  # an int or float subclass (IntEnum ...): its plain value
            self.inc(int(n) if isinstance(n, int) else number)
            return
        _refused(self, n)

    def _fold(self) -> None:
        """Sum the queued amounts into one number (keeps memory bounded between intervals)."""
        amounts = self._amounts
        total: Number = 0
        try:
            while True:
                total = _add(total, amounts.popleft())  # each amount is popped by exactly one thread
        except IndexError:
            pass
        with self._lock:
            self._extra = _add(self._extra, total)

    def _collect(self, now_ns: int) -> dict[str, Number] | None:
        # Every next() returns how many next() calls came before it, so the
        # number of inc() ticks is that minus the reader's own earlier calls.
        ticks = self._tick() - self._ticks_read
        self._ticks_read += 1
        self._fold()
        with self._lock:
            extra, self._extra = self._extra, 0
        count = ticks - self._ticks_sent + extra
        self._ticks_sent = ticks
        if not count:
            return None
        interval_ms = (now_ns - self._last_ns) // 1_000_000
        self._last_ns = now_ns
        return {"count": count, "intervalMs": interval_ms}


def _refused(series: _Series, value: object) -> None:
    """An increment a counter cannot take: counted on the series' pipeline, warned once."""
    try:
        try:
            shown = repr(value)[:80]
        except Exception:
            shown = f"<{type(value).__name__}>"
        pipeline = series.pipeline or api.current() or api.get_pipeline()
        pipeline.count_converted("bad_increment")
        pipeline.warn_once(
            f"bad_increment:{series.action}",
            f"{series!r} was given {shown}, which it cannot take, and left it out: a counter "
            "takes a finite int or float of 0 or more (use a Gauge for values that go down), "
            "a gauge an int or float; convert text to a number before you pass it",
        )
    except Exception:  # no pipeline can be made: the warning alone, never the caller's error
        log.warning("a counter increment was refused (not a finite number of 0 or more)")


def _number_or_refused(series: _Series, value: object, finite: bool = False) -> Number | None:
    """An int or float subclass as its plain value; anything else refused (counted, warned)."""
    if type(value) is not bool and isinstance(value, (int, float)):
        try:
            number: Number = int(value) if isinstance(value, int) else float(value)
        except Exception:
            number = math.nan
        if not finite or math.isfinite(number):
            return number
    _refused(series, value)
    return None


class Gauge(_Series):
    """A level that goes up and down (queue depth, connections), sent as its last value.

    Thread-safe; each call takes a short lock.  A gauge that did not change
    since its last event sends nothing.

    >>> depth = Gauge("queue.depth", "orders")   # doctest: +SKIP
    >>> depth.set(17); depth.inc(); depth.dec(2)  # doctest: +SKIP
    """

    kind = "gauge"
    _value: Number
    _changed: bool
    _lock: threading.Lock

    def _reset_after_fork(self) -> None:
        self._value = 0
        self._changed = False
        self._lock = threading.Lock()

    def set(self, value: Number) -> None:
        """Make ``value`` the gauge's level (an int or float; anything else is refused, counted)."""
        if type(value) is not int and type(value) is not float:
            number = _number_or_refused(self, value)
            if number is None:
                return
            value = number
        with self._lock:
            self._value = value
            self._changed = True

    def inc(self, n: Number = 1) -> None:
        """Raise the level by ``n`` (a finite int or float; anything else is refused, counted)."""
        self._move(n, 1)

    def dec(self, n: Number = 1) -> None:
        """Lower the level by ``n`` (a finite int or float; anything else is refused, counted)."""
        self._move(n, -1)

    def _move(self, n: Number, sign: int) -> None:
        if not (type(n) is int or (type(n) is float and math.isfinite(n))):
            n = _number_or_refused(self, n, finite=True)  # type: ignore[assignment]
            if n is None:
                return
        with self._lock:
            self._value += sign * n
            self._changed = True

    @property
    def value(self) -> Number:
        """The current level."""
        return self._value

    def _collect(self, now_ns: int) -> dict[str, Number] | None:
        with self._lock:
            if not self._changed:
                return None
            self._changed = False
            value = self._value
        self._last_ns = now_ns
        return {"value": value}


class _Registry:
    """Every series of the process and the thread that sends them each interval."""

    def __init__(self) -> None:
        self._series: dict[tuple[type, SeriesKey], _Series] = {}
        self._after_fork()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # guards _series and every series' reader state
        self._thread: threading.Thread | None = None

    def get_or_add(
        self,
        cls: type[_Series],
        key: SeriesKey,
        action: str,
        target: str | None,
        tg_type: str | None,
        tags: list[str] | None,
        fields: dict[str, Any],
        pipeline: Pipeline | None,
    ) -> _Series:
        with self._lock:
            for other_cls in (Counter, Gauge):
                found = self._series.get((other_cls, key))
                if found is not None and other_cls is not cls:
                    raise TypeError(
                        f"{found!r} already exists as a {other_cls.__name__}; "
                        f"give the {cls.__name__} another action, target or fields"
                    )
            series = self._series.get((cls, key))
            if series is None:
                series = object.__new__(cls)
                series._setup(action, target, tg_type, tags, fields, pipeline)
                self._series[(cls, key)] = series
            if self._thread is None:
                self._start()
            return series

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="eventlog-counters", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            # Wake at least once a second so that a new interval from configure()
            # takes effect soon; 0 turns the timer off (flush, shutdown and exit only).
            interval = _interval()
            remaining = last + interval - time.monotonic() if interval > 0 else 1.0
            if interval > 0 and remaining <= 0:
                self.emit()
                last = time.monotonic()
                continue
            time.sleep(min(remaining, 1.0))

    def emit(self) -> int:
        """Send one event for every series with something new; returns how many were sent."""
        sent = 0
        try:
            with self._lock:
                now_ns = time.monotonic_ns()
                events = []
                for series in self._series.values():
                    metrics = series._collect(now_ns)
                    if metrics is not None:
                        events.append((series, series._event(metrics)))
            for series, event in events:
                if series.pipeline is not None:
                    series.pipeline.submit_event(event)
                else:
                    api.log_event(event)
                sent += 1
        except Exception:  # the timer thread and flush() must survive any bug here
            log.exception("counters and gauges could not be sent")
        return sent

    def reset_after_fork(self) -> None:
        # The parent sends what it counted before fork; the child starts at zero
        # with fresh locks (a parent thread may have held one at fork time).
        self._after_fork()
        for series in self._series.values():
            series._reset_after_fork()
        if self._series:
            self._start()  # the parent's timer thread did not come along


def _interval() -> float:
    """The ``counter_interval`` setting of the default pipeline (or the environment, Django)."""
    pipeline = api.current()
    try:
        if pipeline is not None:
            return float(pipeline.settings.counter_interval)
        from eventlog._config.config import CORE_OPTIONS, Settings

        option = next(o for o in CORE_OPTIONS if o.name == "counter_interval")
        return float(Settings.load({}).resolve("counter_interval", option))
    except Exception:
        return DEFAULT_INTERVAL


def emit() -> int:
    """Send every counter and gauge now (``eventlog.flush()`` does this for you)."""
    return _registry.emit()


_registry = _Registry()
api.before_flush.append(emit)
os.register_at_fork(after_in_child=_registry.reset_after_fork)
# eventlog._engine.pipeline registered its own exit hook (shut every pipeline down) when it was
# imported, before this module; atexit runs hooks last-in first-out, so the final
# counts are queued before the pipelines drain.
atexit.register(emit)
