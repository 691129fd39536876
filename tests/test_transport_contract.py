"""The engine's side of the transport contract: deadlines into open/send, and the idle hook."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._config.config import Settings
from eventlog._config.registry import Registry
from eventlog._engine.pipeline import Pipeline
from eventlog.plugin import (
    ConnectError,
    PluginContext,
    Transport,
    TransportSpec,
    hookimpl,
)
from eventlog.plugin.net import connect_stream, send_all


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: a connect to it waits until its timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)  # takes the one slot
    try:
        yield port
    finally:
        filler.close()
        server.close()


def test_a_connect_never_outlives_the_shutdown_deadline(unanswered_port: int) -> None:
    # connect_timeout 30 s: without the deadline the worker would sit in connect() that long.
    settings = Settings.load(
        # linger_ms: the worker waits for more events until shutdown() hurries it, deadline set.
        {
            "transport": "tcp",
            "host": "127.0.0.1",
            "port": unanswered_port,
            "tcp_connect_timeout": 30,
            "linger_ms": 5000,
        },
        environ={},
    )
    pipeline = Pipeline(settings)
    for n in range(5):
        pipeline.submit_event(Event(f"deadline.{n}"))
    started = time.monotonic()
    assert pipeline.shutdown(timeout=1.0) is False
    worker = pipeline.worker.thread
    if worker is not None:
        worker.join(10)
        assert not worker.is_alive(), "the worker still waits in connect() past the deadline"
    assert time.monotonic() - started < 10
    assert pipeline.stats.sent == 0
    assert pipeline.stats.dropped_by_reason() == {"shutdown": 5}


class Heartbeats(Transport):
    """Lines over TCP; while idle it writes a heartbeat line, and can be told to find it broken."""

    idle_interval: ClassVar[float | None] = 0.05
    threads: ClassVar[set[str]] = set()
    break_next_idle: ClassVar[bool] = False
    opened: ClassVar[int] = 0

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    @classmethod
    def from_context(cls, context: PluginContext) -> Heartbeats:
        return cls(context.options["port"])

    def open(self) -> None:
        self.sock = connect_stream("127.0.0.1", self.port, tls=None, connect_timeout=2, send_timeout=2)
        type(self).opened += 1

    def send(self, batch: Any) -> None:
        assert self.sock is not None
        send_all(self.sock, [r.payload for r in batch], f"127.0.0.1:{self.port}")

    def idle(self) -> None:
        type(self).threads.add(threading.current_thread().name)
        if type(self).break_next_idle:
            type(self).break_next_idle = False
            raise ConnectError("the peer stopped answering heartbeats")
        assert self.sock is not None
        send_all(self.sock, [b'{"heartbeat": true}\n'], f"127.0.0.1:{self.port}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class HeartbeatPlugin:
    @hookimpl
    def eventlog_transports(self) -> list[TransportSpec]:
        from eventlog.plugin import Option, parse_port

        return [
            TransportSpec(
                "heartbeats", Heartbeats.from_context, options=(Option("port", parse_port, None, "port"),)
            )
        ]


def _heartbeats(receiver: LineReceiver) -> int:
    with receiver._cond:
        return sum(1 for line in receiver.lines if line == b'{"heartbeat": true}')


def test_idle_runs_between_batches_on_the_worker_and_a_broken_connection_is_opened_again() -> None:
    Heartbeats.threads, Heartbeats.opened, Heartbeats.break_next_idle = set(), 0, False
    registry = Registry(load_entry_points=False, extra_plugins=(HeartbeatPlugin(),))
    with LineReceiver() as receiver:
        settings = Settings.load(
            {"transport": "heartbeats", "heartbeats_port": receiver.port, "format": "json", "linger_ms": 0},
            environ={},
        )
        pipeline = Pipeline(settings, registry)
        try:
            time.sleep(0.3)
            assert _heartbeats(receiver) == 0, "idle() ran before the transport was opened"
            pipeline.submit_event(Event("beat.first"))
            assert pipeline.flush(5)
            deadline = time.monotonic() + 10
            while _heartbeats(receiver) < 3:
                assert time.monotonic() < deadline, "no heartbeats while the pipeline was idle"
                time.sleep(0.02)
            assert Heartbeats.threads == {f"eventlog-{pipeline.name}"}, "idle() ran outside the worker"
            Heartbeats.break_next_idle = True
            while Heartbeats.break_next_idle:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            pipeline.submit_event(Event("beat.second"))
            assert pipeline.flush(5)
        finally:
            assert pipeline.shutdown(timeout=5)
        deadline = time.monotonic() + 10
        while len(actions := [e["action"] for e in receiver.events() if "action" in e]) < 2:
            assert time.monotonic() < deadline, f"only {actions} arrived"
            time.sleep(0.02)
        assert actions == ["beat.first", "beat.second"]
        assert Heartbeats.opened == 2, "the broken connection was not opened again for the next batch"
        assert pipeline.stats.sent == 2 and pipeline.stats.dropped_by_reason() == {}
