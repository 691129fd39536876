"""The Event: what the application hands to eventlog.

Construction is on the caller's hot path, so it stores what it is given, the
clock and the request context, and converts only what the worker must not
touch (:func:`eventlog._records.text.frozen`: objects, containers the caller may still
change) or what no stage after it could carry (a time or level beyond 64 bits,
:func:`eventlog._records.text.checked_time_ns`).  Plain values cost one type check each.
Static fields (host, pid, site, cluster), the id, and the cleaning of plain
values happen in the worker thread.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from eventlog._records import context as _context
from eventlog._records.context import CONTEXT_VARS, RequestContext
from eventlog._records.schema import LEVEL_NAMES
from eventlog._records.text import KEPT, ConvertedValue, checked_int, checked_time_ns, frozen
from eventlog._records.wire import make_id

_now_ns = time.time_ns
_get_ident = threading.get_ident
_current_thread = threading.current_thread
#: Live threads by ident.  One C lookup per event instead of current_thread().name (two
#: Python calls); threads not started by ``threading`` are not in it until current_thread().
_ACTIVE: dict[int, Any] = getattr(threading, "_active", {})
_active_get = _ACTIVE.get

_current_context = _context.current
_KEPT_SUPERSET = KEPT.issuperset
_STR_KEYS = frozenset({str}).issuperset


def _py_plain_copy(values: Any) -> dict[str, Any] | None:
    """A copy of a dict of str keys and KEPT values, or None (then ``_fields``/``_frozen_map``)."""
    if type(values) is dict and _KEPT_SUPERSET(map(type, values.values())) and _STR_KEYS(map(type, values)):
        return values.copy()
    return None


def _load_plain_copy() -> Callable[[Any], dict[str, Any] | None]:
    """eventlog-speedups' plain_copy (the same result in C), unless absent or EVENTLOG_SPEEDUPS=0."""
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        return _py_plain_copy
    try:
        from eventlog_speedups._wires import plain_copy  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return _py_plain_copy
    compiled: Callable[[Any], dict[str, Any] | None] = plain_copy
    return compiled


_plain_copy = _load_plain_copy()

# Frames inside these folders are never the "caller" of log_code=True: the whole eventlog
# package (this module is in eventlog/_records/; the integrations are in eventlog/).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_LOGGING_DIR = os.path.dirname(os.path.abspath(sys.modules["logging"].__file__ or "")) + os.sep


def caller_location(depth: int = 2) -> tuple[str, int, str]:
    """File, line and function of the first frame outside eventlog and logging."""
    frame: Any = sys._getframe(depth)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (filename.startswith(_PACKAGE_DIR) or filename.startswith(_LOGGING_DIR)):
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return "<unknown>", 0, "<unknown>"


class _KeywordsFollow(enum.Enum):
    """The mark that no fourth positional argument was given to Event() (see its __init__)."""

    MARK = 0


_KEYWORDS = _KeywordsFollow.MARK


class Event:
    """One application event.

    ``Event('click', 'my-button', 'ui')`` is (action, target, tgType) as in the
    seed.  ``fields`` may be a mapping or a list of (key, value) tuples; values
    are int, float or str (others are converted to text here, and counted).
    A ``time_ns`` or ``level`` that no format can carry (beyond 64 bits, not an
    int, NaN) is converted and its original kept as text in
    ``fields["tstamp_original"]`` / ``fields["level_original"]``.

    >>> Event("account.admin.create", "alice", "user", tags=["admin"])
    Event('account.admin.create', 'alice', 'user')
    """

    __slots__ = (
        "_id_made",
        "action",
        "cluster",
        "code_file",
        "code_func",
        "code_line",
        "context",
        "exc_info",
        "fields",
        "host",
        "id",
        "level",
        "level_name",
        "message",
        "metrics",
        "pid",
        "request_id",
        "session",
        "site",
        "tags",
        "target",
        "tg_type",
        "thread",
        "time_ns",
        "user",
    )

    action: str
    target: str | None
    tg_type: str | None
    message: str | None
    level: int | None
    #: A log record's own name for a non-standard level (unset otherwise: read with getattr).
    level_name: str
    tags: list[str] | None
    fields: dict[str, Any] | None
    metrics: dict[str, Any] | None
    time_ns: int
    context: RequestContext
    user: str | None
    session: str | None
    request_id: str | None
    code_file: str | None
    code_line: int | None
    code_func: str | None
    exc_info: str | None
    thread: str | int | None  # an int (an ident) only from code that set one
    id: str | None
    #: The id eventlog made when the application's Event was last logged (see snapshot()).
    _id_made: str | None
    site: str | None
    cluster: str | None
    host: str | None
    pid: int | None

    def __init__(
        self,
        action: str,
        target: str | None = None,
        tg_type: str | None = None,
        # Keyword-only in effect (the documented signature, __signature__ below), but not
        # in the def: CPython fills a missing keyword-only argument from a dict lookup
        # each, ~1.4k instructions a call for these twelve (callgrind, 3.11), where
        # positional defaults cost ~250.  A fourth positional argument lands here: refused.
        _keywords_follow: _KeywordsFollow = _KEYWORDS,
        message: str | None = None,
        level: int | None = None,
        tags: str | Iterable[str] | None = None,
        fields: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        metrics: Mapping[str, Any] | None = None,
        log_code: bool = False,
        logCode: bool | None = None,  # noqa: N803 - the seed's documented spelling
        user: str | None = None,
        session: str | None = None,
        request_id: str | None = None,
        time_ns: int | None = None,
    ) -> None:
        if _keywords_follow is not _KEYWORDS:
            raise TypeError(
                "Event() takes at most 3 positional arguments (action, target, tg_type); "
                "pass the others by keyword, e.g. Event('click', 'my-button', 'ui', tags=['a'])"
            )
        if type(action) is not str or not action:
            raise TypeError(
                # The type's name, never repr(): an application's __repr__ may raise or leak.
                f"Event action must be a non-empty str, got "
                f"{repr(action) if type(action) is str else type(action).__name__}; "
                "use a dotted name such as 'account.admin.create'"
            )
        if target is not None and type(target) is not str:
            raise TypeError(f"Event target must be a str or None, got {type(target).__name__}")
        if tg_type is not None and type(tg_type) is not str:
            raise TypeError(f"Event tg_type must be a str or None, got {type(tg_type).__name__}")
        if level is not None and type(level) is not int:
            raise TypeError(f"Event level must be an int (a logging level), got {type(level).__name__}")
        self.action = action
        self.target = target
        self.tg_type = tg_type
        # Text for the worker: anything else is converted now (see eventlog._records.text.frozen).
        self.message = message if message is None or type(message) is str else frozen(message)
        if tags is None:
            self.tags = None
        elif type(tags) is list and _STR_KEYS(map(type, tags)):  # a list of str: copied in C
            self.tags = tags.copy()
        else:
            self.tags = _tags(tags)
        # A dict of str keys and plain values (the common case) is copied in one C call
        # (_plain_copy); the general functions below cost a Python call and a loop more.
        if fields is None:
            self.fields = None
        else:
            copied = _plain_copy(fields)
            self.fields = copied if copied is not None else _fields(fields)
        if metrics is None:
            self.metrics = None
        elif (copied := _plain_copy(metrics)) is not None:
            self.metrics = copied
        else:
            self.metrics = _frozen_map(metrics)
        if time_ns is None:
            self.time_ns = _now_ns()
        elif type(time_ns) is int and -(2**63) <= time_ns < 2**63:
            self.time_ns = time_ns
        else:
            self.time_ns, original = checked_time_ns(time_ns, _now_ns())
            if original is not None:
                self._keep_original("tstamp", original)
        self.level = level
        if level is not None and not -(2**63) <= level < 2**63:
            self.level, original = checked_int(level)
            if original is not None:
                self._keep_original("level", original)
        self.context = _current_context()
        self.user = user if user is None or type(user) is str else frozen(user)
        self.session = session if session is None or type(session) is str else frozen(session)
        self.request_id = request_id if request_id is None or type(request_id) is str else frozen(request_id)
        if log_code or logCode:
            self.code_file, self.code_line, self.code_func = caller_location()
        else:
            self.code_file = self.code_line = self.code_func = None
        # The name now: the thread may have exited by the time the worker runs.  ``_name`` is
        # what the ``name`` property returns, without the property's Python call.
        thread = _active_get(_get_ident())
        self.thread = (thread or _current_thread())._name  # type: ignore[union-attr]
        # Set by the worker (id) and the pipeline's static fields; one chained store.
        self.exc_info = self.id = self._id_made = self.site = self.cluster = self.host = self.pid = None

    def _keep_original(self, wire_name: str, original: ConvertedValue) -> None:
        """A typed slot's value that had to be converted: kept as text in the fields."""
        fields = self.fields = dict(self.fields) if self.fields else {}
        fields[f"{wire_name}_original"] = original

    @property
    def tstamp(self) -> int:
        """Milliseconds since the epoch, UTC (the seed's ``tstamp``)."""
        return self.time_ns // 1_000_000

    def __repr__(self) -> str:
        args = ", ".join(repr(a) for a in (self.action, self.target, self.tg_type) if a is not None)
        return f"Event({args})"

    def to_dict(self) -> dict[str, Any]:
        """The wire form of this event, as a formatter sees it (fields converted)."""
        from eventlog._records.wire import to_wire

        return to_wire(self, None)


def _documented(
    action: str,
    target: str | None = None,
    tg_type: str | None = None,
    *,
    message: str | None = None,
    level: int | None = None,
    tags: str | Iterable[str] | None = None,
    fields: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    metrics: Mapping[str, Any] | None = None,
    log_code: bool = False,
    logCode: bool | None = None,  # noqa: N803 - the seed's documented spelling
    user: str | None = None,
    session: str | None = None,
    request_id: str | None = None,
    time_ns: int | None = None,
) -> None:
    """Event()'s signature as documented (help(), inspect): the keywords are keyword-only."""


Event.__signature__ = inspect.signature(_documented)  # type: ignore[attr-defined]

#: The reference Event.__init__, in Python.  With eventlog-speedups, ``Event(...)`` is made
#: in C (eventlog_speedups._caps.setup_event: the class's own vectorcall), which stores the
#: same for the common case and calls this one for anything else; tests hold the two equal.
#: A subclass, and ``Event.__init__`` called by name, always run this one.
python_init = Event.__init__


def _set_up_compiled_event() -> bool:
    """Make ``Event(...)`` in C, unless eventlog-speedups is absent or EVENTLOG_SPEEDUPS=0.

    The Python __init__ costs ~10k instructions an Event with fields and metrics, most of it
    bytecode dispatch and argument parsing (callgrind, 3.11: see docs/benchmarks.md); the
    compiled one ~1k.  Everything it compares against or calls is handed over here.
    """
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        return False
    try:
        from eventlog_speedups._caps import (  # type: ignore[import-not-found, unused-ignore]
            refcount,
            setup_event,
        )
    except ImportError:
        return False
    # What a C function sees of an argument only the call holds (``Event(fields={...})``),
    # measured: 0 (always copy) where one the caller keeps does not show more.
    held = object()
    alone = refcount(object())
    context_var, trace_var = CONTEXT_VARS if CONTEXT_VARS is not None else (None, None)
    setup_event(
        cls=Event,
        params=tuple(inspect.signature(python_init).parameters)[1:],
        namespace=globals(),
        active=_ACTIVE,
        current_thread=_current_thread,
        current=_current_context,
        context_var=context_var,
        trace_var=trace_var,
        kept=KEPT,
        only_this_call=alone if refcount(held) > alone else 0,
        time_ns=time.time_ns,
        python_init=python_init,
    )
    return True


#: Whether ``Event(...)`` is made in C (eventlog-speedups).
compiled = _set_up_compiled_event()


def snapshot(event: Event) -> Event:
    """What is queued when ``event`` is logged: its values now, apart from the caller's object.

    What the application logged is what arrives: changing the Event, its
    ``fields``, ``metrics`` or ``tags`` after ``log_event`` (or logging it
    again) does not reach the queued copy.  The containers are copied here, once
    (a dict of str keys and plain values in one C call), and what the worker
    must not touch in them is converted now; the other slots are copied as they
    are (about 30 instructions each, where a Python call costs a thousand).
    """
    copy: Event = _new(Event)
    copy.action = event.action
    copy.target = event.target
    copy.tg_type = event.tg_type
    copy.message = event.message
    level = copy.level = event.level
    if level is not None and level not in LEVEL_NAMES:  # a record's own name for its level
        with contextlib.suppress(AttributeError):
            copy.level_name = event.level_name
    tags = event.tags
    copy.tags = None if tags is None else _tag_copy(tags)
    fields = event.fields
    copy.fields = None if fields is None else (_plain_copy(fields) or _fields(fields))
    metrics = event.metrics
    copy.metrics = None if metrics is None else (_plain_copy(metrics) or _frozen_map(metrics))
    copy.time_ns = event.time_ns
    copy.context = event.context
    copy.user = event.user
    copy.session = event.session
    copy.request_id = event.request_id
    copy.code_file = event.code_file
    copy.code_line = event.code_line
    copy.code_func = event.code_func
    copy.exc_info = event.exc_info
    copy.thread = event.thread
    copy.site = event.site
    copy.cluster = event.cluster
    copy.host = event.host
    copy.pid = event.pid
    # The application holds this Event and may read its id: it is made now (the worker makes
    # the others), and again each time the Event is logged, so an Event logged twice arrives
    # as two events, never as one id that a receiver drops as a duplicate.  An id set by
    # hand is the application's own and goes as it is.
    event_id = event.id
    if event_id is None or event_id is getattr(event, "_id_made", None):
        event_id = event.id = event._id_made = make_id(event.time_ns)
    copy.id = event_id
    return copy


_new = object.__new__


def _tag_copy(tags: Any) -> list[str]:
    """A copy of the tags, non-str tags converted (a list of str: one C call and a check)."""
    if type(tags) is list and _STR_KEYS(map(type, tags)):
        return tags.copy()
    return _tags(tags)


def _tags(tags: str | Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        return [tags]
    try:
        listed = list(tags)
    except TypeError:
        raise TypeError(
            f"Event tags must be a str or an iterable of str, got {type(tags).__name__}"
        ) from None
    for index, tag in enumerate(listed):
        if type(tag) is not str:
            listed[index] = frozen(tag)
    return listed


def _fields(fields: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    try:
        copied = dict(fields)
    except (TypeError, ValueError):
        raise TypeError(
            f"Event fields must be a mapping or a list of (key, value) tuples, got {type(fields).__name__}"
        ) from None
    return _frozen_values(copied)


def _frozen_map(values: Mapping[Any, Any]) -> dict[Any, Any]:
    if not isinstance(values, Mapping):
        raise TypeError(f"Event metrics must be a mapping of name to number, got {type(values).__name__}")
    return _frozen_values(dict(values))


def _frozen_values(copied: dict[Any, Any]) -> dict[Any, Any]:
    """The copy's values the worker must not touch, converted now (plain values: one check each)."""
    odd_key = False
    for key, value in copied.items():
        if type(value) not in KEPT:
            copied[key] = frozen(value)
        if type(key) is not str:
            odd_key = True
    if odd_key:  # the worker makes text of plain keys; other objects become text now
        return {k if type(k) in KEPT else frozen(k): v for k, v in copied.items()}
    return copied
