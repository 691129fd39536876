"""eventlog.plugin.net against real listeners on loopback: TLS messages, datagrams, live TLS peers."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog._builtin.transports import StreamTransport
from eventlog._core.errors import ConnectError, RejectedError
from eventlog.plugin import net
from eventlog.plugin.net import (
    MAX_DATAGRAM_BYTES,
    certificate_names,
    connect_stream,
    make_tls_context,
    open_datagram,
    peer_closed,
    send_datagram,
    wait_readable,
)
from eventlog.plugin.testing import (
    DatagramReceiver,
    LineReceiver,
    LocalCA,
    make_local_ca,
    make_records,
)

pytestmark = pytest.mark.timeout(60)


def test_tls_session_tickets_do_not_look_like_a_closed_peer(tmp_path: Path) -> None:
    ca = make_local_ca(tmp_path)
    server = ca.server_context()
    # TLS 1.3: the server sends session tickets after the handshake, unasked.
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    with LineReceiver(tls=server) as receiver:
        client = make_tls_context(ca=str(ca.ca_cert), cert=None, key=None, verify=True, setting="test")
        transport = StreamTransport("127.0.0.1", receiver.port, tls=client, connect_timeout=5, send_timeout=5)
        transport.open()
        for sent in (2, 4, 6):
            transport.send(make_records(2))
            assert receiver.wait_for(sent)
        transport.close()
        assert len(receiver.lines) == 6
        assert receiver.connections == 1  # no reconnect between batches


# ---------------------------------------------------------------- TLS failures, explained


def tls_failure(ca: LocalCA, host: str, *, trust: bool = True) -> str:
    """The ConnectError message of a TLS connection to ``host`` (a listener using ``ca``)."""
    with LineReceiver(tls=ca.server_context()) as receiver:
        context = make_tls_context(
            ca=str(ca.ca_cert) if trust else None,
            cert=None,
            key=None,
            verify=True,
            setting="EVENTLOG_TCP_TLS_*",
        )
        with pytest.raises(ConnectError) as caught:
            connect_stream(host, receiver.port, tls=context, connect_timeout=5, send_timeout=5)
        return str(caught.value).replace(f":{receiver.port} ", ":PORT ")


def test_a_certificate_for_another_name_says_so_and_shows_both(tmp_path: Path) -> None:
    ca = make_local_ca(tmp_path, ["localhost"])
    assert tls_failure(ca, "127.0.0.1") == (
        "TLS handshake with 127.0.0.1:PORT failed: host name mismatch: the server's "
        "certificate names localhost, not 127.0.0.1; connect to a name it lists, or give "
        "the server a certificate for 127.0.0.1"
    )


def test_a_certificate_for_an_address_named_by_host_name_shows_every_name(
    tmp_path: Path,
) -> None:
    ca = make_local_ca(tmp_path, ["127.0.0.1", "logs.example"])
    assert tls_failure(ca, "localhost") == (
        "TLS handshake with localhost:PORT failed: host name mismatch: the server's "
        "certificate names 127.0.0.1, logs.example, not localhost; connect to a name it "
        "lists, or give the server a certificate for localhost"
    )


def test_an_unknown_ca_advises_the_ca_setting(tmp_path: Path) -> None:
    ca = make_local_ca(tmp_path)
    assert tls_failure(ca, "127.0.0.1", trust=False) == (
        "TLS handshake with 127.0.0.1:PORT failed: the server's certificate is not signed "
        "by a CA we trust (CERTIFICATE_VERIFY_FAILED: unable to get local issuer "
        "certificate); set EVENTLOG_TCP_TLS_CA to the CA certificate that signed it"
    )


def test_an_expired_certificate_says_expired(tmp_path: Path) -> None:
    ca = make_local_ca(tmp_path, expired=True)
    assert tls_failure(ca, "127.0.0.1") == (
        "TLS handshake with 127.0.0.1:PORT failed: the server's certificate has expired "
        "(CERTIFICATE_VERIFY_FAILED: certificate has expired); the server needs a new one"
    )


def test_a_server_that_does_not_speak_tls_is_named_as_such() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_in_plain_text() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(1)

    thread = threading.Thread(target=answer_in_plain_text, daemon=True)
    thread.start()
    context = make_tls_context(ca=None, cert=None, key=None, verify=True, setting="test")
    try:
        with pytest.raises(ConnectError) as caught:
            connect_stream("127.0.0.1", port, tls=context, connect_timeout=5, send_timeout=5)
    finally:
        thread.join(10)
        server.close()
    message = str(caught.value)
    assert message.startswith(f"TLS handshake with 127.0.0.1:{port} failed: [SSL: "), message
    assert message.endswith(" (does the server speak TLS on this port?)"), message
    assert "_ssl.c" not in message


def test_certificate_names_reads_the_subject_alternative_names(tmp_path: Path) -> None:
    ca = make_local_ca(tmp_path, ["localhost", "127.0.0.1", "logs.example"])
    with LineReceiver(tls=ca.server_context()) as receiver:
        names = certificate_names("127.0.0.1", receiver.port, cafile=str(ca.ca_cert))
        untrusted = certificate_names("127.0.0.1", receiver.port)
    assert names == ["localhost", "127.0.0.1", "logs.example"]
    assert untrusted is None  # only a certificate whose chain verifies is read


# ---------------------------------------------------------------- datagrams


def test_datagrams_arrive_byte_for_byte() -> None:
    payloads = [b'{"n": 1}\n', b"", b"x" * 60_000]
    with DatagramReceiver() as receiver:
        sock = open_datagram("127.0.0.1", receiver.port, send_timeout=1)
        try:
            for payload in payloads:
                send_datagram(sock, payload, f"127.0.0.1:{receiver.port}")
            assert receiver.wait_for(3)
        finally:
            sock.close()
    assert receiver.datagrams == payloads


def test_a_datagram_larger_than_udp_allows_is_rejected_for_good() -> None:
    with DatagramReceiver() as receiver:
        sock = open_datagram("127.0.0.1", receiver.port)
        try:
            with pytest.raises(RejectedError) as caught:
                send_datagram(sock, b"x" * (MAX_DATAGRAM_BYTES + 1), "here")
        finally:
            sock.close()
    assert not caught.value.retryable
    assert str(caught.value) == "a datagram of 65508 bytes is larger than UDP allows (65507)"


def test_datagrams_to_a_closed_port_are_reported_as_refused() -> None:
    port = closed_udp_port()
    sock = open_datagram("127.0.0.1", port)
    errors: list[str] = []
    try:
        # Loopback answers the first datagram with "port unreachable"; a later send reports it.
        for _ in range(50):
            try:
                send_datagram(sock, b"x", f"127.0.0.1:{port}")
            except ConnectError as exc:
                errors.append(str(exc))
                break
    finally:
        sock.close()
    assert errors == [f"127.0.0.1:{port} refused a datagram (port unreachable): nothing listens there"]


def test_a_name_that_cannot_be_resolved_is_a_connect_error() -> None:
    with pytest.raises(ConnectError, match=r"^cannot resolve a\.\.b:9: "):
        open_datagram("a..b", 9)  # an empty label: refused before any lookup


def closed_udp_port() -> int:
    """A UDP port on 127.0.0.1 where nothing listened a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_peer_that_wrote_something_then_closed_is_seen_as_closed() -> None:
    # A collector that answers (a banner, an error line, garbage) and then goes away:
    # its bytes wait ahead of the EOF, and the next send must reconnect, not write
    # into the dead connection, where the batch is lost though counted as sent.
    server = socket.create_server(("127.0.0.1", 0))
    with server, LineReceiver() as after:
        port = server.getsockname()[1]
        transport = StreamTransport("127.0.0.1", port, tls=None, connect_timeout=5, send_timeout=5)
        transport.open()
        conn, _ = server.accept()
        conn.sendall(b"\x00\xff not a log receiver's business\n")
        conn.close()
        assert transport.sock is not None
        transport.sock.settimeout(5)
        assert transport.sock.recv(1, socket.MSG_PEEK)  # the bytes arrived; the EOF is behind them
        with contextlib.suppress(OSError):
            # Wait (bounded) for the EOF too: one byte past the data blocks until it is there.
            transport.sock.recv(64, socket.MSG_PEEK | socket.MSG_WAITALL)
        assert peer_closed(transport.sock) is True
        transport.port = after.port  # the peer came back elsewhere: the next send reconnects
        transport.send(make_records(3))
        assert after.wait_for(3, timeout=10)
        transport.close()


def test_a_peer_that_wrote_something_and_stays_is_not_taken_for_closed() -> None:
    # Found by the fault run (a peer that writes garbage back): once its bytes were read,
    # peer_closed() waited the whole send timeout for more (a recv with MSG_DONTWAIT still
    # waits on a socket with a timeout) and then said "closed": every send waited, and
    # the connection was dropped with a batch still on its way.
    server = socket.create_server(("127.0.0.1", 0))
    with server:
        transport = StreamTransport(
            "127.0.0.1", server.getsockname()[1], tls=None, connect_timeout=5, send_timeout=5
        )
        transport.open()
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"\x00\xff garbage \r\n{not json\n")
            assert transport.sock is not None
            assert transport.sock.recv(1, socket.MSG_PEEK)  # arrived
            assert peer_closed(transport.sock) is False
            records = make_records(3)
            transport.send(records)  # on the same connection
            transport.close()
            got = _read_to_end(conn)
    assert got == b"".join(record.payload for record in records)


@pytest.mark.parametrize("deadline", ["none", "passed"])
def test_closing_while_a_peer_writes_to_us_still_delivers_what_was_sent(
    deadline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the fault run (a peer that writes garbage back while it reads slowly): close()
    # with the peer's bytes unread makes the kernel reset the connection and discard what it
    # had not put on the wire yet, though send() had returned: events counted as sent never
    # arrived.  Reading what is there just before closing is not enough (more comes in
    # between): the close lingers until the peer has taken in all of ours.  Past a shutdown's
    # deadline (the 30-minute run's fourth finding) the caller does not wait: the lingering
    # goes on in the background, and the bytes still all arrive.  The bound is made 10 s
    # (2 s in use): a slow reader on a loaded machine must not make this test fail.
    monkeypatch.setattr(net, "LINGER_SECONDS", 10.0)
    monkeypatch.setattr("eventlog._builtin.transports.LINGER_SECONDS", 10.0)
    server = socket.create_server(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # most of the batch waits with us
    stop = threading.Event()
    got = bytearray()

    def write_garbage(conn: socket.socket) -> None:
        while not stop.is_set():
            try:
                conn.send(b"\x00\xff garbage \r\n{not json\n" * 50)
            except TimeoutError:
                continue
            except OSError:
                return

    def read_slowly(conn: socket.socket) -> None:
        while True:
            stop.wait(0.002)
            try:
                chunk = conn.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            got.extend(chunk)

    with server:
        transport = StreamTransport(
            "127.0.0.1", server.getsockname()[1], tls=None, connect_timeout=5, send_timeout=5
        )
        transport.open()
        conn, _ = server.accept()
        conn.settimeout(0.05)
        with conn:
            writer = threading.Thread(target=write_garbage, args=(conn,))
            writer.start()
            records = make_records(1000, prefix="x" * 100)
            transport.send(records)  # returns once the kernel took the bytes
            reader = threading.Thread(target=read_slowly, args=(conn,))
            reader.start()
            assert transport.sock is not None
            fileno = transport.sock.fileno()
            if deadline == "passed":
                transport.deadline = time.monotonic() - 1
            transport.close()
            # Past the deadline the caller does not wait: the closer has the connection.
            assert net._closer.holds(fileno) is (deadline == "passed")
            reader.join(30)
            stop.set()
            writer.join(30)
    assert bytes(got) == b"".join(record.payload for record in records)


def _read_to_end(conn: socket.socket) -> bytes:
    """Everything the peer's side reads until EOF (or a reset, which ends it short)."""
    got = bytearray()
    conn.settimeout(10)
    with contextlib.suppress(OSError):
        while chunk := conn.recv(65536):
            got += chunk
    return bytes(got)


@pytest.fixture
def many_open_files() -> Iterator[None]:
    """This process with over 1,024 descriptors open, as a server with many clients has:
    the next socket gets a number select.select() refuses."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_socket_numbered_past_1024_is_watched_like_any_other(many_open_files: None) -> None:
    # The 30-minute fault run of 7 Dec: "filedescriptor out of range in select()". With a
    # peer that stays, peer_closed() said "closed" (a reconnect at every send), and
    # close_stream() closed at once, losing what a peer that writes back had not read.
    server = socket.create_server(("127.0.0.1", 0))
    with server:
        transport = StreamTransport(
            "127.0.0.1", server.getsockname()[1], tls=None, connect_timeout=5, send_timeout=5
        )
        transport.open()
        assert transport.sock is not None and transport.sock.fileno() >= 1024
        conn, _ = server.accept()
        with conn:
            assert peer_closed(transport.sock) is False
            assert wait_readable(transport.sock, 0) is False
            conn.sendall(b"x")
            assert wait_readable(transport.sock, 5) is True
            assert peer_closed(transport.sock) is False  # bytes it wrote, then stays
            records = make_records(3)
            transport.send(records)  # on the same connection: no reconnect
            transport.close()
            got = _read_to_end(conn)
    assert got == b"".join(record.payload for record in records)
