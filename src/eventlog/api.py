"""The default pipeline and the module-level calls: configure, log_event, flush, shutdown."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from eventlog.config import Settings
from eventlog.engine import Pipeline, log
from eventlog.event import Event

_default: Pipeline | None = None
_lock = threading.Lock()

#: Called with no arguments at the start of flush() and shutdown(): producers that
#: aggregate in the process (eventlog.counters) queue what they hold first.
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
    previous default pipeline is flushed and shut down.

    >>> configure(transport="tcp", host="127.0.0.1", port=5959)  # doctest: +SKIP
    """
    global _default
    pipeline = Pipeline(Settings.load(settings))
    with _lock:
        old, _default = _default, pipeline
    if old is not None:
        old.shutdown()
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
                log.error("%s; events go to stderr until this is fixed", exc)
                _default = Pipeline(
                    Settings.load({"transport": "console"}, environ={}, use_django=False)
                )
        return _default


def log_event(event: Event) -> None:
    """Queue an event for sending and return at once.  Never raises.

    >>> log_event(Event("click", "my-button", "ui"))  # doctest: +SKIP
    """
    try:
        (_default or get_pipeline()).submit_event(event)
    except Exception:  # the application must never see eventlog's failures
        log.exception("log_event failed; the event was dropped")


def flush(timeout: float | None = None) -> bool:
    """Wait until every event logged so far was sent; False if ``timeout`` passed first."""
    _run_before_flush()
    return _default.flush(timeout) if _default is not None else True


def shutdown(timeout: float | None = None) -> bool:
    """Flush within ``timeout`` seconds, then stop the default pipeline (also run at exit)."""
    _run_before_flush()
    with _lock:
        pipeline = _default
    # The stopped pipeline stays the default: what is logged after shutdown() is dropped and
    # counted (dropped{reason="closed"}) instead of going to a new pipeline built from the
    # environment, which would ignore what configure() said.  configure() starts afresh.
    return pipeline.shutdown(timeout) if pipeline is not None else True
