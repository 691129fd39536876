"""Socket plumbing shared by stream transports (TCP, TLS, Unix sockets).

Kept in the core so that plugin transports (Fluent Forward, a third party's)
connect, verify certificates and notice dead peers the same way.
"""

from __future__ import annotations

# Imported now, not on the worker's first connect: a fork while a thread imports it leaves
# its module lock held in the child, where every host name then fails as "unknown encoding".
import encodings.idna  # noqa: F401
import errno
import select
import socket
import ssl
from collections.abc import Sequence

from eventlog.config import parse_bool, parse_path, parse_seconds
from eventlog.interfaces import ConfigurationError, ConnectError, Option, SendTimeout


def tls_options(default_enabled: bool = False) -> tuple[Option, ...]:
    """The TLS options every stream transport offers, with the same names."""
    return (
        Option("tls", parse_bool, default_enabled, "use TLS"),
        Option("tls_ca", parse_path, None, "CA bundle to verify the server (default: system CAs)"),
        Option("tls_cert", parse_path, None, "client certificate (PEM) for mutual TLS"),
        Option("tls_key", parse_path, None, "private key (PEM) of the client certificate"),
        Option("tls_verify", parse_bool, True, "verify the server certificate and host name"),
    )


def timeout_options(connect: float = 5.0, send: float = 10.0) -> tuple[Option, ...]:
    """Connect and send timeouts, in seconds."""
    return (
        Option("connect_timeout", parse_seconds, connect, "seconds to wait for a connection"),
        Option("send_timeout", parse_seconds, send, "seconds a send may block"),
    )


def make_tls_context(
    *, ca: str | None, cert: str | None, key: str | None, verify: bool, setting: str
) -> ssl.SSLContext:
    """A client TLS context; certificate and host name verification stay on unless disabled."""
    try:
        context = ssl.create_default_context(cafile=ca)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"{setting}: cannot load TLS files (ca={ca!r}, cert={cert!r}, key={key!r}): {exc}"
        ) from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect_stream(
    host: str,
    port: int | None,
    *,
    tls: ssl.SSLContext | None,
    connect_timeout: float,
    send_timeout: float,
) -> socket.socket:
    """Connect over TCP (``host``, ``port``) or a Unix socket (``unix:///path`` or a path).

    Raises :class:`ConnectError` with the address in the message.
    """
    unix_path = None
    if host.startswith("unix://"):
        unix_path = host[len("unix://") :]
    elif host.startswith("/"):
        unix_path = host
    address = unix_path or f"{host}:{port}"
    sock: socket.socket | None = None
    try:
        if unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(connect_timeout)
            sock.connect(unix_path)
        else:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=None if unix_path else host)
        sock.settimeout(send_timeout)
        return sock
    except (OSError, ValueError) as exc:
        if sock is not None:
            sock.close()  # never leak the descriptor of a failed attempt
        if isinstance(exc, ssl.SSLError):
            raise ConnectError(f"TLS handshake with {address} failed: {exc}") from None
        if isinstance(exc, TimeoutError):
            raise ConnectError(f"connecting to {address} timed out after {connect_timeout}s") from None
        if isinstance(exc, OSError):
            raise ConnectError(f"cannot connect to {address}: {exc.strerror or exc}") from None
        raise


def peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed the connection (or reset it).

    Log receivers never write to us, so a readable socket means EOF or an
    error.  Checking before each send turns a silent loss (the first write
    after the peer closed succeeds locally) into a reconnect.
    """
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        if isinstance(sock, ssl.SSLSocket):
            # Readable may only mean TLS records (TLS 1.3 session tickets): read without blocking.
            timeout = sock.gettimeout()
            sock.setblocking(False)
            try:
                return sock.recv(1) == b""
            except ssl.SSLWantReadError:
                return False
            finally:
                sock.settimeout(timeout)
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def send_all(sock: socket.socket, chunks: Sequence[bytes], address: str) -> None:
    """Write every chunk or raise a retryable TransportError."""
    try:
        sock.sendall(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    except TimeoutError:
        raise SendTimeout(f"sending to {address} timed out (the peer is not reading)") from None
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.ECONNRESET):
            raise ConnectError(f"connection to {address} was closed by the peer") from None
        raise ConnectError(f"sending to {address} failed: {exc.strerror or exc}") from None
