"""The ``http`` transport against servers that misbehave, on raw loopback sockets.

What a server sends is input: an answer that drips, a stream of interim
answers, a huge body, an Early Hints before the real answer, a Retry-After
nobody can read.  Each test runs a real server socket on 127.0.0.1 that
answers with exact bytes, and asserts what the send did.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from eventlog._core.errors import SendTimeout, TransportError
from eventlog.plugin.testing import make_records, make_transport
from eventlog_http.transport import MAX_ANSWER_BYTES

pytestmark = pytest.mark.timeout(60)

#: What a script does with one accepted connection, after the request was read.
Script = Callable[[socket.socket], None]


def _read_request(conn: socket.socket) -> bytes:
    """The request's head and its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


class RawServer:
    """Accepts connections one after another; each runs the next script (the last repeats)."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.bodies: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                try:
                    self.bodies.append(_read_request(conn))
                    script = self.scripts.pop(0) if len(self.scripts) > 1 else self.scripts[0]
                    script(conn)
                except OSError:
                    pass  # the client went away: what several scripts expect

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.listener.close()


@contextmanager
def raw_server(*scripts: Script) -> Iterator[RawServer]:
    server = RawServer(*scripts)
    try:
        yield server
    finally:
        server.close()


def _transport(port: int, **options: object):  # type: ignore[no-untyped-def]
    settings = {"transport": "http", "http_url": f"http://127.0.0.1:{port}/", "http_retries": 0}
    settings.update({f"http_{key}": value for key, value in options.items()})
    transport, _formatter = make_transport(settings)
    transport.open()
    return transport


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def test_an_answer_that_drips_is_bounded_by_the_read_timeout_in_all() -> None:
    def drip(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for n in range(8):  # 4 s of header lines, each well inside the 1 s read timeout
            time.sleep(0.5)
            conn.sendall(b"X-Drip: %d\r\n" % n)
        conn.sendall(b"Content-Length: 0\r\n\r\n")

    with raw_server(drip) as server:
        transport = _transport(server.port, read_timeout=1)
        with pytest.raises(SendTimeout):
            transport.send(make_records(3))
        transport.close()


def test_a_stream_of_100_continue_is_bounded_by_the_read_timeout() -> None:
    def continues(conn: socket.socket) -> None:
        for _ in range(15):  # 3 s of interim answers
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(0.2)
        conn.sendall(OK)

    with raw_server(continues) as server:
        transport = _transport(server.port, read_timeout=1)
        with pytest.raises(SendTimeout):
            transport.send(make_records(3))
        transport.close()


def test_103_early_hints_before_the_200_is_not_the_answer() -> None:
    def hints(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        conn.sendall(OK)

    records = make_records(3)
    with raw_server(hints) as server:
        transport = _transport(server.port)
        assert not transport.send(records)  # delivered: nothing refused
        transport.close()
    assert [line.count(b'"id"') for line in server.bodies[0].splitlines() if line] == [1, 1, 1]
    assert all(record.id.encode() in server.bodies[0] for record in records)


def test_a_huge_answer_body_is_read_only_up_to_the_bound_and_the_connection_dropped() -> None:
    size = 64 << 20
    written: list[int] = []

    def huge(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block, sent = b"x" * 65536, 0
        try:
            while sent < size:
                sent += conn.send(block)
        finally:
            written.append(sent)

    with raw_server(huge, lambda conn: conn.sendall(OK)) as server:
        transport = _transport(server.port)
        assert not transport.send(make_records(2))  # a 2xx: delivered
        assert not transport.send(make_records(2))  # on a new connection
        transport.close()
    assert len(server.bodies) == 2
    # The client closed after MAX_ANSWER_BYTES: the server could not write all 64 MiB.
    assert written and MAX_ANSWER_BYTES < written[0] < size


def test_an_unreadable_retry_after_is_ignored_not_a_transport_bug() -> None:
    digits = b"9" * 5000

    def busy(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 503 Busy\r\nRetry-After: " + digits + b"\r\nContent-Length: 4\r\n\r\nbusy")

    with raw_server(busy) as server:
        transport = _transport(server.port)
        with pytest.raises(TransportError) as caught:
            transport.send(make_records(1))
        transport.close()
    assert caught.value.retryable is True
    assert caught.value.retry_after is None
    assert "503" in str(caught.value)
