"""Transport ``fluent``: Fluentd's Forward protocol v1 over TCP, TLS or a Unix socket.

Each batch goes as one message per tag (and more when it is larger than
``max_message_bytes``), in the mode chosen by ``mode``: PackedForward (the
default), Compressed PackedForward or Forward, for servers that read only
Forward's array of entries.  With ``require_ack_response`` every message carries
a ``chunk`` id and :meth:`FluentTransport.send` returns only when the server
has acknowledged every chunk; otherwise it raises a retryable error and the
engine sends the whole batch again (at-least-once: a duplicate has the same
event ``id``).  With a shared key, each connection starts with the
HELO / PING / PONG handshake.  A connection the server closed while idle is
found closed before the next batch goes out, and replaced.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from eventlog.plugin import (
    AuthError,
    Batch,
    ConfigurationError,
    ConnectError,
    PluginContext,
    Record,
    SecretMask,
    SendTimeout,
    Transport,
    TransportError,
)
from eventlog.plugin.net import connect_stream, reading_peer, send_all, tls_context, wait_readable
from eventlog_fluent import forward
from eventlog_fluent.tags import action_tag

#: Where configure-time notices go (the deprecated setting), under the plugin's own name.
log = logging.getLogger(__name__)

#: Seconds a new connection without a shared key and without acks waits for an unexpected HELO.
HELO_WAIT = 0.1
#: Fluentd's and Fluent Bit's default ``forward`` port.
FORWARD_PORT = 24224
#: gzip level of Compressed PackedForward (mode ``compressed``).
GZIP_LEVEL = forward.GZIP_LEVEL


@dataclass(frozen=True)
class FluentConfig:
    """Validated settings of one ``fluent`` transport (options: :mod:`eventlog_fluent.plugin`)."""

    host: str
    port: int
    tag: str
    tag_by_action: bool = False
    #: How batches travel: ``packed``, ``compressed`` or ``forward`` (:data:`forward.MODES`).
    mode: str = "packed"
    require_ack: bool = True
    ack_timeout: float = 30.0
    max_message_bytes: int = 4 << 20
    # Kept out of repr(): the shared key and the password.
    credentials: forward.Credentials | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = None
    connect_timeout: float = 5.0
    send_timeout: float = 10.0
    #: Where actions changed to make a tag are counted (the pipeline's conversions).
    conversions: MutableMapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_context(cls, context: PluginContext) -> FluentConfig:
        """Check the settings and the ``fluent`` options together (no I/O but the TLS files)."""
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
        mode: str = options["mode"]
        if options["compressed"] is not None:
            if settings.raw("fluent_mode") is not None:
                raise ConfigurationError(
                    "both EVENTLOG_FLUENT_COMPRESSED (deprecated) and EVENTLOG_FLUENT_MODE are set: "
                    "remove EVENTLOG_FLUENT_COMPRESSED; EVENTLOG_FLUENT_MODE=compressed replaces "
                    "its true, packed its false"
                )
            mode = "compressed" if options["compressed"] else "packed"
            log.warning(
                "EVENTLOG_FLUENT_COMPRESSED is deprecated and goes in eventlog-fluent 0.2; it is "
                "taken as EVENTLOG_FLUENT_MODE=%s: set that instead",
                mode,
            )
        tls = tls_context(options, setting="EVENTLOG_FLUENT_TLS_*")
        credentials = None
        if options["shared_key"] is not None:
            credentials = forward.Credentials(
                shared_key=options["shared_key"],
                hostname=options["self_hostname"] or socket.gethostname(),
                username=options["username"],
                password=options["password"],
            )
        return cls(
            host,
            port,
            tag=options["tag"],
            tag_by_action=options["tag_mode"] == "action",
            mode=mode,
            require_ack=options["require_ack_response"],
            ack_timeout=options["ack_timeout"],
            max_message_bytes=options["max_message_bytes"],
            credentials=credentials,
            tls=tls,
            connect_timeout=options["connect_timeout"],
            send_timeout=options["send_timeout"],
            conversions=context.conversions,
        )


class FluentTransport(Transport):
    """A client connection to one Fluentd / Fluent Bit ``forward`` input."""

    def __init__(self, config: FluentConfig) -> None:
        self.config = config
        host, port = config.host, config.port
        self.address = host if host.startswith(("/", "unix://")) else f"{host}:{port}"
        credentials = config.credentials
        # Every error this transport raises passes through it: a server's refusal may quote
        # what we sent, and the password or key must not reach a log line.
        self.mask = SecretMask(
            (credentials.shared_key, credentials.password) if credentials is not None else ()
        )
        self.sock: socket.socket | None = None
        self.keepalive = True
        self._unpacker = self._new_unpacker()

    @classmethod
    def from_context(cls, context: PluginContext) -> FluentTransport:
        """The spec's factory: :meth:`FluentConfig.from_context`, then the transport."""
        return cls(FluentConfig.from_context(context))

    @staticmethod
    def _new_unpacker() -> msgpack.Unpacker:
        # A server's str fields may hold binary nonces; keep their bytes intact.
        return msgpack.Unpacker(raw=False, unicode_errors="surrogateescape", max_buffer_size=1 << 20)

    # ------------------------------------------------------------ connection

    def open(self) -> None:
        """Connect and, with a shared key, authenticate.  Raises ConnectError or AuthError."""
        try:
            self._open()
        except TransportError as exc:
            self.mask.scrub(exc)
            raise

    def _open(self) -> None:
        self.close()
        self.sock = connect_stream(
            self.config.host,
            self.config.port,
            tls=self.config.tls,
            connect_timeout=self.config.connect_timeout,
            send_timeout=self.config.send_timeout,
        )
        self._unpacker = self._new_unpacker()
        self.keepalive = True
        try:
            if self.config.credentials is not None:
                self._handshake(self.config.credentials)
            elif not self.config.require_ack:
                self._expect_no_helo()
        except TransportError:
            self.close()
            raise

    def _expect_no_helo(self) -> None:
        """Refuse a server that starts a handshake we have no key for.

        Without acks nothing else would tell: the server drops the message we
        send and closes.  It sends HELO as soon as it accepts, so a short look
        suffices; with acks the HELO shows up in place of the ack instead.
        """
        if self._readable(HELO_WAIT) and not self._usable():
            raise ConnectError(f"{self.address} closed the connection right after accepting it")

    def _handshake(self, credentials: forward.Credentials) -> None:
        deadline = time.monotonic() + self.config.connect_timeout
        try:
            helo = forward.parse_helo(self._read(deadline, "HELO"))
        except SendTimeout:
            raise AuthError(
                f"{self.address} did not start the shared-key handshake (no HELO within "
                f"{self.config.connect_timeout}s): it does not use authentication, so unset "
                "EVENTLOG_FLUENT_SHARED_KEY, or enable <security> on the server"
            ) from None
        except ValueError as exc:
            raise AuthError(f"{self.address} broke the handshake: {exc}") from None
        salt = forward.new_salt()
        try:
            message = forward.ping(helo, credentials, salt)
        except ValueError:
            raise AuthError(
                f"{self.address} asks for a user name and password: set "
                "EVENTLOG_FLUENT_USERNAME and EVENTLOG_FLUENT_PASSWORD"
            ) from None
        self._write([message])
        try:
            pong = self._read(deadline, "PONG")
        except ConnectError:
            # Fluentd closes without a PONG for some refusals.
            raise AuthError(
                f"{self.address} closed the connection during authentication; check "
                "EVENTLOG_FLUENT_SHARED_KEY (and the user name and password)"
            ) from None
        try:
            forward.check_pong(pong, helo, credentials, salt)
        except PermissionError as exc:
            raise AuthError(
                f"{self.address} refused authentication: {exc}; check EVENTLOG_FLUENT_SHARED_KEY"
                + (" and EVENTLOG_FLUENT_USERNAME / _PASSWORD" if helo.auth_salt else "")
            ) from None
        except ValueError as exc:
            raise AuthError(f"{self.address} broke the handshake: {exc}") from None
        self.keepalive = helo.keepalive

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # ------------------------------------------------------------ sending

    def send(self, batch: Batch) -> Sequence[tuple[Record, str]] | None:
        try:
            if self.sock is None or not self._usable():
                self._open()
        except TransportError as exc:
            self.mask.scrub(exc)
            raise
        messages, chunks, refused = self._messages(batch)
        try:
            self._write(messages)
            if chunks:
                self._await_acks(chunks)
        except TransportError as exc:
            # A half-written message or a missing ack: the stream cannot be trusted any more.
            self.close()
            self.mask.scrub(exc)
            raise
        if not self.keepalive:
            self.close()  # the server's HELO asked for short connections
        return refused

    def _messages(self, batch: Batch) -> tuple[list[bytes], set[str], list[tuple[Record, str]]]:
        """The messages of a batch: per tag (in order of appearance), each at most max_message_bytes.

        Also returns the chunk ids to wait for, and the events refused because
        one alone is larger than a message may be.
        """
        groups: dict[str, list[Record]] = {}
        if self.config.tag_by_action:
            prefix, conversions = self.config.tag, self.config.conversions
            for record in batch:
                tag, changed = action_tag(prefix, record.action)  # only tags the tag check takes
                if changed:
                    conversions["fluent_tag"] = conversions.get("fluent_tag", 0) + 1
                groups.setdefault(tag, []).append(record)
        else:
            groups[self.config.tag] = list(batch)
        messages: list[bytes] = []
        chunks: set[str] = set()
        refused: list[tuple[Record, str]] = []

        def add(tag: str, entries: list[tuple[int, bytes]]) -> None:
            chunk = forward.new_chunk_id() if self.config.require_ack else None
            if chunk is not None:
                chunks.add(chunk)
            stream = forward.event_stream(entries)
            messages.append(forward.message(self.config.mode, tag, stream, len(entries), chunk=chunk))

        for tag, records in groups.items():
            # What a message may spend on entries: the tag and option take the rest.
            overhead = forward.message_overhead(self.config.mode, tag, chunk=self.config.require_ack)
            limit = self.config.max_message_bytes - overhead
            entries: list[tuple[int, bytes]] = []
            size = 0
            for record in records:
                entry_size = forward.ENTRY_HEAD_BYTES + len(record.payload)
                if entry_size > limit:
                    refused.append(
                        (
                            record,
                            f"too_large: a message of {overhead + entry_size} bytes > "
                            f"EVENTLOG_FLUENT_MAX_MESSAGE_BYTES ({self.config.max_message_bytes})",
                        )
                    )
                    continue
                if size + entry_size > limit and entries:
                    add(tag, entries)
                    entries, size = [], 0
                entries.append((record.time_ns, record.payload))
                size += entry_size
            if entries:
                add(tag, entries)
        return messages, chunks, refused

    def _await_acks(self, chunks: set[str]) -> None:
        deadline = time.monotonic() + self.config.ack_timeout
        waiting = set(chunks)
        while waiting:
            try:
                message = self._read(deadline, "ack")
            except SendTimeout:
                raise SendTimeout(
                    f"{self.address} did not acknowledge {len(waiting)} of {len(chunks)} "
                    f"chunks within {self.config.ack_timeout}s (EVENTLOG_FLUENT_ACK_TIMEOUT); "
                    "they are sent again"
                ) from None
            ack = message.get("ack") if isinstance(message, dict) else None
            if isinstance(ack, str):
                # An ack we no longer wait for (from an earlier, failed try) is ignored.
                waiting.discard(ack)
            else:
                self._unexpected(message)

    # ------------------------------------------------------------ socket helpers

    def _write(self, messages: list[bytes]) -> None:
        assert self.sock is not None
        send_all(self.sock, messages, self.address)

    def _read(self, deadline: float, what: str) -> Any:
        """The next msgpack message from the server, waiting until ``deadline``."""
        assert self.sock is not None
        unpacker = self._unpacker
        while True:
            with reading_peer(self.address, f"a {what}"):  # not msgpack, or not ours
                try:
                    return unpacker.unpack()
                except msgpack.OutOfData:
                    pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SendTimeout(f"no {what} from {self.address}")
            try:
                self.sock.settimeout(remaining)
                data = self.sock.recv(65536)
            except TimeoutError:
                raise SendTimeout(f"no {what} from {self.address}") from None
            except OSError as exc:
                raise ConnectError(
                    f"connection to {self.address} failed while waiting for {what}: {exc}"
                ) from None
            finally:
                if self.sock is not None:
                    self.sock.settimeout(self.config.send_timeout)
            if not data:
                raise ConnectError(f"{self.address} closed the connection before the {what}")
            with reading_peer(self.address, f"a {what}"):
                unpacker.feed(data)  # BufferFull past 1 MiB: no answer of a server is that big

    def _usable(self) -> bool:
        """False when the idle connection was closed by the server; reads what it sent.

        Like :func:`eventlog.plugin.net.peer_closed`, but the bytes are kept and
        parsed: between our messages a server only closes, or sends a HELO
        when it wants authentication that we were not configured for.
        """
        sock = self.sock
        assert sock is not None
        try:
            if not self._readable(0.0):
                return True
            sock.settimeout(0.0)
            try:
                data = sock.recv(65536)
            finally:
                sock.settimeout(self.config.send_timeout)
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except (OSError, ValueError):
            return False
        if not data:
            return False
        with reading_peer(self.address, "a message between batches"):
            self._unpacker.feed(data)
            for message in self._unpacker:
                if not isinstance(message, dict):  # a late ack is harmless
                    self._unexpected(message)
        return True

    def _readable(self, timeout: float) -> bool:
        """Whether the server sent something (TLS may hold decrypted bytes the socket does not)."""
        sock = self.sock
        assert sock is not None
        if isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
            return True
        return wait_readable(sock, timeout)

    def _unexpected(self, message: Any) -> None:
        self.close()
        if forward.is_helo(message):
            raise AuthError(
                f"{self.address} asks for shared-key authentication (it sent HELO): set "
                "EVENTLOG_FLUENT_SHARED_KEY to the server's shared_key"
            )
        raise ConnectError(f"{self.address} sent an unexpected message: {forward.describe(message)}")
