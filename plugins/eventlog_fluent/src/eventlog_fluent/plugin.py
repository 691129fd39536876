"""Hook implementations of eventlog-fluent (registered through the entry point group 'eventlog').

Formatter ``msgpack`` and transport ``fluent``; every option is read as
``EVENTLOG_FLUENT_<NAME>`` or ``configure(fluent_<name>=...)`` and checked
when the pipeline is configured.
"""

from __future__ import annotations

import socket

from eventlog.config import parse_bool, parse_positive_int, parse_seconds, parse_str
from eventlog.contracts import (
    Formatter,
    FormatterSpec,
    Option,
    PluginContext,
    Transport,
    TransportSpec,
)
from eventlog.errors import ConfigurationError
from eventlog.hookspecs import hookimpl
from eventlog.plugin.net import timeout_options, tls_context, tls_options
from eventlog_fluent.forward import Credentials
from eventlog_fluent.msgpack_format import MsgpackFormatter
from eventlog_fluent.transport import FluentTransport

#: Fluentd's and Fluent Bit's default ``forward`` port.
FORWARD_PORT = 24224
#: gzip level of CompressedPackedForward: most of level 9's ratio at a fraction of its cost.
GZIP_LEVEL = 6


def _parse_tag(value: object) -> str:
    tag = str(value).strip()
    if any(ch.isspace() for ch in tag) or tag.startswith(".") or tag.endswith("."):
        raise ValueError("a tag is dot-separated words without spaces, such as 'app.events'")
    return tag


def _parse_hostname(value: object) -> str:
    name = str(value).strip()
    if not name:
        raise ValueError("must not be empty")
    return name


FLUENT_OPTIONS: tuple[Option, ...] = (
    Option("tag", _parse_tag, "eventlog", "Fluent tag of every event (tag_mode action: the prefix)"),
    Option(
        "tag_mode",
        parse_str,
        "fixed",
        "fixed: every event gets the tag; action: the tag is '<tag>.<event action>'",
        choices=("fixed", "action"),
    ),
    Option(
        "compressed",
        parse_str,
        "none",
        "gzip sends CompressedPackedForward messages",
        choices=("none", "gzip"),
    ),
    # On by default: Fluentd's and Fluent Bit's (1.5+) forward inputs answer acks, and
    # without them a broken connection silently loses what the kernel had buffered.
    Option(
        "require_ack_response",
        parse_bool,
        True,
        "wait for the server's ack of every batch and resend what was not acknowledged",
    ),
    Option("ack_timeout", parse_seconds, 30.0, "seconds to wait for an ack before resending"),
    # Fluent Bit's forward input drops a message larger than its Buffer_Max_Size (6 MB by
    # default) and closes the connection: a batch that large would be resent forever.
    Option(
        "max_message_bytes",
        parse_positive_int,
        4 << 20,
        "largest entries stream per message (bigger batches are split; a bigger event is refused)",
    ),
    Option("shared_key", parse_str, None, "shared key of the server's <security>", secret=True),
    Option("username", parse_str, None, "user name, when the server's <security> has users"),
    Option("password", parse_str, None, "password of that user", secret=True),
    Option(
        "self_hostname",
        _parse_hostname,
        None,
        "host name sent in the handshake (default: this machine's name)",
    ),
    *tls_options(),
    *timeout_options(),
)


def _msgpack(_: PluginContext) -> Formatter:
    return MsgpackFormatter()


def _fluent(context: PluginContext) -> Transport:
    settings, options = context.settings, context.options
    host: str | None = settings.host
    if not host:
        raise ConfigurationError(
            "transport 'fluent' needs the server: set EVENTLOG_HOST (a host name, or "
            "unix:///path/to/socket) and EVENTLOG_PORT (default 24224)"
        )
    unix = host.startswith(("/", "unix://"))
    port: int = settings.port if settings.port is not None else FORWARD_PORT
    if options["password"] is not None and options["username"] is None:
        raise ConfigurationError(
            "EVENTLOG_FLUENT_PASSWORD is set but EVENTLOG_FLUENT_USERNAME is not; set both"
        )
    if options["username"] is not None and options["shared_key"] is None:
        raise ConfigurationError(
            "EVENTLOG_FLUENT_USERNAME needs EVENTLOG_FLUENT_SHARED_KEY: Fluentd checks users "
            "only inside the shared-key handshake"
        )
    if not options["tag"] and options["tag_mode"] == "fixed":
        raise ConfigurationError("EVENTLOG_FLUENT_TAG must not be empty with tag_mode 'fixed'")
    if options["ack_timeout"] <= 0:
        raise ConfigurationError(
            f"EVENTLOG_FLUENT_ACK_TIMEOUT = {options['ack_timeout']!r} is invalid: the server "
            "needs time to answer; give it seconds, such as 30"
        )
    if options["tls"] and unix and options["tls_verify"]:
        raise ConfigurationError(
            f"EVENTLOG_HOST = {host!r} is a Unix socket, which has no host name to verify "
            "a certificate against: turn EVENTLOG_FLUENT_TLS off, or set "
            "EVENTLOG_FLUENT_TLS_VERIFY=false"
        )
    tls = tls_context(options, setting="EVENTLOG_FLUENT_TLS_*")
    credentials = None
    if options["shared_key"] is not None:
        credentials = Credentials(
            shared_key=options["shared_key"],
            hostname=options["self_hostname"] or socket.gethostname(),
            username=options["username"],
            password=options["password"],
        )
    return FluentTransport(
        host,
        port,
        tag=options["tag"],
        tag_by_action=options["tag_mode"] == "action",
        gzip_level=GZIP_LEVEL if options["compressed"] == "gzip" else None,
        require_ack=options["require_ack_response"],
        ack_timeout=options["ack_timeout"],
        max_message_bytes=options["max_message_bytes"],
        credentials=credentials,
        tls=tls,
        connect_timeout=options["connect_timeout"],
        send_timeout=options["send_timeout"],
    )


@hookimpl
def eventlog_formatters() -> list[FormatterSpec]:
    return [
        FormatterSpec(
            "msgpack",
            _msgpack,
            "msgpack map with the wire field names (the Fluent Forward record)",
            framing="self-delimiting",
        )
    ]


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            "fluent",
            _fluent,
            "Fluentd / Fluent Bit forward input: PackedForward, acks, shared key, TLS",
            FLUENT_OPTIONS,
            # The Forward protocol's records are msgpack maps: no other format will do.
            formats=frozenset({"msgpack"}),
            default_format="msgpack",
        )
    ]
