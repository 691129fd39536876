"""Event -> wire dict, in the worker: ids, and making hostile values safe.

Everything an application can put into an event (objects with no JSON form,
bytes, NaN, recursive containers, huge strings, lone surrogates) is turned into
something every formatter can encode.  Each conversion is counted by reason, so
an operator can see that data was changed rather than silently losing it.
"""

from __future__ import annotations

import json
import math
import os
import threading
from typing import TYPE_CHECKING, Any

from eventlog.schema import LEVEL_NAMES

if TYPE_CHECKING:
    from eventlog.event import Event

#: Longest message kept, in characters; longer ones are cut and counted.
MAX_MESSAGE_CHARS = 256 * 1024
#: Longest tag, field value or key kept, in characters.
MAX_VALUE_CHARS = 16 * 1024

Conversions = dict[str, int]


class IdMaker:
    """Unique, time-ordered, cheap ids: 12 hex ms, 12 hex per-process node, 8 hex sequence.

    Sorting ids as strings sorts them by time (to the millisecond).  The node is
    random per process and drawn again after fork, so parent and child never
    share ids.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # A new lock too: a fork while the worker held the old one would leave it held forever.
        self._lock = threading.Lock()
        self._node = os.urandom(6).hex()
        self._seq = 0

    def __call__(self, time_ns: int) -> str:
        # Only the worker calls this, but a lock keeps ids unique if two pipelines do.
        with self._lock:
            self._seq = (self._seq + 1) & 0xFFFFFFFF
            seq = self._seq
        return f"{(time_ns // 1_000_000) & 0xFFFFFFFFFFFF:012x}{self._node}{seq:08x}"


make_id = IdMaker()
os.register_at_fork(after_in_child=make_id.reset)


def thread_name(ident: int) -> str:
    """The name of the thread with this ident (still running), else the ident as text."""
    # threading._active maps idents of live threads to Thread objects; reading it is cheaper
    # than threading.enumerate() and the worker does it once per event.
    thread = getattr(threading, "_active", {}).get(ident)
    return thread.name if thread is not None else str(ident)


def _count(conversions: Conversions | None, reason: str) -> None:
    if conversions is not None:
        conversions[reason] = conversions.get(reason, 0) + 1


def safe_str(value: Any, limit: int, conversions: Conversions | None) -> str:
    """A str that UTF-8 can encode, at most ``limit`` characters long."""
    if type(value) is not str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value).decode("utf-8", "backslashreplace")
            _count(conversions, "bytes")
        elif isinstance(value, str):
            value = str.__str__(value)
        else:
            value = _describe(value)
            _count(conversions, "not_text")
    if len(value) > limit:
        value = value[:limit]
        _count(conversions, "truncated")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: keep the text, make them visible as \udXXX escapes.
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        _count(conversions, "surrogates")
    text: str = value
    return text


def _describe(value: Any) -> str:
    """JSON text for containers, repr() for other objects; never raises."""
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, default=_repr, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError):
            pass  # recursive or hostile containers: repr() marks the cycle as {...}
    return _repr(value)


def _repr(value: Any) -> str:
    try:
        return str(repr(value))
    except Exception:  # a hostile __repr__ must not lose the event
        return f"<unrepresentable {type(value).__name__}>"


def _typed_value(value: Any, conversions: Conversions | None) -> int | float | str:
    kind = type(value)
    if kind is int:
        return int(value)
    if kind is str:
        return safe_str(value, MAX_VALUE_CHARS, conversions)
    if kind is float:
        if math.isfinite(value):
            return float(value)
        _count(conversions, "non_finite")
        return str(value)
    if kind is bool:
        return int(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _typed_value(float(value), conversions)
    return safe_str(value, MAX_VALUE_CHARS, conversions)


def to_wire(event: Event, conversions: Conversions | None) -> dict[str, Any]:
    """The event as a dict of wire names (see :mod:`eventlog.schema`), empty fields omitted."""
    if event.id is None:
        event.id = make_id(event.time_ns)
    out: dict[str, Any] = {
        "id": event.id,
        "tstamp": event.time_ns // 1_000_000,
        "action": safe_str(event.action, MAX_VALUE_CHARS, conversions),
    }
    if event.target is not None:
        out["target"] = safe_str(event.target, MAX_VALUE_CHARS, conversions)
    if event.tg_type is not None:
        out["tgType"] = safe_str(event.tg_type, MAX_VALUE_CHARS, conversions)
    if event.level is not None:
        out["level"] = event.level
        out["levelName"] = LEVEL_NAMES.get(event.level) or f"Level {event.level}"
    if event.message is not None:
        out["message"] = safe_str(event.message, MAX_MESSAGE_CHARS, conversions)
    if event.tags:
        out["tags"] = [safe_str(t, MAX_VALUE_CHARS, conversions) for t in event.tags]
    fields = event.fields
    metrics = event.metrics
    if metrics:
        clean_metrics: dict[str, int | float] = {}
        for key, value in metrics.items():
            key = safe_str(key, MAX_VALUE_CHARS, conversions)
            kind = type(value)
            if (kind is int or kind is float) and (kind is int or math.isfinite(value)):
                clean_metrics[key] = value
                continue
            if kind is bool:
                clean_metrics[key] = int(value)
                continue
            # Not a finite number: it cannot be a metric; keep it as a field instead.
            _count(conversions, "metric_not_number")
            fields = dict(fields) if fields else {}
            fields.setdefault(key, value)
        if clean_metrics:
            out["metrics"] = clean_metrics
    if fields:
        out["fields"] = {
            safe_str(k, MAX_VALUE_CHARS, conversions): _typed_value(v, conversions)
            for k, v in fields.items()
        }
    user, session, request_id = event.user, event.session, event.request_id
    if user is not None:
        out["user"] = safe_str(user, MAX_VALUE_CHARS, conversions)
    if session is not None:
        out["session"] = safe_str(session, MAX_VALUE_CHARS, conversions)
    if request_id is not None:
        out["reqId"] = safe_str(request_id, MAX_VALUE_CHARS, conversions)
    thread = event.thread
    if type(thread) is int:
        thread = event.thread = thread_name(thread)
    for wire, value in (
        ("site", event.site),
        ("cluster", event.cluster),
        ("host", event.host),
        ("pid", event.pid),
        ("thread", thread),
        ("codeFile", event.code_file),
        ("codeLine", event.code_line),
        ("codeFunc", event.code_func),
        ("exc_info", event.exc_info),
    ):
        if value is not None:
            out[wire] = value
    return out
