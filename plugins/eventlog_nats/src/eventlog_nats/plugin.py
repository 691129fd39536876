"""Hook implementations of eventlog-nats (registered through the entry point group 'eventlog').

Transport ``nats``; every option is read as ``EVENTLOG_NATS_<NAME>`` or
``configure(nats_<name>=...)`` and checked when the pipeline is configured,
without connecting (the stream is looked up by the first ``open``).
"""

from __future__ import annotations

import re
from typing import Any

from eventlog.plugin import (
    ALL_FRAMINGS,
    Option,
    TransportSpec,
    hookimpl,
    parse_path,
    parse_positive_seconds,
    parse_str,
    parser,
)
from eventlog.plugin.net import tls_options
from eventlog_nats.transport import NATS_PORT, NatsConfig, NatsTransport, parse_servers

#: A subject to publish to: dot-separated tokens, no wildcards, no spaces.
_SUBJECT = re.compile(r"^[^\s.*>]+(\.[^\s.*>]+)*$")
#: A stream name: no spaces, dots, wildcards or path separators (nats-server's rule).
_STREAM = re.compile(r"^[^\s.*>/\\]+$")


@parser(takes="text", allowed="a NATS subject to publish to: app.events (no spaces, no * or >)")
def parse_subject(value: Any) -> str:
    """A NATS subject to publish to: ``app.events`` (no spaces, no ``*`` or ``>``)."""
    subject = str(value).strip()
    if not _SUBJECT.match(subject):
        raise ValueError(
            "a subject is dot-separated tokens without spaces or wildcards, such as 'app.events'"
        )
    return subject


@parser(takes="text", allowed="a JetStream stream name: no spaces, dots, *, > or slashes")
def parse_stream(value: Any) -> str:
    """A JetStream stream name: no spaces, dots, ``*``, ``>`` or slashes."""
    name = str(value).strip()
    if not _STREAM.match(name):
        raise ValueError("a stream name has no spaces, '.', '*', '>', '/' or '\\', such as 'EVENTS'")
    return name


#: A timeout: more than 0 seconds (the core's parser, shared by every plugin).
parse_timeout = parse_positive_seconds


OPTIONS: tuple[Option, ...] = (
    Option(
        "servers",
        parse_servers,
        None,
        "server URLs, comma-separated (a cluster: list several): nats://127.0.0.1:4222, tls://...",
    ),
    Option("subject", parse_subject, "eventlog", "subject of every event (subject_mode action: the prefix)"),
    Option(
        "subject_mode",
        parse_str,
        "fixed",
        "fixed: every event on the subject; action: on '<subject>.<event action>'",
        choices=("fixed", "action"),
    ),
    Option(
        "stream",
        parse_stream,
        None,
        "the JetStream stream expected to store the events (default: the one capturing the subject)",
    ),
    Option(
        "ack_timeout", parse_timeout, 10.0, "seconds to wait for the acks of a batch before sending it again"
    ),
    Option("connect_timeout", parse_timeout, 5.0, "seconds to wait for a connection to a server"),
    Option("user", parse_str, None, "user name"),
    Option("password", parse_str, None, "password of that user", secret=True),
    Option("token", parse_str, None, "authentication token", secret=True),
    Option("nkey_seed", parse_path, None, "file holding the user's NKey seed (SU...)"),
    Option("creds", parse_path, None, "user credentials file (JWT and NKey seed, from nsc)"),
    *tls_options(),
)


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            "nats",
            NatsTransport.from_context,
            "NATS JetStream: acknowledged publishes, deduplicated by event id (Nats-Msg-Id)",
            OPTIONS,
            carries=ALL_FRAMINGS,  # one message per event: any format's payload as it is
        )
    ]


__all__ = ["NATS_PORT", "OPTIONS", "NatsConfig", "NatsTransport", "parse_servers", "parse_subject"]
