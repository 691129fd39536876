"""Formatter and transport ``syslog``: RFC 5424 messages over TCP, TLS or UDP.

One event becomes one RFC 5424 message::

    <14>1 2026-12-04T16:00:20.123Z web1 myapp 4242 order.create [eventlog@32473
    id="0Hx..." action="order.create" level="20" ...][fields@32473 sku="A-1"] message

- PRI: ``facility * 8 + severity``; the severity comes from the level (CRITICAL 2,
  ERROR 3, WARNING 4, INFO 6, DEBUG and TRACE 7; an event without a level is 6).
- HEADER fields are printable US-ASCII only, cut to RFC 5424's lengths (HOSTNAME
  255, APP-NAME 48, PROCID 128, MSGID 32); any other character becomes ``_``.
  MSGID is the event's action; the full action is also in the structured data.
- STRUCTURED-DATA: ``eventlog@PEN`` holds the id and every other wire field,
  ``fields@PEN`` and ``metrics@PEN`` the event's fields and metrics; ``tags``
  is a JSON array.  PEN defaults to 32473, the number RFC 5612 reserves for
  documentation: set ``EVENTLOG_SYSLOG_ENTERPRISE_ID`` to your organisation's.
- MSG: the message as UTF-8, without a BOM unless ``EVENTLOG_SYSLOG_BOM=true``
  (RFC 5424 allows MSG-ANY without one; most receivers keep a BOM as text).

The formatter writes each message octet-counted, ``LEN SP MSG`` (RFC 6587
3.4.1, RFC 5425 4.3), so payloads stay self-delimiting when concatenated, as
the Formatter contract asks: the ``tcp`` transport and the spool carry them
as they are.  The ``syslog`` transport writes them as they are over TCP and
TLS, and sends each message without its length prefix as one UDP datagram
(RFC 5426).  A message over ``EVENTLOG_SYSLOG_MAX_MESSAGE_BYTES`` is refused
and counted as rejected, never cut or sent to break a receiver's framing.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from eventlog.batch import Batch, Record
from eventlog.builtin.formats import iso_millis
from eventlog.builtin.transports import DatagramTransport, StreamTransport
from eventlog.contracts import Formatter, FormatterSpec, PluginContext, Transport, TransportSpec
from eventlog.errors import ConfigurationError
from eventlog.hookspecs import hookimpl
from eventlog.options import Option, parse_bool, parse_int, parse_str
from eventlog.plugin.net import timeout_options, tls_context, tls_options

#: What the ``syslog`` transport carries, and its default format (one place, on purpose).
SYSLOG_FORMATS = frozenset({"syslog"})
SYSLOG_DEFAULT_FORMAT = "syslog"

#: RFC 5612: the Private Enterprise Number reserved for documentation and examples.
DOCUMENTATION_PEN = "32473"

#: RFC 5424 section 6.2.1, with the names syslog.h and rsyslog use.
FACILITIES: dict[str, int] = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    **{f"local{n}": 16 + n for n in range(8)},
}

#: RFC 5424 section 6.2: the longest HOSTNAME, APP-NAME, PROCID, MSGID.
HOSTNAME_MAX, APP_NAME_MAX, PROCID_MAX, MSGID_MAX = 255, 48, 128, 32
#: An SD-NAME (SD-ID or PARAM-NAME) is at most 32 characters.
SD_NAME_MAX = 32

DEFAULT_PORT = 514
TLS_PORT = 6514  # RFC 5425
#: Largest UDP payload over IPv4.
MAX_DATAGRAM = 65_507
#: rsyslog's default maxMessageSize (8 KiB): a bigger datagram is cut by a default receiver.
DEFAULT_MAX_DATAGRAM = 8192
#: rsyslog's default imtcp maxFrameSize: beyond it, it loses the framing of what follows.
DEFAULT_MAX_FRAME = 200_000

_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
#: SD-NAME = 1*32PRINTUSASCII except '=', SP, ']' and '"'.
_NOT_SD_NAME = re.compile(r'[^\x21-\x7e]|[=\]"]')
_SD_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "]": "\\]"})
_BOM = b"\xef\xbb\xbf"
#: Tags as one JSON array: RFC 5424 lets a PARAM-NAME repeat, but rsyslog's parser keeps the last.
_json_list = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: Wire fields that go into the HEADER or MSG (or have their own SD element).
_NOT_IN_SD = frozenset({"tstamp", "host", "pid", "message", "tags", "fields", "metrics"})


def severity(level: int | None) -> int:
    """RFC 5424 severity of a logging level: CRITICAL 2, ERROR 3, WARNING 4, INFO 6, else 7."""
    if level is None:
        return 6
    if level >= 50:
        return 2
    if level >= 40:
        return 3
    if level >= 30:
        return 4
    if level >= 20:
        return 6
    return 7


def header_field(value: Any, limit: int) -> str:
    """A HEADER field: printable US-ASCII (others become ``_``), at most ``limit``, or ``-``."""
    text = value if type(value) is str else str(value)
    if not text:
        return "-"
    if not (text.isascii() and text.isprintable() and " " not in text):
        text = _NOT_PRINTUSASCII.sub("_", text)
    return text[:limit]


def sd_name(value: str) -> str:
    """A PARAM-NAME: printable US-ASCII but ``= ] "`` and space (those become ``_``), 32 long."""
    return _NOT_SD_NAME.sub("_", value)[:SD_NAME_MAX] or "_"


def sd_value(value: Any) -> str:
    """A PARAM-VALUE with ``\\``, ``"`` and ``]`` escaped (RFC 5424 section 6.3.3)."""
    return (value if type(value) is str else str(value)).translate(_SD_ESCAPES)


def parse_facility(value: Any) -> int:
    """A facility name (user, daemon, local0 ... local7, see FACILITIES) or number 0-23."""
    text = str(value).strip().lower()
    if text in FACILITIES:
        return FACILITIES[text]
    if text.isdigit() and 0 <= int(text) <= 23:
        return int(text)
    raise ValueError(f"expected a facility name ({', '.join(FACILITIES)}) or a number 0 to 23")


def parse_app_name(value: Any) -> str:
    """APP-NAME: 1 to 48 printable US-ASCII characters, no spaces."""
    text = str(value)
    if not text or len(text) > APP_NAME_MAX or _NOT_PRINTUSASCII.search(text):
        raise ValueError(f"an APP-NAME is 1 to {APP_NAME_MAX} printable ASCII characters without spaces")
    return text


def parse_enterprise_id(value: Any) -> str:
    """A Private Enterprise Number, optionally with sub-identifiers: ``32473`` or ``32473.1``."""
    text = str(value).strip()
    if not re.fullmatch(r"[1-9][0-9]*(\.[0-9]+)*", text) or len(text) > SD_NAME_MAX - 9:
        raise ValueError("expected a private enterprise number such as 32473 (IANA assigns them)")
    return text


def _program_name() -> str:
    """What syslog(3) uses when openlog() gets no ident: the program's name.

    ``python -m pkg`` runs ``pkg/__main__.py``: its name is ``pkg``, not the file's.
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        name = spec.name.removesuffix(".__main__")
    else:
        name = os.path.basename(sys.argv[0]) if sys.argv else ""
    # "python -c" leaves "-c" (and the REPL ""): no program name to give.
    return header_field(name if name not in ("", "-c") else "python", APP_NAME_MAX)


class SyslogFormatter(Formatter):
    """One RFC 5424 message per event, octet-counted (``LEN SP MSG``)."""

    content_type = "application/octet-stream"

    def __init__(
        self,
        *,
        facility: int = FACILITIES["user"],
        app_name: str | None = None,
        enterprise_id: str = DOCUMENTATION_PEN,
        bom: bool = False,
    ) -> None:
        self.facility = facility
        # Options are checked by parse_app_name; a name given in code is made safe here.
        self.app_name = header_field(app_name, APP_NAME_MAX) if app_name else _program_name()
        self.event_id = f"eventlog@{enterprise_id}"
        self.fields_id = f"fields@{enterprise_id}"
        self.metrics_id = f"metrics@{enterprise_id}"
        self.bom = bom
        # Sanitized PARAM-NAMEs by key: wire names and field keys repeat from event to event.
        self._names: dict[str, str] = {}

    def _name(self, key: str) -> str:
        name = self._names.get(key)
        if name is None:
            name = sd_name(key)
            if len(self._names) < 10_000:  # bounded: keys may be made up per event
                self._names[key] = name
        return name

    def message(self, wire: dict[str, Any]) -> bytes:
        """The RFC 5424 message of one event, without the octet count."""
        pri = self.facility * 8 + severity(wire.get("level"))
        host = wire.get("host")
        pid = wire.get("pid")
        parts = [
            f"<{pri}>1 {iso_millis(wire['tstamp'])} "
            f"{header_field(host, HOSTNAME_MAX) if host is not None else '-'} "
            f"{self.app_name} "
            f"{header_field(pid, PROCID_MAX) if pid is not None else '-'} "
            f"{header_field(wire['action'], MSGID_MAX)} [{self.event_id}"
        ]
        # The params are written inline, not through sd_name()/sd_value(): this runs per
        # event, and most names are known and most values need no escape.
        names, name = self._names, self._name
        for key, value in wire.items():
            if key in _NOT_IN_SD:
                continue
            if type(value) is not str:
                value = str(value)
            if '"' in value or "\\" in value or "]" in value:
                value = value.translate(_SD_ESCAPES)
            parts.append(f' {names.get(key) or name(key)}="{value}"')
        tags = wire.get("tags")
        if tags:
            parts.append(f' tags="{sd_value(_json_list(tags))}"')
        parts.append("]")
        for sd_id, values in ((self.fields_id, wire.get("fields")), (self.metrics_id, wire.get("metrics"))):
            if values:
                parts.append(f"[{sd_id}")
                for key, value in values.items():
                    if type(value) is not str:
                        value = str(value)
                    if '"' in value or "\\" in value or "]" in value:
                        value = value.translate(_SD_ESCAPES)
                    parts.append(f' {names.get(key) or name(key)}="{value}"')
                parts.append("]")
        # backslashreplace: a lone surrogate cannot be UTF-8; keep it visible, not lost.
        head = "".join(parts).encode("utf-8", "backslashreplace")
        text = wire.get("message")
        if not text:
            return head
        body = text.encode("utf-8", "backslashreplace")
        return b"".join((head, b" ", _BOM, body)) if self.bom else b"".join((head, b" ", body))

    def format(self, wire: dict[str, Any]) -> bytes:
        message = self.message(wire)
        return b"%d %s" % (len(message), message)


def _frame_split(payload: bytes) -> int:
    """Where the message starts in one octet-counted payload (``LEN SP MSG``), checked."""
    space = payload.find(b" ", 0, 12)
    if space < 1 or not payload[:space].isdigit() or int(payload[:space]) != len(payload) - space - 1:
        raise ValueError(f"not one octet-counted syslog message: {payload[:40]!r}")
    return space + 1


def unframe(payload: bytes) -> bytes:
    """The message inside one octet-counted payload (``LEN SP MSG``)."""
    return payload[_frame_split(payload) :]


class SyslogTransport(Transport):
    """RFC 5424 messages octet-counted over TCP or TLS, or one per UDP datagram.

    A message over ``max_message_bytes`` is refused for good (counted as
    rejected): a receiver would cut it, and rsyslog loses the framing of
    everything after a frame beyond its imtcp ``maxFrameSize``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        protocol: str,
        tls: ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
        send_timeout: float = 10.0,
        max_message_bytes: int | None = None,
    ) -> None:
        self.host, self.port, self.protocol = host, port, protocol
        self.address = f"{host}:{port}"
        self.tls = tls
        self.connect_timeout, self.send_timeout = connect_timeout, send_timeout
        self.max_message_bytes = max_message_bytes or (
            DEFAULT_MAX_DATAGRAM if protocol == "udp" else DEFAULT_MAX_FRAME
        )
        # The plumbing is the core's tcp/udp transports'; this one adds the syslog rules.
        self._inner: StreamTransport | DatagramTransport = (
            DatagramTransport(host, port)
            if protocol == "udp"
            else StreamTransport(
                host, port, tls=tls, connect_timeout=connect_timeout, send_timeout=send_timeout
            )
        )

    def open(self) -> None:
        self._inner.open()

    def send(self, batch: Batch) -> Sequence[tuple[Record, str]] | None:
        refused: list[tuple[Record, str]] = []
        kept: list[Record] = []
        limit, udp = self.max_message_bytes, self.protocol == "udp"
        for record in batch:
            payload = record.payload
            try:
                start = _frame_split(payload)
            except ValueError as exc:  # another formatter's bytes: they can never be sent
                refused.append((record, f"not_syslog: {exc}"))
                continue
            if len(payload) - start > limit:
                refused.append(
                    (
                        record,
                        f"too_large: {len(payload) - start} bytes > EVENTLOG_SYSLOG_MAX_MESSAGE_BYTES "
                        f"({limit}); raise it together with the receiver's limit",
                    )
                )
                continue
            # Over a stream the octet-counted frames go back to back; a datagram is one
            # message without its count.
            kept.append(record._replace(payload=payload[start:]) if udp else record)
        if kept:
            refused.extend(self._inner.send(kept) or ())
        return refused

    def close(self) -> None:
        self._inner.close()


def parse_max_message(value: Any) -> int:
    """Bytes of the largest message, 480 (RFC 5426's smallest) or more."""
    number = parse_int(value)
    if number < 480:
        raise ValueError("must be 480 bytes or more (every syslog receiver takes 480)")
    return number


FORMATTER_OPTIONS: tuple[Option, ...] = (
    Option(
        "facility",
        parse_facility,
        FACILITIES["user"],
        "facility name (user, daemon, local0 ... local7) or number 0-23",
    ),
    Option("app_name", parse_app_name, None, "APP-NAME (default: the program's file name)"),
    Option(
        "enterprise_id",
        parse_enterprise_id,
        DOCUMENTATION_PEN,
        "private enterprise number of the SD-IDs (default 32473, RFC 5612's example)",
    ),
    Option("bom", parse_bool, False, "start MSG with a UTF-8 BOM (RFC 5424 MSG-UTF8)"),
)

TRANSPORT_OPTIONS: tuple[Option, ...] = (
    Option(
        "protocol", parse_str, "tcp", "tcp, tls (RFC 5425) or udp (RFC 5426)", choices=("tcp", "tls", "udp")
    ),
    Option(
        "max_message_bytes",
        parse_max_message,
        None,
        "largest message; a bigger event is refused, counted as rejected "
        "(default: 8192 over UDP, 200000 over TCP and TLS)",
    ),
    # protocol=tls is the one switch for TLS: tls_options()'s own "tls" flag is left out.
    *tls_options(switch=False),
    *timeout_options(),
)


def _formatter(context: PluginContext) -> Formatter:
    options = context.options
    return SyslogFormatter(
        facility=options["facility"],
        app_name=options["app_name"],
        enterprise_id=options["enterprise_id"],
        bom=options["bom"],
    )


def _transport(context: PluginContext) -> Transport:
    settings, options = context.settings, context.options
    protocol: str = options["protocol"]
    host: str | None = settings.host
    if not host:
        raise ConfigurationError(
            "transport 'syslog' needs the server: set EVENTLOG_HOST (and EVENTLOG_PORT, "
            "default 514, or 6514 with EVENTLOG_SYSLOG_PROTOCOL=tls)"
        )
    if host.startswith(("/", "unix://")):
        raise ConfigurationError(
            f"EVENTLOG_HOST = {host!r}: transport 'syslog' sends over TCP, TLS or UDP, "
            "not to a Unix socket; give the host name of the syslog server"
        )
    port: int = (
        settings.port if settings.port is not None else (TLS_PORT if protocol == "tls" else DEFAULT_PORT)
    )
    limit = options["max_message_bytes"]
    if protocol == "udp" and limit is not None and limit > MAX_DATAGRAM:
        raise ConfigurationError(
            f"EVENTLOG_SYSLOG_MAX_MESSAGE_BYTES = {limit} is more than a UDP datagram can "
            f"carry ({MAX_DATAGRAM} bytes); lower it, or use EVENTLOG_SYSLOG_PROTOCOL=tcp"
        )
    given = [f"EVENTLOG_SYSLOG_{key.upper()}" for key in ("tls_ca", "tls_cert", "tls_key") if options[key]]
    if given and protocol != "tls":
        # Never send in clear text what the settings say should be encrypted.
        raise ConfigurationError(
            f"{', '.join(given)} set, but EVENTLOG_SYSLOG_PROTOCOL = {protocol!r}: "
            "set EVENTLOG_SYSLOG_PROTOCOL=tls to use TLS, or unset the TLS settings"
        )
    tls = tls_context(options, setting="EVENTLOG_SYSLOG_TLS_*", enabled=protocol == "tls")
    return SyslogTransport(
        host,
        port,
        protocol=protocol,
        tls=tls,
        connect_timeout=options["connect_timeout"],
        send_timeout=options["send_timeout"],
        max_message_bytes=options["max_message_bytes"],
    )


@hookimpl
def eventlog_formatters() -> list[FormatterSpec]:
    return [
        FormatterSpec(
            "syslog",
            _formatter,
            "RFC 5424 syslog messages, octet-counted; event id and fields as structured data",
            FORMATTER_OPTIONS,
            framing="self-delimiting",  # the octet count in front of each message
        )
    ]


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            "syslog",
            _transport,
            "syslog server (rsyslog, syslog-ng): RFC 5424 over TCP, TLS (RFC 5425) or UDP",
            TRANSPORT_OPTIONS,
            formats=SYSLOG_FORMATS,
            default_format=SYSLOG_DEFAULT_FORMAT,
        )
    ]
