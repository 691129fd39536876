"""Hook implementations of eventlog-fluent (registered through the entry point group 'eventlog').

Formatter ``msgpack`` and transport ``fluent``; every option is read as
``EVENTLOG_FLUENT_<NAME>`` or ``configure(fluent_<name>=...)`` and checked
when the pipeline is configured (:meth:`FluentConfig.from_context`).
"""

from __future__ import annotations

from eventlog.plugin import (
    FormatterSpec,
    Option,
    TransportSpec,
    hookimpl,
    parse_bool,
    parse_positive_int,
    parse_seconds,
    parse_str,
    parser,
)
from eventlog.plugin.net import timeout_options, tls_options
from eventlog_fluent.forward import MODES
from eventlog_fluent.msgpack_format import MsgpackFormatter
from eventlog_fluent.tags import parse_tag
from eventlog_fluent.transport import FORWARD_PORT, GZIP_LEVEL, FluentConfig, FluentTransport

__all__ = ["FLUENT_OPTIONS", "FORWARD_PORT", "GZIP_LEVEL", "FluentConfig", "FluentTransport"]


@parser(takes="text", allowed="a host name, not empty")
def _parse_hostname(value: object) -> str:
    name = str(value).strip()
    if not name:
        raise ValueError("must not be empty")
    return name


@parser(takes="text", allowed="gzip or none, as 0.1.0 took it (also true or false)")
def _parse_compressed(value: object) -> bool:
    """0.1.0's values (``gzip``, ``none``), or a boolean: whether to compress."""
    text = str(value).strip().lower()
    if text in ("gzip", "none"):
        return text == "gzip"
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError("expected gzip or none") from None


FLUENT_OPTIONS: tuple[Option, ...] = (
    Option("tag", parse_tag, "eventlog", "Fluent tag of every event (tag_mode action: the prefix)"),
    Option(
        "tag_mode",
        parse_str,
        "fixed",
        "fixed: every event gets the tag; action: the tag is '<tag>.<event action>'",
        choices=("fixed", "action"),
    ),
    # packed by default: Fluentd and Fluent Bit read it without decoding records.  forward is
    # for servers that read only Forward mode's array of entries (such as fluentbit-server-py).
    Option(
        "mode",
        parse_str,
        "packed",
        "how batches travel: packed (PackedForward), compressed (gzip Compressed PackedForward) "
        "or forward (Forward mode: an array of entries)",
        choices=MODES,
    ),
    # 0.1.0's setting, honoured for one release so an upgrade keeps the operator's choice.
    Option(
        "compressed",
        _parse_compressed,
        None,
        "deprecated (goes in 0.2): gzip is mode compressed, none mode packed; not with mode",
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
    # default) and closes the connection: a batch that large would be resent forever.  Set it
    # to the receiver's buffer: it bounds the whole message, tag and option included.
    Option(
        "max_message_bytes",
        parse_positive_int,
        4 << 20,
        "largest message in bytes, before gzip (bigger batches are split; an event that cannot "
        "fit is refused)",
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


@hookimpl
def eventlog_formatters() -> list[FormatterSpec]:
    return [
        FormatterSpec(
            "msgpack",
            MsgpackFormatter.from_context,
            "msgpack map with the wire field names (the Fluent Forward record)",
            framing="self-delimiting",
        )
    ]


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            "fluent",
            FluentTransport.from_context,
            "Fluentd / Fluent Bit forward input: (Compressed)PackedForward or Forward, acks, shared key, TLS",
            FLUENT_OPTIONS,
            # The Forward protocol's records are msgpack maps: no other format will do.
            formats=frozenset({"msgpack"}),
            default_format="msgpack",
        )
    ]
