"""``logging.LogRecord`` -> Event, following the seed's mapping table.

The handler captures only the rendered message and the request context in the
caller's thread; this conversion runs in the worker.
"""

from __future__ import annotations

import json
import logging
import numbers
import traceback
from types import TracebackType
from typing import Any

from eventlog.context import RequestContext
from eventlog.event import Event

logging.addLevelName(5, "TRACE")

# Attributes every LogRecord has; anything else on a record came from extra=.
_STANDARD = frozenset(
    logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__
) | {"message", "asctime", "taskName", "stack_info"}

#: "log.<level>" for the usual level names, made once rather than per record.
_ACTIONS = {
    name: "log." + name.lower()
    for name in ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
}

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


def exception_json(exc_info: ExcInfo) -> str:
    """JSON text with the exception's type, value and stack (the seed's exc_info)."""
    exc_type, exc_value, tb = exc_info
    name = "None"
    if exc_type is not None:
        module = exc_type.__module__
        name = exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"
    try:
        value = str(exc_value)
    except Exception:  # a hostile __str__ must not lose the event
        value = f"<unprintable {name}>"
    stack = "".join(traceback.format_exception(exc_type, exc_value, tb)) if exc_type else ""
    return json.dumps({"type": name, "value": value, "stack": stack}, ensure_ascii=False)


def render(msg: str, args: Any) -> str:
    """``msg % args`` as logging renders it; a mismatch keeps both rather than losing the event."""
    try:
        text: str = msg % args
        return text
    except Exception:
        return f"{msg} {args!r}"


def record_to_event(
    record: logging.LogRecord, message: str | tuple[str, Any], ctx: RequestContext
) -> Event:
    """Build the Event for a log record (see the README's mapping table).

    ``message`` is the rendered message or ``(msg, args)`` still to render.
    """
    if type(message) is tuple:
        message = render(*message)
    event = Event.__new__(Event)
    action = _ACTIONS.get(record.levelname)
    if action is None:
        level_name = record.levelname.lower() if record.levelname else f"level{record.levelno}"
        action = "log." + level_name
    event.action = action
    event.target = record.name
    event.tg_type = "logger"
    event.message = message  # type: ignore[assignment]
    event.level = record.levelno
    event.time_ns = int(record.created * 1_000_000_000)
    event.context = ctx
    event.user = event.session = event.request_id = None
    event.code_file, event.code_line, event.code_func = (
        record.pathname,
        record.lineno,
        record.funcName,
    )
    event.thread = record.threadName
    event.id = None
    event.site = event.cluster = event.host = None
    event.pid = None
    exc_info = record.exc_info
    if exc_info and exc_info[0] is not None:
        event.exc_info = exception_json(exc_info)
    elif record.exc_text:
        event.exc_info = json.dumps({"type": None, "value": None, "stack": record.exc_text})
    else:
        event.exc_info = None
    tags: list[str] | None = None
    fields: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    attributes = record.__dict__
    # A set difference in C finds the extra= keys (most records have none or a few);
    # with several, walk the record again to keep the order they were given in.
    extra_keys = attributes.keys() - _STANDARD
    if len(extra_keys) > 1:
        # makeRecord adds extra= keys last: walk back from the end until all are seen.
        wanted, ordered = len(extra_keys), []
        for key in reversed(attributes):
            if key in extra_keys:
                ordered.append(key)
                if len(ordered) == wanted:
                    break
        ordered.reverse()
        extra_keys = ordered  # type: ignore[assignment]
    for key in extra_keys:
        value = attributes[key]
        kind = type(value)
        if kind is int or kind is float:  # the common case, without the ABC check below
            metrics = metrics or {}
            metrics.setdefault(key, value)
        elif kind is str and key != "tags":
            fields = fields or {}
            fields.setdefault(key, value)
        elif key == "tags":
            tags = [value] if isinstance(value, str) else list(value) if value else []
        elif key == "metrics" and isinstance(value, dict):
            metrics = {**(metrics or {}), **value}
        elif key == "fields" and isinstance(value, dict):
            fields = {**(fields or {}), **value}
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            # The seed: extra= keys and values go to the metrics map; numbers are metrics ...
            metrics = metrics or {}
            metrics.setdefault(key, value)
        else:
            # ... and anything else is kept as a typed field rather than lost.
            fields = fields or {}
            fields.setdefault(key, value)
    event.tags = tags
    event.fields = fields
    event.metrics = metrics
    return event
