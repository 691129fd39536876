"""eventlog.testing: capture_events records what a block logged; the suites catch broken plugins."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import eventlog
import eventlog.plugin
from eventlog._api import api
from eventlog._config.contracts import Transport, TransportSpec
from eventlog._config.registry import Registry
from eventlog._records.batch import Batch
from eventlog.plugin.net import certificate_names
from eventlog.plugin.testing import (
    FormatterConformance,
    LineReceiver,
    TransportConformance,
    closed_port,
    make_local_ca,
)
from eventlog.testing import capture_events

# ---------------------------------------------------------------- capture_events


def test_capture_events_records_log_event_and_logging_as_wire_dicts() -> None:
    logger = logging.getLogger("test.capture")
    logger.addHandler(eventlog.asyncEventLogger)
    logger.setLevel(logging.INFO)
    try:
        with capture_events(site="acme") as events:
            eventlog.log_event(eventlog.Event("click", "my-button", "ui", fields={"n": 1}))
            logger.warning("disk %s is full", "sda")
    finally:
        logger.removeHandler(eventlog.asyncEventLogger)
    assert [e["action"] for e in events] == ["click", "log.warning"]
    click, record = events
    assert (click["target"], click["tgType"], click["fields"], click["site"]) == (
        "my-button",
        "ui",
        {"n": 1},
        "acme",
    )
    assert (record["message"], record["level"], record["target"]) == ("disk sda is full", 30, "test.capture")
    assert len({click["id"], record["id"]}) == 2


def test_capture_events_puts_the_previous_default_pipeline_back(receiver: LineReceiver) -> None:
    before = eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)
    with capture_events() as events:
        eventlog.log_event(eventlog.Event("inside"))
        assert [e["action"] for e in events.flush()] == ["inside"]
    assert api._default is before
    eventlog.log_event(eventlog.Event("after"))
    assert eventlog.flush(10) and receiver.wait_for(1)
    assert [e["action"] for e in receiver.events()] == ["after"]
    assert [e["action"] for e in events] == ["inside"]


def test_capture_events_ignores_delivery_settings_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTLOG_HOST", "127.0.0.1")
    monkeypatch.setenv("EVENTLOG_PORT", str(closed_port()))
    monkeypatch.setenv("EVENTLOG_CLUSTER", "eu-1")
    with capture_events() as events:
        eventlog.log_event(eventlog.Event("x"))
    assert [(e["action"], e["cluster"]) for e in events] == [("x", "eu-1")]


def test_an_exception_in_the_block_passes_through_and_the_default_comes_back() -> None:
    before = api._default
    with pytest.raises(KeyError, match="from the block"), capture_events() as events:
        eventlog.log_event(eventlog.Event("before.error"))
        raise KeyError("from the block")
    assert api._default is before
    assert [e["action"] for e in events] == ["before.error"]


# ---------------------------------------------------------------- the suites can fail


class LeakyTransport(Transport):
    """Everything a transport must not do: raw OSError, a lost event, a thread left running."""

    def __init__(self, receiver: LineReceiver | None, stop: threading.Event) -> None:
        self.receiver = receiver
        self.stop = stop

    def open(self) -> None:
        if self.receiver is None:
            raise OSError("connection refused")
        threading.Thread(target=self.stop.wait, name="leaky", daemon=True).start()

    def send(self, batch: Batch) -> None:
        import socket

        assert self.receiver is not None
        if self.receiver.port == 0:  # refuse_batches(): a refusal dressed as retryable
            raise eventlog.plugin.TransportError("400 bad request")
        with socket.create_connection(("127.0.0.1", self.receiver.port)) as sock:
            sock.sendall(b"".join(r.payload for r in batch[1:]))  # the first event is lost

    def close(self) -> None:
        pass


class _LeakyPlugin:
    def __init__(self) -> None:
        self.receiver: LineReceiver | None = None
        self.stop = threading.Event()

    @eventlog.plugin.hookimpl
    def eventlog_transports(self) -> list[TransportSpec]:
        return [TransportSpec("leaky", lambda context: LeakyTransport(self.receiver, self.stop))]


class LeakyConformance(TransportConformance):
    transport = "leaky"
    delivery_timeout = 0.5
    thread_timeout = 0.5

    def __init__(self) -> None:
        self.plugin = _LeakyPlugin()

    def registry(self) -> Registry:
        return Registry(load_entry_points=False, extra_plugins=(self.plugin,))

    def settings(self, peer: LineReceiver) -> dict[str, Any]:
        self.plugin.receiver = peer
        return {"transport": "leaky"}

    def unreachable_settings(self) -> dict[str, Any]:
        self.plugin.receiver = None
        return {"transport": "leaky"}

    def delivered(self, peer: LineReceiver) -> list[str]:
        return [e["id"] for e in peer.events()]

    def refuse_batches(self, peer: LineReceiver) -> None:
        peer.port = 0


@pytest.fixture
def leaky() -> Iterator[LeakyConformance]:
    suite = LeakyConformance()
    yield suite
    suite.plugin.stop.set()  # end the threads the leaky transport started


@pytest.mark.parametrize(
    ("test", "message"),
    [
        ("test_open_send_close_delivers_the_batch", None),
        ("test_batches_are_delivered_whole_in_order_and_once", "sent 508 events, the peer has 505"),
        ("test_unreachable_peer_is_a_retryable_transport_error", "wrap it in a TransportError"),
        ("test_leaves_no_threads_behind", "threads still alive after close()"),
        ("test_a_refused_batch_is_not_retryable_and_is_set_aside", "must not be retryable"),
    ],
)
def test_the_transport_suite_fails_a_broken_transport(
    leaky: LeakyConformance, receiver: LineReceiver, test: str, message: str | None
) -> None:
    method = getattr(leaky, test)
    arguments = () if "unreachable" in test else (receiver,)
    with pytest.raises(AssertionError, match=message):
        method(*arguments)


def test_the_formatter_suite_fails_a_formatter_that_loses_fields() -> None:
    class Lossy(eventlog.plugin.Formatter):
        def format(self, wire: dict[str, Any]) -> bytes:
            return (wire["id"] + "\n").encode()

    class Plugin:
        @eventlog.plugin.hookimpl
        def eventlog_formatters(self) -> list[eventlog.plugin.FormatterSpec]:
            return [eventlog.plugin.FormatterSpec("lossy", lambda context: Lossy())]

    class LossyConformance(FormatterConformance):
        formatter = "lossy"

        def registry(self) -> Registry:
            return Registry(load_entry_points=False, extra_plugins=(Plugin(),))

        def decode(self, payload: bytes) -> dict[str, Any]:
            return {"id": payload.decode().strip()}

    suite = LossyConformance()
    suite.test_formats_every_sample_to_bytes_without_changing_it()  # bytes it does make
    with pytest.raises(AssertionError, match="'tstamp' is missing after a round trip"):
        suite.test_payload_decodes_to_the_wire_dict()


# ---------------------------------------------------------------- loopback peers


def test_eventlog_plugin_testing_imports_without_pytest_or_cryptography(tmp_path: Path) -> None:
    # None in sys.modules makes an import fail, as if the package were not installed.
    script = (
        "import sys\n"
        "sys.modules['pytest'] = sys.modules['cryptography'] = None\n"
        "import eventlog.testing\n"
        "import eventlog.plugin.testing as t\n"
        "try:\n"
        f"    t.make_local_ca(__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == (
        "eventlog.plugin.testing.make_local_ca() needs the cryptography package: pip install cryptography\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_local_ca_signs_a_certificate_for_exactly_the_names_given(tmp_path: Path) -> None:
    ca = make_local_ca(tmp_path, ["logs.example", "::1"])
    with LineReceiver(tls=ca.server_context()) as receiver:
        names = certificate_names("127.0.0.1", receiver.port, cafile=str(ca.ca_cert))
    assert names == ["logs.example", "::1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem", "server.key", "server.pem"]
