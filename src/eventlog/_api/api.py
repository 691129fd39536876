"""The default pipeline and the module-level calls: configure, log_event, flush, shutdown."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from eventlog._config.config import Settings
from eventlog._engine import pipeline as _pipelines
from eventlog._engine.pipeline import Pipeline, flush_retiring
from eventlog._records.event import Event, snapshot
from eventlog._records.event import compiled as event_compiled

log = logging.getLogger(__name__)

_default: Pipeline | None = None
_lock = threading.Lock()


def _new_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent's inside configure() is not in the child


os.register_at_fork(after_in_child=_new_lock_in_child)
#: The last configuration error (configure(), an EventHandler's settings, or the
#: environment at first use); while it stands, flush() and shutdown() return False:
#: events did not go where the settings said.  A configure() that succeeds clears it.
_config_error: Exception | None = None

#: Called with no arguments at the start of flush() and shutdown(): producers that
#: aggregate in the process (eventlog._api.counters) queue what they hold first.
before_flush: list[Callable[[], object]] = []


def _run_before_flush() -> None:
    for hook in before_flush:
        try:
            hook()
        except Exception:  # flush and shutdown must go on
            log.exception("a before-flush hook failed")


def configure(**settings: Any) -> Pipeline:
    """(Re)build the default pipeline from keyword settings, the environment and Django.

    Keywords are the setting names in lower case (``host``, ``port``, ``db``,
    ``format``, ``transport``, ``fluent_tag`` ...).  Raises
    :class:`~eventlog.ConfigurationError` naming any bad setting.  The
    previous default pipeline shuts down in the background: what it holds is
    still sent until its shutdown deadline, and the call does not wait for it.

    After an error, :func:`flush` returns False until a ``configure()`` succeeds.

    >>> configure(transport="tcp", host="127.0.0.1", port=5959)  # doctest: +SKIP
    """
    global _default, _config_error
    try:
        pipeline = Pipeline(Settings.load(settings))
    except Exception as exc:
        configuration_failed(exc)
        raise
    with _lock:
        old, _default, _config_error = _default, pipeline, None
    if old is not None:
        old.retire()  # a peer that is down must not hold the caller for the shutdown timeout
    return pipeline


def get_pipeline() -> Pipeline:
    """The default pipeline, configured from the environment on first use.

    A bad environment must not break the application: the error is logged
    once and events go to the console until ``configure()`` is called.
    """
    global _default
    pipeline = _default
    if pipeline is not None:
        return pipeline
    with _lock:
        if _default is None:
            try:
                _default = Pipeline(Settings.load())
            except Exception as exc:  # a bad environment, a busy metrics port ...
                configuration_failed(exc)
                log.error("%s; events go to stderr until this is fixed", exc)
                _default = Pipeline(Settings.load({"transport": "console"}, environ={}, use_django=False))
        return _default


def current() -> Pipeline | None:
    """The default pipeline if one was made, else None (never makes one)."""
    return _default


def swap_default(pipeline: Pipeline | None, *, only_if: Pipeline | None = None) -> Pipeline | None:
    """Make ``pipeline`` the default and return the one it replaces (``eventlog.testing``).

    With ``only_if``, nothing changes unless that pipeline is still the default.
    """
    global _default
    with _lock:
        previous = _default
        if only_if is None or previous is only_if:
            _default = pipeline
        return previous


def configuration_failed(error: Exception) -> None:
    """Remember a configuration error: :func:`flush` returns False until configure() succeeds."""
    global _config_error
    _config_error = error


def _references(event: object) -> int:
    return _getrefcount(event)


def _only_this_call() -> int:
    """What ``sys.getrefcount`` says at the top of a one-argument function for an object only
    that call holds, as in ``log_event(Event(...))`` (2 on CPython 3.11 to 3.13: the argument
    and getrefcount's own); measured, not assumed.  0 (always copy) where a reference held
    by the caller does not show (an interpreter that lends its stack references)."""
    held = object()
    alone = _references(object())
    return alone if _references(held) > alone else 0


_getrefcount = sys.getrefcount
_ONLY_THIS_CALL = _only_this_call()


def log_event(event: Event) -> None:
    """Queue an event for sending and return at once.  Never raises.

    What arrives is the event as it was at this call: changing it afterwards,
    or logging it again, does not change what was queued.

    >>> log_event(Event("click", "my-button", "ui"))  # doctest: +SKIP
    """
    try:
        # An Event nobody else holds (``log_event(Event(...))``) is queued as it is; one the
        # application keeps may change after this call, so a snapshot is queued
        # (eventlog._records.event.snapshot: ~1.5k instructions, the check ~100).  An
        # Event's containers are its own copies from construction: only a reference to the
        # Event reaches them, which the count sees.
        if _getrefcount(event) > _ONLY_THIS_CALL or type(event) is not Event:
            event = snapshot(event)
        (_default or get_pipeline()).submit_event(event)
    except Exception:  # the application must never see eventlog's failures
        _log_event_failed()


def _log_event_failed() -> None:
    """log_event's failure, logged with the exception being handled (the compiled one's too)."""
    log.exception("log_event failed; the event was dropped")


#: The reference log_event, in Python.  eventlog-speedups' compiled one does the same for an
#: Event of exactly that type that only the call holds, and calls this one for anything else.
python_log_event = log_event


def _load_compiled_log_event() -> Callable[[Event], None] | None:
    """eventlog-speedups' log_event, where ``Event(...)`` is made in C (the same switch).

    The Python function costs ~1.5k instructions a call in bytecode dispatch (callgrind,
    3.11); the compiled one reads ``_default`` from this module and calls submit_event.
    """
    if not event_compiled:
        return None
    try:
        from eventlog_speedups._caps import (  # type: ignore[import-not-found, unused-ignore]
            setup_log_event,
        )
    except ImportError:
        return None
    compiled: Callable[[Event], None] = setup_log_event(
        python_log_event=python_log_event,
        api_namespace=globals(),
        get_pipeline=get_pipeline,
        failed=_log_event_failed,
        module=__name__,
    )
    return compiled


#: log_event where eventlog-speedups is installed (None where not).
compiled_log_event = _load_compiled_log_event()
if compiled_log_event is not None:
    log_event = compiled_log_event  # type: ignore[assignment]


def flush(timeout: float | None = None) -> bool:
    """Wait until every event logged so far was sent; False if ``timeout`` passed first.

    Also False after a configuration error (see :func:`configure`): nothing went
    where the settings said.
    """
    _run_before_flush()
    end = None if timeout is None else time.monotonic() + timeout
    flushed = _default.flush(timeout) if _default is not None else True
    # And what the pipelines configure() replaced still send in the background.
    left = None if end is None else max(0.0, end - time.monotonic())
    flushed = flush_retiring(left) and flushed
    return flushed and _config_error is None


def shutdown(timeout: float | None = None) -> bool:
    """Flush within ``timeout`` seconds, then stop the default pipeline (also run at exit).

    True when everything was delivered; False otherwise, and after a configuration error.
    """
    _run_before_flush()
    with _lock:
        pipeline = _default
    # The stopped pipeline stays the default: what is logged after shutdown() is dropped and
    # counted (dropped{reason="closed"}) instead of going to a new pipeline built from the
    # environment, which would ignore what configure() said.  configure() starts afresh.
    delivered = pipeline.shutdown(timeout) if pipeline is not None else True
    return delivered and _config_error is None


#: The handlers install_signal_handlers() replaced, by signal number: called after ours.
_previous_handlers: dict[int, Any] = {}


def install_signal_handlers(signals: Iterable[int] = (signal.SIGTERM,)) -> None:
    """Deliver what is queued when the process gets SIGTERM, then end as the signal would have.

    eventlog takes over no signal by itself.  By default Python dies of
    SIGTERM (what ``docker stop``, Kubernetes and systemd send) at once, without
    running ``atexit``: the events still in memory are lost.  Call this once,
    from the main thread, after your own handlers are installed: on each
    signal in ``signals`` every pipeline flushes, bounded by its
    ``shutdown_timeout``, and then the handler that was there before runs
    (yours; or, if there was none, the default, so the process still dies of
    the signal; an ignored signal stays ignored once flushed).  Without a handler
    of yours, the pipelines are also shut down, which moves what could not be
    sent into the spool (spool mode).

    >>> eventlog.install_signal_handlers()  # doctest: +SKIP
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "eventlog.install_signal_handlers() must be called from the main thread "
            "(Python sets signal handlers there only)"
        )
    for signum in signals:
        previous = signal.getsignal(signum)
        if previous is _on_signal:
            continue  # installed already
        _previous_handlers[signum] = previous
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    # The process ends right after unless a handler of the application takes over.
    ending = previous in (signal.SIG_DFL, None)
    _deliver_now(close=ending)
    if callable(previous):
        previous(signum, frame)
    elif ending:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # end as the signal would have: the same exit status


def _deliver_now(*, close: bool) -> None:
    """Flush (or shut down) every pipeline, from another thread, bounded by their deadlines.

    The signal interrupted the main thread somewhere, maybe inside eventlog
    holding a lock: the work runs in a thread, and the wait for it is bounded.
    """

    def work() -> None:
        _run_before_flush()
        for pipeline in list(_pipelines._live):
            try:
                if close:
                    pipeline.shutdown()
                else:
                    pipeline.flush(pipeline.settings.shutdown_timeout)
            except Exception:
                log.exception("delivering at a signal failed")

    worker = threading.Thread(target=work, name="eventlog-signal", daemon=True)
    worker.start()
    bound = sum(p.settings.shutdown_timeout for p in list(_pipelines._live)) + 1.0
    worker.join(bound)
