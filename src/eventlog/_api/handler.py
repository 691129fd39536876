"""The ``logging`` door: EventHandler, the seed's asyncEventLogger, and get_logger."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from eventlog._api import api
from eventlog._config.config import Settings
from eventlog._core.diagnostics import OWN_LOGGERS, WORKER_THREADS
from eventlog._engine.pipeline import Pipeline
from eventlog._records.caps import ARG_BYTES, ITEM_BYTES, SMALL_BYTES
from eventlog._records.context import CONTEXT_VARS
from eventlog._records.context import current as _current_context
from eventlog._records.logrecords import (
    _INIT_LEN,
    _LAST_INIT_KEY,
    _STANDARD,
    plain_record,
    record_to_event,
    unrenderable,
)
from eventlog._records.text import KEPT, TIME_MAX_S, TIME_MIN_S

#: Argument types a message can be rendered from later, in the worker: they cannot change.
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


class EventHandler(logging.Handler):
    """A ``logging.Handler`` that wraps each record in an Event and queues it.

    Without arguments it feeds the default pipeline (configured from the
    environment on first use).  Keyword settings give it a pipeline of its
    own, which makes it usable from ``logging.config.dictConfig``::

        "handlers": {"events": {"class": "eventlog.EventHandler",
                                "transport": "tcp", "host": "127.0.0.1", "port": 5959}}
    """

    def __init__(
        self, level: int | str = logging.NOTSET, *, pipeline: Pipeline | None = None, **settings: Any
    ) -> None:
        if pipeline is None and settings:
            try:
                pipeline = Pipeline(Settings.load(settings, given_by="EventHandler"))
            except Exception as exc:  # dictConfig wraps it in ValueError; the cause names it
                api.configuration_failed(exc)
                raise
        # Only now: Handler.__init__ enrols the handler for logging.shutdown() at exit,
        # which would flush a half-made one.
        super().__init__(level)
        self.pipeline = pipeline

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        # No handler lock: the queue is thread-safe, and the lock is the cost we avoid.
        # emit() is inlined here: on the caller's path a call costs as much as the work.
        if self.filters:
            kept = self.filter(record)
            if not kept:
                return False
            if isinstance(kept, logging.LogRecord):  # Python 3.12+: a filter may replace it
                record = kept
        try:
            if record.name in OWN_LOGGERS or record.thread in WORKER_THREADS:
                return False  # our own diagnostics, or libraries logging from a worker: no loops
        except Exception:
            pass  # a record missing its name or thread: converted below like any odd record
        try:
            msg, args = record.msg, record.args
            if type(msg) is str and (
                not args or (type(args) is tuple and _IMMUTABLE.issuperset(map(type, args)))
            ):
                # Nothing here can change after the call returns: the worker renders it.
                message: str | tuple[str, Any] = (msg, args) if args else msg
            else:
                try:
                    message = record.getMessage()  # render now: the arguments may change later
                except Exception as exc:  # RecursionError too: sent with a placeholder, counted
                    message = unrenderable(msg, args, exc)
        except Exception as exc:  # msg or args deleted
            message = unrenderable(getattr(record, "msg", None), None, exc)
        try:
            pipeline = self.pipeline or api._default or api.get_pipeline()
            # The worker takes the record as it is only when it needs no application code and
            # holds nothing the caller may change: a time in range (NaN fails the test), no
            # exception to format, and no attribute added (extra=) or deleted, unless what was
            # added is plain (plain_record); any other record is converted here, now
            # (record_to_event), and queued as an Event.  Measured (callgrind, 3.11): the tests
            # cost ~4.8k instructions for a record with one extra= key, ~2k of it plain_record;
            # handle() went from 38.4k to 45.2k for log.info("user %s ...", extra={"k": i}).
            plain = False
            try:
                attributes = record.__dict__
                # An if, not an expression: 3.11 specialises a comparison followed by a jump.
                # TIME_MIN_S < created < TIME_MAX_S, as constants: a LOAD_CONST costs less.
                if (
                    -9_223_372_036.0 < record.created < 9_223_372_036.0
                    and not record.exc_info
                    and not record.exc_text
                ):
                    extras = len(attributes) - _INIT_LEN
                    if extras == 0:
                        # As many attributes as logging gives, but one deleted and an extra added
                        # (the last key is not logging's last): its extras would go unseen.
                        plain = next(reversed(attributes)) is _LAST_INIT_KEY
                    elif extras == 1:
                        # plain_record for one extra= key, written out (a call costs more).
                        keys = reversed(attributes)
                        key = next(keys)
                        plain = (type(attributes[key]) in KEPT or key in _STANDARD) and next(
                            keys
                        ) is _LAST_INIT_KEY
                    else:
                        plain = plain_record(attributes)
            except Exception:
                plain = False
            # The message is measured without a call (record_bytes inlined).  A large record is
            # an Event now, cut to the caps before it is queued, and the record (holding the
            # long message) is not kept (see eventlog._records.caps).
            size = (
                ITEM_BYTES + len(message)
                if type(message) is not tuple
                else ITEM_BYTES + len(message[0]) + ARG_BYTES * len(message[1])
            )
            if not plain or pipeline.caller_enrichers or size > SMALL_BYTES:
                pipeline.submit_event(record_to_event(record, message, _current_context()))
                return True
            # Pipeline.submit_record with Worker.put inlined (the Intake contract): a Python
            # call costs ~1k instructions a record.
            worker = pipeline.worker
            queue, accounts = worker.queue, worker.accounts
            if len(queue) >= worker.limit or accounts.queued_bytes + size > worker.max_bytes:
                worker.overflowed((record, message, _current_context()), size)  # overload control
                return True
            queue.append((record, message, _current_context()))
            accounts.queued_bytes += size
            if worker.wake_needed:
                worker.wake()
        except Exception:
            self.handleError(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def flush(self) -> None:
        """Wait (up to the shutdown timeout) until queued events are sent."""
        pipeline = self.pipeline or api._default
        if pipeline is not None:
            pipeline.flush(pipeline.settings.shutdown_timeout)

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.shutdown()
        super().close()


class EventLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose calls also accept ``tags=``, ``metrics=`` and ``fields=``.

    >>> log = get_logger("my-app")
    >>> log.info("my message", tags=["thing-one"], metrics={"durationMs": 34.2})  # doctest: +SKIP
    """

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(kwargs.get("extra") or {})
        for key in ("tags", "metrics", "fields"):
            if key in kwargs:
                extra[key] = kwargs.pop(key)
        if extra:
            kwargs["extra"] = extra
        return msg, kwargs


def get_logger(name: str | None = None, extra: Mapping[str, object] | None = None) -> EventLogger:
    """``logging.getLogger(name)`` whose methods accept tags=, metrics= and fields=."""
    return EventLogger(logging.getLogger(name), extra)


#: The reference handle(), in Python.  eventlog-speedups' compiled one makes the same
#: decisions, and calls this one for anything but the common case (filters, an odd or
#: non-plain record, caller enrichers, a large message, a full queue); tests hold the two equal.
python_handle = EventHandler.handle


def _load_compiled_handle() -> Callable[[EventHandler, logging.LogRecord], bool] | None:
    """eventlog-speedups' handle for EventHandler, unless absent or EVENTLOG_SPEEDUPS=0.

    The Python handle() costs ~12k instructions a call over a do-nothing handler's, most
    of it bytecode dispatch; the compiled one reads the record's ``__dict__`` and the
    context variables directly and appends to the worker's deque (callgrind, 3.11: see
    docs/benchmarks.md).  Everything it compares against is handed over here, not spelt twice.
    """
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        return None
    try:
        from eventlog_speedups._caps import setup_handle  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    # With OpenTelemetry's context of another kind, only calling ``current`` says.
    context_var, trace_var = CONTEXT_VARS if CONTEXT_VARS is not None else (None, None)
    compiled: Callable[[EventHandler, logging.LogRecord], bool] = setup_handle(
        cls=EventHandler,
        python_handle=python_handle,
        record_type=logging.LogRecord,
        deque_type=deque,
        own_loggers=OWN_LOGGERS,
        worker_threads=WORKER_THREADS,
        immutable=_IMMUTABLE,
        kept=KEPT,
        standard=_STANDARD,
        init_len=_INIT_LEN,
        last_init_key=_LAST_INIT_KEY,
        item_bytes=ITEM_BYTES,
        arg_bytes=ARG_BYTES,
        small_bytes=SMALL_BYTES,
        time_min=TIME_MIN_S,
        time_max=TIME_MAX_S,
        api_namespace=vars(api),
        current=_current_context,
        context_var=context_var,
        trace_var=trace_var,
    )
    return compiled


#: EventHandler.handle where eventlog-speedups is installed (None where not): a method
#: descriptor, so logging's ``handler.handle(record)`` calls the C function directly.
compiled_handle = _load_compiled_handle()
if compiled_handle is not None:
    EventHandler.handle = compiled_handle  # type: ignore[method-assign, assignment]
