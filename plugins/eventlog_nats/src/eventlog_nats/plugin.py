"""Hook implementations of eventlog-nats (registered through the entry point group 'eventlog').

Transport ``nats``; every option is read as ``EVENTLOG_NATS_<NAME>`` or
``configure(nats_<name>=...)`` and checked when the pipeline is configured,
without connecting (the stream is looked up by the first ``open``).
"""

from __future__ import annotations

import importlib.util
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from eventlog.config import parse_list, parse_path, parse_positive_seconds, parse_str
from eventlog.contracts import ALL_FRAMINGS, Option, PluginContext, Transport, TransportSpec
from eventlog.errors import ConfigurationError
from eventlog.hookspecs import hookimpl
from eventlog.plugin.net import tls_context, tls_options
from eventlog_nats.transport import NatsConfig, NatsTransport

#: The NATS client port.
NATS_PORT = 4222
#: A subject to publish to: dot-separated tokens, no wildcards, no spaces.
_SUBJECT = re.compile(r"^[^\s.*>]+(\.[^\s.*>]+)*$")
#: A stream name: no spaces, dots, wildcards or path separators (nats-server's rule).
_STREAM = re.compile(r"^[^\s.*>/\\]+$")


def parse_servers(value: Any) -> tuple[str, ...]:
    """Server URLs, comma-separated (or a list in code): ``nats://host:4222``, ``tls://...``.

    A bare ``host`` or ``host:port`` means ``nats://host:port`` (port 4222 by default).
    """
    servers = []
    for number, item in enumerate(parse_list(value), 1):  # the core's list rules and errors
        text = item if "://" in item else f"nats://{item}"
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("nats", "tls"):
            raise ValueError(f"server {number} must start with nats:// or tls://")
        if not parts.hostname:
            raise ValueError(f"server {number} has no host name")
        try:
            port = parts.port or NATS_PORT
        except ValueError:
            raise ValueError(f"server {number} has an invalid port") from None
        if parts.username or parts.password:
            raise ValueError(
                f"server {number} carries credentials: set EVENTLOG_NATS_USER / _PASSWORD "
                "or _TOKEN instead (kept out of logs)"
            )
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        servers.append(f"{parts.scheme}://{host}:{port}")
    if not servers:
        raise ValueError("lists no server")
    return tuple(servers)


def parse_subject(value: Any) -> str:
    """A NATS subject to publish to: ``app.events`` (no spaces, no ``*`` or ``>``)."""
    subject = str(value).strip()
    if not _SUBJECT.match(subject):
        raise ValueError(
            "a subject is dot-separated tokens without spaces or wildcards, such as 'app.events'"
        )
    return subject


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


def _read_secret_file(path: str, setting: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except OSError as exc:
        raise ConfigurationError(f"{setting} = {path!r}: cannot read it: {exc.strerror}") from None


def _require_nkeys(setting: str) -> None:
    if importlib.util.find_spec("nkeys") is None:  # nats-py signs the server's nonce with it
        raise ConfigurationError(f"{setting} needs the nkeys package: pip install eventlog-nats[nkeys]")


def build_config(options: Mapping[str, Any], host: str | None, port: int | None) -> NatsConfig:
    """Check the options together and turn them into a :class:`NatsConfig` (no I/O but files)."""
    servers = options["servers"]
    if servers is None:
        if not host:
            raise ConfigurationError(
                "transport 'nats' needs a server: set EVENTLOG_NATS_SERVERS (e.g. "
                "nats://127.0.0.1:4222, several for a cluster) or EVENTLOG_HOST and EVENTLOG_PORT"
            )
        servers = parse_servers(f"{host}:{port or NATS_PORT}")
    given = [name for name in ("user", "token", "nkey_seed", "creds") if options[name] is not None]
    if len(given) > 1:
        names = " and ".join(f"EVENTLOG_NATS_{name.upper()}" for name in given)
        raise ConfigurationError(f"{names} are both set: choose one way to authenticate")
    if options["password"] is not None and options["user"] is None:
        raise ConfigurationError("EVENTLOG_NATS_PASSWORD is set without EVENTLOG_NATS_USER")
    seed = None
    if options["nkey_seed"] is not None:
        _require_nkeys("EVENTLOG_NATS_NKEY_SEED")
        seed = _read_secret_file(options["nkey_seed"], "EVENTLOG_NATS_NKEY_SEED")
        if not seed.startswith("SU"):
            raise ConfigurationError(
                f"EVENTLOG_NATS_NKEY_SEED = {options['nkey_seed']!r} does not hold a user seed "
                "(a line starting with SU, as 'nk -gen user' writes)"
            )
    if options["creds"] is not None:
        _require_nkeys("EVENTLOG_NATS_CREDS")
        text = _read_secret_file(options["creds"], "EVENTLOG_NATS_CREDS")
        if "BEGIN NATS USER JWT" not in text or "BEGIN USER NKEY SEED" not in text:
            raise ConfigurationError(
                f"EVENTLOG_NATS_CREDS = {options['creds']!r} is not a credentials file "
                "(a user JWT and NKey seed, as 'nsc generate creds' writes)"
            )
    tls_wanted = options["tls"] or any(s.startswith("tls://") for s in servers)
    tls = tls_context(options, setting="EVENTLOG_NATS_TLS_*", enabled=tls_wanted)
    return NatsConfig(
        servers=servers,
        subject=options["subject"],
        subject_by_action=options["subject_mode"] == "action",
        stream=options["stream"],
        user=options["user"],
        password=options["password"],
        token=options["token"],
        nkey_seed=seed,
        creds=options["creds"],
        tls=tls,
        connect_timeout=options["connect_timeout"],
        ack_timeout=options["ack_timeout"],
    )


def _nats(context: PluginContext) -> Transport:
    settings = context.settings
    return NatsTransport(build_config(context.options, settings.host, settings.port))


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            "nats",
            _nats,
            "NATS JetStream: acknowledged publishes, deduplicated by event id (Nats-Msg-Id)",
            OPTIONS,
            carries=ALL_FRAMINGS,  # one message per event: any format's payload as it is
        )
    ]


__all__ = ["OPTIONS", "build_config", "parse_servers", "parse_subject"]
