"""Transports ``tcp``, ``udp``, ``logstash`` and ``console``."""

from __future__ import annotations

import math
import socket
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from eventlog._config.contracts import ALL_FRAMINGS, PluginContext, Transport, TransportSpec
from eventlog._config.hookspecs import hookimpl
from eventlog._core.errors import ConfigurationError, ConnectError, SendTimeout
from eventlog._core.options import Option, parse_port, parse_str
from eventlog._records.batch import Batch, EncodedBatch, Record
from eventlog.plugin.net import (
    LINGER_SECONDS,
    close_stream,
    connect_stream,
    peer_closed,
    send_all,
    timeout_options,
    tls_context,
    tls_options,
)

#: Largest UDP payload over IPv4.
MAX_DATAGRAM = 65_507
#: Seconds before a shutdown's deadline by which a close stops lingering in the worker.
CLOSE_MARGIN = 0.05


def _address(context: PluginContext, transport: str, default_port: int | None) -> tuple[str, int]:
    host = context.settings.host
    port = context.settings.port if context.settings.port is not None else default_port
    if not host:
        raise ConfigurationError(
            f"transport {transport!r} needs a host: set EVENTLOG_HOST (or configure(host=...))"
        )
    if port is None and not (host.startswith("/") or host.startswith("unix://")):
        raise ConfigurationError(
            f"transport {transport!r} needs a port: set EVENTLOG_PORT (or configure(port=...))"
        )
    return host, port or 0


class StreamTransport(Transport):
    """Newline-delimited (or self-delimiting) payloads over TCP, TLS or a Unix socket."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        send_timeout: float,
    ) -> None:
        self.host, self.port = host, port
        self.tls = tls
        self.connect_timeout, self.send_timeout = connect_timeout, send_timeout
        self.address = host if host.startswith(("/", "unix://")) else f"{host}:{port}"
        self.sock: socket.socket | None = None

    def open(self) -> None:
        self.close()
        self.sock = connect_stream(
            self.host,
            self.port,
            tls=self.tls,
            connect_timeout=self.time_left(self.connect_timeout),  # never past a shutdown's deadline
            send_timeout=self.send_timeout,
        )

    def send(self, batch: Batch) -> None:
        if self.sock is None or peer_closed(self.sock):
            self.open()
        assert self.sock is not None
        try:
            chunks = [batch.body] if type(batch) is EncodedBatch else [r.payload for r in batch]
            send_all(self.sock, chunks, self.address)
        except ConnectError:
            self.close()
            raise
        except Exception:
            # A half-written stream cannot be resumed: start a new connection next time.
            self.close()
            raise

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                # Done a little before a shutdown's deadline: a worker still here at the
                # deadline is taken for stuck in a send.  close_stream's closer does the rest.
                linger = min(LINGER_SECONDS, self.time_left(math.inf) - CLOSE_MARGIN)
            except SendTimeout:
                linger = 0.0  # the deadline passed
            close_stream(sock, linger)


class DatagramTransport(Transport):
    """One UDP datagram per event."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self.target: Any = None

    def open(self) -> None:
        self.close()
        try:
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
            self.sock = socket.socket(info[0], socket.SOCK_DGRAM)
            self.target = info[4]
        except OSError as exc:
            raise ConnectError(f"cannot resolve {self.host}:{self.port}: {exc}") from None

    def send(self, batch: Batch) -> Sequence[tuple[Record, str]] | None:
        if self.sock is None:
            self.open()
        assert self.sock is not None
        refused: list[tuple[Record, str]] = []
        for record in batch:
            if len(record.payload) > MAX_DATAGRAM:
                refused.append((record, f"too_large: {len(record.payload)} bytes > UDP's {MAX_DATAGRAM}"))
                continue
            try:
                self.sock.sendto(record.payload, self.target)
            except OSError as exc:
                raise ConnectError(f"UDP send to {self.host}:{self.port} failed: {exc}") from None
        return refused

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class ConsoleTransport(Transport):
    """JSON lines on standard error: the default when no host is configured."""

    def open(self) -> None:
        pass

    def send(self, batch: Batch) -> None:
        stream = sys.stderr
        stream.write("".join(r.payload.decode("utf-8", "backslashreplace") for r in batch))
        stream.flush()

    def close(self) -> None:
        pass


def _stream(context: PluginContext, name: str, default_port: int | None) -> StreamTransport:
    host, port = _address(context, name, default_port)
    if host.startswith(("/", "unix://")) and context.options["tls"] and context.options["tls_verify"]:
        raise ConfigurationError(
            f"EVENTLOG_{name.upper()}_TLS over the Unix socket {host!r} has no host name to verify; "
            f"set EVENTLOG_{name.upper()}_TLS_VERIFY=false or connect over TCP"
        )
    return StreamTransport(
        host,
        port,
        tls=tls_context(context.options, setting=f"EVENTLOG_{name.upper()}_TLS_*"),
        connect_timeout=context.options["connect_timeout"],
        send_timeout=context.options["send_timeout"],
    )


def _tcp(context: PluginContext) -> Transport:
    return _stream(context, "tcp", None)


def _udp(context: PluginContext) -> Transport:
    return DatagramTransport(*_address(context, "udp", None))


LOGSTASH_PORT = 5959


def _logstash(context: PluginContext) -> Transport:
    if context.options["protocol"] == "udp":
        if context.options["tls"]:
            raise ConfigurationError(
                "EVENTLOG_LOGSTASH_PROTOCOL = 'udp' cannot be used with EVENTLOG_LOGSTASH_TLS; "
                "use protocol tcp for TLS"
            )
        return DatagramTransport(*_address(context, "logstash", LOGSTASH_PORT))
    return _stream(context, "logstash", LOGSTASH_PORT)


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    stream_options = (*tls_options(), *timeout_options())
    return [
        # A raw byte stream: the listener splits lines, or messages of a self-delimiting
        # format it speaks (capnp-packed, msgpack).  Unframed payloads would run together.
        TransportSpec(
            "tcp",
            _tcp,
            "any TCP listener (TLS optional)",
            stream_options,
            carries=frozenset({"lines", "self-delimiting"}),
        ),
        # One datagram per event frames every payload, whatever its format.
        TransportSpec("udp", _udp, "any UDP listener, one datagram per event", carries=ALL_FRAMINGS),
        # Logstash's json_lines codec reads lines, over TCP and UDP alike.
        TransportSpec(
            "logstash",
            _logstash,
            "Logstash tcp/udp input with the json_lines codec",
            (
                Option("protocol", parse_str, "tcp", "tcp or udp", choices=("tcp", "udp")),
                *stream_options,
            ),
            carries=frozenset({"lines"}),
        ),
        # Decoded as UTF-8 text for a terminal.
        TransportSpec(
            "console",
            ConsoleTransport.from_context,
            "JSON lines on stderr (default without a host)",
            carries=frozenset({"lines"}),
        ),
    ]


__all__ = ["ConsoleTransport", "DatagramTransport", "StreamTransport", "parse_port"]
