"""eventlog: get application events and log records off the host fast.

This is the application API; plugin authors import from :mod:`eventlog.plugin`.

>>> from eventlog import Event, logEvent
>>> logEvent(Event("click", "my-button", "ui"))  # doctest: +SKIP
"""

from __future__ import annotations

from eventlog._api.api import configure, flush, get_pipeline, install_signal_handlers, log_event, shutdown
from eventlog._api.counters import Counter, Gauge
from eventlog._api.handler import EventHandler, EventLogger, get_logger
from eventlog._core.errors import ConfigurationError, EventlogError, PluginError
from eventlog._engine.pipeline import Pipeline
from eventlog._records.context import context
from eventlog._records.event import Event
from eventlog._records.schema import TRACE

#: The seed's spelling of :func:`log_event`.
logEvent = log_event

#: The seed's ready-made handler: ``logger.addHandler(asyncEventLogger)``.
#: It feeds the default pipeline, configured from the environment on first use.
asyncEventLogger = EventHandler()

__all__ = [
    "TRACE",
    "ConfigurationError",
    "Counter",
    "Event",
    "EventHandler",
    "EventLogger",
    "EventlogError",
    "Gauge",
    "Pipeline",
    "PluginError",
    "asyncEventLogger",
    "configure",
    "context",
    "flush",
    "get_logger",
    "get_pipeline",
    "install_signal_handlers",
    "logEvent",
    "log_event",
    "shutdown",
]
