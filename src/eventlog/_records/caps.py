"""The per-event caps, applied in the caller's thread before an item is queued; its size.

An item is held in memory from the call until the worker sends it, so the
caps (:data:`~eventlog._records.text.MAX_MESSAGE_CHARS`, ``MAX_VALUE_CHARS``,
``MAX_ITEMS``, ``MAX_EVENT_BYTES``) apply before it is queued, not only when
the worker makes its wire dict: one ``Event(tags=[...] * 20000)`` or a 1 MiB
message costs the queue at most about ``MAX_EVENT_BYTES``.

The caller measures only what can be large: the message's length (an argument of
a ``(template, args)`` message counts :data:`ARG_BYTES`), and one
length per tag, field and metric key and value that is text (no walk into
values).  Only an item past :data:`SMALL_BYTES` is looked at further: a log
record becomes an Event (the record, which holds the long message, is not
kept), and the Event is cut (:func:`cap_event`); each cut is counted once,
through ``count(reason)``, as ``eventlog_values_converted{reason}``: ``truncated`` (a message, tag, key or
value cut to its limit: the worker finds it within the limit and counts
nothing more), ``tags_cut``, ``fields_cut``, ``metrics_cut`` (the last ones
left out: beyond ``MAX_ITEMS``, or beyond ``MAX_EVENT_BYTES`` for the event).

The size (:func:`event_bytes`, :func:`record_bytes`) is what the queue's byte
bound (``queue_max_bytes``) counts: an estimate, the text plus
:data:`ITEM_BYTES` for the object around it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any

from eventlog._records.text import (
    MAX_EVENT_BYTES,
    MAX_ITEMS,
    MAX_MESSAGE_CHARS,
    MAX_VALUE_CHARS,
    Placeholder,
    converted,
)

if TYPE_CHECKING:
    from eventlog._records.event import Event

#: What a queued item costs besides its text (the LogRecord or Event, its dicts, the tuple).
ITEM_BYTES = 1024
#: An item at most this size has nothing to cut: no string in it is past its limit.
SMALL_BYTES = ITEM_BYTES + MAX_VALUE_CHARS

Count = Callable[[str], None]


#: What one argument of a ``(template, args)`` message is estimated at (not measured: a
#: getsizeof per argument costs ~2k instructions a call, twice the hot path's budget).
ARG_BYTES = 64


def record_bytes(message: Any) -> int:
    """Queued bytes of a log record whose ``message`` is a str or ``(template, args)``.

    The handler inlines it (a call costs ~1k instructions).
    """
    if type(message) is tuple:
        return ITEM_BYTES + len(message[0]) + ARG_BYTES * len(message[1])
    return ITEM_BYTES + len(message)


def event_bytes(event: Event, count: Count | None = None) -> int:
    """Queued bytes of an Event: the length of its text, plus :data:`ITEM_BYTES`.

    With ``count``, an Event past :data:`SMALL_BYTES` is cut first (:func:`cap_event`).
    """
    size = ITEM_BYTES
    try:
        if event.message is not None:
            size += _size(event.message)
        if event.exc_info is not None:
            size += _size(event.exc_info)
        tags, fields, metrics = event.tags, event.fields, event.metrics
        if tags:
            size += text_bytes(tags)
        if fields:
            size += text_bytes(fields)
        if metrics:
            size += text_bytes(metrics)
    except Exception:  # an attribute set to something odd after construction: the worker sees it
        pass
    if count is not None and size > SMALL_BYTES:
        return cap_event(event, count)
    return size


def cap_event(event: Event, count: Count) -> int:
    """Cut ``event`` to the caps, in place, counting each cut; return its size then."""
    message = event.message
    if isinstance(message, str) and len(message) > MAX_MESSAGE_CHARS:
        event.message = _cut(message, MAX_MESSAGE_CHARS)
        count("truncated")
    exc_info = event.exc_info
    if isinstance(exc_info, str) and len(exc_info) > MAX_MESSAGE_CHARS:
        event.exc_info = _cut(exc_info, MAX_MESSAGE_CHARS)
        count("truncated")
    # What the message and exc_info leave of the event's bytes, for tags, fields and metrics.
    budget = MAX_EVENT_BYTES - ITEM_BYTES
    for text in (event.message, event.exc_info):
        if text is not None:
            budget -= _size(text)
    tags = event.tags
    if tags:
        kept: list[Any] = []
        for tag in islice(tags, MAX_ITEMS):
            tag = _capped(tag, count)
            cost = _cost(tag)
            if cost > budget:
                break
            budget -= cost
            kept.append(tag)
        if len(kept) < len(tags):
            count("tags_cut")
        event.tags = kept
    for name in ("fields", "metrics"):
        values = getattr(event, name)
        if values:
            capped: dict[Any, Any] = {}
            for key, value in islice(values.items(), MAX_ITEMS):
                key, value = _capped(key, count), _capped(value, count)
                cost = _cost(key) + _cost(value)
                if cost > budget:
                    break
                budget -= cost
                capped[key] = value
            if len(capped) < len(values):
                count(f"{name}_cut")
            setattr(event, name, capped)
    return event_bytes(event)


def _capped(value: Any, count: Count) -> Any:
    """A str value (or key) past :data:`MAX_VALUE_CHARS` cut and counted; anything else as it is."""
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        count("truncated")
        return _cut(value, MAX_VALUE_CHARS)
    return value


def _cut(text: str, limit: int) -> str:
    """``text[:limit]``; a placeholder keeps its reason (the worker counts it as before)."""
    if isinstance(text, Placeholder):
        return converted(str.__str__(text)[:limit], text.reason)
    return text[:limit]


def item_bytes(item: Any) -> int:
    """Queued bytes of a queue item (an Event, or a ``(record, message, context)`` tuple)."""
    try:
        return record_bytes(item[1]) if type(item) is tuple else event_bytes(item)
    except Exception:
        return ITEM_BYTES


#: The values that can be long; any other value an event holds counts as :data:`VALUE_BYTES`.
_TEXT = (str, bytes)
VALUE_BYTES = 16


def _size(value: Any) -> int:
    """A value's length if it is text or bytes, else :data:`VALUE_BYTES`."""
    return len(value) if isinstance(value, _TEXT) else VALUE_BYTES


def _cost(value: Any) -> int:
    """What one item (or key) adds to :func:`event_bytes`: as :func:`text_bytes` counts it."""
    return VALUE_BYTES + len(value) if isinstance(value, _TEXT) else VALUE_BYTES


def _py_text_bytes(values: Any) -> int:
    """:data:`VALUE_BYTES` an item (and a dict's key), plus the length of those that are text."""
    total = sum([VALUE_BYTES + len(v) if isinstance(v, _TEXT) else VALUE_BYTES for v in values])
    if type(values) is dict:
        total += _py_text_bytes(values.values())
    return total


def _compiled(module: str, name: str) -> Any:
    """``name`` from eventlog-speedups' compiled ``module`` (``_wires``, ``_caps``), or None
    where it is absent (or has no such name) or EVENTLOG_SPEEDUPS=0."""
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        return None
    try:
        return getattr(importlib.import_module(f"eventlog_speedups.{module}"), name, None)
    except ImportError:
        return None


def _load_text_bytes() -> Callable[[Any], int]:
    """eventlog-speedups' text_bytes (the same number in C), unless absent or EVENTLOG_SPEEDUPS=0.

    Not ``sys.getsizeof`` (~2k instructions a call), nor a Python loop (~4k for an Event's
    two fields and one metric, more than making the Event): a few instructions an item.
    """
    compiled: Callable[[Any], int] = _compiled("_wires", "text_bytes") or _py_text_bytes
    return compiled


text_bytes = _load_text_bytes()


def _load_event_size() -> Callable[[Event], int]:
    """eventlog-speedups' event_bytes (:func:`event_bytes` without ``count``, the same number
    in one C call), unless absent or EVENTLOG_SPEEDUPS=0.

    The Python function costs ~1.5k instructions an Event with fields (a frame, five
    attribute reads, two text_bytes calls); the compiled one a few hundred.
    """
    compiled, setup = _compiled("_caps", "event_bytes"), _compiled("_caps", "setup")
    if compiled is None or setup is None:
        return event_bytes
    from eventlog._records.event import Event  # a lower module; here only for its slots

    setup(ITEM_BYTES, VALUE_BYTES, Event)
    measure: Callable[[Event], int] = compiled
    return measure


#: An Event's queued bytes, as :func:`event_bytes` says (compiled where eventlog-speedups is).
event_size = _load_event_size()


def _load_retrack() -> Callable[[list[Any]], None] | None:
    """eventlog-speedups' retrack, unless absent or EVENTLOG_SPEEDUPS=0 (then nothing queued is
    ever untracked, and there is nothing to do).

    The compiled handle() and log_event() hide what they queue from the garbage collector
    (its young-generation passes walked every queued record's dict: ~4k instructions an
    event in a flood); whatever takes items out of the queue shows them to it again first,
    so a reference cycle made while they waited is collected as ever.
    """
    show: Callable[[list[Any]], None] | None = _compiled("_caps", "retrack")
    return show


#: Shows queued items to the garbage collector again (None: nothing is ever hidden from it).
retrack = _load_retrack()
