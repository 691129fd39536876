"""Counters and gauges: exact sums under threads, last values, nothing lost at shutdown or exit.

Every series is sent through the real pipeline to a real LineReceiver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver

THREADS = 8


def configure(receiver: LineReceiver, **settings: Any) -> None:
    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, linger_ms=0, **settings)


def series_events(receiver: LineReceiver, action: str) -> list[dict[str, Any]]:
    return [e for e in receiver.events() if e["action"] == action]


def settle(receiver: LineReceiver) -> None:
    """Flush and wait until everything sent so far has arrived."""
    assert eventlog.flush(10)
    sent = eventlog.get_pipeline().stats.sent
    assert receiver.wait_for(sent, 10)


def run_threads(work: Any) -> None:
    """``work`` in 8 threads at once, switching between them as often as CPython allows."""
    start = threading.Barrier(THREADS)

    def body() -> None:
        start.wait()
        work()

    threads = [threading.Thread(target=body) for _ in range(THREADS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)


def test_counter_event_shape(receiver: LineReceiver) -> None:
    configure(receiver)
    counter = eventlog.Counter(
        "test.shape.orders", "eu-west", "region", tags=["shop"], fields={"tier": "gold"}
    )
    counter.inc()
    counter.inc(4)
    with eventlog.context(user="bob", request_id="r-1"):
        settle(receiver)  # flushed inside a request: the series must not take its context
    (event,) = series_events(receiver, "test.shape.orders")
    assert isinstance(event["metrics"].pop("intervalMs"), int)
    assert {k: event[k] for k in ("target", "tgType", "tags", "fields", "metrics")} == {
        "target": "eu-west",
        "tgType": "region",
        "tags": ["shop"],
        "fields": {"metric": "counter", "tier": "gold"},
        "metrics": {"count": 5},
    }
    assert "user" not in event and "reqId" not in event


def test_counter_under_8_threads_sums_exactly(receiver: LineReceiver) -> None:
    # A short interval makes the timer thread read while the threads count.
    configure(receiver, counter_interval=0.01)
    counter = eventlog.Counter("test.threads.count")

    def work() -> None:
        for _ in range(20_000):
            counter.inc()
        for _ in range(2_000):  # more than FOLD_AT: callers fold amounts while others add
            counter.inc(3)

    run_threads(work)
    settle(receiver)
    events = series_events(receiver, "test.threads.count")
    assert sum(e["metrics"]["count"] for e in events) == THREADS * (20_000 + 2_000 * 3)
    assert all(e["metrics"]["count"] > 0 for e in events)  # no empty intervals sent


def test_gauge_reports_the_last_value(receiver: LineReceiver) -> None:
    configure(receiver, counter_interval=0.01)
    gauge = eventlog.Gauge("test.gauge.depth", "orders")
    gauge.set(0)

    def work() -> None:
        for _ in range(2_000):
            gauge.inc()
        for _ in range(1_500):
            gauge.dec()

    run_threads(work)
    assert gauge.value == THREADS * 500
    settle(receiver)
    assert series_events(receiver, "test.gauge.depth")[-1]["metrics"] == {"value": 4_000}
    gauge.set(42.5)
    settle(receiver)
    last = series_events(receiver, "test.gauge.depth")[-1]
    assert last["metrics"] == {"value": 42.5}
    assert last["fields"] == {"metric": "gauge"}
    before = len(series_events(receiver, "test.gauge.depth"))
    settle(receiver)  # unchanged: nothing new is sent
    assert len(series_events(receiver, "test.gauge.depth")) == before


def test_the_timer_sends_each_interval_without_flush(receiver: LineReceiver) -> None:
    configure(receiver, counter_interval=0.05)
    eventlog.Counter("test.timer.ticks").inc(7)
    assert receiver.wait_for(1, 10)  # no flush: the timer thread sent it
    assert [e["metrics"]["count"] for e in series_events(receiver, "test.timer.ticks")] == [7]


def test_nothing_is_lost_at_shutdown(receiver: LineReceiver) -> None:
    configure(receiver)  # the default 60 s interval: only shutdown sends
    counter = eventlog.Counter("test.shutdown.count")
    gauge = eventlog.Gauge("test.shutdown.gauge")
    run_threads(lambda: [counter.inc() for _ in range(1_000)])
    gauge.set(9)
    assert eventlog.shutdown(10)
    assert receiver.wait_for(2, 10)
    assert [e["metrics"]["count"] for e in series_events(receiver, "test.shutdown.count")] == [
        THREADS * 1_000
    ]
    assert [e["metrics"]["value"] for e in series_events(receiver, "test.shutdown.gauge")] == [9]


def test_nothing_is_lost_at_interpreter_exit(receiver: LineReceiver, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import threading, eventlog
        eventlog.configure(transport="tcp", host="127.0.0.1", port=PORT)
        hits = eventlog.Counter("test.exit.count")
        threads = [threading.Thread(target=lambda: [hits.inc() for _ in range(5000)])
                   for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        eventlog.Gauge("test.exit.gauge").set(3)
        # no flush, no shutdown: the exit hook must send both
        """
    ).replace("PORT", str(receiver.port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    assert receiver.wait_for(2, 10)
    assert [e["metrics"]["count"] for e in series_events(receiver, "test.exit.count")] == [40_000]
    assert [e["metrics"]["value"] for e in series_events(receiver, "test.exit.gauge")] == [3]


def test_a_series_can_go_to_its_own_pipeline(receiver: LineReceiver) -> None:
    from eventlog._config.config import Settings

    configure(receiver)
    with LineReceiver() as other:
        pipeline = eventlog.Pipeline(
            Settings.load({"transport": "tcp", "host": "127.0.0.1", "port": other.port})
        )
        try:
            eventlog.Gauge("test.own.pipeline", pipeline=pipeline).set(5)
            assert eventlog.flush(10)  # queues the series' event on its pipeline
            assert pipeline.flush(10) and other.wait_for(1, 10)
        finally:
            pipeline.shutdown(2)
        assert [e["metrics"] for e in other.events()] == [{"value": 5}]
    assert receiver.events() == []


def test_same_series_is_the_same_object_and_kinds_do_not_mix() -> None:
    first = eventlog.Counter("test.identity", "a", fields={"k": 1})
    assert eventlog.Counter("test.identity", "a", fields={"k": 1}) is first
    assert eventlog.Counter("test.identity", "b") is not first
    with pytest.raises(TypeError, match="already exists as a Counter"):
        eventlog.Gauge("test.identity", "a", fields={"k": 1})
    with pytest.raises(TypeError, match="non-empty str"):
        eventlog.Counter("")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_counts_only_its_own(receiver: LineReceiver) -> None:
    configure(receiver)
    counter = eventlog.Counter("test.fork.count")
    counter.inc(5)
    pid = os.fork()
    if pid == 0:  # the child: its count starts at zero, the parent sends the 5
        code = 1
        try:
            counter.inc(2)
            eventlog.Counter("test.fork.count").inc()
            code = 0 if eventlog.flush(10) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert eventlog.flush(10)
    assert receiver.wait_for(2, 10)  # one event from each process
    counts = sorted(e["metrics"]["count"] for e in series_events(receiver, "test.fork.count"))
    assert counts == [3, 5]
    pids = {e["pid"] for e in series_events(receiver, "test.fork.count")}
    assert pids == {pid, os.getpid()}


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", None, [1]], ids=repr)
def test_an_increment_a_counter_cannot_take_is_refused_counted_and_warned_never_raised(
    receiver: LineReceiver, bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    configure(receiver)
    counter = eventlog.Counter("test.refused", repr(bad))
    counter.inc(2)
    counter.inc(bad)  # raised into the caller before (ValueError, TypeError)
    counter.inc(bad)
    counter.inc(3)
    settle(receiver)
    (event,) = series_events(receiver, "test.refused")
    assert event["metrics"]["count"] == 5  # the refused ones are not counted
    assert eventlog.get_pipeline().stats.converted.get("bad_increment") == 2
    warnings = [r.getMessage() for r in caplog.records if "cannot take" in r.getMessage()]
    assert len(warnings) == 1  # once, naming the value and what to do
    assert f"given {bad!r}" in warnings[0] and "use a Gauge" in warnings[0]


def test_a_counter_of_more_than_64_bits_arrives_as_text_counted(receiver: LineReceiver) -> None:
    configure(receiver)
    counter = eventlog.Counter("test.huge")
    huge = 10**5000
    counter.inc(huge)  # the count is no int64: no format could carry it as a number
    settle(receiver)
    (event,) = series_events(receiver, "test.huge")
    assert "count" not in event.get("metrics", {})
    assert event["fields"]["count"] == hex(huge)  # past Python's digit limit: hex, exact
    assert eventlog.get_pipeline().stats.converted.get("int_range") == 1


def test_a_gauge_refuses_what_is_no_number_without_raising(receiver: LineReceiver) -> None:
    configure(receiver)
    gauge = eventlog.Gauge("test.gauge.refused")
    gauge.set(10)
    gauge.inc("5")  # type: ignore[arg-type]  # raised TypeError into the caller before
    gauge.dec(float("nan"))
    gauge.set(None)  # type: ignore[arg-type]
    gauge.inc(2)
    settle(receiver)
    (event,) = series_events(receiver, "test.gauge.refused")
    assert event["metrics"] == {"value": 12}
    assert eventlog.get_pipeline().stats.converted.get("bad_increment") == 3


def test_a_float_and_an_int_past_floats_range_add_up_without_an_error(receiver: LineReceiver) -> None:
    """Found by the fault-injection run: float + 10**400 raised OverflowError in the emitter."""
    configure(receiver)
    counter = eventlog.Counter("test.mixed")
    counter.inc(0.5)
    counter.inc(10**400)
    counter.inc(2)
    settle(receiver)
    (event,) = series_events(receiver, "test.mixed")
    assert event["fields"]["count"] == str(10**400 + 2)  # past 64 bits: as text, exact but the 0.5
    assert eventlog.get_pipeline().stats.converted.get("int_range") == 1
