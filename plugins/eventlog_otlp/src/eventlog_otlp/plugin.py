"""Hook implementations of eventlog-otlp (registered through the entry point group 'eventlog').

Formatter ``otlp`` and transport ``otlp``.  Every option is read as
``configure(otlp_<name>=...)``, ``EVENTLOG_OTLP_<NAME>`` or the Django setting of
that name; unset, the OpenTelemetry SDK's ``OTEL_*`` variable of the same
meaning is read (see :mod:`eventlog_otlp.config`).
"""

from __future__ import annotations

from eventlog.plugin import (
    FormatterSpec,
    Option,
    TransportSpec,
    hookimpl,
    parse_positive_int,
    parse_positive_seconds,
    parse_str,
)
from eventlog.plugin.net import tls_options
from eventlog_otlp.config import (
    OtlpConfig,
    parse_compression,
    parse_endpoint,
    parse_headers,
    parse_pairs,
    parse_protocol,
)
from eventlog_otlp.formatter import OtlpFormatter
from eventlog_otlp.transport import OtlpTransport

__all__ = ["FORMAT_OPTIONS", "OPTIONS", "OtlpConfig", "OtlpFormatter", "OtlpTransport"]

_PROTOCOL = Option(
    "protocol",
    parse_protocol,
    None,
    "http/protobuf or http/json (default: its OTEL_ variable, else http/protobuf; grpc is refused)",
)

#: The formatter reads the protocol too: it decides the payload's encoding.
FORMAT_OPTIONS: tuple[Option, ...] = (_PROTOCOL,)

OPTIONS: tuple[Option, ...] = (
    Option(
        "endpoint",
        parse_endpoint,
        None,
        "OTLP/HTTP URL; without a path /v1/logs is added "
        "(default: its OTEL_ variables, else http://localhost:4318)",
    ),
    _PROTOCOL,
    Option(
        "headers",
        parse_headers,
        None,
        "headers as Name=value pairs split by commas (default: its OTEL_ variable)",
        secret=True,
    ),
    Option(
        "compression",
        parse_compression,
        None,
        "gzip or none (default: its OTEL_ variable, else none)",
    ),
    Option(
        "timeout",
        parse_positive_seconds,
        None,
        "seconds to wait for a connection or an answer (default: its OTEL_ variable, in ms, else 10)",
    ),
    Option("service_name", parse_str, None, "the resource's service.name (default: OTEL_SERVICE_NAME)"),
    Option(
        "resource_attributes",
        parse_pairs,
        None,
        "more resource attributes as key=value pairs (added to the OTEL_ variable's)",
    ),
    Option(
        "max_body_bytes",
        parse_positive_int,
        4_000_000,
        "largest request body before compression; a larger batch is split",
    ),
    # TLS is the URL's (https://); the CA defaults to OTEL_EXPORTER_OTLP_CERTIFICATE.
    *tls_options(switch=False),
)


@hookimpl
def eventlog_formatters() -> list[FormatterSpec]:
    return [
        FormatterSpec(
            "otlp",
            OtlpFormatter.from_context,
            "OpenTelemetry LogRecord (protobuf or OTLP/JSON), for the otlp transport",
            FORMAT_OPTIONS,
        )
    ]


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            "otlp",
            OtlpTransport.from_context,
            "OpenTelemetry OTLP/HTTP logs export (Collector, Grafana Alloy, hosted OTLP backends)",
            OPTIONS,
            formats=frozenset({"otlp"}),
            default_format="otlp",
        )
    ]
