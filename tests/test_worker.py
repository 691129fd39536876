"""The worker cannot die: failures are contained, counted by reason, and a dead thread comes back.

Each test injects a failure through a plugin registered in the test (a
transport, an enricher) or into one part of the worker, and checks that later
events still reach a real TCP receiver and that accepted = sent + dropped +
waiting, event by event.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._config.config import Settings
from eventlog._config.contracts import EnricherSpec, PluginContext, Transport, TransportSpec
from eventlog._config.hookspecs import hookimpl
from eventlog._config.registry import Registry, get_registry
from eventlog._engine.pipeline import Pipeline
from eventlog.plugin.testing import closed_port


class Poison(BaseException):
    """Not an Exception: what a plugin's SystemExit or a stray BaseException looks like."""


class PoisonPlugin:
    """A transport that raises Poison for batches holding a 'poison' event, else sends by TCP,
    and a worker-stage enricher that raises Poison for events whose target is 'kill'."""

    sends = 0

    @hookimpl
    def eventlog_transports(self) -> list[TransportSpec]:
        tcp = get_registry().transport("tcp").spec

        def factory(context: PluginContext) -> Transport:
            tcp_options = context.settings.plugin_options("tcp", tcp.options)
            inner = tcp.factory(
                PluginContext(context.settings, tcp_options, context.formatter, context.formatter_name)
            )

            class Poisoned(Transport):
                def open(self) -> None:
                    inner.open()

                def send(self, batch: Any) -> Any:
                    PoisonPlugin.sends += 1
                    if any(record.action == "poison" for record in batch):
                        raise Poison("transport poison")
                    return inner.send(batch)

                def close(self) -> None:
                    inner.close()

            return Poisoned()

        return [TransportSpec("poisoned", factory, "tcp, except for poison", carries=tcp.carries)]

    @hookimpl
    def eventlog_enrichers(self) -> list[EnricherSpec]:
        def factory(context: PluginContext) -> Any:
            def enrich(event: Event) -> None:
                if event.target == "kill":
                    raise Poison("enricher poison")

            return enrich

        return [EnricherSpec("poisoner", factory)]


@pytest.fixture
def registry() -> Registry:
    PoisonPlugin.sends = 0
    return Registry(extra_plugins=(PoisonPlugin(),))


@pytest.fixture
def pipelines() -> Iterator[list[Pipeline]]:
    made: list[Pipeline] = []
    yield made
    for pipeline in made:
        pipeline.shutdown(2)


def _pipeline(
    made: list[Pipeline], registry: Registry, receiver: LineReceiver | None, **settings: Any
) -> Pipeline:
    given = {
        "transport": "poisoned",
        "host": "127.0.0.1",
        "port": receiver.port if receiver is not None else closed_port(),
        "enrichers": "host,site,context,poisoner",
        "retry_backoff_max": 0.01,
        **settings,
    }
    pipeline = Pipeline(Settings.load(given, environ={}, use_django=False), registry)
    made.append(pipeline)
    return pipeline


def _log(pipeline: Pipeline, action: str, targets: range | list[str]) -> list[str]:
    """Log one event per target; return their targets (ids are given in the worker)."""
    events = [Event(action, str(target)) for target in targets]
    for event in events:
        pipeline.submit_event(event)
    return [event.target for event in events]


def _accounted(pipeline: Pipeline) -> tuple[int, int]:
    """(accepted, sent + dropped + waiting) as the metrics say them."""
    stats = pipeline.stats
    accepted = stats.taken + pipeline.queue_depth()
    return accepted, stats.sent + sum(stats.dropped_by_reason().values()) + pipeline.queue_depth()


def test_a_transport_raising_a_base_exception_costs_one_batch_and_the_worker_lives(
    pipelines: list[Pipeline], registry: Registry, receiver: LineReceiver
) -> None:
    pipeline = _pipeline(pipelines, registry, receiver)
    before = _log(pipeline, "ok", range(10))
    assert pipeline.flush(10)
    _log(pipeline, "poison", ["p"])
    assert pipeline.flush(10)  # set aside after MAX_UNEXPECTED_FAILURES tries, not stuck
    after = _log(pipeline, "ok", range(10, 20))
    assert pipeline.flush(10) and receiver.wait_for(20)
    assert [e["target"] for e in receiver.events()] == before + after
    assert pipeline.stats.dropped_by_reason() == {"transport_bug": 1}
    assert pipeline.stats.sent == 20 and pipeline.stats.worker_restarts == 0
    assert _accounted(pipeline) == (21, 21)
    worker = pipeline.worker.thread
    assert worker is not None and worker.is_alive()


def test_a_worker_killed_by_a_plugin_is_restarted_counted_and_delivers_the_rest(
    pipelines: list[Pipeline], registry: Registry, receiver: LineReceiver
) -> None:
    pipeline = _pipeline(pipelines, registry, receiver)
    before = _log(pipeline, "ok", range(10))
    assert pipeline.flush(10)
    first = pipeline.worker.thread
    _log(pipeline, "ok", ["kill"])  # the enricher's BaseException ends the thread
    assert pipeline.flush(10)  # the flush restarts the dead worker, which settles its marker
    after = _log(pipeline, "ok", range(10, 20))
    assert pipeline.flush(10) and receiver.wait_for(20)
    assert [e["target"] for e in receiver.events()] == before + after
    assert pipeline.stats.dropped_by_reason() == {"worker_died": 1}
    assert pipeline.stats.worker_restarts == 1
    assert pipeline.worker.thread is not first and pipeline.worker.thread is not None
    assert _accounted(pipeline) == (21, 21)
    assert 'eventlog_worker_restarts_total{pipeline="default"} 1.0' in _metrics()


def test_a_dead_worker_is_restarted_by_the_next_event(
    pipelines: list[Pipeline], registry: Registry, receiver: LineReceiver
) -> None:
    pipeline = _pipeline(pipelines, registry, receiver)
    _log(pipeline, "ok", ["kill"])
    first = pipeline.worker.thread
    assert first is not None
    first.join(10)
    assert not first.is_alive()
    after = _log(pipeline, "ok", range(5))  # no flush: the submit starts a new worker
    assert receiver.wait_for(5)
    assert [e["target"] for e in receiver.events()] == after
    assert pipeline.stats.worker_restarts == 1
    assert pipeline.stats.dropped_by_reason() == {"worker_died": 1}


def test_a_worker_killed_in_spool_mode_keeps_spooling_after_the_restart(
    pipelines: list[Pipeline], registry: Registry, receiver: LineReceiver, tmp_path: Path
) -> None:
    pipeline = _pipeline(pipelines, registry, receiver, db=str(tmp_path / "s.db"))
    before = _log(pipeline, "ok", range(10))
    assert pipeline.flush(10)
    _log(pipeline, "ok", ["kill"])
    assert pipeline.flush(10)
    after = _log(pipeline, "ok", range(10, 20))
    assert pipeline.flush(10) and receiver.wait_for(20)
    assert [e["target"] for e in receiver.events()] == before + after
    assert pipeline.stats.dropped_by_reason() == {"worker_died": 1}
    assert pipeline.stats.worker_restarts == 1 and pipeline.spool_depth() == 0
    assert _accounted(pipeline) == (21, 21)


def test_a_round_that_fails_unexpectedly_costs_that_round_only(
    pipelines: list[Pipeline], registry: Registry, receiver: LineReceiver
) -> None:
    # A long linger: the worker takes the three events together, when flush() says so.
    pipeline = _pipeline(pipelines, registry, receiver, linger_ms=30_000, batch_size=3)
    encode = pipeline._encoder.batch

    def broken_once(items: list[Any]) -> Any:
        pipeline._encoder.batch = encode  # type: ignore[method-assign]
        raise RuntimeError("a bug in the worker's own code")

    pipeline._encoder.batch = broken_once  # type: ignore[method-assign]
    _log(pipeline, "lost", range(3))
    assert pipeline.flush(10)
    after = _log(pipeline, "ok", range(5))
    assert pipeline.flush(10) and receiver.wait_for(5)
    assert [e["target"] for e in receiver.events()] == after
    assert pipeline.stats.dropped_by_reason() == {"worker_error": 3}
    assert pipeline.stats.worker_restarts == 0
    assert _accounted(pipeline) == (8, 8)


def test_a_transport_returning_garbage_is_never_counted_twice(
    pipelines: list[Pipeline], registry: Registry
) -> None:
    pipeline = _pipeline(pipelines, registry, None)

    class Garbage(Transport):
        def open(self) -> None:
            pass

        def send(self, batch: Any) -> Any:
            return [(batch[0], 42)]  # not (record, reason): a bug

        def close(self) -> None:
            pass

    pipeline._sender.factory = Garbage
    pipeline._sender.close()
    _log(pipeline, "ok", range(4))
    assert pipeline.flush(10)
    assert pipeline.stats.sent == 0
    assert pipeline.stats.dropped_by_reason() == {"transport_bug": 4}
    assert _accounted(pipeline) == (4, 4)


def _metrics() -> str:
    from eventlog._engine import prometheus

    return prometheus.render()


# ---------------------------------------------------------------- flush markers (issue 23, item 4)


def test_markers_take_no_queue_slot(pipelines: list[Pipeline], registry: Registry) -> None:
    # Peer down, memory mode: 900 flushes that time out, then 900 events into a queue of 1000.
    pipeline = _pipeline(pipelines, registry, None, queue_size=1000, retry_backoff_max=5)
    _log(pipeline, "first", ["0"])  # the worker retries it: every flush below times out
    for _ in range(900):
        assert pipeline.flush(0) is False
    _log(pipeline, "ok", range(900))
    assert pipeline.stats.dropped_by_reason() == {}
    taken = pipeline.stats.taken
    assert taken + pipeline.queue_depth() == 901
    assert pipeline._accounts.markers == []  # each timed-out flush withdrew its marker
    pipeline.shutdown(0.1)  # the peer never comes: not the fixture's 2 s to find that out


def test_a_timed_out_flush_never_stops_spooling(
    pipelines: list[Pipeline], registry: Registry, tmp_path: Path
) -> None:
    # Peer down, spool mode: events logged after a flush(0.05) that timed out go to the spool
    # (before: they stayed in memory until the queue was half full, and kill -9 lost them).
    pipeline = _pipeline(pipelines, registry, None, db=str(tmp_path / "s.db"), retry_backoff_max=5)
    _log(pipeline, "before", range(10))
    end = time.monotonic() + 20
    while pipeline.spool_depth() < 10 and time.monotonic() < end:
        time.sleep(0.01)  # the worker now retries the spooled batch, moving the queue meanwhile
    assert pipeline.flush(0.05) is False
    _log(pipeline, "after", range(2000))
    end = time.monotonic() + 20
    while pipeline.spool_depth() < 2010 and time.monotonic() < end:
        time.sleep(0.01)
    assert pipeline.spool_depth() == 2010 and pipeline.queue_depth() == 0
    assert pipeline.stats.dropped_by_reason() == {}
    pipeline.shutdown(0.1)  # the peer never comes: not the fixture's 2 s to find that out


# ---------------------------------------------------------------- configure() again (item 14)


def test_configure_again_while_the_peer_is_down_keeps_the_old_queue_draining(
    receiver: LineReceiver,
) -> None:
    import eventlog

    port = closed_port()
    old = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=port, shutdown_timeout=30, retry_backoff_max=0.05
    )
    for i in range(500):
        eventlog.log_event(Event("old", str(i)))
    new = eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)
    # configure() returned without waiting out the old pipeline's 30 s deadline: the old
    # pipeline still holds its events, and delivers them when its peer comes back.
    assert new is not old and old.stats.dropped_by_reason() == {}
    with LineReceiver(port=port) as old_peer:
        assert old_peer.wait_for(500, timeout=30)
        assert sorted((e["target"] for e in old_peer.events()), key=int) == [str(i) for i in range(500)]
    eventlog.log_event(Event("new", "0"))
    assert eventlog.flush(10) and receiver.wait_for(1)
    assert [e["action"] for e in receiver.events()] == ["new"]


@pytest.mark.parametrize("end", ["configure", "shutdown"])
def test_a_replaced_pipeline_past_its_deadline_still_delivers_to_a_peer_that_writes_back(
    receiver: LineReceiver, end: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 30-minute fault run's fourth finding: a pipeline configure() replaced sends what it
    # holds within its shutdown deadline, then closes the connection with what is left of
    # that deadline to linger.  On a peer that writes to us (garbage) and had not read all
    # of ours yet, the close reset the connection when the deadline came, and the bytes
    # send() had handed to the kernel were lost, though counted as sent: flush() said True.
    # And shutdown() itself said False (a worker lingering to the deadline looked stuck).
    import eventlog
    from eventlog._builtin import transports
    from eventlog.plugin import net

    # The closer's bound (2 s) made 10 s: on a loaded CI machine the peer, which reads only
    # after flush() returned, once began too late for 2 s (the stream cut at 1,152 bytes).
    monkeypatch.setattr(net, "LINGER_SECONDS", 10.0)
    monkeypatch.setattr(transports, "LINGER_SECONDS", 10.0)

    server = socket.create_server(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # most of ours wait with us
    server.settimeout(20)
    wrote, go, stop, got = threading.Event(), threading.Event(), threading.Event(), bytearray()

    def peer() -> None:
        conn, _ = server.accept()
        conn.settimeout(0.005)
        with conn:
            while not stop.is_set():
                try:
                    conn.send(b"\x00\xff garbage\n")  # all the time, as the fault run's peer
                    wrote.set()
                except (TimeoutError, BlockingIOError):
                    pass
                except OSError:
                    return  # we closed after it read everything: reset
                if not go.is_set():
                    time.sleep(0.005)
                    continue
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                got.extend(chunk)

    thread = threading.Thread(target=peer)
    thread.start()
    try:
        # A batch waits a minute to fill: what is logged now is sent only when the shutdown
        # hurries it, within its deadline, so the close that follows has < 0.5 s left.
        old = eventlog.configure(
            transport="tcp",
            host="127.0.0.1",
            port=server.getsockname()[1],
            shutdown_timeout=0.5,
            linger_ms=60_000,
        )
        eventlog.log_event(Event("old", "w", fields={"pad": "p" * 80}))
        assert eventlog.flush(10)  # connected (a flush hurries the batch)
        assert wrote.wait(10)  # and the peer has written to us: we will read it before sending
        for i in range(60):
            eventlog.log_event(Event("old", str(i), fields={"pad": "p" * 80}))
        if end == "configure":
            eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)
            assert eventlog.flush(10)
        else:
            assert old.shutdown() is True
        assert old.stats.sent == 61 and old.stats.dropped_by_reason() == {}
        go.set()  # only now does the peer read
        thread.join(30)
    finally:
        stop.set()
        thread.join(30)
        server.close()
    *lines, rest = bytes(got).split(b"\n")
    assert rest == b"", f"the stream was cut short: {len(got)} bytes, {len(lines)} whole lines"
    assert [json.loads(line)["target"] for line in lines] == ["w", *(str(i) for i in range(60))]


@pytest.mark.parametrize("mode", ["memory", "spool"])
def test_a_shutdown_cuts_a_retry_backoff_short_so_a_peer_back_up_gets_everything(
    tmp_path: Path, mode: str
) -> None:
    # Found with the test above: a backoff begun before shutdown() (0.8 s or more here, up to
    # retry_backoff_max, 30 s) outlasted a 1 s deadline: the peer was back, but all 50 were
    # dropped{shutdown} (memory mode) or left in the spool.
    import eventlog

    port = closed_port()
    db = {"db": str(tmp_path / "s.db")} if mode == "spool" else {}
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=port, shutdown_timeout=1, **db)
    for i in range(50):
        eventlog.log_event(Event("e", str(i)))
    for _ in range(1000):
        if pipeline.stats.retries >= 5:  # the wait now under way is 0.8 s or more
            break
        time.sleep(0.01)
    with LineReceiver(port=port) as peer:
        assert pipeline.shutdown() is True
        assert peer.wait_for(50)
        assert sorted((e["target"] for e in peer.events()), key=int) == [str(i) for i in range(50)]
    assert pipeline.stats.sent == 50 and pipeline.stats.dropped_by_reason() == {}


def test_while_a_shutdown_retries_spool_mode_still_moves_new_events_into_the_spool(tmp_path: Path) -> None:
    # Found in review of the retry cut above: once a shutdown began, the waits between retries
    # were plain sleeps, so spool mode stopped moving events into the spool: the ones logged
    # meanwhile filled the bounded queue (before: 260 of 400 dropped as queue_full).
    import eventlog

    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=closed_port(),
        db=str(tmp_path / "s.db"),
        queue_size=100,
        shutdown_timeout=3,
    )
    for i in range(10):
        eventlog.log_event(Event("before", str(i)))
    for _ in range(1000):
        if pipeline.stats.retries >= 1:
            break
        time.sleep(0.01)
    ended: list[bool] = []
    shutdown = threading.Thread(target=lambda: ended.append(pipeline.shutdown()))
    shutdown.start()
    try:
        assert pipeline.worker.retry_cut.wait(10)
        for round_ in range(40):  # 400 events, 10 every 20 ms: well within the 3 s deadline
            for i in range(10):
                eventlog.log_event(Event("during", f"{round_}.{i}"))
            time.sleep(0.02)
    finally:
        shutdown.join(30)
    assert ended == [False]  # the peer is down: not delivered ...
    assert pipeline.stats.dropped_by_reason() == {}  # ... but nothing lost:
    assert pipeline.spool_depth() == 410  # every event waits in the spool for the next run


def test_two_deaths_are_two_restarts_and_one_warning_each_kind(
    pipelines: list[Pipeline], registry: Registry, receiver: LineReceiver
) -> None:
    from tests.spool_support import capture_warnings

    with contextlib.contextmanager(capture_warnings)() as warnings:
        pipeline = _pipeline(pipelines, registry, receiver)
        for _ in range(2):
            _log(pipeline, "ok", ["kill"])
            assert pipeline.flush(10)
        after = _log(pipeline, "ok", range(3))
        assert pipeline.flush(10) and receiver.wait_for(3)
    assert [e["target"] for e in receiver.events()] == after
    assert pipeline.stats.worker_restarts == 2
    assert pipeline.stats.dropped_by_reason() == {"worker_died": 2}
    died = [m for m in warnings.messages if "the eventlog worker died of Poison: enricher poison" in m]
    restarted = [m for m in warnings.messages if "the eventlog worker was started again" in m]
    assert len(died) == 1 and len(restarted) == 1


@pytest.mark.parametrize("retry_after", ["soon", float("nan"), 10**400, -1])
def test_a_retry_after_a_transport_passes_on_from_its_peer_is_input(
    pipelines: list[Pipeline], registry: Registry, retry_after: object
) -> None:
    from eventlog._core.errors import TransportError

    pipeline = _pipeline(pipelines, registry, None)

    class Once(Transport):
        calls = 0

        def open(self) -> None:
            pass

        def send(self, batch: Any) -> None:
            Once.calls += 1
            if Once.calls == 1:
                raise TransportError("busy", retry_after=retry_after)  # type: ignore[arg-type]

        def close(self) -> None:
            pass

    pipeline._sender.factory = Once
    pipeline._sender.close()
    _log(pipeline, "ok", range(3))
    assert pipeline.flush(10)
    # The refused try, then one send per batch (the three may be taken as one batch or more).
    assert Once.calls >= 2 and pipeline.stats.sent == 3 and pipeline.stats.dropped_by_reason() == {}
