"""eventlog: get application events and log records off the host fast.

>>> from eventlog import Event, logEvent
>>> logEvent(Event("click", "my-button", "ui"))  # doctest: +SKIP
"""

from __future__ import annotations

from eventlog.api import configure, flush, get_pipeline, log_event, shutdown
from eventlog.context import context
from eventlog.counters import Counter, Gauge
from eventlog.engine import Pipeline
from eventlog.event import Event
from eventlog.handler import EventHandler, EventLogger, get_logger
from eventlog.hookspecs import hookimpl
from eventlog.interfaces import (
    AuthError,
    ConfigurationError,
    ConnectError,
    EnricherSpec,
    EventlogError,
    Formatter,
    FormatterSpec,
    Option,
    PluginContext,
    PluginError,
    Record,
    RejectedError,
    SendTimeout,
    Transport,
    TransportError,
    TransportSpec,
)
from eventlog.schema import TRACE

#: The seed's spelling of :func:`log_event`.
logEvent = log_event

#: The seed's ready-made handler: ``logger.addHandler(asyncEventLogger)``.
#: It feeds the default pipeline, configured from the environment on first use.
asyncEventLogger = EventHandler()

__all__ = [
    "TRACE",
    "AuthError",
    "ConfigurationError",
    "ConnectError",
    "Counter",
    "EnricherSpec",
    "Event",
    "EventHandler",
    "EventLogger",
    "EventlogError",
    "Formatter",
    "FormatterSpec",
    "Gauge",
    "Option",
    "Pipeline",
    "PluginContext",
    "PluginError",
    "Record",
    "RejectedError",
    "SendTimeout",
    "Transport",
    "TransportError",
    "TransportSpec",
    "asyncEventLogger",
    "configure",
    "context",
    "flush",
    "get_logger",
    "get_pipeline",
    "hookimpl",
    "logEvent",
    "log_event",
    "shutdown",
]
