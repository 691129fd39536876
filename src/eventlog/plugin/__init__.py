"""The plugin author's SDK: everything a formatter, transport or enricher plugin imports.

A plugin imports from the SDK only; the application API is :mod:`eventlog`::

    from eventlog.plugin import Option, PluginContext, Transport, TransportSpec, hookimpl
    from eventlog.plugin.net import connect_stream, send_all, timeout_options, tls_context, tls_options

    @hookimpl
    def eventlog_transports():
        return [TransportSpec("memo", MemoTransport.from_context, options=(...))]

and its tests, with ``pytest_plugins = ["eventlog.plugin.testing"]`` in its top-level
``conftest.py``::

    from eventlog.plugin.testing import TransportConformance, closed_port, make_records

Every public name, one line each (their docstrings say more).

``eventlog.plugin`` (this module):

- :data:`hookimpl`: marks a hook implementation (the hooks: ``eventlog_formatters``,
  ``eventlog_transports``, ``eventlog_enrichers``, ``eventlog_add_commands``; docs/plugins.md).
- :class:`Formatter`, :class:`Transport`: the two ABCs a plugin subclasses; both are built
  by their ``from_context(context)`` classmethod, the spec's factory.
- :class:`FormatterSpec`, :class:`TransportSpec`, :class:`EnricherSpec`: what the hooks return.
- :class:`PluginContext`: what a factory receives (settings, options, the formatter).
- :class:`Option`: one setting of a plugin (``EVENTLOG_<PLUGIN>_<NAME>``).
- ``parse_bool``, ``parse_int``, ``parse_positive_int``, ``parse_non_negative_int``,
  ``parse_port``, ``parse_host``, ``parse_path``, ``parse_str``, ``parse_list``,
  ``parse_seconds``, ``parse_positive_seconds``, ``parse_millis``: the core's option
  parsers, with its error words; :func:`parser` declares one of yours (what it takes
  from code, the "allowed:" text, whether an empty value means none).
- :data:`Framing`, :data:`ALL_FRAMINGS`: how payloads are told apart (``TransportSpec.carries``).
- :class:`Record`, :data:`Batch`, :class:`EncodedBatch`: what a transport's ``send`` receives.
- :data:`ItemsEncoder`: a formatter's optional ``encode_items``, a whole batch from the queued items.
- :data:`FIELDS`, :class:`Field`: the event schema, the single source of every format.
- :class:`EventlogError`, :class:`ConfigurationError`, :class:`PluginError`: configuration errors.
- :class:`TransportError` and its kinds :class:`ConnectError`, :class:`SendTimeout`,
  :class:`AuthError` (retryable) and :class:`RejectedError` (set aside): what ``send`` raises.
- :func:`map_errors`, :data:`ErrorRule`: a client library's exceptions mapped onto those
  errors by one table, instead of an if-chain in every transport.
- :class:`SecretMask`: hides a transport's credentials in the messages it lets out.

:mod:`eventlog.plugin.net`, network helpers: ``tls_options``, ``tls_context``,
``make_tls_context``, ``timeout_options``, ``connect_stream``, ``peer_closed``,
``wait_readable``, ``close_stream``, ``LINGER_SECONDS``, ``send_all``, ``open_datagram``,
``send_datagram``, ``MAX_DATAGRAM_BYTES``, ``describe_tls_error``, ``certificate_names``,
``reading_peer``.

:mod:`eventlog.plugin.aio`: ``EventLoopThread``, an asyncio loop in its own thread for
client libraries built on asyncio (their heartbeats run between batches).

:mod:`eventlog.plugin.testing`, test helpers and a pytest plugin (fixtures
``line_receiver``, ``datagram_receiver``, ``local_ca``): ``TransportConformance``,
``FormatterConformance``, ``make_transport``, ``make_pipeline``, ``make_records``, ``sample_events``,
``closed_port``, ``LineReceiver``, ``DatagramReceiver``, ``LocalCA``, ``make_local_ca``.
"""

from __future__ import annotations

from eventlog._config.contracts import (
    ALL_FRAMINGS,
    EnricherSpec,
    Formatter,
    FormatterSpec,
    Framing,
    ItemsEncoder,
    PluginContext,
    Transport,
    TransportSpec,
)
from eventlog._config.hookspecs import hookimpl
from eventlog._core.errors import (
    AuthError,
    ConfigurationError,
    ConnectError,
    ErrorRule,
    EventlogError,
    PluginError,
    RejectedError,
    SendTimeout,
    TransportError,
    map_errors,
)
from eventlog._core.masking import SecretMask
from eventlog._core.options import (
    Option,
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
    parser,
)
from eventlog._records.batch import Batch, EncodedBatch, Record
from eventlog._records.schema import FIELDS, Field

__all__ = [
    "ALL_FRAMINGS",
    "FIELDS",
    "AuthError",
    "Batch",
    "ConfigurationError",
    "ConnectError",
    "EncodedBatch",
    "EnricherSpec",
    "ErrorRule",
    "EventlogError",
    "Field",
    "Formatter",
    "FormatterSpec",
    "Framing",
    "ItemsEncoder",
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
    "map_errors",
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
    "parser",
]
