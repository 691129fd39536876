"""Log calls of key-value logging libraries (structlog, loguru) as eventlog log records.

:mod:`eventlog.structlog` and :mod:`eventlog.loguru` hand each call here.  In the
caller's thread its key-value pairs are sorted by value type: text to
``fields``, numbers to ``metrics``, ``tags`` to tags, the rest to ``fields``,
each value the worker must not touch (objects, containers the caller may still
change) made text now by :func:`eventlog._records.text.frozen`.  A ``logging.LogRecord``
made from a template then takes the logging handler's own path: the queue, and
the worker's conversion of level, message, code location and thread name,
exactly as for ``logging`` calls with ``extra=``; a call with an exception or a
time no format can carry is converted here, in the caller, as the handler does.
"""

from __future__ import annotations

import logging
import numbers
import sys
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Any

from eventlog._api import api
from eventlog._engine.pipeline import Pipeline
from eventlog._records.context import current as _current_context
from eventlog._records.logrecords import frozen_dict, record_to_event, tags_of, unrenderable
from eventlog._records.text import KEPT, TIME_MAX_S, TIME_MIN_S, frozen

log = logging.getLogger(__name__)

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]

#: A LogRecord's attributes, in the order LogRecord.__init__ sets them: the worker finds
#: ``extra=`` pairs by what follows them (eventlog._records.logrecords.extra_keys).
_TEMPLATE: dict[str, Any] = dict(logging.LogRecord("", logging.INFO, "", 0, "", None, None, None).__dict__)
_new_record = logging.LogRecord.__new__
_LogRecord = logging.LogRecord

#: Level names as structlog's methods and add_log_level spell them -> (number, logging name).
LEVELS: dict[str, tuple[int, str]] = {
    "trace": (5, "TRACE"),
    "debug": (10, "DEBUG"),
    "info": (20, "INFO"),
    "msg": (20, "INFO"),
    "log": (20, "INFO"),
    "warning": (30, "WARNING"),
    "warn": (30, "WARNING"),
    "error": (40, "ERROR"),
    "exception": (40, "ERROR"),
    "err": (40, "ERROR"),
    "critical": (50, "CRITICAL"),
    "fatal": (50, "CRITICAL"),
}


def level_of(value: Any) -> tuple[int, str]:
    """(number, logging name) of a level given as a name (``"info"``) or a number (20)."""
    if type(value) is str:
        found = LEVELS.get(value) or LEVELS.get(value.lower())
        if found is not None:
            return found
        number = logging.getLevelName(value.upper())
        return (number if type(number) is int else logging.INFO), value.upper()
    if type(value) is int:
        return value, logging.getLevelName(value)
    return logging.INFO, "INFO"


def sort_pairs(
    pairs: Mapping[str, Any], skip: Collection[str] = ()
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, Any]:
    """``(fields, metrics, tags)`` of key-value pairs, by value type (as ``extra=`` is mapped).

    str -> fields; int and float (and other real numbers, not bool) -> metrics;
    ``tags`` (a str or a list of str) -> tags; ``fields`` / ``metrics`` given as a
    dict -> merged into those maps; everything else (bool, None, objects) ->
    fields.  Values the worker must not touch are made text now
    (:func:`eventlog._records.text.frozen`, counted); the worker converts the rest (bool to 1/0).
    Keys in ``skip`` are left out.
    """
    fields: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    tags: Any = None
    for key, value in pairs.items():
        if key in skip:
            continue
        kind = type(value)
        if kind is str and key != "tags":
            if fields is None:
                fields = {}
            fields[key] = value
        elif kind is int or kind is float:
            if metrics is None:
                metrics = {}
            metrics[key] = value
        elif key == "tags":
            tags = tags_of(value)
        elif key in ("metrics", "fields") and kind is dict:
            if key == "metrics":
                metrics = {**(metrics or {}), **frozen_dict(value)}
            else:
                fields = {**(fields or {}), **frozen_dict(value)}
        elif isinstance(value, numbers.Real) and kind is not bool:
            if metrics is None:
                metrics = {}
            metrics[key] = frozen(value)
        else:
            if fields is None:
                fields = {}
            fields[key] = value if kind in KEPT else frozen(value)
    return fields, metrics, tags


def submit(
    pipeline: Pipeline | None,
    *,
    name: str | None,
    levelno: int,
    levelname: str,
    message: Any,
    created: float,
    pathname: str | None,
    lineno: int | None,
    func: str | None,
    thread: str | None,
    exc_info: ExcInfo | None = None,
    exc_text: str | None = None,
    fields: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    tags: Any = None,
) -> None:
    """Queue one log call as a log record of the pipeline (the default one when None).

    The worker builds the event exactly as for a ``logging`` record; with an
    exception or a ``created`` out of range (NaN, a millisecond count) it is
    built here, in the caller (the time of the call, the original kept).
    """
    if message is not None and type(message) is not str:
        # Rendered here as logging would (str()), not by the worker, which never runs
        # application code: a list or an object would otherwise arrive as its type's name.
        # (A tuple would also be read as the queue's (msg, args) form.)
        try:
            message = str(message)
        except Exception as exc:  # RecursionError too: a placeholder, counted
            message = unrenderable(message, None, exc)
    record = _new_record(_LogRecord)
    attributes = record.__dict__
    attributes.update(_TEMPLATE)  # the order of LogRecord.__init__, then the values below
    attributes["name"] = name
    attributes["msg"] = message
    attributes["levelno"] = levelno
    attributes["levelname"] = levelname
    attributes["pathname"] = pathname
    attributes["lineno"] = lineno
    attributes["funcName"] = func
    attributes["created"] = created
    attributes["threadName"] = thread
    attributes["exc_info"] = exc_info
    attributes["exc_text"] = exc_text
    # extra= pairs the worker maps as it maps those of logging calls (tags, metrics, fields).
    if fields:
        attributes["fields"] = fields
    if metrics:
        attributes["metrics"] = metrics
    if tags is not None:
        attributes["tags"] = tags
    target = pipeline or api.get_pipeline()
    if exc_info is not None or not TIME_MIN_S < created < TIME_MAX_S:
        # The exception's text (application code) and a time no format can carry: now.
        target.submit_event(record_to_event(record, message, _current_context()))
        return
    target.submit_record(record, message, _current_context())


def exc_info_of(value: Any) -> ExcInfo | None:
    """An exc_info tuple from what a log call gave: True, an exception, or a tuple."""
    if value is True:
        info = sys.exc_info()
        return info if info[0] is not None else None
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if type(value) is tuple and len(value) == 3:
        return value  # type: ignore[return-value]
    if isinstance(value, tuple):  # a named tuple such as loguru's RecordException
        return tuple(value)[:3] if len(value) >= 3 else None  # type: ignore[return-value]
    return None


def report_failure(library: str) -> None:
    """A log call could not be queued: say so on eventlog's own logger, never raise."""
    log.exception("an event from %s could not be queued and was dropped", library)
