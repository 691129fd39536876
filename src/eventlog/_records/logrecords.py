"""``logging.LogRecord`` -> Event, following the seed's mapping table.

For a plain record (its attributes of the types logging gives them, extra=
values that are str, int, float, bool, bytes or None, no exception) the
handler captures only the rendered message and the request context in the
caller's thread, and this conversion runs in the worker.  Any other record
is converted here in the caller (:func:`record_to_event`), so the worker never
runs application code and never reads a container the caller may still
change.  Either way each attribute of the wrong type, missing, or out of range
is converted and counted, never a reason to lose the event.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from eventlog._records.context import EMPTY, RequestContext
from eventlog._records.event import Event
from eventlog._records.schema import LEVEL_NAMES, WIRE_NAMES, W
from eventlog._records.text import (
    INT_MAX,
    INT_MIN,
    KEPT,
    MAX_MESSAGE_CHARS,
    MAX_VALUE_CHARS,
    TIME_MAX_S,
    TIME_MIN_S,
    Conversions,
    Placeholder,
    UnrenderableException,
    _safe_text,
    checked_int,
    converted,
    encodable,
    frozen,
    safe_str,
    type_name,
    without_surrogates,
)
from eventlog._records.wire import _ids, put_extras, put_trace, text_slot, to_wire, with_context_fields

logging.addLevelName(5, "TRACE")

# Attributes every LogRecord has; anything else on a record came from extra=.
_STANDARD = frozenset(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "stack_info",
}

#: The attributes LogRecord.__init__ sets, in order: a record's __dict__ starts with them.
_INIT_KEYS = list(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__)
_INIT_LEN = len(_INIT_KEYS)
_LAST_INIT_KEY = _INIT_KEYS[-1]
#: extra= keys with a meaning of their own (see _extras).
_SPECIAL = frozenset({"tags", "metrics", "fields"})


def extra_keys(attributes: dict[str, Any]) -> list[str]:
    """The keys of a record's ``extra=`` (and of attributes added later), in the order given."""
    # Cheaper than a set difference over all ~20 keys: LogRecord.__init__ sets its attributes
    # first, so what follows them was added later; a record whose start differs (an attribute
    # deleted, a LogRecord subclass) takes the general way.
    if len(attributes) == _INIT_LEN and next(reversed(attributes)) is _LAST_INIT_KEY:
        return []
    keys = list(attributes)
    if keys[:_INIT_LEN] == _INIT_KEYS:
        return [key for key in keys[_INIT_LEN:] if key not in _STANDARD]
    return [key for key in keys if key not in _STANDARD]


#: "log.<level>" for the usual level names, made once rather than per record.
_ACTIONS = {
    name: "log." + name.lower() for name in ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
}

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


def exception_json(exc_info: ExcInfo) -> str:
    """JSON text with the exception's type, value and stack (the seed's exc_info).

    Never raises: a tuple that is no exception (``(ValueError, "text", None)``)
    gives what can be read of it and an empty stack, as an
    :class:`~eventlog._records.text.UnrenderableException` that the worker counts.
    """
    try:
        exc_type, exc_value, tb = exc_info
        name = "None" if exc_type is None else type_name(exc_type)
        try:
            value = str(exc_value)
        except Exception:  # a hostile __str__ must not lose the event
            value = f"<unprintable {name}>"
        stack = "".join(traceback.format_exception(exc_type, exc_value, tb)) if exc_type else ""
        return _exception_text(name, value, stack)
    except Exception:
        return _unrenderable_exception(exc_info)


def _unrenderable_exception(exc_info: Any) -> UnrenderableException:
    """What can be kept of an exc_info that is no exception tuple: its type and value, no stack."""
    items = tuple(exc_info) if isinstance(exc_info, tuple) else (exc_info,)
    kind = items[0] if items else None
    name = "None" if kind is None else _described_type(kind)
    value = None
    if len(items) > 1 and items[1] is not None:
        value = _arg_text(items[1], str)
        if isinstance(items[1], BaseException):
            try:
                value = str(items[1])
            except Exception:
                pass
    text = json.dumps(
        {
            "type": without_surrogates(name),
            "value": None if value is None else without_surrogates(value),
            "stack": "",
        },
        ensure_ascii=False,
    )
    return UnrenderableException(text)


def _exception_text(name: str | None, value: str | None, stack: str) -> str:
    """The exc_info JSON text; lone surrogates in its strings escaped (counted as ``surrogates``).

    Escaped before the JSON is made: escaping the JSON text afterwards would
    write ``\\udc80``, which a JSON reader turns back into the surrogate.
    """
    parts = (name, value, stack)
    clean = tuple(part if part is None else without_surrogates(part) for part in parts)
    text = json.dumps({"type": clean[0], "value": clean[1], "stack": clean[2]}, ensure_ascii=False)
    if any(a is not b for a, b in zip(parts, clean)):
        return converted(text, "surrogates")
    return text


def _described_type(kind: Any) -> str:
    """The name of a class, or ``<TypeName>`` for something that is none."""
    try:
        return type_name(kind) if isinstance(kind, type) else f"<{type_name(type(kind))}>"
    except Exception:
        return "<unnamed>"


def record_exception(record: logging.LogRecord) -> str | None:
    """The record's exception as the ``exc_info`` wire field (its text if only that is left)."""
    exc_info: Any = record.exc_info
    kind = type(exc_info)
    # By type, not truth: an object's __bool__ is application code (this may run in the worker).
    given = bool(exc_info) if kind is tuple or kind is bool or kind is int else exc_info is not None
    if given:
        if kind is not tuple or len(exc_info) != 3:
            return _unrenderable_exception(exc_info)
        if exc_info[0] is not None:
            return exception_json(exc_info)
    exc_text = record.exc_text
    if exc_text if type(exc_text) is str else exc_text is not None:
        if type(exc_text) is not str:  # logging's cache of the formatted stack, replaced by something else
            return UnrenderableException(
                json.dumps({"type": None, "value": None, "stack": without_surrogates(_safe_text(exc_text))})
            )
        return _exception_text(None, None, exc_text)
    return None


#: Argument types whose repr() cannot run application code: kept as values in a placeholder.
_SAFE_REPR = frozenset({str, int, float, bool, type(None)})


def _arg_text(value: Any, show: Callable[[Any], str] = repr) -> str:
    """An argument as a placeholder keeps it: its repr() when that is safe, else ``<TypeName>``."""
    if type(value) in _SAFE_REPR:
        try:
            return show(value)
        except Exception:  # an int past sys.get_int_max_str_digits()
            pass
    return _described_type(value)


def unrenderable(msg: Any, args: Any, error: BaseException) -> Placeholder:
    """The message sent in place of one that could not be rendered (``msg % args`` raised).

    The exact form: ``<template> <unrenderable: <ErrorType>; args: <args>>``, where
    the template is ``msg`` when it is a str (else ``<TypeName>``), and the args
    (left out when there are none) are a tuple or dict whose str, int, float,
    bool and None values keep their repr() and every other value is shown as
    ``<TypeName>``: ``v=%s <unrenderable: RuntimeError; args: ('a', <app.Thing>)>``.
    No application code runs to make it.  Counted as
    ``eventlog_values_converted{reason="unrenderable"}``.
    """
    try:
        template = str.__str__(msg) if isinstance(msg, str) else _described_type(msg)
        text = f"{template} <unrenderable: {_described_type(type(error))}"
        if args:
            if type(args) is tuple:
                shown = ", ".join(_arg_text(arg) for arg in args)
                text += f"; args: ({shown}{',' if len(args) == 1 else ''})"
            elif type(args) is dict:
                shown = ", ".join(f"{_arg_text(k)}: {_arg_text(v)}" for k, v in args.items())
                text += f"; args: {{{shown}}}"
            else:
                text += f"; args: {_arg_text(args)}"
        return Placeholder(text + ">")
    except Exception:  # even the names would not come: the event still goes, counted
        return Placeholder("<unrenderable message>")


def render(msg: str, args: Any) -> str:
    """``msg % args`` as logging renders it; if that raises, the :func:`unrenderable` placeholder."""
    try:
        text: str = msg % args
        return text
    except Exception as exc:
        return unrenderable(msg, args, exc)


def record_time_ns(created: Any, msecs: Any) -> int | None:
    """The time of a record in ns, whose milliseconds are logging's own; None if unusable.

    ``int(created * 1e9)`` rounds at the scale of 1e18 and is one millisecond
    ahead of logging for about 7 in 100,000 records (``.1389999``): logging's
    ``msecs`` is the reference (``int((created - int(created)) * 1000)`` up to
    3.12; from exact nanoseconds on 3.13, where it may be one off the float's
    own), so the wire's ``tstamp`` is what a logging formatter shows.  A
    ``created`` that is no finite number within int64 nanoseconds gives None.
    """
    kind = type(created)
    if kind is not float:
        if kind is not int or not TIME_MIN_S < created < TIME_MAX_S:  # float() of 10**400 raises
            return None
        created = float(created)
    if not TIME_MIN_S < created < TIME_MAX_S:  # NaN too
        return None
    seconds = int(created)
    if created < seconds:  # before 1970: floor, not truncation
        seconds -= 1
    fraction = created - seconds  # exact: both share the float's exponent
    millis = int(fraction * 1000)
    if type(msecs) is float and msecs != millis and 0.0 <= msecs < 1000.0:
        # logging's own msecs, where it is the neighbour of the float's (3.13's exact ns);
        # further off, created was replaced after the record was made: the float's.
        logged = int(msecs)
        if logged == millis - 1 or logged == millis + 1:
            millis = logged
        elif logged == 999 and millis == 0:  # created rounded up to the next second
            seconds -= 1
            millis = 999
    # The sub-millisecond part from the float, within logging's millisecond.
    return (seconds * 1000 + millis) * 1_000_000 + int(fraction * 1e9) % 1_000_000


_MISSING: Any = object()


def _text_attribute(value: Any) -> str | None:
    """A str slot from a record attribute: str or None as it is, else text, counted."""
    if type(value) is str or value is None:
        return value  # type: ignore[no-any-return]
    if value is _MISSING:
        return converted("<missing>", "missing_attribute")
    if isinstance(value, Placeholder):
        return value
    return converted(_safe_text(value), "not_text")


def _int_attribute(value: Any, wire_name: str, originals: dict[str, Any]) -> int | None:
    """An int slot from a record attribute; what does not fit is kept in ``originals``."""
    if type(value) is int:
        if INT_MIN <= value <= INT_MAX:
            return value  # type: ignore[no-any-return]
        number, original = checked_int(value)
        originals[f"{wire_name}_original"] = original
        return number
    if value is None:
        return None
    if value is _MISSING:
        originals[f"{wire_name}_original"] = converted("<missing>", "missing_attribute")
        return None
    originals[f"{wire_name}_original"] = converted(_safe_text(value), "not_int")
    if type(value) is bool:
        return int(value)
    if type(value) is float and math.isfinite(value) and INT_MIN <= value <= INT_MAX:
        return int(value)
    return None


def record_to_event(record: logging.LogRecord, message: str | tuple[str, Any], ctx: RequestContext) -> Event:
    """Build the Event for a log record (the mapping table is in docs/guide.md).

    ``message`` is the rendered message or ``(msg, args)`` still to render.
    Never raises for a record whose attributes were changed, deleted or given
    odd types: each is converted (the original of an int slot or the time kept
    as text in ``fields["<wire name>_original"]``) and counted.
    """
    try:
        return _record_to_event(record, message, ctx)
    except Exception as exc:  # a bug here must not lose the event: what is left of it, counted
        event = Event.__new__(Event)
        event.action, event.target, event.tg_type = "log.unknown", None, "logger"
        event.message = unrenderable(message if type(message) is str else None, None, exc)
        event.level = event.tags = event.fields = event.metrics = None
        event.time_ns = time.time_ns()
        event.context = ctx
        event.user = event.session = event.request_id = None
        event.code_file = event.code_line = event.code_func = event.thread = None
        event.exc_info = event.id = event.site = event.cluster = event.host = event.pid = None
        return event


def _record_to_event(record: logging.LogRecord, message: str | tuple[str, Any], ctx: RequestContext) -> Event:
    if type(message) is tuple:
        message = render(*message)
    try:
        attributes: dict[str, Any] = record.__dict__
    except Exception:
        attributes = {}
    get = attributes.get
    originals: dict[str, Any] = {}
    event = Event.__new__(Event)
    level = _int_attribute(get("levelno", _MISSING), "level", originals)
    levelname = get("levelname")
    action = _ACTIONS.get(levelname) if type(levelname) is str else None
    if action is None:
        if type(levelname) is str and levelname:
            action = "log." + levelname.lower()
        else:
            action = f"log.level{level}" if level is not None else "log.unknown"
    event.action = action
    event.target = _text_attribute(get("name", _MISSING))
    event.tg_type = "logger"
    event.message = message  # type: ignore[assignment]
    event.level = level
    if level not in LEVEL_NAMES and type(levelname) is str and levelname:
        event.level_name = safe_str(levelname, MAX_VALUE_CHARS, None)
    created = get("created", _MISSING)
    time_ns = record_time_ns(created, get("msecs"))
    if time_ns is None:
        # No usable time: the time of this conversion, and the original kept as text.
        time_ns = time.time_ns()
        if created is _MISSING:
            originals["tstamp_original"] = converted("<missing>", "missing_attribute")
        else:
            number = type(created) is int or (type(created) is float and math.isfinite(created))
            reason = "time_out_of_range" if number else "time_not_number"
            originals["tstamp_original"] = converted(_safe_text(created), reason)
    event.time_ns = time_ns
    event.context = ctx
    event.user = event.session = event.request_id = None
    event.code_file = _text_attribute(get("pathname"))
    event.code_line = _int_attribute(get("lineno"), "codeLine", originals)
    event.code_func = _text_attribute(get("funcName"))
    event.thread = _text_attribute(get("threadName"))
    event.id = None
    event.site = event.cluster = event.host = None
    event.pid = None
    try:
        event.exc_info = record_exception(record)
    except Exception:  # exc_info or exc_text deleted, or of a type no one expects
        event.exc_info = _unrenderable_exception(get("exc_info"))
    extras = extra_keys(attributes)
    if extras:
        event.tags, event.fields, event.metrics = _extras(attributes, extras)
    else:
        event.tags = event.fields = event.metrics = None
    if originals:
        event.fields = {**(event.fields or {}), **originals}
    return event


def tags_of(value: Any) -> list[Any]:
    """``extra={"tags": ...}``: a str, or a list, tuple or set of them; anything else is one tag."""
    if isinstance(value, str):
        return [value]
    if type(value) in (list, tuple, set, frozenset):
        return [tag if type(tag) is str else frozen(tag) for tag in value]
    if value is None:
        return []
    return [frozen(value)]  # True, 5, an object: its text, counted (not_text) by the worker


def _extras(
    attributes: dict[str, Any], extra_keys: list[str]
) -> tuple[list[str] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """Tags, fields and metrics from a record's ``extra=`` keys (the seed's mapping).

    Values the worker must not touch are converted here (:func:`eventlog._records.text.frozen`):
    this runs in the caller for every record that has them.
    """
    tags: list[str] | None = None
    fields: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    for key in extra_keys:
        value = attributes[key]
        kind = type(value)
        if key == "tags":  # whatever its type (True, 7): tags
            tags = tags_of(value)
        elif kind is int or kind is float:  # the common case, without the ABC check below
            metrics = metrics or {}
            metrics.setdefault(key, value)
        elif kind is str:
            fields = fields or {}
            fields.setdefault(key, value)
        elif key == "metrics" and isinstance(value, dict):
            metrics = {**(metrics or {}), **frozen_dict(value)}
        elif key == "fields" and isinstance(value, dict):
            fields = {**(fields or {}), **frozen_dict(value)}
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            # The seed: extra= keys and values go to the metrics map; numbers are metrics ...
            metrics = metrics or {}
            metrics.setdefault(key, frozen(value))
        else:
            # ... and anything else is kept as a typed field rather than lost.
            fields = fields or {}
            fields.setdefault(key, frozen(value))
    return tags, fields, metrics


def frozen_dict(values: dict[Any, Any]) -> dict[Any, Any]:
    """A copy of an extra= dict, its values and keys as the worker may read them later."""
    return {
        key if type(key) in KEPT else frozen(key): value if type(value) in KEPT else frozen(value)
        for key, value in values.items()
    }


def plain_record(attributes: dict[str, Any]) -> bool:
    """True when the worker may convert this record later: no attribute deleted or moved, every
    extra= value an immutable plain one (str, int, float, bool, bytes, None).

    The handler asks only when the record has more attributes than logging gives it.
    """
    # From the end, where extra= put its keys: no list of the ~20 keys is made (that alone
    # cost more than the rest of the check).  The key before the extras must be the last one
    # LogRecord.__init__ sets (interned, as attribute names are); if not, an attribute was
    # deleted or set again (it moved to the end).
    extras = len(attributes) - _INIT_LEN
    if extras <= 0:
        return extras == 0
    # A loop measured ~2.4k instructions for one extra key; list(attributes) and a slice
    # compare ~5.1k; issuperset(map(type, islice(reversed(...)))) ~6.7k (callgrind, 3.11).
    kept = KEPT
    for key in reversed(attributes):
        if not extras:
            return key is _LAST_INIT_KEY
        extras -= 1
        if type(attributes[key]) not in kept and key not in _STANDARD:
            return False
    return False


def _put_context_fields(
    wire: dict[str, Any], context_fields: dict[str, Any], conversions: Conversions
) -> None:
    """The context's fields into a wire dict whose own fields are clean already (those win).

    The same result as merging before cleaning (:func:`with_context_fields`, the
    careful path): the fast path's own keys are plain text, which cleaning keeps.
    """
    own = wire.get(W.fields)
    missing = {k: v for k, v in context_fields.items() if own is None or k not in own}
    if missing:
        cleaned: dict[str, Any] = {}
        put_extras(cleaned, None, missing, None, conversions)
        if own is None:
            wire[W.fields] = cleaned[W.fields]
        else:
            own.update(cleaned[W.fields])


def _load_speedups() -> Any:
    """eventlog-speedups' ``_wires`` module, set up, unless absent or EVENTLOG_SPEEDUPS=0."""
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        return None
    try:
        import eventlog_speedups._wires as _wires  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    _wires.setup(
        logging.LogRecord,
        _ACTIONS,
        LEVEL_NAMES,
        _INIT_KEYS,
        _STANDARD,
        _SPECIAL,
        EMPTY,
        MAX_MESSAGE_CHARS,
        MAX_VALUE_CHARS,
        WIRE_NAMES,
        Event,
    )
    return _wires


def _load_accelerator() -> Callable[..., Any] | None:
    """The compiled fast path to wire dicts (eventlog-speedups), unless absent or EVENTLOG_SPEEDUPS=0."""
    speedups = _load_speedups()
    return None if speedups is None else speedups.wires  # type: ignore[no-any-return]


def _load_json_lines() -> JsonLines | None:
    """The compiled fast path to JSON lines (eventlog-speedups), unless absent or EVENTLOG_SPEEDUPS=0."""
    speedups = _load_speedups()
    return None if speedups is None else speedups.lines  # type: ignore[no-any-return]


#: ``lines(items, static, with_context, node, next_seq, stamp) -> (body, ids, actions, times,
#: holes, sizes)``: see eventlog_speedups/_wires.c.
JsonLines = Callable[..., tuple[bytes, list[Any], list[Any], list[Any], list[tuple[int, int]], list[Any]]]

#: eventlog-speedups' ``wires`` when installed: the plain records and Events in C, the rest here.
accelerator = _load_accelerator()
#: eventlog-speedups' ``lines``: the JSON lines of plain records and Events, with no wire dict.
json_lines = _load_json_lines()


def wires_of(
    items: list[Any],
    static: dict[str, Any],
    with_context: bool,
    conversions: Conversions,
    careful: Callable[[Any], dict[str, Any] | None],
) -> tuple[list[dict[str, Any]], list[Any]]:
    """The wire dicts of queued items in one pass each: no Event, static fields merged once.

    An item is ``(record, message, context)`` from the handler or an Event.
    For a log record the result equals ``to_wire`` of ``record_to_event``
    after the built-in ``host``, ``site`` (their values are ``static``) and
    ``context`` (when ``with_context``) enrichers; a test holds the two paths
    to the same bytes.  Three ways, cheapest first: eventlog-speedups' ``wires``
    (the plain records and Events, in C), :func:`plain_record_wire` and ``to_wire``
    with the static fields merged (here), and ``careful`` for what neither takes
    (unusual levels, names or threads, Events that set static fields), which
    returns the wire dict or None for an event set aside.  Returns the wire
    dicts and the items they came from.
    """
    node, next_seq = _ids.node_and_counter()
    prebuilt: list[dict[str, Any] | None] | None = None
    if accelerator is not None:
        prebuilt, holes = accelerator(items, static, with_context, node, next_seq)
        if not holes:
            return prebuilt, items  # type: ignore[return-value]
    else:
        return _python_wires(items, static, with_context, conversions, careful, node, next_seq)
    wires: list[dict[str, Any]] = []
    sources: list[Any] = []
    for index, item in enumerate(items):
        wire = None if prebuilt is None else prebuilt[index]
        if wire is None:
            try:
                if type(item) is tuple:
                    wire = plain_record_wire(item, static, with_context, conversions, node, next_seq)
                elif item.site is None and item.cluster is None and item.host is None and item.pid is None:
                    wire = to_wire(item, conversions, static, item.context if with_context else None)
            except Exception:
                wire = None  # the careful path decides: converted, or set aside with its reason
            if wire is None:
                wire = careful(item)
                if wire is None:
                    continue  # set aside (counted by careful)
        wires.append(wire)
        sources.append(item)
    return wires, sources


def plain_record_wire(
    item: tuple[logging.LogRecord, Any, RequestContext],
    static: dict[str, Any],
    with_context: bool,
    conversions: Conversions,
    node: str,
    next_seq: Callable[[], int],
) -> dict[str, Any] | None:
    """The wire dict of a queued record whose attributes are of the types logging gives
    them, or None for any other (the careful path takes it).  See :func:`wires_of`."""
    record, message, ctx = item
    # Type checks before any hashing or truth test: an attribute set to an object
    # of the application's must not run its __hash__, __eq__ or __bool__ here.
    levelname = record.levelname
    action = _ACTIONS.get(levelname) if type(levelname) is str else None
    level, name, thread = record.levelno, record.name, record.threadName
    path, line, func = record.pathname, record.lineno, record.funcName
    time_ns = record_time_ns(record.created, record.msecs)
    if not (
        action is not None
        and type(level) is int
        and level in LEVEL_NAMES
        and type(name) is str
        and (thread is None or type(thread) is str)
        and message is not None
        and time_ns is not None
        and (path is None or type(path) is str)
        and (func is None or type(func) is str)
        and (line is None or (type(line) is int and INT_MIN <= line <= INT_MAX))
    ):
        return None
    # This runs once per record in the worker (pure Python): the rendering and the checks
    # of clean_text are written out, as a call costs more than they do (~2.5k instructions
    # for the three, callgrind, 3.11).
    if type(message) is tuple:
        msg, args = message
        try:
            message = msg % args
        except Exception:
            message = render(msg, args)
    if not (type(message) is str and message.isascii() and len(message) <= MAX_MESSAGE_CHARS):
        message = safe_str(message, MAX_MESSAGE_CHARS, conversions)
    if not (name.isascii() and len(name) <= MAX_VALUE_CHARS):
        name = safe_str(name, MAX_VALUE_CHARS, conversions)
    millis = time_ns // 1_000_000
    wire: dict[str, Any] = {
        # make_id, written out
        W.id: f"{millis if millis > 0 else 0:012x}{node}{next_seq() & 0xFFFFFFFF:08x}",
        W.tstamp: millis,
        W.action: action,
        W.target: name,
        W.tg_type: "logger",
        W.level: level,
        W.level_name: LEVEL_NAMES[level],
        W.message: message,
    }
    # The context's fields with the context enricher only; its trace ids go whatever the enrichers.
    ctx_fields = ctx.fields if with_context and ctx is not EMPTY else None
    attributes = record.__dict__
    extras = extra_keys(attributes)
    if extras:
        plain = _plain_extras(attributes, extras)
        if plain is not None:
            metrics, fields = plain
            if metrics:
                wire[W.metrics] = metrics
            if fields:
                wire[W.fields] = fields
        else:  # tags=, metrics=, fields=, other types: the careful way
            tags, fields, metrics = _extras(attributes, extras)
            if ctx_fields:
                fields = with_context_fields(fields, ctx_fields)
                ctx_fields = None
            put_extras(wire, tags, fields, metrics, conversions)
    if ctx_fields:
        _put_context_fields(wire, ctx_fields, conversions)
    if with_context and ctx is not EMPTY:
        if ctx.user is not None:
            wire[W.user] = safe_str(ctx.user, MAX_VALUE_CHARS, conversions)
        if ctx.session is not None:
            wire[W.session] = safe_str(ctx.session, MAX_VALUE_CHARS, conversions)
        if ctx.request_id is not None:
            wire[W.request_id] = safe_str(ctx.request_id, MAX_VALUE_CHARS, conversions)
    wire.update(static)
    # str or None, checked above: only lone surrogates are left to escape.
    if thread is not None:
        wire[W.thread] = thread if thread.isascii() else encodable(thread, conversions)
    if path is not None:
        wire[W.code_file] = path if path.isascii() else encodable(path, conversions)
    if line is not None:
        wire[W.code_line] = line
    if func is not None:
        wire[W.code_func] = func if func.isascii() else encodable(func, conversions)
    if record.exc_info is not None or record.exc_text is not None:  # rare
        exc_text = record_exception(record)
        if exc_text is not None:
            wire[W.exc_info] = text_slot(exc_text, MAX_MESSAGE_CHARS, conversions)
    if ctx is not EMPTY and ctx.trace_id is not None:
        put_trace(wire, ctx)
    return wire


def _plain_extras(
    attributes: dict[str, Any], extras: list[str]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None] | None:
    """(metrics, fields) of extra= keys that need no cleaning: plain keys, numbers within
    64 bits and short ASCII text; None when any needs more (the careful way)."""
    metrics: dict[str, Any] | None = None
    fields: dict[str, Any] | None = None
    for key in extras:
        if type(key) is not str or not (key.isascii() and len(key) <= MAX_VALUE_CHARS) or key in _SPECIAL:
            return None
        value = attributes[key]
        kind = type(value)
        if (kind is int and INT_MIN <= value <= INT_MAX) or (kind is float and math.isfinite(value)):
            if metrics is None:
                metrics = {}
            metrics[key] = value
        elif kind is str and value.isascii() and len(value) <= MAX_VALUE_CHARS:
            if fields is None:
                fields = {}
            fields[key] = value
        else:
            return None
    return metrics, fields


# Wire names as module globals: W.<name> is a class attribute, which 3.11 does not
# specialise (a generic getattr, ~200 instructions each, a dozen a record).
_K_ID, _K_TSTAMP, _K_ACTION, _K_TARGET = W.id, W.tstamp, W.action, W.target
_K_TG_TYPE, _K_LEVEL, _K_LEVEL_NAME, _K_MESSAGE = W.tg_type, W.level, W.level_name, W.message
_K_METRICS, _K_FIELDS, _K_THREAD = W.metrics, W.fields, W.thread
_K_CODE_FILE, _K_CODE_LINE, _K_CODE_FUNC = W.code_file, W.code_line, W.code_func


#: (static, a copy of its items, the wire templates made for it): see :func:`_templates`.
#: One tuple, swapped whole, as the workers of two pipelines may share it.
_last_templates: list[tuple[Any, Any, tuple[dict[str, Any], ...]]] = [(None, None, ())]


def _templates(static: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The wire dicts of a plain record with every key in wire order and the static fields
    set: with metrics and fields, fields only, metrics only, neither (a record's dict is a copy)."""
    cached = _last_templates[0]
    items = tuple(static.items())
    if cached[0] is static and cached[1] == items:
        return cached[2]
    made = []
    for no_metrics, no_fields in ((False, False), (True, False), (False, True), (True, True)):
        template: dict[str, Any] = dict.fromkeys(
            (_K_ID, _K_TSTAMP, _K_ACTION, _K_TARGET, _K_TG_TYPE, _K_LEVEL, _K_LEVEL_NAME, _K_MESSAGE)
        )
        template[_K_TG_TYPE] = "logger"
        if not no_metrics:
            template[_K_METRICS] = None
        if not no_fields:
            template[_K_FIELDS] = None
        template.update(static)
        template.update(dict.fromkeys((_K_THREAD, _K_CODE_FILE, _K_CODE_LINE, _K_CODE_FUNC)))
        made.append(template)
    _last_templates[0] = (static, items, tuple(made))
    return tuple(made)


def _python_wires(
    items: list[Any],
    static: dict[str, Any],
    with_context: bool,
    conversions: Conversions,
    careful: Callable[[Any], dict[str, Any] | None],
    node: str,
    next_seq: Callable[[], int],
) -> tuple[list[dict[str, Any]], list[Any]]:
    """:func:`wires_of` without eventlog-speedups: the commonest record written out here.

    A record of exactly ``logging.LogRecord`` with no request context, ASCII text,
    a standard level, no exception and plain short extras (what ``log.info("...%s",
    x, extra={"k": 1})`` gives) gets its wire dict in this loop, nothing looked up
    per record that is the same for the batch, no call per record; any other item
    takes :func:`plain_record_wire`, ``to_wire`` or ``careful`` as before, so the
    bytes are the same (tests/test_fast_path.py holds them to the reference).
    """
    wires: list[dict[str, Any]] = []
    sources: list[Any] = []
    add_wire, add_source = wires.append, sources.append
    actions, level_names, empty, record_type = _ACTIONS, LEVEL_NAMES, EMPTY, logging.LogRecord
    init_keys, init_len, last_key, standard, special = (
        _INIT_KEYS,
        _INIT_LEN,
        _LAST_INIT_KEY,
        _STANDARD,
        _SPECIAL,
    )
    max_value, max_message = MAX_VALUE_CHARS, MAX_MESSAGE_CHARS
    # make_id, written out: the millisecond and node part is made once per millisecond.
    id_stamp: float | None = None
    id_head = ""
    both, only_fields, only_metrics, bare = _templates(static)
    for item in items:
        wire: dict[str, Any] | None = None
        if type(item) is tuple:
            message: Any = None
            try:
                record, message, ctx = item
                attributes = record.__dict__ if type(record) is record_type and ctx is empty else None
                if attributes is not None:
                    levelname = attributes["levelname"]
                    level = attributes["levelno"]
                    name = attributes["name"]
                    thread = attributes["threadName"]
                    path = attributes["pathname"]
                    line = attributes["lineno"]
                    func = attributes["funcName"]
                    created = attributes["created"]
                    # Type checks first: no __hash__ or __eq__ of the application's runs here.
                    # An if, not an expression: 3.11 specialises a comparison followed by a jump.
                    inline = False
                    if (
                        type(levelname) is str
                        and type(level) is int
                        and type(name) is str
                        and type(thread) is str
                        and type(path) is str
                        and type(func) is str
                        and type(line) is int
                        and type(created) is float
                        and -9_223_372_036.0 < created < 9_223_372_036.0  # TIME_MIN_S, TIME_MAX_S
                        and attributes["exc_info"] is None
                        and attributes["exc_text"] is None
                        # Within one 30-bit digit, which 3.11 compares fastest; a larger line
                        # number (never seen) is plain_record_wire's.
                        and -1_073_741_824 < line < 1_073_741_824
                        and level in level_names
                        and name.isascii()
                        and thread.isascii()
                        and path.isascii()
                        and func.isascii()
                        and len(name) <= max_value
                    ):
                        action = actions.get(levelname)
                        if type(message) is tuple:
                            msg, args = message
                            message = msg % args  # if it raises, plain_record_wire's placeholder
                        if (
                            action is not None
                            and type(message) is str
                            and message.isascii()
                            and len(message) <= max_message
                        ):
                            inline = True
                    # extra_keys and _plain_extras written out: (metrics, fields), or not inline.
                    metrics: dict[str, Any] | None = None
                    fields: dict[str, Any] | None = None
                    if inline and len(attributes) != init_len:
                        keys = [*attributes]
                        inline = keys[:init_len] == init_keys
                        if inline:
                            for key in keys[init_len:]:
                                if key in standard:
                                    continue
                                if (
                                    type(key) is not str
                                    or not key.isascii()
                                    or len(key) > max_value
                                    or key in special
                                ):
                                    inline = False
                                    break
                                value = attributes[key]
                                kind = type(value)
                                if kind is int:
                                    if not (
                                        -1_073_741_824 < value < 1_073_741_824  # one digit: cheaper
                                        or -9_223_372_036_854_775_808 <= value <= 9_223_372_036_854_775_807
                                    ):
                                        inline = False
                                        break
                                    if metrics is None:
                                        metrics = {}
                                    metrics[key] = value
                                elif kind is float:
                                    if value - value != 0.0:  # not finite (inf - inf and NaN are NaN)
                                        inline = False
                                        break
                                    if metrics is None:
                                        metrics = {}
                                    metrics[key] = value
                                elif kind is str and value.isascii() and len(value) <= max_value:
                                    if fields is None:
                                        fields = {}
                                    fields[key] = value
                                else:
                                    inline = False
                                    break
                    elif inline:
                        inline = next(reversed(attributes)) is last_key
                    if inline:
                        # record_time_ns written out, to the millisecond (all the wire keeps), in
                        # floats (exact here: whole numbers below 2**53), which 3.11 specialises.
                        whole = created // 1.0  # floor, before 1970 too
                        millis = (created - whole) * 1000.0 // 1.0
                        msecs = attributes["msecs"]
                        if type(msecs) is float and msecs != millis:  # logging's own msecs: rare
                            tstamp = record_time_ns(created, msecs) // 1_000_000  # type: ignore[operator]
                            id_stamp = None
                            id_head = "%012x" % (tstamp if tstamp > 0 else 0) + node
                        else:
                            stamp = whole * 1000.0 + millis
                            tstamp = int(stamp)
                            if stamp != id_stamp:  # the records of a batch share their milliseconds
                                id_stamp = stamp
                                id_head = "%012x" % (tstamp if tstamp > 0 else 0) + node
                        # A copy of a dict with every key in place (static fields too), then the
                        # values: cheaper than a display, which grows its table as it goes.
                        if fields is None:
                            wire = (only_metrics if metrics is not None else bare).copy()
                        else:
                            wire = (both if metrics is not None else only_fields).copy()
                        # The sequence's 8 hex digits: hex() of it with a 9th bit set, cut.
                        wire[_K_ID] = id_head + hex(next_seq() & 0xFFFFFFFF | 0x100000000)[3:]
                        wire[_K_TSTAMP] = tstamp
                        wire[_K_ACTION] = action
                        wire[_K_TARGET] = name
                        wire[_K_LEVEL] = level
                        wire[_K_LEVEL_NAME] = level_names[level]
                        wire[_K_MESSAGE] = message
                        if metrics is not None:
                            wire[_K_METRICS] = metrics
                        if fields is not None:
                            wire[_K_FIELDS] = fields
                        wire[_K_THREAD] = thread
                        wire[_K_CODE_FILE] = path
                        wire[_K_CODE_LINE] = line
                        wire[_K_CODE_FUNC] = func
            except Exception:
                wire = None  # plain_record_wire decides
            if wire is None:
                try:
                    given = item
                    if type(message) is str and type(item[1]) is tuple:
                        given = (item[0], message, item[2])  # rendered above: not again
                    wire = plain_record_wire(given, static, with_context, conversions, node, next_seq)
                except Exception:
                    wire = None  # the careful path decides: converted, or set aside with its reason
        else:
            try:
                if item.site is None and item.cluster is None and item.host is None and item.pid is None:
                    wire = to_wire(item, conversions, static, item.context if with_context else None)
            except Exception:
                wire = None
        if wire is None:
            wire = careful(item)
            if wire is None:
                continue  # set aside (counted by careful)
        add_wire(wire)
        add_source(item)
    return wires, sources
