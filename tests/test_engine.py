"""The engine: hostile input, overflow, deadlines, fork, context, metrics, lazy start."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import json
import logging
import logging.config
import math
import os
import socket
import sqlite3
import threading
import time
import urllib.request
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import eventlog
import eventlog.plugin
from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._records.text import MAX_MESSAGE_CHARS, MAX_VALUE_CHARS


def _configure(receiver: LineReceiver, **settings: object) -> eventlog.Pipeline:
    return eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, **settings)


class NoJson:
    def __repr__(self) -> str:
        return "<NoJson>"


class HostileRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_hostile_values_never_raise_and_arrive_converted(receiver: LineReceiver) -> None:
    pipeline = _configure(receiver)
    recursive: dict[str, object] = {"a": 1}
    recursive["self"] = recursive
    huge = "é" * (10 * 1024 * 1024)
    event = Event(
        "hostile",
        message=huge,
        tags=["ok", b"bytes-tag", "lone \ud800 surrogate"],
        fields={
            "obj": NoJson(),
            "raw": b"\xff\xfe",
            "rec": recursive,
            "nan": float("nan"),
            "big": huge,
            "bad": HostileRepr(),
            "flag": True,
        },
        metrics={"inf": float("inf"), "ok": 2.5, "text": "banana"},
    )
    eventlog.log_event(event)
    logging.getLogger("hostile").addHandler(eventlog.asyncEventLogger)
    logging.getLogger("hostile").error("%s %s", NoJson(), b"x", extra={"weird": NoJson()})
    assert eventlog.flush(10)
    assert receiver.wait_for(2)
    got, record = receiver.events()
    assert got["id"] == event.id
    assert got["message"] == "é" * MAX_MESSAGE_CHARS
    assert got["tags"] == ["ok", "bytes-tag", "lone \\ud800 surrogate"]
    fields = got["fields"]
    assert fields["obj"] == "<NoJson>"
    assert fields["raw"] == "\\xff\\xfe"
    assert fields["rec"] == "{'a': 1, 'self': {...}}"
    assert fields["nan"] == "nan"
    assert fields["big"] == "é" * MAX_VALUE_CHARS
    assert fields["bad"] == "<unrepresentable HostileRepr>"
    assert fields["flag"] == 1
    assert fields["inf"] == "inf" and fields["text"] == "banana"
    assert got["metrics"] == {"ok": 2.5}
    assert record["message"] == "<NoJson> b'x'"
    assert record["fields"] == {"weird": "<NoJson>"}
    converted = pipeline.stats.converted
    assert converted["truncated"] == 2
    assert converted["bytes"] == 2
    assert converted["surrogates"] == 1
    assert converted["metric_not_number"] == 2
    assert converted["non_finite"] == 2
    assert converted["not_text"] == 4
    logging.getLogger("hostile").removeHandler(eventlog.asyncEventLogger)


def test_event_constructor_names_the_bad_argument() -> None:
    with pytest.raises(TypeError, match="Event action must be a non-empty str, got int;"):
        Event(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Event action must be a non-empty str, got ''"):
        Event("")
    with pytest.raises(TypeError, match="Event target must be a str or None, got int"):
        Event("a", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Event tags must be a str or an iterable of str, got int"):
        Event("a", tags=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Event fields must be a mapping or a list of"):
        Event("a", fields=[1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="Event metrics must be a mapping"):
        Event("a", metrics=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Event level must be an int"):
        Event("a", level="INFO")  # type: ignore[arg-type]

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("the application's repr")

    # The error names the type: the application's __repr__ is never run (it may raise or leak).
    with pytest.raises(TypeError, match=r"^Event action must be a non-empty str, got Hostile;"):
        Event(Hostile())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^Event level must be an int \(a logging level\), got Hostile$"):
        Event("a", level=Hostile())  # type: ignore[arg-type]


def test_ids_are_unique_and_time_ordered(receiver: LineReceiver) -> None:
    _configure(receiver)
    for i in range(3000):
        eventlog.log_event(Event("id.check", time_ns=1_700_000_000_000_000_000 + i * 1_000_000))
    assert eventlog.flush(10) and receiver.wait_for(3000)
    ids = [e["id"] for e in receiver.events()]
    assert len(set(ids)) == 3000
    assert ids == sorted(ids)


def test_overflow_drops_are_counted_never_raised() -> None:
    from eventlog.plugin.testing import closed_port

    # A peer that is down (a port held, so no other test worker's listener takes it): the queue
    # fills, the rest is dropped and counted.
    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=closed_port(), queue_size=100, batch_size=10
    )
    for i in range(1000):
        eventlog.log_event(Event("flood", str(i)))
    time.sleep(0.2)
    dropped = pipeline.stats.dropped_by_reason()["queue_full"]
    taken = pipeline.stats.taken
    queued = pipeline.queue_depth()
    assert dropped + taken + queued == 1000
    assert dropped >= 1000 - 100 - 10
    pipeline.shutdown(0.1)  # no peer will take the rest: not the fixture's 2 s to find that out


class SlowPeer:
    """Accepts connections and never reads: the sender's socket buffer fills up."""

    def __init__(self, rcvbuf: int | None = 4096) -> None:
        # A tiny receive buffer fills at once; but once it is full a reader that starts late
        # is slow to reopen the window (TCP's zero-window probes back off to many seconds).
        self.rcvbuf = rcvbuf
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if self.rcvbuf is not None:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            self.conns.append(conn)

    def drain(self) -> None:
        """Start reading (and discarding) what every connection was sent."""
        for conn in list(self.conns):
            threading.Thread(target=self._discard, args=(conn,), daemon=True).start()

    @staticmethod
    def _discard(conn: socket.socket) -> None:
        try:
            while conn.recv(1 << 16):
                pass
        except OSError:
            return

    def hang_up(self) -> None:
        for conn in self.conns:
            conn.close()

    def close(self) -> None:
        self.server.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def slow_peer() -> Iterator[SlowPeer]:
    peer = SlowPeer()
    yield peer
    peer.close()


def test_flush_and_shutdown_keep_their_deadline_when_the_peer_never_reads(
    slow_peer: SlowPeer,
) -> None:
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=slow_peer.port, tcp_send_timeout=30)
    payload = "x" * 10_000
    for i in range(2000):
        eventlog.log_event(Event("stuck", str(i), message=payload))
    # Each call runs in a thread; join's generous bound only catches a hang, it times nothing.
    results: dict[str, bool] = {}
    flusher = threading.Thread(target=lambda: results.update(flush=eventlog.flush(1.0)))
    flusher.start()
    flusher.join(30)
    assert not flusher.is_alive() and results["flush"] is False
    stopper = threading.Thread(target=lambda: results.update(shutdown=pipeline.shutdown(1.0)))
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive() and results["shutdown"] is False


def _spooled(db: Path) -> int:
    """Events in the spool file (read after the worker closed it)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(events), 0) FROM batches").fetchone()[0])


@pytest.mark.parametrize("then", ["reads", "hangs_up"])
@pytest.mark.parametrize("mode", ["memory", "spool"])
def test_counts_add_up_when_shutdown_gives_up_on_a_stuck_send(tmp_path: Path, mode: str, then: str) -> None:
    slow_peer = SlowPeer(rcvbuf=None)  # default buffers: the late reader drains them at once
    try:
        _stuck_send_counts(slow_peer, tmp_path, mode, then)
    finally:
        slow_peer.close()


def _stuck_send_counts(slow_peer: SlowPeer, tmp_path: Path, mode: str, then: str) -> None:
    db = tmp_path / "events.db"
    spool = {"db": str(db)} if mode == "spool" else {}
    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=slow_peer.port,
        tcp_send_timeout=60,
        queue_size=50_000,
        enrichers="",
        **spool,
    )
    total = 10_000  # 20 MB: more than the socket buffers take, so the worker sticks in a send
    for i in range(total):
        eventlog.log_event(Event("stuck", str(i), message="x" * 2000))
    # Wait (bounded) until the worker sticks in the send: it then takes nothing more for a while.
    taken, still_since, give_up = -1, time.monotonic(), time.monotonic() + 30
    while time.monotonic() < give_up:
        if pipeline.stats.taken != taken or not taken:
            taken, still_since = pipeline.stats.taken, time.monotonic()
        elif time.monotonic() - still_since > 1.0:
            break
        time.sleep(0.05)
    assert pipeline.shutdown(1.0) is False
    worker = pipeline.worker.thread
    assert worker is not None and worker.is_alive()  # still inside transport.send
    stats = pipeline.stats

    def accepted() -> int:
        return stats.taken + pipeline.queue_depth() + stats.overflow

    # At the deadline: what the worker held and what was queued is dropped{shutdown};
    # only the spool's rows wait.
    waiting = pipeline.queue_depth() + pipeline.spool_depth()
    assert accepted() == total
    assert stats.sent + sum(stats.dropped_by_reason().values()) + waiting == total
    assert pipeline.queue_depth() == 0
    # Memory mode drops the batch stuck in the send; spool mode drops only what was still
    # queued, which the worker may have spooled already (flush markers never stop that).
    assert stats.dropped_by_reason().get("shutdown", 0) > 0 or mode == "spool"
    assert (waiting > 0) is (mode == "spool")
    at_deadline = (stats.sent, stats.dropped_by_reason())
    # The stuck send ends after shutdown() returned (the peer reads, or hangs up): what
    # shutdown() counted is not counted again, whichever way the send ends.
    slow_peer.drain() if then == "reads" else slow_peer.hang_up()
    worker.join(60)
    assert not worker.is_alive()
    eventlog.log_event(Event("late"))  # after shutdown: counted as closed
    assert accepted() == total + 1
    dropped = stats.dropped_by_reason()
    assert dropped == {**at_deadline[1], "closed": 1}
    if mode == "memory":
        assert stats.sent == at_deadline[0]
        assert stats.sent + sum(dropped.values()) == total + 1
    else:
        # Spool rows that the send delivered count as sent now, and left the spool file.
        assert stats.sent >= at_deadline[0]
        assert stats.sent + sum(dropped.values()) + _spooled(db) == total + 1


def test_metrics_scrape_matches_what_was_sent_and_dropped(receiver: LineReceiver) -> None:
    pipeline = _configure(receiver, metrics_port=0, name="scraped", queue_size=10_000)
    for i in range(250):
        eventlog.log_event(Event("counted", str(i)))
    eventlog.log_event(Event("big.int", fields={"n": 2**70}))  # beyond orjson: stdlib fallback
    assert eventlog.flush(10) and receiver.wait_for(251)
    # An event the formatter refuses is set aside and counted as dropped; the whole-batch
    # encoder fails too, and the batch is formatted one by one: the rest of it goes on.
    # eventlog-speedups writes JSON lines without the formatter: refuse on the formatter's path.
    pipeline._encoder.json_lines = None
    pipeline._encoder.format = _refusing(pipeline._encoder.format)
    pipeline._encoder.format_many = _refusing_many(pipeline._encoder.format_many)
    eventlog.log_event(Event("refused"))
    eventlog.log_event(Event("counted", "after"))
    assert eventlog.flush(10) and receiver.wait_for(252)
    assert pipeline.metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    label = (("pipeline", "scraped"),)
    assert samples[("eventlog_events_sent_total", label)] == 252
    assert samples[("eventlog_events_accepted_total", label)] == 253
    assert (
        samples[("eventlog_events_dropped_total", (("pipeline", "scraped"), ("reason", "unencodable")))] == 1
    )
    assert samples[("eventlog_queue_depth", label)] == 0
    assert samples[("eventlog_transport_up", label)] == 1
    assert samples[("eventlog_send_seconds_count", label)] >= 1


def _scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_after_configure_again_only_the_live_pipeline_is_exported(receiver: LineReceiver) -> None:
    gc.collect()  # earlier tests' garbage (their pipelines, if cyclic) is not this test's
    gc.disable()  # what the collector shows must not wait for the garbage collector
    try:
        first = _configure(receiver, metrics_port=0, name="scraped")
        port = first.metrics_port
        assert port
        first_ref = weakref.ref(first)
        for i in range(3):
            eventlog.log_event(Event("first", str(i)))
        assert eventlog.flush(10)
        del first
        second = _configure(receiver, metrics_port=port, name="scraped")
        eventlog.log_event(Event("second"))
        assert eventlog.flush(10)
        sent = [
            (labels, value)
            for name, labels, value in _scrape(port)
            if name == "eventlog_events_sent_total" and labels.get("pipeline") == "scraped"
        ]
        # Its own name: a pipeline another test left alive is not this test's.
        assert sent == [({"pipeline": "scraped"}, 1.0)]
        # Nothing but the caller held the old pipeline: it is gone without a collection.
        assert first_ref() is None
        # A pipeline shut down is no longer exported either.
        second.shutdown(5)
        left = [s for s in _scrape(port) if s[0] == "eventlog_events_sent_total"]
        assert not [s for s in left if s[1].get("pipeline") == "scraped"]
    finally:
        gc.enable()


def _refusing_many(fmt_many):  # type: ignore[no-untyped-def]
    def format_many(wires):  # type: ignore[no-untyped-def]
        if any(wire["action"] == "refused" for wire in wires):
            raise ValueError("cannot encode this batch")
        return fmt_many(wires)

    return format_many


def _refusing(fmt):  # type: ignore[no-untyped-def]
    def format(wire):  # type: ignore[no-untyped-def]
        if wire["action"] == "refused":
            raise ValueError("cannot encode this one")
        return fmt(wire)

    return format


def test_no_thread_and_no_socket_before_the_first_event(receiver: LineReceiver) -> None:
    before = set(threading.enumerate())
    pipeline = _configure(receiver)
    # Threads of earlier tests may come and go meanwhile; none may be this pipeline's.
    started = {t.name for t in set(threading.enumerate()) - before}
    assert not {name for name in started if name.startswith("eventlog")}, started
    assert pipeline.worker.thread is None
    assert receiver.connections == 0
    assert pipeline.flush(1)
    eventlog.log_event(Event("first"))
    assert eventlog.flush(5) and receiver.wait_for(1)
    assert "eventlog-default" in {t.name for t in threading.enumerate()}
    assert receiver.connections == 1


def test_import_and_handler_start_nothing() -> None:
    import subprocess
    import sys

    code = (
        "import threading, logging, eventlog\n"
        "from eventlog import asyncEventLogger\n"
        "logging.getLogger('x').addHandler(asyncEventLogger)\n"
        "print(len(threading.enumerate()), eventlog._api.api._default)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["1", "None"], out.stderr
    assert out.stderr == ""


def test_context_follows_threads_and_asyncio_tasks(receiver: LineReceiver) -> None:
    _configure(receiver)

    def in_thread() -> None:
        eventlog.log_event(Event("ctx.thread"))

    async def task(name: str) -> None:
        with eventlog.context(user=name):
            await asyncio.sleep(0.01)
            eventlog.log_event(Event("ctx.task", name))

    async def tasks() -> None:
        await asyncio.gather(task("t1"), task("t2"))

    with eventlog.context(user="alice", session="s1", request_id="r1"):
        eventlog.log_event(Event("ctx.outer"))
        with eventlog.context(request_id="r2"):
            eventlog.log_event(Event("ctx.inner"))
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(in_thread,))
        t.start()
        t.join()
        plain = threading.Thread(target=lambda: eventlog.log_event(Event("ctx.plain_thread")))
        plain.start()
        plain.join()
    asyncio.run(tasks())
    eventlog.log_event(Event("ctx.after"))
    assert eventlog.flush(5) and receiver.wait_for(7)
    by_action: dict[str, list[dict[str, object]]] = {}
    for e in receiver.events():
        by_action.setdefault(str(e["action"]), []).append(e)
    who = lambda e: (e.get("user"), e.get("session"), e.get("reqId"))
    assert who(by_action["ctx.outer"][0]) == ("alice", "s1", "r1")
    assert who(by_action["ctx.inner"][0]) == ("alice", "s1", "r2")
    assert who(by_action["ctx.thread"][0]) == ("alice", "s1", "r1")
    assert who(by_action["ctx.plain_thread"][0]) == (None, None, None)
    assert sorted(e["user"] for e in by_action["ctx.task"]) == ["t1", "t2"]
    assert who(by_action["ctx.after"][0]) == (None, None, None)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_gets_a_fresh_queue_and_worker(receiver: LineReceiver) -> None:
    _configure(receiver)
    eventlog.log_event(Event("parent.before"))
    assert eventlog.flush(5)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read_fd)
            eventlog.log_event(Event("child", str(os.getpid())))
            ok = eventlog.flush(5)
            os.write(write_fd, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"1"
    os.waitpid(pid, 0)
    eventlog.log_event(Event("parent.after"))
    assert eventlog.flush(5) and receiver.wait_for(3)
    events = receiver.events()
    assert sorted(e["action"] for e in events) == ["child", "parent.after", "parent.before"]
    child = next(e for e in events if e["action"] == "child")
    assert child["pid"] == pid and child["target"] == str(pid)
    assert receiver.connections == 2  # the child opened its own connection


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_waits_on_a_lock_the_parents_other_threads_held(receiver: LineReceiver) -> None:
    """A replaced pipeline's background shutdown holds the retiring list's lock for a moment;
    a fork in that moment must not leave the child's flush() waiting on it for ever."""
    from eventlog._engine import pipeline as pipeline_module

    _configure(receiver)
    held, release = threading.Event(), threading.Event()

    def retiring() -> None:  # what a retire thread does at its start and end
        with pipeline_module._retiring_lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=retiring)
    thread.start()
    assert held.wait(10)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read_fd)
            eventlog.log_event(Event("child"))
            os.write(write_fd, b"1" if eventlog.flush(5) else b"0")
        finally:
            os._exit(0)
    release.set()
    thread.join()
    os.close(write_fd)
    import select

    readable, _, _ = select.select([read_fd], [], [], 20)
    answer = os.read(read_fd, 1) if readable else b""
    if not answer:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    os.close(read_fd)
    assert answer == b"1"  # it used to wait for ever: the lock's holder is not in the child


def test_dict_config_builds_a_handler_with_its_own_pipeline(receiver: LineReceiver) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "events": {
                    "class": "eventlog.EventHandler",
                    "level": "INFO",
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": receiver.port,
                    "site": "dict",
                }
            },
            "loggers": {"configured": {"handlers": ["events"], "level": "DEBUG"}},
        }
    )
    logger = logging.getLogger("configured")
    logger.debug("below the handler's level")
    logger.info("configured by dictConfig")
    handler = logger.handlers[0]
    assert isinstance(handler, eventlog.EventHandler) and handler.pipeline is not None
    handler.flush()
    assert receiver.wait_for(1)
    (event,) = receiver.events()
    assert (event["message"], event["site"]) == ("configured by dictConfig", "dict")
    logger.removeHandler(handler)
    handler.close()


def test_enricher_errors_are_counted_and_events_go_on(receiver: LineReceiver) -> None:
    from eventlog._config.config import Settings
    from eventlog._config.contracts import EnricherSpec
    from eventlog._config.registry import Registry

    def broken(event: Event) -> None:
        raise RuntimeError("broken enricher")

    class Broken:
        @staticmethod
        @eventlog.plugin.hookimpl
        def eventlog_enrichers() -> list[EnricherSpec]:
            return [EnricherSpec("broken", lambda context: broken)]

    registry = Registry(load_entry_points=False, extra_plugins=(Broken,))
    settings = {"transport": "tcp", "host": "127.0.0.1", "port": receiver.port}
    pipeline = eventlog.Pipeline(
        Settings.load({**settings, "enrichers": "broken,host,site,context"}), registry
    )
    logger = logging.getLogger("test.broken.enricher")
    logger.addHandler(eventlog.EventHandler(pipeline=pipeline))
    logger.propagate = False
    try:
        pipeline.submit_event(Event("still.sent"))
        logger.warning("also sent")
        assert pipeline.flush(5) and receiver.wait_for(2)
        events = receiver.events()
        assert [e["action"] for e in events] == ["still.sent", "log.warning"]
        # The built-in enrichers after it still ran (the careful path: a plugin enricher).
        assert all(e["pid"] == os.getpid() for e in events)
        assert pipeline.stats.converted["enricher_error"] == 2
    finally:
        logger.handlers.clear()
        pipeline.shutdown()


def test_wire_numbers_stay_typed(receiver: LineReceiver) -> None:
    _configure(receiver)
    eventlog.log_event(Event("typed", fields={"i": 7, "f": 2.5, "s": "x", "neg": -1}, metrics={"m": 1}))
    assert eventlog.flush(5) and receiver.wait_for(1)
    raw = receiver.lines[0]
    assert b'"fields":{"i":7,"f":2.5,"s":"x","neg":-1}' in raw
    assert json.loads(raw)["metrics"] == {"m": 1}
    assert not math.isnan(json.loads(raw)["tstamp"])


def test_events_after_shutdown_are_counted_as_dropped(receiver: LineReceiver) -> None:
    pipeline = _configure(receiver)
    eventlog.log_event(Event("before"))
    assert pipeline.shutdown(5)
    for _ in range(3):
        pipeline.submit_event(Event("late"))
    assert pipeline.stats.dropped_by_reason() == {"closed": 3}
    assert pipeline.queue_depth() == 0
    assert receiver.wait_for(1)
    assert [e["action"] for e in receiver.events()] == ["before"]


def test_events_carry_the_name_of_the_thread_that_made_them(receiver: LineReceiver) -> None:
    _configure(receiver)
    worker = threading.Thread(target=lambda: eventlog.log_event(Event("t")), name="billing-7")
    worker.start()
    worker.join()
    eventlog.log_event(Event("main"))
    assert eventlog.flush(5) and receiver.wait_for(2)
    threads = {e["action"]: e["thread"] for e in receiver.events()}
    # billing-7 has ended before the worker saw its event: its ident is all that is left.
    assert threads["main"] == "MainThread"
    assert threads["t"] in ("billing-7", str(worker.ident))


def test_a_transport_bug_sets_the_batch_aside_instead_of_blocking(receiver: LineReceiver) -> None:
    pipeline = _configure(receiver, retry_backoff_max=0.01)
    real_send = pipeline._sender.factory

    class Buggy:
        calls = 0

        def open(self) -> None:
            pass

        def send(self, batch: object) -> None:
            Buggy.calls += 1
            raise KeyError("plugin bug")

        def close(self) -> None:
            pass

    pipeline._sender.factory = Buggy  # type: ignore[assignment]
    pipeline._sender.close()  # the next send makes its transport with the factory
    eventlog.log_event(Event("lost.to.bug"))
    assert eventlog.flush(10)
    assert Buggy.calls == 5
    assert pipeline.stats.dropped_by_reason() == {"transport_bug": 1}
    pipeline._sender.factory = real_send
    eventlog.log_event(Event("after.bug"))
    assert eventlog.flush(10) and receiver.wait_for(1)
    assert [e["action"] for e in receiver.events()] == ["after.bug"]


def test_log_records_from_the_worker_thread_are_not_fed_back(receiver: LineReceiver) -> None:
    pipeline = _configure(receiver)
    root = logging.getLogger()
    root.addHandler(eventlog.asyncEventLogger)
    try:

        def chatty(event: Event) -> None:
            logging.getLogger("urllib3.connectionpool").warning("Retrying ... ?password=secret")

        pipeline._encoder.worker_enrichers.append(chatty)
        eventlog.log_event(Event("only.this"))
        assert eventlog.flush(5) and receiver.wait_for(1)
        time.sleep(0.2)
        assert eventlog.flush(5)
        assert [e["action"] for e in receiver.events()] == ["only.this"]
    finally:
        root.removeHandler(eventlog.asyncEventLogger)


def test_counts_add_up_when_shutdown_cuts_a_retry_short() -> None:
    from tests.peers import free_port

    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=free_port(), batch_size=100, retry_backoff_max=0.05
    )
    for i in range(1000):
        eventlog.log_event(Event("doomed", str(i)))
    assert pipeline.shutdown(0.5) is False
    worker = pipeline.worker.thread
    assert worker is not None
    worker.join(10)
    # Nobody listened: every event is counted as given up at the deadline, none vanishes.
    assert pipeline.stats.sent == 0
    assert pipeline.stats.dropped_by_reason() == {"shutdown": 1000}


def test_shutdown_is_false_when_the_worker_gave_its_batch_up_at_the_deadline() -> None:
    from eventlog.plugin.testing import closed_port

    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=closed_port(), retry_backoff_max=0.05
    )
    for i in range(10):
        eventlog.log_event(Event("doomed", str(i)))
    # The race a loaded machine loses: the worker gives its batch up at the deadline (counted,
    # so the flush's marker is settled) before the flush's own wait runs out, and its thread
    # ends before close() gives up on it.  Both waits made longer here, so that it always happens.
    worker = pipeline.worker
    flush, close = worker.flush, worker.close
    worker.flush = lambda timeout=None: flush(None if timeout is None else timeout + 5)  # type: ignore[method-assign]
    worker.close = lambda deadline: close(deadline + 5)  # type: ignore[method-assign]
    assert pipeline.shutdown(0.3) is False
    assert pipeline.stats.sent == 0
    assert pipeline.stats.dropped_by_reason() == {"shutdown": 10}


def test_the_first_retry_warning_names_the_exception_type() -> None:
    from eventlog.plugin.testing import closed_port
    from tests.spool_support import capture_warnings

    warnings = capture_warnings()
    captured = next(warnings)
    try:
        port = closed_port()
        pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=port)
        eventlog.log_event(Event("never.arrives"))
        deadline = time.monotonic() + 10
        while not captured.count("will retry") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (
            captured.count(f"sending failed, will retry: ConnectError: cannot connect to 127.0.0.1:{port}")
            == 1
        )
        pipeline.shutdown(0.2)
    finally:
        warnings.close()


def test_an_event_after_shutdown_is_counted_as_closed_not_sent_elsewhere(
    receiver: LineReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = _configure(receiver, site="audit")
    eventlog.log_event(Event("before"))
    assert eventlog.shutdown(5) and receiver.wait_for(1)
    eventlog.log_event(Event("after"))
    logging.getLogger("test.after.shutdown").addHandler(eventlog.EventHandler())
    logging.getLogger("test.after.shutdown").warning("also after")
    assert eventlog.get_pipeline() is pipeline  # no fresh pipeline from the environment
    assert pipeline.stats.dropped_by_reason() == {"closed": 2}
    assert "{" not in capsys.readouterr().out  # nothing went to a console pipeline
    assert [e["action"] for e in receiver.events()] == ["before"]
    logging.getLogger("test.after.shutdown").handlers.clear()
    # configure() starts afresh.
    _configure(receiver, site="audit")
    eventlog.log_event(Event("again"))
    assert eventlog.flush(5) and receiver.wait_for(2)
    assert receiver.events()[1]["site"] == "audit"
