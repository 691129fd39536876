"""Event -> wire dict, in the worker: ids, and making the values left safe.

What needs application code (objects, containers) was made text in the
caller (:func:`eventlog._records.text.frozen`); what is left here (bytes, NaN, ints
beyond 64 bits, huge strings, lone surrogates, values of the wrong type in a
typed slot) is turned into something every formatter can encode, running no
application code.  Each conversion is counted by reason, so an operator can
see that data was changed rather than silently losing it.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eventlog._records.schema import LEVEL_NAMES, W
from eventlog._records.text import (
    INT_MAX,
    INT_MIN,
    MAX_MESSAGE_CHARS,
    MAX_VALUE_CHARS,
    Conversions,
    Placeholder,
    _count,
    encodable,
    int_text,
    safe_str,
)

if TYPE_CHECKING:
    from eventlog._records.context import RequestContext
    from eventlog._records.event import Event


class IdMaker:
    """Unique, time-ordered, cheap ids: 12 hex ms, 12 hex per-process node, 8 hex sequence.

    Sorting ids as strings sorts them by time (to the millisecond).  The node is
    random per process and drawn again after fork, so parent and child never
    share ids.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._node = os.urandom(6).hex()
        # next() on itertools.count is one C call under the GIL: unique without a lock,
        # even when two pipelines' workers draw ids at once.
        self._next = itertools.count(1).__next__

    def node_and_counter(self) -> tuple[str, Callable[[], int]]:
        """This process's node and sequence, for code that writes the id out itself."""
        return self._node, self._next

    def make(self, time_ns: int) -> str:
        """The next id, for an event at ``time_ns``.

        A time before 1970 gets the millisecond 0 in its id (masking a negative
        number would give one that sorts after every other id); times within
        int64 ns (to 2262) fit the 12 hex digits.  The event's ``tstamp`` keeps the time.
        """
        millis = time_ns // 1_000_000
        return f"{millis if millis > 0 else 0:012x}{self._node}{self._next() & 0xFFFFFFFF:08x}"


_ids = IdMaker()
#: A bound method, not the instance: calling an instance's __call__ costs several times more.
make_id = _ids.make
os.register_at_fork(after_in_child=_ids.reset)


def thread_name(ident: int) -> str:
    """The name of the thread with this ident (still running), else the ident as text."""
    # threading._active maps idents of live threads to Thread objects; reading it is cheaper
    # than threading.enumerate() and the worker does it once per event.
    thread = getattr(threading, "_active", {}).get(ident)
    return thread.name if thread is not None else str(ident)


def _typed_value(value: Any, conversions: Conversions | None) -> int | float | str:
    kind = type(value)
    if kind is int:
        if INT_MIN <= value <= INT_MAX:
            return int(value)
        _count(conversions, "int_range")  # no format carries it as a number: its digits
        return safe_str(int_text(value), MAX_VALUE_CHARS, conversions)
    if kind is str:
        return safe_str(value, MAX_VALUE_CHARS, conversions)
    if kind is float:
        if math.isfinite(value):
            return float(value)
        _count(conversions, "non_finite")
        return str(value)
    if kind is bool:
        return int(value)
    # Subclasses (the caller made them plain; one set on an Event by hand): the base
    # type's own conversion, which runs none of the subclass's code.
    if isinstance(value, str) and not isinstance(value, Placeholder):
        return safe_str(str.__str__(value), MAX_VALUE_CHARS, conversions)
    if isinstance(value, int):
        return _typed_value(int.__int__(value), conversions)
    if isinstance(value, float):
        return _typed_value(float.__float__(value), conversions)
    return safe_str(value, MAX_VALUE_CHARS, conversions)


def int_slot(value: Any, conversions: Conversions | None) -> int | None:
    """A typed int slot (level, codeLine): an int within 64 bits, clamped or None, counted."""
    if type(value) is int:
        if INT_MIN <= value <= INT_MAX:
            return value
        _count(conversions, "int_range")
        return INT_MIN if value < 0 else INT_MAX
    if type(value) is bool:
        return int(value)
    _count(conversions, "not_int")
    return None


def _plain(value: Any, limit: int) -> bool:
    """True for ASCII str within ``limit``: what needs no cleaning (isascii() is O(1))."""
    return type(value) is str and value.isascii() and len(value) <= limit


def put_extras(
    out: dict[str, Any],
    tags: list[Any] | None,
    fields: dict[Any, Any] | None,
    metrics: dict[Any, Any] | None,
    conversions: Conversions | None,
) -> None:
    """Add tags, metrics and fields to ``out``, cleaned (metrics that are no numbers become fields)."""
    if tags:
        out[W.tags] = [
            t if _plain(t, MAX_VALUE_CHARS) else safe_str(t, MAX_VALUE_CHARS, conversions) for t in tags
        ]
    if metrics:
        clean_metrics: dict[str, int | float] = {}
        for key, value in metrics.items():
            if not (type(key) is str and key.isascii() and len(key) <= MAX_VALUE_CHARS):
                key = safe_str(key, MAX_VALUE_CHARS, conversions)
            kind = type(value)
            if (kind is int and INT_MIN <= value <= INT_MAX) or (kind is float and math.isfinite(value)):
                clean_metrics[key] = value
                continue
            if kind is bool:
                clean_metrics[key] = int(value)
                continue
            # Not a finite number within 64 bits: it cannot be a metric; keep it as a field
            # instead (an int beyond 64 bits is counted there, as int_range).
            if kind is not int:
                _count(conversions, "metric_not_number")
            fields = dict(fields) if fields else {}
            fields.setdefault(key, value)
        if clean_metrics:
            out[W.metrics] = clean_metrics
    if fields:
        clean_fields: dict[str, int | float | str] = {}
        for key, value in fields.items():
            if not (type(key) is str and key.isascii() and len(key) <= MAX_VALUE_CHARS):
                key = safe_str(key, MAX_VALUE_CHARS, conversions)
            kind = type(value)
            if (kind is int and INT_MIN <= value <= INT_MAX) or (
                kind is str and value.isascii() and len(value) <= MAX_VALUE_CHARS
            ):
                clean_fields[key] = value
            else:
                clean_fields[key] = _typed_value(value, conversions)
        out[W.fields] = clean_fields


def to_wire(
    event: Event,
    conversions: Conversions | None,
    static: dict[str, Any] | None = None,
    ctx: RequestContext | None = None,
) -> dict[str, Any]:
    """The event as a dict of wire names (see :mod:`eventlog._records.schema`), empty fields omitted.

    The engine's fast path passes ``static`` (site, cluster, host, pid, merged
    as they are, for an event that sets none of them) and ``ctx`` (user,
    session and request id where the event has none): what the built-in
    ``host``, ``site`` and ``context`` enrichers would have set, without
    running them (the context's fields too).  The trace ids of the event's
    context snapshot are always written.
    """
    # This runs once per event in the worker; the checks of _plain are inlined
    # below because most values are short ASCII text and a call costs more than the check.
    event_id = event.id
    if event_id is None:
        event_id = event.id = make_id(event.time_ns)
    action = event.action
    if not (type(action) is str and action.isascii() and len(action) <= MAX_VALUE_CHARS):
        action = safe_str(action, MAX_VALUE_CHARS, conversions)
    out: dict[str, Any] = {W.id: event_id, W.tstamp: event.time_ns // 1_000_000, W.action: action}
    text = event.target
    if text is not None:
        if not (type(text) is str and text.isascii() and len(text) <= MAX_VALUE_CHARS):
            text = safe_str(text, MAX_VALUE_CHARS, conversions)
        out[W.target] = text
    text = event.tg_type
    if text is not None:
        if not (type(text) is str and text.isascii() and len(text) <= MAX_VALUE_CHARS):
            text = safe_str(text, MAX_VALUE_CHARS, conversions)
        out[W.tg_type] = text
    level = event.level
    if level is not None and (type(level) is not int or not INT_MIN <= level <= INT_MAX):
        level = int_slot(level, conversions)
    if level is not None:
        out[W.level] = level
        # A log record's own name for a level outside the standard ones (loguru's SUCCESS,
        # logging.addLevelName): read only in that case, so standard levels cost nothing more.
        out[W.level_name] = LEVEL_NAMES.get(level) or getattr(event, "level_name", None) or f"Level {level}"
    text = event.message
    if text is not None:
        if not (type(text) is str and text.isascii() and len(text) <= MAX_MESSAGE_CHARS):
            text = safe_str(text, MAX_MESSAGE_CHARS, conversions)
        out[W.message] = text
    fields = event.fields
    if ctx is not None and ctx.fields:
        fields = with_context_fields(fields, ctx.fields)
    if event.tags or fields or event.metrics:
        put_extras(out, event.tags, fields, event.metrics, conversions)
    ctx_user, session, request_id = event.user, event.session, event.request_id
    if ctx is not None:
        if ctx_user is None:
            ctx_user = ctx.user
        if session is None:
            session = ctx.session
        if request_id is None:
            request_id = ctx.request_id
    if ctx_user is not None:
        out[W.user] = safe_str(ctx_user, MAX_VALUE_CHARS, conversions)
    if session is not None:
        out[W.session] = safe_str(session, MAX_VALUE_CHARS, conversions)
    if request_id is not None:
        out[W.request_id] = safe_str(request_id, MAX_VALUE_CHARS, conversions)
    # Set by enrichers and the record conversion, not by the application: no cleaning.
    if static is not None:
        out.update(static)
    else:
        if event.site is not None:
            out[W.site] = event.site
        if event.cluster is not None:
            out[W.cluster] = event.cluster
        if event.host is not None:
            out[W.host] = event.host
        if event.pid is not None:
            out[W.pid] = event.pid
    # Set by the record conversion (which made them str and int, or placeholders) or the
    # caller: a type check each, the cleaning only for what is not plain.
    thread = event.thread
    if thread is not None:
        if type(thread) is int:  # an ident, from code that set one: the name, if still running
            thread = event.thread = thread_name(thread)
        out[W.thread] = text_slot(thread, MAX_VALUE_CHARS, conversions)
    text = event.code_file
    if text is not None:
        out[W.code_file] = text_slot(text, MAX_VALUE_CHARS, conversions)
    code_line = event.code_line
    if code_line is not None:
        if type(code_line) is not int or not INT_MIN <= code_line <= INT_MAX:
            code_line = int_slot(code_line, conversions)
        if code_line is not None:
            out[W.code_line] = code_line
    text = event.code_func
    if text is not None:
        out[W.code_func] = text_slot(text, MAX_VALUE_CHARS, conversions)
    exc_text = event.exc_info
    if exc_text is not None:
        out[W.exc_info] = text_slot(exc_text, MAX_MESSAGE_CHARS, conversions)
    # The span's ids come from the snapshot taken when the event was made, on every path
    # and whatever the enrichers: they say which trace the event belongs to.
    snapshot = event.context
    if snapshot.trace_id is not None:
        put_trace(out, snapshot)
    return out


def text_slot(value: Any, limit: int, conversions: Conversions | None) -> str:
    """A str slot set by eventlog (thread, code location, exc_info): a str is kept whole,
    with lone surrogates escaped; anything else is made text within ``limit``."""
    if type(value) is str:
        return value if value.isascii() else encodable(value, conversions)
    return safe_str(value, limit, conversions)


def with_context_fields(fields: dict[Any, Any] | None, context_fields: dict[str, Any]) -> dict[Any, Any]:
    """The event's fields, then the context's fields it does not have (its own win)."""
    if not fields:
        return dict(context_fields)
    merged = dict(fields)
    for key, value in context_fields.items():
        if key not in merged:
            merged[key] = value
    return merged


#: The last context written by put_trace and its hex forms: the records of one span share
#: one context object (see eventlog.context), and formatting three ints costs ~10k
#: instructions.  One list item, swapped whole, as workers of two pipelines may share it.
_last_trace: list[tuple[object, tuple[str, str, str]]] = [(None, ("", "", ""))]


def put_trace(out: dict[str, Any], ctx: RequestContext) -> None:
    """traceId, spanId and traceFlags of a context that has them (ints, from the caller)."""
    cached = _last_trace[0]
    if cached[0] is not ctx:
        # eventlog.context sets all three; a context made by hand may not.
        span_id, flags = ctx.span_id or 0, ctx.trace_flags or 0
        cached = (ctx, (f"{ctx.trace_id:032x}", f"{span_id:016x}", f"{flags:02x}"))
        _last_trace[0] = cached
    out[W.trace_id], out[W.span_id], out[W.trace_flags] = cached[1]
