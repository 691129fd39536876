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
- PARAM-NAMEs are the keys, reversibly encoded (:func:`sd_name`): ``A-Z a-z 0-9``
  and ``! # $ & ' ( ) * + , - / : ; < > ? @ [ \\ ^ _ ` { | } ~`` stay, any other
  character becomes ``%XX`` per UTF-8 octet (``.`` too: syslog-ng reads a dot in a
  name as nesting).  Two keys never share a name; a name longer than 32 becomes a
  prefix, ``%~`` and a hash, and ``keys@PEN`` maps it back to the key.
- MSG: the message as UTF-8, without a BOM unless ``EVENTLOG_SYSLOG_BOM=true``
  (RFC 5424 6.4 asks for one, but rsyslog keeps it as text in front of the
  message; syslog-ng takes it off).  Control characters but TAB and LF, in MSG
  and in PARAM-VALUEs, become the Unicode control pictures (``\\x01`` -> U+2401),
  counted as ``control_character`` (6.4: avoid them; rsyslog writes NUL as
  ``#000``, syslog-ng as the text ``\\x00``).
- Size: a message over ``EVENTLOG_SYSLOG_MAX_MESSAGE_BYTES`` (default 8192,
  what rsyslog's and syslog-ng's defaults both take) is cut to fit, counted
  as ``truncated``: MSG first, then the longest parameter values.

The formatter writes each message octet-counted, ``LEN SP MSG`` (RFC 6587
3.4.1, RFC 5425 4.3), so payloads stay self-delimiting when concatenated, as
the Formatter contract asks: the ``tcp`` transport and the spool carry them
as they are.  The ``syslog`` transport writes them as they are over TCP and
TLS, and sends each message without its length prefix as one UDP datagram
(RFC 5426).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import sys
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

from eventlog._builtin.formats import iso_millis
from eventlog._builtin.transports import DatagramTransport, StreamTransport
from eventlog._config.contracts import Formatter, FormatterSpec, PluginContext, Transport, TransportSpec
from eventlog._config.hookspecs import hookimpl
from eventlog._core.errors import ConfigurationError
from eventlog._core.options import Option, parse_bool, parse_int, parse_str, parser
from eventlog._records.batch import Batch, Record
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
#: The default largest message: rsyslog's default maxMessageSize (8 KiB) cuts a longer
#: one, and syslog-ng's default log_msg_size (64 KiB) closes the connection on one.
DEFAULT_MAX_MESSAGE = 8192

_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
#: SD-NAME = 1*32PRINTUSASCII except '=', SP, ']' and '"'; '%' is our escape, and
#: syslog-ng reads '.' as nesting: those are written %XX too.
_NOT_SD_NAME = re.compile(r'[^\x21-\x7e]|[=\]"%.]')
#: A name too long once encoded: a prefix, this mark (never in an encoded name) and a hash.
_HASHED = "%~"
#: Control characters MSG should avoid (RFC 5424 6.4), TAB and LF kept: as control pictures.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PICTURES = {**{chr(n): chr(0x2400 + n) for n in range(32)}, "\x7f": "\u2421"}
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


def _escape_octets(match: re.Match[str]) -> str:
    return "".join(f"%{octet:02X}" for octet in match.group().encode("utf-8", "surrogatepass"))


def sd_name(key: str) -> str:
    """A PARAM-NAME for ``key``, distinct for distinct keys (see the module docstring).

    The name is ``key`` with ``= ] " % .``, space and every non-ASCII or control
    character as ``%XX`` (UTF-8 octets); the empty key is ``%``.  Beyond 32
    characters it is the first 20, ``%~`` and 10 hex digits of a hash: the
    formatter then maps it back to the key in ``keys@PEN``.
    """
    name = _NOT_SD_NAME.sub(_escape_octets, key) if key else "%"
    if len(name) <= SD_NAME_MAX:
        return name
    prefix = name[:20]
    cut = prefix.rfind("%", len(prefix) - 2)
    if cut >= 0:  # never half an escape
        prefix = prefix[:cut]
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()
    return f"{prefix}{_HASHED}{digest}"


def original_key(name: str, keys: dict[str, str] | None = None) -> str:
    """The key a PARAM-NAME was made from (``keys``: the ``keys@PEN`` element's params)."""
    if _HASHED in name:
        if keys is None or name not in keys:
            raise ValueError(f"{name!r} is hashed: its key is in the keys@ element")
        return keys[name]
    if name == "%":
        return ""
    return re.sub(
        r"(?:%[0-9A-F]{2})+",
        lambda m: bytes.fromhex(m.group().replace("%", "")).decode("utf-8", "surrogatepass"),
        name,
    )


def sd_value(value: Any) -> str:
    """A PARAM-VALUE with ``\\``, ``"`` and ``]`` escaped (RFC 5424 section 6.3.3)."""
    return (value if type(value) is str else str(value)).translate(_SD_ESCAPES)


@parser(
    takes="number", allowed="a facility name (user, daemon, local0 ... local7, see FACILITIES) or number 0-23"
)
def parse_facility(value: Any) -> int:
    """A facility name (user, daemon, local0 ... local7, see FACILITIES) or number 0-23."""
    text = str(value).strip().lower()
    if text in FACILITIES:
        return FACILITIES[text]
    if text.isdigit() and 0 <= int(text) <= 23:
        return int(text)
    raise ValueError(f"expected a facility name ({', '.join(FACILITIES)}) or a number 0 to 23")


@parser(takes="text", allowed="APP-NAME: 1 to 48 printable US-ASCII characters, no spaces")
def parse_app_name(value: Any) -> str:
    """APP-NAME: 1 to 48 printable US-ASCII characters, no spaces."""
    text = str(value)
    if not text or len(text) > APP_NAME_MAX or _NOT_PRINTUSASCII.search(text):
        raise ValueError(f"an APP-NAME is 1 to {APP_NAME_MAX} printable ASCII characters without spaces")
    return text


@parser(
    takes="text", allowed="a Private Enterprise Number, optionally with sub-identifiers: 32473 or 32473.1"
)
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


def _render(header: str, elements: list[tuple[str, list[tuple[str, str]]]], body: bytes, bom: bool) -> bytes:
    """HEADER, STRUCTURED-DATA (values escaped here) and, when ``body`` is not empty, MSG."""
    parts = [header]
    for sd_id, params in elements:
        parts.append(f"[{sd_id}")
        for name, value in params:
            if '"' in value or "\\" in value or "]" in value:
                value = value.translate(_SD_ESCAPES)
            parts.append(f' {name}="{value}"')
        parts.append("]")
    try:
        head = "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8: kept visible as \udxxx, not lost, and that
        # backslash escaped like any other in a PARAM-VALUE (RFC 5424 6.3.3).
        visible = [
            (
                sd_id,
                [(name, value.encode("utf-8", "backslashreplace").decode("utf-8")) for name, value in params],
            )
            for sd_id, params in elements
        ]
        return _render(header, visible, body, bom)
    if not body:
        return head
    return b"".join((head, b" ", _BOM, body)) if bom else b"".join((head, b" ", body))


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
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
        conversions: MutableMapping[str, int] | None = None,
    ) -> None:
        self.facility = facility
        # Options are checked by parse_app_name; a name given in code is made safe here.
        self.app_name = header_field(app_name, APP_NAME_MAX) if app_name else _program_name()
        self.event_id = f"eventlog@{enterprise_id}"
        self.fields_id = f"fields@{enterprise_id}"
        self.metrics_id = f"metrics@{enterprise_id}"
        self.keys_id = f"keys@{enterprise_id}"
        self.bom = bom
        self.max_message_bytes = max_message_bytes
        #: Where cut messages and replaced control characters are counted (the pipeline's).
        self.conversions: MutableMapping[str, int] = {} if conversions is None else conversions
        # PARAM-NAMEs by key: wire names and field keys repeat from event to event.
        self._names: dict[str, str] = {}

    def _count(self, reason: str) -> None:
        self.conversions[reason] = self.conversions.get(reason, 0) + 1

    def _params(self, items: Iterable[tuple[str, Any]], keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(PARAM-NAME, text) pairs; a hashed name's key goes to ``keys``."""
        names = self._names
        params: list[tuple[str, str]] = []
        hashed: set[str] = set()
        for key, value in items:
            name = names.get(key)
            if name is None:
                name = sd_name(key)
                if len(names) < 10_000:  # bounded: keys may be made up per event
                    names[key] = name
            if _HASHED in name:
                number = 0
                while name in hashed:  # two long keys, one hash: put apart, deterministically
                    number += 1
                    name = sd_name(f"{key}\x00{number}")
                hashed.add(name)
                if all(name != known for known, _ in keys):  # a key in fields and metrics: once
                    keys.append((name, key if key.isprintable() else self._pictures(key)))
            text = value if type(value) is str else str(value)
            # isprintable() first: a C-speed test that is true for almost every value.
            if not text.isprintable() and _CONTROL.search(text):
                text = self._pictures(text)
            params.append((name, text))
        return params

    def _pictures(self, text: str) -> str:
        """``text`` with its control characters (but TAB and LF) as their pictures, counted."""
        self._count("control_character")
        return _CONTROL.sub(lambda m: _PICTURES[m.group()], text)

    def elements(self, wire: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
        """The SD-ELEMENTs of one event: SD-ID and (PARAM-NAME, value) pairs, values unescaped."""
        keys: list[tuple[str, str]] = []
        own = self._params(((k, v) for k, v in wire.items() if k not in _NOT_IN_SD), keys)
        tags = wire.get("tags")
        if tags:
            own.append(("tags", _json_list(tags)))
        elements = [(self.event_id, own)]
        for sd_id, values in ((self.fields_id, wire.get("fields")), (self.metrics_id, wire.get("metrics"))):
            if values:
                elements.append((sd_id, self._params(values.items(), keys)))
        if keys:
            elements.append((self.keys_id, keys))
        return elements

    def message(self, wire: dict[str, Any]) -> bytes:
        """The RFC 5424 message of one event, without the octet count."""
        pri = self.facility * 8 + severity(wire.get("level"))
        host = wire.get("host")
        pid = wire.get("pid")
        header = (
            f"<{pri}>1 {iso_millis(wire['tstamp'])} "
            f"{header_field(host, HOSTNAME_MAX) if host is not None else '-'} "
            f"{self.app_name} "
            f"{header_field(pid, PROCID_MAX) if pid is not None else '-'} "
            f"{header_field(wire['action'], MSGID_MAX)} "
        )
        elements = self.elements(wire)
        text = wire.get("message")
        if text and _CONTROL.search(text):
            text = self._pictures(text)
        body = text.encode("utf-8", "backslashreplace") if text else b""
        message = _render(header, elements, body, self.bom)
        if len(message) <= self.max_message_bytes:
            return message
        return self._fit(header, elements, body)

    def _fit(self, header: str, elements: list[tuple[str, list[tuple[str, str]]]], body: bytes) -> bytes:
        """The message cut to ``max_message_bytes``: MSG first, then the longest values."""
        limit = self.max_message_bytes
        self._count("truncated")
        head = _render(header, elements, b"", False)
        room = limit - len(head) - 1 - (len(_BOM) if self.bom else 0)
        if room > 0:
            # errors="ignore" drops the half character a byte cut may leave at the end.
            return _render(header, elements, body[:room].decode("utf-8", "ignore").encode("utf-8"), self.bom)
        # HEADER and STRUCTURED-DATA alone are too long: cut the longest values (never the id
        # nor a key of keys@), then there is no MSG.
        cuttable = [
            (e, i)
            for e, (sd_id, params) in enumerate(elements)
            for i, (name, _) in enumerate(params)
            if sd_id != self.keys_id and not (e == 0 and name == "id")
        ]
        while len(head) > limit:
            length, e, i = max(((len(elements[e][1][i][1]), e, i) for e, i in cuttable), default=(0, 0, 0))
            if length == 0:
                raise ValueError(
                    f"no syslog message of this event fits EVENTLOG_SYSLOG_MAX_MESSAGE_BYTES ({limit}): "
                    "its header and parameter names alone are longer; raise the limit"
                )
            name, value = elements[e][1][i]
            # A character is 1 to 4 octets (2 when escaped): cut a quarter of what is over,
            # at least one, and look again, so that no more is cut than needed.
            elements[e][1][i] = (name, value[: length - max(1, (len(head) - limit) // 4)])
            head = _render(header, elements, b"", False)
        room = limit - len(head) - 1 - (len(_BOM) if self.bom else 0)
        if room > 0 and body:
            return _render(header, elements, body[:room].decode("utf-8", "ignore").encode("utf-8"), self.bom)
        return head

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

    The formatter cuts messages to ``max_message_bytes``; one that is still
    longer (bytes from elsewhere) is refused for good, counted as rejected:
    a default syslog-ng closes the connection on it, losing what follows.
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
        self.max_message_bytes = max_message_bytes or DEFAULT_MAX_MESSAGE
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


@parser(takes="number", allowed="bytes of the largest message, 480 (RFC 5426's smallest) or more")
def parse_max_message(value: Any) -> int:
    """Bytes of the largest message, 480 (RFC 5426's smallest) or more."""
    number = parse_int(value)
    if number < 480:
        raise ValueError("must be 480 bytes or more (every syslog receiver takes 480)")
    return number


FORMATTER_OPTIONS: tuple[Option, ...] = (
    Option(
        "max_message_bytes",
        parse_max_message,
        DEFAULT_MAX_MESSAGE,
        "largest message; a longer one is cut to fit (MSG first), counted as truncated "
        "(default 8192: what default rsyslog and syslog-ng take)",
    ),
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
        max_message_bytes=options["max_message_bytes"],
        conversions=context.conversions,
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
    formatter = context.formatter
    limit = formatter.max_message_bytes if isinstance(formatter, SyslogFormatter) else DEFAULT_MAX_MESSAGE
    if protocol == "udp" and limit > MAX_DATAGRAM:
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
        max_message_bytes=limit,
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
