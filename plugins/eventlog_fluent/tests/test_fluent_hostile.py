"""The ``fluent`` transport against servers that answer wrongly, on raw loopback sockets.

What a server sends back is input: an ack of the wrong shape or a message
larger than any answer is a retryable ConnectError (the batch is sent again),
never a TypeError or msgpack's BufferFull, which the engine would count as a
bug in the transport and set the batch aside.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest

from eventlog._core.errors import ConnectError
from eventlog.plugin.testing import make_records, make_transport
from eventlog_fluent.msgpack_format import MsgpackFormatter

pytestmark = pytest.mark.timeout(60)


@contextmanager
def answering(answer: Callable[[Any], bytes]) -> Iterator[int]:
    """A server that reads one Forward message and writes ``answer(message)``; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            unpacker = msgpack.Unpacker(raw=False)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                unpacker.feed(data)
                for message in unpacker:
                    try:
                        conn.sendall(answer(message))
                        conn.recv(1)  # until the client closes
                    except OSError:
                        pass  # the client gave up on the answer: what the test expects
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()
        thread.join(10)


def _send(port: int) -> None:
    settings = {"transport": "fluent", "host": "127.0.0.1", "port": port, "fluent_ack_timeout": 5}
    transport, _ = make_transport(settings)
    records = make_records(2, MsgpackFormatter())
    try:
        transport.send(records)
    finally:
        transport.close()


def test_an_ack_of_the_wrong_shape_is_a_retryable_connect_error() -> None:
    ack_list = lambda message: msgpack.packb({"ack": [message[2]["chunk"]]})  # noqa: E731
    with answering(ack_list) as port, pytest.raises(ConnectError) as caught:
        _send(port)
    assert caught.value.retryable
    assert "sent an unexpected message" in str(caught.value)


def test_an_answer_over_one_mib_is_a_retryable_connect_error() -> None:
    huge = lambda message: msgpack.packb({"ack": "x" * (2 << 20)})  # noqa: E731
    with answering(huge) as port, pytest.raises(ConnectError) as caught:
        _send(port)
    assert caught.value.retryable
    assert "sent a ack that cannot be read (BufferFull" in str(caught.value)
