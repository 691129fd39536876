"""The ``otlp`` settings: eventlog's ``EVENTLOG_OTLP_*`` names, then OpenTelemetry's ``OTEL_*``.

An application already configured for the OpenTelemetry SDK keeps its
environment: ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` (used as is) or
``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/logs`` appended), ``..._HEADERS``,
``..._PROTOCOL``, ``..._COMPRESSION``, ``..._TIMEOUT`` (milliseconds),
``..._CERTIFICATE``, ``..._CLIENT_CERTIFICATE``, ``..._CLIENT_KEY`` (each the
``LOGS_`` form first, then the general one), ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``.  An ``EVENTLOG_OTLP_*`` setting (or
``configure(otlp_...)``) wins over both.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventlog.plugin import ConfigurationError, PluginContext, parse_path, parser
from eventlog.plugin.net import tls_context
from eventlog_otlp.encoding import JSON, PROTOBUF

#: What an OTLP/HTTP receiver listens on when nothing is configured (the spec's default).
DEFAULT_ENDPOINT = "http://localhost:4318/v1/logs"
LOGS_PATH = "/v1/logs"
PROTOCOLS = {"http/protobuf": PROTOBUF, "http/json": JSON}
GRPC_REFUSED = (
    "grpc is not supported by eventlog-otlp: it needs grpcio, a large compiled dependency, "
    "for no gain in what arrives; every OpenTelemetry Collector, Grafana Alloy and hosted "
    "OTLP endpoint also takes OTLP/HTTP (port 4318 instead of 4317): use http/protobuf"
)


def _first(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    """(name, value) of the first of the variables that is set and not blank."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def _otel(environ: Mapping[str, str], suffix: str) -> tuple[str, str] | None:
    """``OTEL_EXPORTER_OTLP_LOGS_<suffix>``, else ``OTEL_EXPORTER_OTLP_<suffix>``."""
    return _first(environ, f"OTEL_EXPORTER_OTLP_LOGS_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}")


# ---------------------------------------------------------------- parsers (also the options')


@parser(takes="text", allowed="http/protobuf or http/json (grpc is refused, with the reason)")
def parse_protocol(value: Any) -> str:
    """http/protobuf or http/json (grpc is refused, with the reason)."""
    text = str(value).strip().lower()
    if text == "grpc":
        raise ValueError(GRPC_REFUSED)
    if text not in PROTOCOLS:
        raise ValueError("must be http/protobuf or http/json")
    return text


@parser(takes="text", allowed="gzip or none")
def parse_compression(value: Any) -> str:
    """gzip or none."""
    text = str(value).strip().lower()
    if text not in ("gzip", "none"):
        raise ValueError("must be gzip or none")
    return text


@parser(takes="text", allowed="an http:// or https:// URL with a host")
def parse_endpoint(value: Any) -> str:
    """An http:// or https:// URL with a host."""
    text = str(value).strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("has no host name")
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValueError("has an invalid port") from None
    return text


@parser(
    takes="many",
    allowed=(
        "key=value pairs split by commas, values URL-encoded (the W3C Baggage form the "
        "OTEL_ headers and resource variables use), or a mapping"
    ),
    empty=True,
)
def parse_pairs(value: Any) -> dict[str, str]:
    """``key=value`` pairs split by commas, values URL-encoded (the W3C Baggage form that
    ``OTEL_EXPORTER_OTLP_HEADERS`` and ``OTEL_RESOURCE_ATTRIBUTES`` use), or a mapping.

    Errors name an entry by its position only: an entry may hold a credential.
    """
    if isinstance(value, Mapping):
        pairs = {str(k).strip(): str(v) for k, v in value.items()}
    else:
        pairs = {}
        for number, entry in enumerate(str(value).split(","), 1):
            if not entry.strip():
                continue
            key, equals, text = entry.partition("=")
            if not equals or not key.strip():
                raise ValueError(f"entry {number} is not key=value")
            pairs[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(text.strip())
    for number, (key, text) in enumerate(pairs.items(), 1):
        if not key or any(ch in key for ch in "\r\n:") or "\r" in text or "\n" in text:
            raise ValueError(f"entry {number} has a line break, a colon in its key or an empty key")
    return pairs


@parser(
    takes="many",
    allowed=(
        "headers as Name=value pairs split by commas (values URL-encoded, as in the OTEL_ "
        "headers variable), or a mapping"
    ),
    empty=True,
)
def parse_headers(value: Any) -> dict[str, str]:
    """Headers as ``Name=value`` pairs split by commas (values URL-encoded, as in
    the OTEL_ headers variable), or a mapping."""
    return parse_pairs(value)


# ---------------------------------------------------------------- the config


def _sdk_version() -> str:
    try:
        return importlib.metadata.version("eventlog-otlp")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def resolve_protocol(options: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """``protocol``, else its OTEL_ variable, else http/protobuf."""
    if options.get("protocol"):
        return str(options["protocol"])
    found = _otel(environ, "PROTOCOL")
    if found is None:
        return "http/protobuf"
    try:
        return parse_protocol(found[1])
    except ValueError as exc:
        raise ConfigurationError(f"environment variable {found[0]}={found[1][:40]!r}: {exc}") from None


def endpoint_url(value: str) -> str:
    """eventlog's endpoint: a URL without a path gets ``/v1/logs``, one with a path is used as is."""
    parts = urllib.parse.urlsplit(value)
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit(parts._replace(path=LOGS_PATH))
    return value


@dataclass(frozen=True)
class OtlpConfig:
    """Validated settings of one ``otlp`` transport."""

    # Kept out of repr(): header values are credentials (an API key, a bearer token).
    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    protocol: str = "http/protobuf"
    gzip: bool = False
    timeout: float = 10.0
    max_body_bytes: int = 4_000_000
    #: Attributes every resource gets: service.name, telemetry.sdk.*, OTEL_RESOURCE_ATTRIBUTES ...
    resource: dict[str, Any] = field(default_factory=dict)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True
    #: Where each setting came from, for messages (EVENTLOG_OTLP_ENDPOINT, OTEL_... ).
    endpoint_source: str = "the default"

    @property
    def kind(self) -> int:
        return PROTOCOLS[self.protocol]

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.headers.values())

    @classmethod
    def from_context(cls, context: PluginContext) -> OtlpConfig:
        """eventlog's options, then OpenTelemetry's environment variables, checked together."""
        options, environ = context.options, context.settings.environ

        def otel(suffix: str, parse: Any) -> Any:
            found = _otel(environ, suffix)
            if found is None:
                return None
            try:
                return parse(found[1])
            except ValueError as exc:
                # Header values are secrets: never quote the variable's text for them.
                shown = "" if suffix == "HEADERS" else f"={found[1][:60]!r}"
                raise ConfigurationError(f"environment variable {found[0]}{shown}: {exc}") from None

        if options["endpoint"]:
            url, source = endpoint_url(options["endpoint"]), "EVENTLOG_OTLP_ENDPOINT"
        elif (found := _first(environ, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")) is not None:
            url, source = otel("ENDPOINT", parse_endpoint), found[0]  # the signal's own: as is
        elif (found := _first(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")) is not None:
            base = otel("ENDPOINT", parse_endpoint)
            url, source = base.rstrip("/") + LOGS_PATH, found[0]
        else:
            url, source = DEFAULT_ENDPOINT, "the default"
        headers = options["headers"]
        if headers is None:
            headers = otel("HEADERS", parse_headers) or {}
        compression = options["compression"] or otel("COMPRESSION", parse_compression) or "none"
        timeout = options["timeout"]
        if timeout is None:
            millis = otel("TIMEOUT", _parse_millis_text)
            timeout = millis / 1000 if millis else 10.0
        ca = options["tls_ca"] or otel("CERTIFICATE", parse_path)
        cert = options["tls_cert"] or otel("CLIENT_CERTIFICATE", parse_path)
        key = options["tls_key"] or otel("CLIENT_KEY", parse_path)
        if key and not cert:
            raise ConfigurationError(
                "a TLS client key is set without a client certificate (EVENTLOG_OTLP_TLS_CERT)"
            )
        https = url.lower().startswith("https://")
        # Load the files now, so that a wrong path fails configure() and not the first send.
        tls_context(
            {"tls_ca": ca, "tls_cert": cert, "tls_key": key, "tls_verify": options["tls_verify"]},
            setting="EVENTLOG_OTLP_TLS_CA/_CERT/_KEY (or OTEL_EXPORTER_OTLP_CERTIFICATE ...)",
            enabled=https,
        )
        return cls(
            url=url,
            headers=dict(headers),
            protocol=resolve_protocol(options, environ),
            gzip=compression == "gzip",
            timeout=float(timeout),
            max_body_bytes=options["max_body_bytes"],
            resource=resource_attributes(options, environ),
            tls_ca=ca,
            tls_cert=cert,
            tls_key=key,
            tls_verify=options["tls_verify"],
            endpoint_source=source,
        )


def _parse_millis_text(value: str) -> float:
    """Milliseconds, more than 0 (as the OTEL_ timeout variables take)."""
    try:
        millis = float(value)
    except ValueError:
        raise ValueError("must be a number of milliseconds") from None
    if not (0 < millis <= 1e12):
        raise ValueError("must be more than 0 milliseconds")
    return millis


def resource_attributes(options: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The resource's attributes: the SDK's identity, OTEL_RESOURCE_ATTRIBUTES, eventlog's
    ``resource_attributes``, then ``service.name`` (EVENTLOG_OTLP_SERVICE_NAME, OTEL_SERVICE_NAME,
    either list's service.name, else ``unknown_service:<executable>`` as the spec says)."""
    attributes: dict[str, Any] = {
        "telemetry.sdk.name": "eventlog",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": _sdk_version(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": platform.python_version(),
    }
    found = _first(environ, "OTEL_RESOURCE_ATTRIBUTES")
    if found is not None:
        try:
            attributes.update(parse_pairs(found[1]))
        except ValueError as exc:
            raise ConfigurationError(f"environment variable OTEL_RESOURCE_ATTRIBUTES: {exc}") from None
    attributes.update(options.get("resource_attributes") or {})
    service = options.get("service_name") or environ.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        attributes["service.name"] = service
    elif "service.name" not in attributes:
        attributes["service.name"] = f"unknown_service:{Path(sys.executable).name}"
    return attributes
