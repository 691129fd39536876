"""The plugin author's SDK: everything a formatter, transport or enricher plugin imports.

A plugin imports from here only; the application API is :mod:`eventlog`::

    from eventlog.plugin import Option, PluginContext, Transport, TransportSpec, hookimpl

    @hookimpl
    def eventlog_transports():
        return [TransportSpec("memo", factory=MemoTransport, options=(Option("path", parse_path),))]

What is here:

- hooks: :data:`hookimpl` (the hook names are in :mod:`eventlog.hookspecs`);
- contracts: :class:`Formatter`, :class:`Transport`, :class:`PluginContext`, the three
  specs and :class:`Option`, with the core's option parsers (``parse_*``);
- data: :class:`Record`, :data:`Batch`, :class:`EncodedBatch` and the event schema
  (:data:`FIELDS`);
- errors: :class:`TransportError` and its kinds, :class:`ConfigurationError`;
- network helpers: :mod:`eventlog.plugin.net` (streams, datagrams, TLS from options);
- tests: the capture helpers and loopback receivers in :mod:`eventlog.testing`, and the
  conformance suite as a pytest plugin, :mod:`eventlog.plugin.conformance`.
"""

from __future__ import annotations

from eventlog.batch import Batch, EncodedBatch, Record
from eventlog.config import (
    parse_bool,
    parse_host,
    parse_int,
    parse_list,
    parse_millis,
    parse_non_negative_int,
    parse_path,
    parse_port,
    parse_positive_int,
    parse_positive_seconds,
    parse_seconds,
    parse_str,
)
from eventlog.contracts import (
    ALL_FRAMINGS,
    EnricherSpec,
    Formatter,
    FormatterSpec,
    Framing,
    Option,
    PluginContext,
    Transport,
    TransportSpec,
)
from eventlog.errors import (
    AuthError,
    ConfigurationError,
    ConnectError,
    EventlogError,
    PluginError,
    RejectedError,
    SendTimeout,
    TransportError,
)
from eventlog.hookspecs import hookimpl
from eventlog.masking import SecretMask
from eventlog.schema import FIELDS, Field

__all__ = [
    "ALL_FRAMINGS",
    "FIELDS",
    "AuthError",
    "Batch",
    "ConfigurationError",
    "ConnectError",
    "EncodedBatch",
    "EnricherSpec",
    "EventlogError",
    "Field",
    "Formatter",
    "FormatterSpec",
    "Framing",
    "Option",
    "PluginContext",
    "PluginError",
    "Record",
    "RejectedError",
    "SecretMask",
    "SendTimeout",
    "Transport",
    "TransportError",
    "TransportSpec",
    "hookimpl",
    "parse_bool",
    "parse_host",
    "parse_int",
    "parse_list",
    "parse_millis",
    "parse_non_negative_int",
    "parse_path",
    "parse_port",
    "parse_positive_int",
    "parse_positive_seconds",
    "parse_seconds",
    "parse_str",
]
