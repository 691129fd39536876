"""Network helpers for transport authors: connect, TLS from options, send, notice dead peers.

Part of the author SDK (:mod:`eventlog.plugin`): the built-in ``tcp``,
``logstash``, ``udp`` and ``syslog`` transports and the plugins (``fluent``,
``http``, ``nats``, third parties') use it, so that every transport names its
TLS options alike, builds its TLS context alike, maps socket errors to the
same :class:`~eventlog.plugin.TransportError` family with the same words, and
says what to do about a certificate that does not verify.

Stream transports (TCP, TLS, Unix sockets)::

    from eventlog.plugin.net import (
        connect_stream, peer_closed, send_all, timeout_options, tls_context, tls_options,
    )

    options = (*tls_options(), *timeout_options())  # the TransportSpec's options
    # in the factory: None unless EVENTLOG_MYPLUGIN_TLS is on
    tls = tls_context(context.options, setting="EVENTLOG_MYPLUGIN_TLS_*")
    sock = connect_stream(host, port, tls=tls, connect_timeout=5, send_timeout=10)
    if peer_closed(sock):  # before each send: the peer may have gone while we were idle
        ...
    send_all(sock, [payload], f"{host}:{port}")
    close_stream(sock)  # not sock.close(): what was sent still arrives

Datagram transports (UDP)::

    sock = open_datagram(host, port, send_timeout=1)
    send_datagram(sock, payload, f"{host}:{port}")

Every function raises :class:`~eventlog.plugin.ConnectError`,
:class:`~eventlog.plugin.SendTimeout` or :class:`~eventlog.plugin.RejectedError`
(UDP's oversized datagram) with the address in the message, never a bare
``OSError``.

What a peer sends back (acks, answers, handshakes) is input, not code: parse it
inside :func:`reading_peer`, so that an answer of the wrong shape, too big or
unreadable becomes a retryable :class:`~eventlog.plugin.ConnectError` instead of
a ``TypeError`` the engine must count as a bug in the transport::

    with reading_peer(address, "an ack"):
        acked = message["ack"]
"""

from __future__ import annotations

import contextlib

# Imported now, not on the worker's first connect: a fork while a thread imports it leaves
# its module lock held in the child, where every host name then fails as "unknown encoding".
import encodings.idna  # noqa: F401
import errno
import fcntl
import ipaddress
import os
import re
import select
import socket
import ssl
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from eventlog._core.errors import ConfigurationError, ConnectError, RejectedError, SendTimeout, TransportError
from eventlog._core.options import Option, parse_bool, parse_path, parse_seconds

__all__ = [
    "LINGER_SECONDS",
    "MAX_DATAGRAM_BYTES",
    "certificate_names",
    "close_stream",
    "connect_stream",
    "describe_tls_error",
    "make_tls_context",
    "open_datagram",
    "peer_closed",
    "reading_peer",
    "send_all",
    "send_datagram",
    "timeout_options",
    "tls_context",
    "tls_options",
    "wait_readable",
]

#: The largest UDP payload over IPv4 (65535 - 8 byte UDP header - 20 byte IP header).
MAX_DATAGRAM_BYTES = 65_507

# The settings a context from make_tls_context() was made from, so that connect_stream's
# messages can name them ("set EVENTLOG_FLUENT_TLS_CA ...") without a parameter per call.
_SETTINGS: weakref.WeakKeyDictionary[ssl.SSLContext, str] = weakref.WeakKeyDictionary()

# OpenSSL's X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code) we explain.
_NOT_YET_VALID, _EXPIRED = 9, 10
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})  # no issuer, self-signed, unknown local issuer
_NAME_MISMATCH = frozenset({62, 64})  # host name, IP address
_SSL_SOURCE_LINE = re.compile(r" \(_ssl\.c:\d+\)$")


def tls_options(default_enabled: bool = False, *, switch: bool = True) -> tuple[Option, ...]:
    """The TLS options every TLS-capable transport offers, with the same names.

    ``tls`` (on/off), ``tls_ca`` (CA bundle; default: the system's CAs),
    ``tls_cert`` and ``tls_key`` (client certificate for mutual TLS),
    ``tls_verify`` (verify the certificate and host name; default on).
    ``switch=False`` leaves ``tls`` out, for a transport where something else
    turns TLS on (syslog's ``protocol=tls``, an ``https://`` URL).  Turn the
    values into a context with :func:`tls_context`.
    """
    enable = (Option("tls", parse_bool, default_enabled, "use TLS"),) if switch else ()
    return (
        *enable,
        Option("tls_ca", parse_path, None, "CA bundle to verify the server (default: system CAs)"),
        Option("tls_cert", parse_path, None, "client certificate (PEM) for mutual TLS"),
        Option("tls_key", parse_path, None, "private key (PEM) of the client certificate"),
        Option("tls_verify", parse_bool, True, "verify the server certificate and host name"),
    )


def tls_context(
    options: Mapping[str, Any], *, setting: str, enabled: bool | None = None
) -> ssl.SSLContext | None:
    """The client TLS context the :func:`tls_options` values ask for; None when TLS is off.

    :param options: the transport's parsed options (``context.options``).
    :param setting: how users name these settings, for messages, such as
        ``"EVENTLOG_MYPLUGIN_TLS_*"`` (see :func:`make_tls_context`).
    :param enabled: whether TLS is on, for a transport that decides it
        otherwise (its ``tls_options(switch=False)`` has no ``tls`` option);
        None reads the ``tls`` option.

    Call it in the transport's factory: a CA, certificate or key file that
    cannot be loaded raises :class:`ConfigurationError` from ``configure()``.
    """
    if not (options["tls"] if enabled is None else enabled):
        return None
    return make_tls_context(
        ca=options["tls_ca"],
        cert=options["tls_cert"],
        key=options["tls_key"],
        verify=options["tls_verify"],
        setting=setting,
    )


def timeout_options(connect: float = 5.0, send: float = 10.0) -> tuple[Option, ...]:
    """``connect_timeout`` and ``send_timeout`` options, in seconds, with these defaults."""
    return (
        Option("connect_timeout", parse_seconds, connect, "seconds to wait for a connection"),
        Option("send_timeout", parse_seconds, send, "seconds a send may block"),
    )


def make_tls_context(
    *, ca: str | None, cert: str | None, key: str | None, verify: bool, setting: str
) -> ssl.SSLContext:
    """A client TLS context; certificate and host name verification stay on unless disabled.

    :param ca: PEM file of the CA(s) to trust; None trusts the system's CAs.
    :param cert: PEM file of a client certificate (mutual TLS), or None.
    :param key: PEM file of that certificate's private key (None: it is in ``cert``).
    :param verify: False turns off certificate and host name checks (tests only).
    :param setting: how the user names these settings, for messages, such as
        ``"EVENTLOG_FLUENT_TLS_*"`` (a trailing ``*`` becomes ``CA`` where the
        CA setting is meant).

    Raises :class:`ConfigurationError` naming ``setting`` and the files when
    one cannot be loaded, so a wrong path fails ``configure()``, not a send.
    """
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
    _SETTINGS[context] = setting
    return context


def _ca_setting(context: ssl.SSLContext | None) -> str:
    setting = _SETTINGS.get(context) if context is not None else None
    if setting is None:
        return "the transport's tls_ca option"
    return setting[:-1] + "CA" if setting.endswith("*") else setting


def connect_stream(
    host: str,
    port: int | None,
    *,
    tls: ssl.SSLContext | None,
    connect_timeout: float,
    send_timeout: float,
) -> socket.socket:
    """Connect over TCP (``host``, ``port``) or a Unix socket (``unix:///path`` or a path).

    With ``tls`` (from :func:`make_tls_context`) the handshake happens here,
    verifying the certificate against ``host``.  TCP sockets get
    ``TCP_NODELAY`` and keepalive; the returned socket's timeout is
    ``send_timeout``.  Raises :class:`ConnectError` with the address in the
    message; a certificate that does not verify is explained by
    :func:`describe_tls_error`.
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
            peek = None
            if tls is not None and unix_path is None and port is not None:
                context = tls

                def peek() -> list[str] | None:
                    return certificate_names(host, port, context=context, timeout=connect_timeout)

            reason = describe_tls_error(exc, host, ca_setting=_ca_setting(tls), names=peek)
            raise ConnectError(f"TLS handshake with {address} failed: {reason}") from None
        if isinstance(exc, TimeoutError):
            raise ConnectError(f"connecting to {address} timed out after {connect_timeout}s") from None
        if isinstance(exc, OSError):
            raise ConnectError(f"cannot connect to {address}: {exc.strerror or exc}") from None
        raise


def describe_tls_error(
    error: ssl.SSLError,
    host: str,
    *,
    ca_setting: str,
    names: Callable[[], list[str] | None] | None = None,
) -> str:
    """What went wrong in a TLS handshake with ``host``, and what to do, in one sentence.

    A certificate that names another host is told apart from one signed by
    an unknown CA (only then does the CA setting, ``ca_setting``, help), an
    expired one and one not valid yet.  ``names`` is called only for a name
    mismatch, to show the names the certificate does hold (see
    :func:`certificate_names`).
    """
    if not isinstance(error, ssl.SSLCertVerificationError):
        text = _SSL_SOURCE_LINE.sub("", str(error))  # "(_ssl.c:1006)" tells a user nothing
        if error.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return f"{text} (does the server speak TLS on this port?)"
        return text
    code, message = error.verify_code, error.verify_message
    detail = f"({error.reason}: {message})"
    if code in _NAME_MISMATCH:
        found = names() if names is not None else None
        if found:
            listed = ", ".join(found)
            return (
                f"host name mismatch: the server's certificate names {listed}, not {host}; "
                f"connect to a name it lists, or give the server a certificate for {host}"
            )
        return (
            f"host name mismatch: the server's certificate does not name {host} {detail}; "
            f"connect to a name it lists, or give the server a certificate for {host}"
        )
    if code in _UNTRUSTED:
        return (
            f"the server's certificate is not signed by a CA we trust {detail}; "
            f"set {ca_setting} to the CA certificate that signed it"
        )
    if code == _EXPIRED:
        return f"the server's certificate has expired {detail}; the server needs a new one"
    if code == _NOT_YET_VALID:
        return (
            f"the server's certificate is not valid yet {detail}; "
            "check the clocks of this host and of the server"
        )
    return f"the server's certificate does not verify {detail}"


def certificate_names(
    host: str,
    port: int,
    *,
    context: ssl.SSLContext | None = None,
    cafile: str | None = None,
    timeout: float = 5.0,
) -> list[str] | None:
    """The names (subject alternative names, else the common name) on ``host:port``'s certificate.

    A second, short connection whose handshake verifies the certificate's
    chain (against the system CAs, ``cafile`` and the CAs ``context``
    trusts) but not its name: used to explain a name mismatch.  None when
    the certificate cannot be read that way.
    """
    peek = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    peek.check_hostname = False  # the name is what we want to read, not check
    peek.verify_mode = ssl.CERT_REQUIRED  # only a verified certificate is decoded for us
    try:
        peek.load_default_certs()
        if cafile:
            peek.load_verify_locations(cafile=cafile)
        if context is not None:
            trusted = context.get_ca_certs(binary_form=True)
            if trusted:
                peek.load_verify_locations(cadata=b"".join(trusted))
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            peek.wrap_socket(raw, server_hostname=host) as sock,
        ):
            cert = sock.getpeercert()
    except (OSError, ValueError):
        return None
    if not cert:
        return None
    alt_names: Any = cert.get("subjectAltName", ())
    names = [
        _address_text(str(value)) if kind == "IP Address" else str(value)
        for kind, value in alt_names
        if kind in ("DNS", "IP Address")
    ]
    if not names:
        subject: Any = cert.get("subject", ())
        names = [str(value) for rdn in subject for name, value in rdn if name == "commonName"]
    return names or None


def _address_text(value: str) -> str:
    """An IP address as people write it (OpenSSL spells ::1 as 0:0:0:0:0:0:0:1)."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value.strip()


#: How much of a parser's complaint goes into a ConnectError's message.
_PEER_ERROR_CHARS = 200


@contextmanager
def reading_peer(address: str, what: str) -> Iterator[None]:
    """Inside this block, a failure to read what ``address`` sent is the peer's, not a bug.

    Any exception but a :class:`~eventlog.plugin.TransportError` (a parser's
    ``ValueError``, a ``TypeError`` from an answer of the wrong shape, a client
    library's own error for an oversized message) becomes a retryable
    :class:`~eventlog.plugin.ConnectError` saying that ``address`` sent ``what``
    that cannot be read: the engine drops the connection and sends the batch
    again, instead of setting it aside as a transport bug.
    """
    try:
        yield
    except TransportError:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if len(reason) > _PEER_ERROR_CHARS:
            reason = reason[: _PEER_ERROR_CHARS - 3] + "..."
        raise ConnectError(f"{address} sent {what} that cannot be read ({reason})") from None


#: How many reads :func:`peer_closed` spends on bytes a peer wrote before giving up looking.
_PEER_BYTES_READS = 16


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` has bytes (or an EOF, or an error) to read within ``timeout`` seconds.

    ``select.select`` refuses a descriptor numbered 1024 or more (ValueError), which a
    server with many connections open hands out: poll() has no such limit.
    """
    if not hasattr(select, "poll"):  # Windows: select() takes any socket there
        return bool(select.select([sock], [], [], timeout)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed the connection (or reset it).

    Log receivers are not expected to write to us: what they wrote is read
    and dropped, so an EOF behind it is seen.  Checking before each send turns
    a silent loss (the first write after the peer closed succeeds locally)
    into a reconnect.  Never waits.
    """
    try:
        if not wait_readable(sock, 0):
            return False
        # Readable may only mean TLS records (TLS 1.3 session tickets), and bytes a peer
        # wrote (a banner, an error line) are not ours to read: an EOF may wait behind them.
        return _drain(sock)
    except (OSError, ValueError):
        return True


#: The longest a connection whose peer writes to us is kept after close_stream(), for the
#: peer to take in what we sent: in the caller up to its ``linger``, the rest in the background.
LINGER_SECONDS = 2.0


def close_stream(sock: socket.socket, linger: float = LINGER_SECONDS) -> None:
    """Close a stream connection so that what was sent on it still arrives.

    Closing a socket with bytes the peer wrote still unread resets the
    connection (RFC 2525), and the kernel then discards what it had not put on
    the wire yet, though ``send`` had returned: events counted as sent are
    lost.  So what the peer wrote is read and dropped first; a peer that keeps
    writing gets a lingering close, as web servers do: our side is shut
    (FIN after the data), and its bytes are read and dropped until it has
    taken in all of ours or it closes, for up to :data:`LINGER_SECONDS`.  The
    caller waits at most ``linger`` of that (0: not at all, as past a shutdown's
    deadline); a background thread finishes the rest, and waits there for the peer
    to close.  A peer that writes nothing is closed at once (the kernel still
    delivers the rest).
    """
    try:
        if _drain(sock) or (sock not in _peer_wrote and not wait_readable(sock, 0)):
            sock.close()  # the peer closed already, or it never writes: nothing to reset on
            return
        sock.shutdown(socket.SHUT_WR)
        start = time.monotonic()
        end = start + min(max(0.0, linger), LINGER_SECONDS)
        while not _taken_in(sock):
            left = end - time.monotonic()
            if left <= 0:
                if linger < LINGER_SECONDS:
                    # The caller cannot wait longer: closing now would reset the connection
                    # and lose what the peer has not taken in yet.  The closer goes on, with
                    # the descriptor its own (a caller's later sock.close() reaches nothing).
                    _closer.add(socket.socket(fileno=sock.detach()), start + LINGER_SECONDS)
                    return
                break
            wait_readable(sock, min(0.05, left))
    except (OSError, ValueError):
        pass  # reset already: nothing to save
    _finish(sock)


def _taken_in(sock: socket.socket) -> bool:
    """A half-closed connection is done with: the peer closed, or it acknowledged all of ours."""
    return _drain(sock) or not _unsent(sock)


def _finish(sock: socket.socket) -> None:
    """Read the peer's last bytes (once ours are in, a reset costs nothing) and close."""
    try:
        _drain(sock)
    except (OSError, ValueError):
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Closer:
    """Finishes, on a daemon thread, the lingering closes their callers could not wait for.

    A pipeline shut down past its deadline closes at once: without this, the reset
    lost what its peer had not taken in, though flush() had said it was sent.  At
    interpreter exit the thread ends with the process (docs/delivery.md says what that costs).
    """

    #: How often a waiting connection is looked at (reading what the peer wrote meanwhile).
    INTERVAL = 0.02

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ends: dict[socket.socket, float] = {}
        self.thread: threading.Thread | None = None

    def add(self, sock: socket.socket, end: float) -> None:
        with self.lock:
            self.ends[sock] = end
            if self.thread is not None:
                return
            self.thread = threading.Thread(target=self._run, name="eventlog-close-stream", daemon=True)
            try:
                self.thread.start()
                return
            except RuntimeError:  # the interpreter is exiting: no new thread
                self.thread = None
                del self.ends[sock]
        _finish(sock)

    def holds(self, fileno: int) -> bool:
        """Whether the connection on descriptor ``fileno`` still waits here for its peer."""
        with self.lock:
            return any(sock.fileno() == fileno for sock in self.ends)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug here must not leave connections open for ever
            with self.lock:
                self.thread = None
                left, self.ends = list(self.ends), {}
            for sock in left:
                _finish(sock)

    def _loop(self) -> None:
        while True:
            with self.lock:
                if not self.ends:
                    self.thread = None  # under the lock: an add() from now on starts a thread
                    return
                waiting = list(self.ends.items())
            now = time.monotonic()
            for sock, end in waiting:
                # Here, unlike in the caller, until the peer closes (it read all of ours and
                # saw our FIN): a peer that acknowledged bytes may not have read them yet, and
                # a reset discards them on its side too.  Nobody waits for this thread.
                try:
                    done = now >= end or _drain(sock)
                except (OSError, ValueError):
                    done = True  # reset already: nothing more to wait for
                if done:
                    with self.lock:
                        self.ends.pop(sock, None)
                    _finish(sock)
            time.sleep(self.INTERVAL)

    def after_fork_in_child(self) -> None:
        # The thread is not in the child; the parent still closes these connections: the
        # child drops its copies of the descriptors (no FIN: the parent holds them open).
        self.lock = threading.Lock()
        self.thread = None
        socks, self.ends = list(self.ends), {}
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()


_closer = _Closer()
os.register_at_fork(after_in_child=_closer.after_fork_in_child)


def _unsent(sock: socket.socket) -> int:
    """Bytes of ours the peer's kernel has not acknowledged yet (Linux's SIOCOUTQ; else 0)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0])
    except (OSError, ValueError, AttributeError):
        return 0  # not known here: close after the first drain, as before


#: Connections whose peer wrote to us: it may write again just as we close (see close_stream).
_peer_wrote: weakref.WeakSet[socket.socket] = weakref.WeakSet()

#: Linux's SIOCOUTQ (TIOCOUTQ): bytes in a socket's send queue not yet acknowledged.
_SIOCOUTQ = 0x5411


def _drain(sock: socket.socket) -> bool:
    """Read and drop what the peer wrote, a bounded amount, without waiting; True at its EOF.

    Non-blocking for the reads, not ``MSG_DONTWAIT``: on a socket with a timeout Python
    waits for data up to that timeout before it reads, whatever the flags (a peer that had
    written once then made every send wait the send timeout, and look closed).
    """
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        for _ in range(_PEER_BYTES_READS):
            if sock.recv(65536) == b"":
                return True
            _peer_wrote.add(sock)
    except (BlockingIOError, ssl.SSLWantReadError):
        pass  # nothing more to read: the peer is still there
    finally:
        sock.settimeout(timeout)
    return False


def send_all(sock: socket.socket, chunks: Sequence[bytes], address: str) -> None:
    """Write every chunk or raise a retryable :class:`ConnectError` / :class:`SendTimeout`.

    ``address`` is what the messages call the peer (``host:port``).
    """
    try:
        sock.sendall(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    except TimeoutError:
        raise SendTimeout(f"sending to {address} timed out (the peer is not reading)") from None
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.ECONNRESET):
            raise ConnectError(f"connection to {address} was closed by the peer") from None
        raise ConnectError(f"sending to {address} failed: {exc.strerror or exc}") from None


def open_datagram(host: str, port: int, *, send_timeout: float | None = None) -> socket.socket:
    """A UDP socket connected to ``host:port`` (the name is resolved once, here).

    Connected, so that the kernel tells us when nothing listens: after a
    datagram is refused (ICMP port unreachable) a later :func:`send_datagram`
    raises :class:`ConnectError`.  Raises :class:`ConnectError` when the name
    does not resolve.
    """
    address = f"{host}:{port}"
    try:
        family, kind, proto, _, target = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConnectError(f"cannot resolve {address}: {reason}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.connect(target)
        sock.settimeout(send_timeout)
    except OSError as exc:
        sock.close()
        raise ConnectError(f"cannot open a UDP socket to {address}: {exc.strerror or exc}") from None
    return sock


def send_datagram(sock: socket.socket, payload: bytes, address: str) -> None:
    """Send one datagram on a socket from :func:`open_datagram`.

    Raises :class:`RejectedError` (not retryable) for a payload too large for
    one datagram, :class:`ConnectError` when the peer refused an earlier
    datagram or the network is unreachable, :class:`SendTimeout` when the
    socket's buffer stays full.  A datagram that was sent may still be lost.
    """
    if len(payload) > MAX_DATAGRAM_BYTES:
        raise RejectedError(
            f"a datagram of {len(payload)} bytes is larger than UDP allows ({MAX_DATAGRAM_BYTES})"
        )
    try:
        sock.send(payload)
    except TimeoutError:
        raise SendTimeout(f"sending to {address} timed out (the socket buffer stayed full)") from None
    except OSError as exc:
        if exc.errno == errno.EMSGSIZE:
            raise RejectedError(
                f"a datagram of {len(payload)} bytes is too large for the path to {address}"
            ) from None
        if exc.errno == errno.ECONNREFUSED:
            raise ConnectError(
                f"{address} refused a datagram (port unreachable): nothing listens there"
            ) from None
        raise ConnectError(f"sending to {address} failed: {exc.strerror or exc}") from None
