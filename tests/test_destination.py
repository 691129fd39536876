"""Where events go: host may carry its port, and code decides transport, host and port together.

``configure(host="localhost:5959")`` used to be accepted and to fail at the first
send with ``localhost:5959:5959``; ``configure(host=..., port=...)`` with
``EVENTLOG_TRANSPORT=http`` in the environment sent to HTTP.  Each case runs
against a real TCP listener.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator

import pytest

import eventlog
from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._config import config, selection
from eventlog._core.errors import ConfigurationError
from eventlog._core.options import split_host_port


@pytest.fixture
def reports() -> Iterator[list[str]]:
    """What eventlog's own logger says (it does not propagate), with the once-only memory reset."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep(logging.WARNING)
    own = logging.getLogger("eventlog")
    own.addHandler(handler)
    selection._reported.clear()
    try:
        yield said
    finally:
        own.removeHandler(handler)
        selection._reported.clear()


def _deliver(receiver: LineReceiver, action: str) -> list[str]:
    eventlog.log_event(Event(action, "t", "test"))
    assert eventlog.flush(10)
    assert receiver.wait_for(1, 10)
    return [event["action"] for event in receiver.events()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost", ("localhost", None)),
        ("localhost:5959", ("localhost", 5959)),
        ("10.0.0.7:24224", ("10.0.0.7", 24224)),
        ("::1", ("::1", None)),
        ("[::1]", ("::1", None)),
        ("[::1]:5959", ("::1", 5959)),
        ("fe80::1%eth0", ("fe80::1%eth0", None)),
        ("/run/collector.sock", ("/run/collector.sock", None)),
        ("unix:///run/collector.sock", ("unix:///run/collector.sock", None)),
    ],
)
def test_host_and_port_are_split(text: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost:0", "the port in 'localhost:0' must be a number from 1 to 65535"),
        ("localhost:x", "the port in 'localhost:x' must be a number from 1 to 65535"),
        ("localhost:", "the port in 'localhost:' must be a number from 1 to 65535"),
        ("a:1:2", "'a:1:2' is neither host:port nor an IPv6 address (with a port: [::1]:5959)"),
        ("[::1", "an IPv6 address in brackets needs its closing ]"),
        ("[::1]5959", "after [::1] expected :port, got '5959'"),
        (":5959", "the host name before :port is missing"),
    ],
)
def test_a_bad_port_in_host_is_refused_at_configure(host: str, reason: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        eventlog.configure(host=host)
    assert str(caught.value).startswith(f"configure(host=...) = {host!r} is invalid: {reason}")


def test_host_with_port_delivers(receiver: LineReceiver) -> None:
    settings = config.Settings.load({"host": f"127.0.0.1:{receiver.port}"}, environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", receiver.port)
    eventlog.configure(transport="tcp", host=f"127.0.0.1:{receiver.port}")
    assert _deliver(receiver, "host.with.port") == ["host.with.port"]


def test_the_same_port_twice_is_fine_two_ports_are_refused() -> None:
    same = config.Settings.load({"host": "localhost:5959", "port": 5959}, environ={})
    assert (same.host, same.port) == ("localhost", 5959)
    with pytest.raises(ConfigurationError) as caught:
        config.Settings.load({}, environ={"EVENTLOG_HOST": "localhost:5959", "EVENTLOG_PORT": "5000"})
    assert str(caught.value) == (
        "environment variable EVENTLOG_HOST = 'localhost:5959' names port 5959, but environment "
        "variable EVENTLOG_PORT = '5000' names port 5000; give the port in one place"
    )


def test_an_ipv6_host_with_port_in_brackets_delivers() -> None:
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    lines: list[bytes] = []

    def accept() -> None:
        server.settimeout(10)
        conn, _ = server.accept()
        conn.settimeout(10)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        lines.extend(data.splitlines())
        conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    port = server.getsockname()[1]
    eventlog.configure(transport="tcp", host=f"[::1]:{port}")
    eventlog.log_event(Event("over.ipv6", "t", "test"))
    assert eventlog.flush(10)
    thread.join(15)
    server.close()
    assert [json.loads(line)["action"] for line in lines] == ["over.ipv6"]


def test_code_decides_the_whole_destination_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, receiver: LineReceiver, reports: list[str]
) -> None:
    monkeypatch.setenv("EVENTLOG_TRANSPORT", "http")
    monkeypatch.setenv("EVENTLOG_HTTP_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("EVENTLOG_PORT", "9")
    pipeline = eventlog.configure(host="127.0.0.1", port=receiver.port)
    assert (pipeline.transport_name, pipeline.settings.port) == ("logstash", receiver.port)
    assert _deliver(receiver, "code.wins") == ["code.wins"]
    # EVENTLOG_PORT is overridden by port= as any setting is; the http transport's own settings
    # go unused without a word, since the one line below already says why.
    assert reports == [
        "environment variable EVENTLOG_TRANSPORT is ignored: configure(host=..., port=...) names the "
        "destination in code, and code decides transport, host and port together",
    ]


def test_a_transport_in_code_still_takes_the_address_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, receiver: LineReceiver, reports: list[str]
) -> None:
    """Code that names only the transport leaves the address to the deployment."""
    monkeypatch.setenv("EVENTLOG_HOST", "127.0.0.1")
    monkeypatch.setenv("EVENTLOG_PORT", str(receiver.port))
    pipeline = eventlog.configure(transport="tcp")
    assert pipeline.transport_name == "tcp"
    assert _deliver(receiver, "env.address") == ["env.address"]
    assert reports == []
