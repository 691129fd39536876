"""structlog's last processor: each event dict goes to eventlog as a log record.

::

    import structlog
    from eventlog.structlog import EventlogRenderer

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        EventlogRenderer(),
    ])
    structlog.get_logger().info("order.paid", order_id="A-7", amount=12.5, tags=["shop"])

arrives as ``message="order.paid"``, ``fields={"order_id": "A-7"}``,
``metrics={"amount": 12.5}``, ``tags=["shop"]``, with level, code location and
thread name, exactly as a ``logging`` call with ``extra=`` would.  The keys:

- ``event`` -> message; ``level`` (or, without add_log_level, the method's name)
  -> level; ``logger`` -> the logger name (target); ``timestamp`` (a number of
  seconds or ISO 8601 text, as TimeStamper writes it) -> the event's time.
- ``exc_info`` (True, an exception, a tuple; ``log.exception()`` sets it) ->
  exc_info, rendered in the caller; ``exception`` (text from format_exc_info) ->
  exc_info's stack.
- ``pathname``, ``lineno``, ``func_name``, ``thread_name`` (CallsiteParameterAdder)
  -> code location and thread; without them the caller's frame is found here.
- every other key as in :func:`eventlog._api.bridge.sort_pairs`: str -> fields,
  int/float -> metrics, bool -> fields (1/0), ``tags`` -> tags, anything else ->
  fields, converted to text in the caller and counted.

The renderer then raises ``structlog.DropEvent``: structlog's logger gets
nothing to print.  ``EventlogRenderer(echo=True)`` returns the message instead
(a short str for the logger factory, e.g. to see it on the console too).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime
from typing import Any

import structlog

from eventlog._api import bridge
from eventlog._engine.pipeline import Pipeline

#: Keys with a meaning of their own (see the module docstring): not fields.
_OWN_KEYS = frozenset(
    {
        "event",
        "level",
        "logger",
        "timestamp",
        "exc_info",
        "exception",
        "pathname",
        "lineno",
        "func_name",
        "thread_name",
    }
)

# The whole eventlog package (bridge is in eventlog/_api/).
_EVENTLOG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(bridge.__file__))) + os.sep
_STRUCTLOG_DIR = os.path.dirname(os.path.abspath(structlog.__file__)) + os.sep
_LOGGING_DIR = os.path.dirname(os.path.abspath(sys.modules["logging"].__file__ or "")) + os.sep
_SKIPPED = (_EVENTLOG_DIR, _STRUCTLOG_DIR, _LOGGING_DIR)

# structlog's async methods (ainfo ...) run the processors in an executor thread; they keep
# the caller's frame and thread here first (private names: without them, the executor's).
_ASYNC_STACK: Any = getattr(structlog.contextvars, "_ASYNC_CALLING_STACK", None)
_ASYNC_THREAD: Any = getattr(structlog.contextvars, "_ASYNC_CALLING_THREAD", None)

_get_ident = threading.get_ident
_current_thread = threading.current_thread
_active_get = getattr(threading, "_active", {}).get


__all__ = ["EventlogRenderer"]


def _caller() -> tuple[str | None, int | None, str | None]:
    """File, line and function of the first frame outside eventlog, structlog and logging."""
    frame: Any = _ASYNC_STACK.get(None) if _ASYNC_STACK is not None else None
    if frame is None:
        frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIPPED):
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return None, None, None


def _created(value: Any) -> float | None:
    """Seconds since the epoch from a structlog ``timestamp`` (number, ISO text, datetime)."""
    kind = type(value)
    if kind is float or kind is int:
        return float(value)
    try:
        if kind is str:
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            return value.timestamp()
    except ValueError:  # another strftime format: the time of the call instead
        pass
    return None


class EventlogRenderer:
    """structlog's final processor: queue the event dict with eventlog, print nothing.

    ``pipeline``: the pipeline to feed (default: eventlog's default pipeline,
    configured from the environment on first use).  ``echo``: return the
    message to structlog's logger instead of dropping the event.  Never raises
    into the application, except ``structlog.DropEvent``, which structlog takes
    as "nothing to log".
    """

    def __init__(self, *, pipeline: Pipeline | None = None, echo: bool = False) -> None:
        self.pipeline = pipeline
        self.echo = echo

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        message = event_dict.get("event")
        try:
            self._submit(logger, method_name, event_dict, message)
        except Exception:  # the application must never see eventlog's failures
            bridge.report_failure("structlog")
        if self.echo:
            return message if type(message) is str else str(message)
        raise structlog.DropEvent

    def _submit(self, logger: Any, method_name: str, event_dict: dict[str, Any], message: Any) -> None:
        get = event_dict.get
        level = get("level")
        levelno, levelname = bridge.level_of(method_name if level is None else level)
        name = get("logger")
        if name is None:
            name = getattr(logger, "name", None)
            if type(name) is not str:
                name = "structlog"
        created = None
        if "timestamp" in event_dict:
            created = _created(event_dict["timestamp"])
        pathname = get("pathname")
        if pathname is not None:
            lineno, func = get("lineno"), get("func_name")
        else:
            pathname, lineno, func = _caller()
        thread = get("thread_name")
        if thread is None:
            calling = _ASYNC_THREAD.get(None) if _ASYNC_THREAD is not None else None
            if calling is not None:
                thread = calling[1]
            else:
                thread = (_active_get(_get_ident()) or _current_thread()).name
        exc_info = exc_text = None
        if "exc_info" in event_dict:
            exc_info = bridge.exc_info_of(event_dict["exc_info"])
        exception = get("exception")
        skip: frozenset[str] = _OWN_KEYS
        if exception is not None and type(exception) is not str:
            skip = _OWN_KEYS - {"exception"}  # dict_tracebacks' structure: kept as a field
        elif exception is not None and exc_info is None:
            exc_text = exception
        if created is None and "timestamp" in event_dict:
            skip = skip - {"timestamp"}  # a time we could not read stays visible as a field
        fields, metrics, tags = bridge.sort_pairs(event_dict, skip)
        bridge.submit(
            self.pipeline,
            name=name,
            levelno=levelno,
            levelname=levelname,
            message=message,
            created=time.time() if created is None else created,
            pathname=pathname,
            lineno=lineno,
            func=func,
            thread=thread,
            exc_info=exc_info,
            exc_text=exc_text,
            fields=fields,
            metrics=metrics,
            tags=tags,
        )
