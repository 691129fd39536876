"""Forward mode against a second, independent receiver: fluentbit-server-py 1.0.7 (PyPI).

It reads Fluent Forward v1's Forward mode only (``[tag, [[time, record], ...], option]``):
no PackedForward, no acks.  It reads a connection until 0.5 s pass without a byte,
decodes everything it read (at most 32 KiB, or it drops it all), then closes the
connection.  So events go with ``EVENTLOG_FLUENT_MODE=forward``, acks off, and the
transport must find the closed connection before its next batch.

The wrapper keeps the library's reading (framing, mode detection, entries) and
replaces one step: its ``parse_entry`` turns an EventTime into
``second + nanosecond / 1000000.0`` (10**6, not 10**9, and a float), which cannot
hold a nanosecond time, so the wrapper keeps the EventTime as the ext value the
library's msgpack decoding produced and the tests compare its bytes.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from typing import Any, NamedTuple

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tests.peers import missing
from tests.test_values import HUGE, odd_value

from eventlog import Event
from eventlog._engine.pipeline import Pipeline
from eventlog._records.wire import to_wire
from eventlog.plugin.testing import make_pipeline
from eventlog_fluent.msgpack_format import MsgpackFormatter
from eventlog_fluent.tags import action_tag, tag_problem

pytestmark = [pytest.mark.timeout(300), pytest.mark.peer("fluentbit-server-py")]

_UINT32_MAX = 2**32 - 1


class Received(NamedTuple):
    """One entry as fluentbit-server-py decoded it (msgpack ``raw=True``: str arrives as bytes)."""

    tag: bytes
    time: Any  # the EventTime: msgpack.ExtType(0, 8 bytes)
    record: dict[bytes, Any]


class FluentbitPeer:
    """fluentbit-server-py's ``FluentbitServer`` on 127.0.0.1 (a free port), in a thread.

    ``received()`` holds the entries of every connection the server has closed:
    it decodes a connection's bytes only when it ends it, and a test that saw its
    entries can send again knowing the old connection is closed, not closing.
    ``errors`` are what the library logged (it drops a connection's messages with
    an error line, never an exception).
    """

    def __init__(self) -> None:
        try:
            from fluentbit_server.fluentbit_request_handler import FluentbitRequestHandler  # type: ignore[import-untyped]
            from fluentbit_server.fluentbit_server import FluentbitServer  # type: ignore[import-untyped]
            from fluentbit_server.fluentbit_transport import Event as LibraryEvent  # type: ignore[import-untyped]
            from fluentbit_server.fluentbit_transport import FluentbitTransport  # type: ignore[import-untyped]
        except ImportError as exc:
            missing("fluentbit-server-py", f"cannot import fluentbit_server ({exc})")

        peer = self
        self._lock = threading.Lock()
        self._pending: list[Received] = []
        self._received: list[Received] = []
        self.connections = 0
        self.errors: list[str] = []

        class KeepEventTime(FluentbitTransport):  # type: ignore[misc]
            def parse_entry(self, entry: list[Any]) -> tuple[Any, Any]:
                return entry[0], entry[1]

        def collect(event: LibraryEvent) -> None:
            peer._pending.append(Received(event.tag, event.timestamp, event.record))

        class Server(FluentbitServer):  # type: ignore[misc]
            # One connection at a time (socketserver.TCPServer): entries go out once it is closed.
            def shutdown_request(self, request: Any) -> None:
                super().shutdown_request(request)
                with peer._lock:
                    peer._received += peer._pending
                    peer._pending.clear()
                    peer.connections += 1

        class Errors(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                peer.errors.append(f"{record.name}: {record.getMessage()}")

        self._log_handler = Errors(logging.WARNING)
        for name in ("FluentbitRequestHandler", "FluentbitTransport", "FluentbitServer"):
            logging.getLogger(name).addHandler(self._log_handler)
        self.server = Server(
            ("127.0.0.1", 0), FluentbitRequestHandler, partial(KeepEventTime, callback=collect)
        )
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Poll until ``count`` entries arrived or the timeout; return what arrived."""
        deadline = time.monotonic() + timeout
        while len(entries := self.received()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return entries

    def refusals(self) -> list[str]:
        """The library's error lines, but for a connection closed before its first byte.

        1.0.7 indexes the first byte of what it read, so a connection that
        carried nothing (opened, then left idle) ends in IndexError: nothing lost.
        """
        return [line for line in self.errors if "IndexError" not in line]

    def stop(self) -> None:
        self.server.server_close()  # stops serve_forever, then closes the listener
        self._thread.join(10)
        for name in ("FluentbitRequestHandler", "FluentbitTransport", "FluentbitServer"):
            logging.getLogger(name).removeHandler(self._log_handler)


@pytest.fixture
def fluentbit() -> Iterator[FluentbitPeer]:
    peer = FluentbitPeer()
    yield peer
    peer.stop()


def forward_pipeline(peer: FluentbitPeer, **settings: Any) -> Pipeline:
    """A pipeline sending Forward mode without acks, each message under the peer's 32 KiB."""
    return make_pipeline(
        {
            "transport": "fluent",
            "host": "127.0.0.1",
            "port": peer.port,
            "fluent_mode": "forward",
            "fluent_require_ack_response": False,
            "fluent_max_message_bytes": 32 * 1024,
            "linger_ms": 0,
            "retry_backoff_max": 0.3,
            **settings,
        }
    )


def event_time(time_ns: int) -> msgpack.ExtType:
    """The EventTime the spec asks for: ext type 0, seconds and nanoseconds as big-endian uint32."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    if not 0 <= seconds <= _UINT32_MAX:  # the plugin clamps what EventTime cannot hold
        seconds, nanos = (0, 0) if seconds < 0 else (_UINT32_MAX, 999_999_999)
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanos))


def same(a: Any, b: Any) -> bool:
    """Equal as msgpack bytes (so a NaN equals itself, and int 1 differs from float 1.0)."""
    return bool(msgpack.packb(a) == msgpack.packb(b))


@pytest.fixture
def action_tagged(fluentbit: FluentbitPeer) -> Iterator[Pipeline]:
    """One pipeline for every example of a test: each example finds its connection closed."""
    pipeline = forward_pipeline(fluentbit, fluent_tag="app", fluent_tag_mode="action")
    yield pipeline
    pipeline.shutdown(2)


hostile_event = st.fixed_dictionaries(
    {
        "action": st.text(min_size=1, max_size=20),
        "target": st.none() | st.text(max_size=20),
        "message": st.none() | st.text(max_size=40),
        "time_ns": st.none() | odd_value,
        "level": st.none() | st.integers(min_value=-(2**70), max_value=2**70) | st.just(HUGE),
        "fields": st.dictionaries(st.text(max_size=5), odd_value, max_size=3),
        "metrics": st.dictionaries(st.text(max_size=5), odd_value, max_size=3),
    }
)


@settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(hostile_event, min_size=1, max_size=4))
def test_hostile_events_arrive_at_fluentbit_server_py_exactly(
    fluentbit: FluentbitPeer, action_tagged: Pipeline, specs: list[dict[str, Any]]
) -> None:
    pipeline = action_tagged
    before = len(fluentbit.received())
    sent_before = pipeline.stats.sent
    events = [Event(**spec) for spec in specs]
    formatter = MsgpackFormatter()
    # fluentbit-server-py drops a whole burst past 32 KiB (its buffer is per connection, not per
    # message): an example with several 5,000-digit values cannot arrive there in one burst.
    assume(sum(len(formatter.format(to_wire(event, None))) for event in events) <= 28 * 1024)
    for event in events:
        pipeline.submit_event(event)
    assert pipeline.flush(10)
    arrived = fluentbit.wait_for(before + len(events))[before:]

    assert len(arrived) == len(events), (len(arrived), len(events))
    by_id = {entry.record[b"id"].decode(): entry for entry in arrived}
    assert Counter(entry.record[b"id"] for entry in arrived).most_common(1)[0][1] == 1
    for event in events:
        assert event.id is not None
        entry = by_id[event.id]
        expected = msgpack.unpackb(formatter.format(to_wire(event, None)), raw=True)
        keys = (
            b"id",
            b"action",
            b"target",
            b"message",
            b"tstamp",
            b"level",
            b"levelName",
            b"fields",
            b"metrics",
        )
        for key in keys:
            assert same(entry.record.get(key), expected.get(key)), (key, entry.record, expected)
        assert entry.time == event_time(event.time_ns)
        # The record's milliseconds say the time its EventTime says.
        seconds, nanos = struct.unpack(">II", entry.time.data)
        assert entry.record[b"tstamp"] == (seconds * 10**9 + nanos) // 1_000_000
        tag = entry.tag.decode()
        assert tag == action_tag("app", event.action)[0] and tag_problem(tag) is None
    assert pipeline.stats.sent - sent_before == len(events)
    assert pipeline.stats.dropped_by_reason() == {}
    assert fluentbit.refusals() == []


def test_events_after_the_server_closed_an_idle_connection_arrive_once(fluentbit: FluentbitPeer) -> None:
    pipeline = forward_pipeline(fluentbit)
    first = [Event("idle.before", f"b{i}", fields={"n": i}) for i in range(50)]
    second = [Event("idle.after", f"a{i}", fields={"n": i}) for i in range(50)]
    for event in first:
        pipeline.submit_event(event)
    assert pipeline.flush(10)
    time.sleep(1.0)  # the server closes a connection after 0.5 s without a byte
    for event in second:
        pipeline.submit_event(event)
    assert pipeline.flush(10)
    arrived = fluentbit.wait_for(100)
    pipeline.shutdown(2)

    ids = Counter(entry.record[b"id"].decode() for entry in arrived)
    assert ids == Counter(event.id for event in first + second)  # each once, none lost
    assert {entry.tag for entry in arrived} == {b"eventlog"}
    assert all(
        entry.time == event_time(event.time_ns)
        for event in first + second
        for entry in arrived
        if entry.record[b"id"].decode() == event.id
    )
    assert pipeline.stats.sent == 100 and pipeline.stats.dropped_by_reason() == {}
    assert fluentbit.connections >= 2  # the idle one it closed, and the new one
    assert fluentbit.refusals() == []
