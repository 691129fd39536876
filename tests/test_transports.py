"""tcp, udp, logstash and TLS against real listeners on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import eventlog
from eventlog import ConfigurationError, Event
from eventlog._builtin.receiver import LineReceiver
from eventlog.plugin.testing import make_local_ca


def _ids(events: list[dict[str, object]]) -> list[object]:
    return [e["id"] for e in events]


def test_tcp_delivers_exactly_the_events_sent(receiver: LineReceiver) -> None:
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)
    sent = [Event("order.create", f"o-{i}", "order", fields={"n": i}) for i in range(2000)]
    for event in sent:
        eventlog.log_event(event)
    assert eventlog.flush(10)
    assert receiver.wait_for(2000)
    got = receiver.events()
    assert _ids(got) == [e.id for e in sent]
    assert [g["fields"]["n"] for g in got] == list(range(2000))
    assert pipeline.stats.sent == 2000


def test_tcp_reconnects_across_a_listener_restart() -> None:
    first = LineReceiver()
    port = first.port
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=port, retry_backoff_max=0.2)
    before = [Event("phase.one", str(i)) for i in range(100)]
    for event in before:
        eventlog.log_event(event)
    assert eventlog.flush(10) and first.wait_for(100)
    first.stop()  # the peer closes the connection
    after = [Event("phase.two", str(i)) for i in range(100)]
    for event in after[:50]:
        eventlog.log_event(event)
    # While nobody listens, the batch waits and is retried; nothing is lost.
    assert not eventlog.flush(0.5)
    second = LineReceiver(port=port)
    try:
        for event in after[50:]:
            eventlog.log_event(event)
        assert eventlog.flush(15)
        assert second.wait_for(100)
        assert _ids(first.events()) == [e.id for e in before]
        assert _ids(second.events()) == [e.id for e in after]
        assert pipeline.stats.retries >= 1
        assert pipeline.stats.dropped_by_reason() == {}
    finally:
        second.stop()


def test_udp_one_datagram_per_event() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        pipeline = eventlog.configure(transport="udp", host="127.0.0.1", port=port)
        sent = [Event("ping", str(i)) for i in range(50)]
        for event in sent:
            eventlog.log_event(event)
        eventlog.log_event(Event("too.big", message="x" * 100_000))
        assert eventlog.flush(5)
        got = [json.loads(sock.recv(70_000)) for _ in range(50)]
    assert _ids(got) == [e.id for e in sent]
    # The message is cut to the core's limit (256 KiB chars) but still beyond UDP's: refused, counted.
    assert pipeline.stats.dropped_by_reason() == {"rejected": 1}


def test_logstash_udp_and_logstash_format() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        eventlog.configure(
            transport="logstash",
            logstash_protocol="udp",
            format="logstash",
            host="127.0.0.1",
            port=sock.getsockname()[1],
        )
        event = Event("click", "my-button", "ui", time_ns=1_795_000_000_123_456_789)
        eventlog.log_event(event)
        assert eventlog.flush(5)
        wire = json.loads(sock.recv(70_000))
    assert wire["@timestamp"] == "2026-11-18T11:06:40.123Z"
    assert wire["@version"] == "1"
    assert wire["tstamp"] == 1_795_000_000_123


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[LineReceiver, Path]]:
    ca = make_local_ca(tmp_path / "ca")
    with LineReceiver(tls=ca.server_context()) as r:
        yield r, ca.ca_cert


def test_tls_verifies_the_server_with_the_test_ca(tls_receiver: tuple[LineReceiver, Path]) -> None:
    receiver, ca = tls_receiver
    eventlog.configure(
        transport="logstash",
        host="127.0.0.1",
        port=receiver.port,
        logstash_tls=True,
        logstash_tls_ca=str(ca),
    )
    sent = [Event("secure", str(i)) for i in range(300)]
    for event in sent:
        eventlog.log_event(event)
    assert eventlog.flush(10)
    assert receiver.wait_for(300)
    # After an idle gap the TLS connection is reused (TLS 1.3 session tickets are not EOF).
    time.sleep(0.3)
    last = Event("secure.after.gap")
    eventlog.log_event(last)
    assert eventlog.flush(10) and receiver.wait_for(301)
    assert _ids(receiver.events()) == [e.id for e in [*sent, last]]
    assert receiver.connections == 1


def test_tls_without_the_ca_is_refused_and_events_wait(
    tls_receiver: tuple[LineReceiver, Path],
) -> None:
    receiver, _ = tls_receiver
    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=receiver.port, tcp_tls=True, retry_backoff_max=0.2
    )
    eventlog.log_event(Event("secure"))
    assert not eventlog.flush(1.0)
    assert receiver.lines == []
    assert pipeline.stats.transport_up == 0
    assert pipeline.stats.retries >= 1
    assert pipeline.stats.dropped_by_reason() == {}  # still waiting, not lost


def test_bad_settings_fail_at_configure_time_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"configure\(port=...\) = 'http' is invalid"):
        eventlog.configure(transport="tcp", host="127.0.0.1", port="http")
    with pytest.raises(ConfigurationError, match="transport 'tcp' needs a host: set EVENTLOG_HOST"):
        eventlog.configure(transport="tcp")
    with pytest.raises(ConfigurationError, match="choose one of: tcp, udp"):
        eventlog.configure(transport="logstash", host="h", logstash_protocol="sctp")
    with pytest.raises(ConfigurationError, match="unknown setting 'hots'; did you mean host"):
        eventlog.configure(hots="127.0.0.1")
    with pytest.raises(ConfigurationError, match="cannot load TLS files"):
        eventlog.configure(transport="tcp", host="h", port=1, tcp_tls=True, tcp_tls_ca="/nonexistent/ca.pem")


def test_environment_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_BATCH_SIZE", "0")
    with pytest.raises(
        ConfigurationError,
        match="environment variable EVENTLOG_BATCH_SIZE = '0' is invalid: must be 1 or more",
    ):
        eventlog.configure()


def test_console_is_the_default_without_a_host(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = eventlog.configure()
    assert (pipeline.transport_name, pipeline.format_name) == ("console", "json")
    eventlog.log_event(Event("hello"))
    assert eventlog.flush(5)
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["action"] == "hello"


def test_concurrent_callers_lose_nothing(receiver: LineReceiver) -> None:
    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)

    def produce(worker: int) -> None:
        for i in range(1000):
            eventlog.log_event(Event("thread.work", f"{worker}-{i}"))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert eventlog.flush(15)
    assert receiver.wait_for(8000)
    targets = sorted(e["target"] for e in receiver.events())
    assert targets == sorted(f"{w}-{i}" for w in range(8) for i in range(1000))
