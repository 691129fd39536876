"""eventlog.plugin.map_errors: a client library's exceptions onto transport errors, by one table."""

from __future__ import annotations

import json
import socket

import pytest

from eventlog.plugin import (
    ConnectError,
    ErrorRule,
    RejectedError,
    SecretMask,
    SendTimeout,
    TransportError,
    map_errors,
)
from eventlog.plugin.testing import closed_port

RULES: list[ErrorRule] = [
    (TimeoutError, SendTimeout),
    (ConnectionError, ConnectError),
    # A function decides from the exception itself; None passes to the next row.
    (ValueError, lambda exc, reason: RejectedError(reason) if "permanent" in str(exc) else None),
    (ValueError, ConnectError),
]


def test_a_refused_connection_becomes_a_retryable_connect_error_naming_the_peer() -> None:
    port = closed_port()
    with pytest.raises(ConnectError) as caught, map_errors(RULES, f"127.0.0.1:{port}"):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert caught.value.retryable
    assert str(caught.value).startswith(f"127.0.0.1:{port}: ConnectionRefusedError: ")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_a_timeout_on_a_real_socket_becomes_send_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=2)
        client.settimeout(0.05)
        with client, pytest.raises(SendTimeout, match=r"^peer: TimeoutError"), map_errors(RULES, "peer"):
            client.recv(1)  # the server never writes


def test_rows_are_tried_in_order_and_a_function_may_pass() -> None:
    with pytest.raises(RejectedError, match=r"^peer: JSONDecodeError: permanent"), map_errors(RULES, "peer"):
        raise json.JSONDecodeError("permanent", "doc", 0)
    with pytest.raises(ConnectError, match=r"^peer: ValueError: try again"), map_errors(RULES, "peer"):
        raise ValueError("try again")


def test_transport_errors_pass_through_and_unmatched_exceptions_propagate_unchanged() -> None:
    original = SendTimeout("already said")
    with pytest.raises(SendTimeout) as caught, map_errors(RULES, "peer"):
        raise original
    assert caught.value is original
    # No row: the engine counts it as a plugin bug, as before.
    with pytest.raises(KeyError), map_errors(RULES, "peer"):
        raise KeyError("x")


def test_the_message_is_masked_before_it_is_raised() -> None:
    mask = SecretMask(["s3cret-token"])
    with pytest.raises(TransportError) as caught, map_errors(RULES, "http://127.0.0.1/", mask=mask):
        raise ConnectionResetError("server said: bad token s3cret-token")
    assert "s3cret-token" not in str(caught.value)
    assert str(caught.value).startswith("http://127.0.0.1/: ConnectionResetError: server said: bad token ")
