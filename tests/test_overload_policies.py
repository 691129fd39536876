"""Overload control's further policies: spill to the spool, class order at the spool's age
limit, sampling and per-template rate limits for sheddable classes.

Against a real TCP listener and a real spool, with exact counts by event id.  The
worker is held back (``worker._start``) while the queue fills, so what is queued,
spilled, sampled or shed does not depend on timing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import eventlog
from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._core.errors import ConfigurationError
from eventlog._records.batch import Record, SheddableRecord
from eventlog._records.context import current
from eventlog._spool.sqlite import SQLiteSpool


def _debug(pipeline: eventlog.Pipeline, count: int, prefix: str = "debug") -> None:
    """``count`` sheddable records, each its own template (so none collapse)."""
    for n in range(count):
        message = f"{prefix} {n}"
        record = logging.LogRecord("noise", logging.DEBUG, __file__, 1, message, None, None)
        pipeline.submit_record(record, message, current())


def _charges(pipeline: eventlog.Pipeline, count: int) -> list[str]:
    ids = []
    for n in range(count):
        charge = Event("billing.charge", f"invoice-{n}", "invoice")
        charge.id = f"charge-{n:03d}"
        pipeline.submit_event(charge)
        ids.append(charge.id)
    return ids


def _held(receiver: LineReceiver, **settings: Any) -> eventlog.Pipeline:
    receiver.stop()  # the collector is down while the queue fills
    settings.setdefault("collapse_repeats", False)  # shed lines counted plainly
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, **settings)
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]  # no worker yet
    return pipeline


def _deliver(receiver: LineReceiver, pipeline: eventlog.Pipeline) -> list[dict[str, Any]]:
    receiver.restart()
    del pipeline.worker._start
    assert eventlog.flush(30)
    assert receiver.wait_for(pipeline.stats.sent, timeout=30)
    return [json.loads(line) for line in receiver.lines]


def _scrape() -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    from eventlog._engine.prometheus import EventlogCollector

    registry = CollectorRegistry()
    registry.register(EventlogCollector())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def _ids(events: list[dict[str, Any]], action: str) -> list[str]:
    key = "message" if action.startswith("log.") else "id"
    return sorted(e[key] for e in events if e["action"] == action)


def test_kept_events_spill_past_a_full_queue_and_arrive_through_the_spool(
    receiver: LineReceiver, tmp_path: Path
) -> None:
    pipeline = _held(receiver, queue_size=10, db=str(tmp_path / "spool.db"), overload_policy="kept=spill")
    _debug(pipeline, 10)  # the queue is full of sheddable lines
    charges = _charges(pipeline, 6)  # into the spill reserve: no debug line evicted
    _debug(pipeline, 3, "late")  # sheddable: the queue is past its bound, shed as the newest
    assert len(pipeline.worker.queue) == 16
    assert pipeline._overload.spilled == 6
    assert pipeline._overload.shed == {("sheddable", "queue_full"): 3}
    assert 'eventlog_events_spilled_total{pipeline="default"} 6.0' in _scrape()
    events = _deliver(receiver, pipeline)
    assert _ids(events, "billing.charge") == charges
    assert _ids(events, "log.debug") == sorted(f"debug {n}" for n in range(10))
    assert len(events) == 16 and pipeline.stats.sent == 16
    assert pipeline.stats.overflow == 3 and pipeline.stats.dropped == {}


def test_kept_events_evict_once_the_spill_reserve_is_used_up(receiver: LineReceiver, tmp_path: Path) -> None:
    pipeline = _held(receiver, queue_size=10, db=str(tmp_path / "spool.db"), overload_policy="kept=spill")
    _debug(pipeline, 10)
    charges = _charges(pipeline, 14)  # 10 into the reserve, then 4 evict the oldest debug lines
    assert pipeline._overload.spilled == 10
    assert pipeline._overload.shed == {("sheddable", "evicted"): 4}
    events = _deliver(receiver, pipeline)
    assert _ids(events, "billing.charge") == charges
    assert _ids(events, "log.debug") == sorted(f"debug {n}" for n in range(4, 10))
    assert pipeline.stats.sent == 20 and pipeline.stats.dropped == {"evicted": 4}


def test_without_spill_kept_events_evict_sheddable_ones(receiver: LineReceiver, tmp_path: Path) -> None:
    pipeline = _held(receiver, queue_size=10, db=str(tmp_path / "spool.db"))
    _debug(pipeline, 10)
    charges = _charges(pipeline, 6)
    events = _deliver(receiver, pipeline)
    assert _ids(events, "billing.charge") == charges
    assert _ids(events, "log.debug") == sorted(f"debug {n}" for n in range(6, 10))
    assert pipeline._overload.spilled == 0


def test_a_kept_event_is_queued_when_the_worker_made_room_while_none_could_be_evicted(
    receiver: LineReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker takes a batch between the full-queue check and the eviction: the kept event is
    queued, not dropped (it was dropped, and counted as queue_bytes: test_engine's flood once in
    15 runs, a kept error in test_ledger once in 3 CI runs)."""
    pipeline = _held(receiver, queue_size=10)
    _charges(pipeline, 10)
    worker = pipeline.worker
    taken: list[Any] = []

    def no_sheddable_but_the_worker_takes_a_batch(sheddable: bool, reason: str, klass: str) -> bool:
        taken.extend(worker.accounts.take(worker.queue, 5))  # the worker's step, between two checks
        return False

    monkeypatch.setattr(pipeline._overload, "_evict", no_sheddable_but_the_worker_takes_a_batch)
    late = Event("billing.charge", "invoice-late", "invoice")
    pipeline.submit_event(late)
    assert len(taken) == 5 and pipeline.queue_depth() == 6
    assert worker.queue[-1] is late
    assert pipeline.stats.dropped_by_reason() == {}
    assert pipeline._overload.shed == {}
    pipeline.shutdown(0.1)  # no worker ever ran: nothing more to see


def test_spill_in_memory_mode_is_a_configure_error_naming_both_settings() -> None:
    with pytest.raises(ConfigurationError, match=r"overload_policy kept=spill needs spool mode.*EVENTLOG_DB"):
        eventlog.configure(overload_policy="kept=spill")


def _aged(path: Path, seconds_ago: dict[str, float]) -> None:
    """Make rows older: each row whose first record's id starts with a key was added that long ago."""
    conn = sqlite3.connect(path)
    with conn:
        for seq, records in conn.execute("SELECT seq, records FROM batches").fetchall():
            first = str(json.loads(records)[0][0])
            for prefix, age in seconds_ago.items():
                if first.startswith(prefix):
                    conn.execute("UPDATE batches SET added = ? WHERE seq = ?", (time.time() - age, seq))
    conn.close()


def _spool_at_age_limit(tmp_path: Path, **limits: Any) -> tuple[list[str], list[tuple[str, str, int]]]:
    path = tmp_path / "spool.db"
    kept_max_age = limits.pop("kept_max_age", None)
    spool = SQLiteSpool(str(path), "json", row_events=50, **limits)
    spool.kept_max_age = kept_max_age
    evicted: list[tuple[str, str, int]] = []
    spool.on_evict_class = lambda klass, reason, count: evicted.append((klass, reason, count))
    spool.add(_records("old-noise", 3, sheddable=True) + _records("old-kept", 2, sheddable=False))
    spool.add(_records("aged-noise", 3, sheddable=True) + _records("aged-kept", 2, sheddable=False))
    spool.add(_records("new-noise", 2, sheddable=True) + _records("new-kept", 2, sheddable=False))
    _aged(path, {"old": 7200, "aged": 120})
    spool._next_housekeeping = 0.0  # the next read does its upkeep now
    ids = [record.id for record in spool.pending(100)]
    spool.close()
    return ids, evicted


def _records(prefix: str, count: int, *, sheddable: bool) -> list[Record]:
    kind = SheddableRecord if sheddable else Record
    action = "log.debug" if sheddable else "billing.charge"
    return [kind(f"{prefix}-{n}", action, n, b"x" * 100) for n in range(count)]


def test_at_the_age_limit_sheddable_rows_go_before_kept_ones(tmp_path: Path) -> None:
    ids, evicted = _spool_at_age_limit(tmp_path, max_age=60.0, kept_max_age=3600.0)
    # Past 60 s, every sheddable row went; of the kept rows only those past 3600 s.
    assert ids == ["aged-kept-0", "aged-kept-1", "new-noise-0", "new-noise-1", "new-kept-0", "new-kept-1"]
    assert evicted == [("sheddable", "spool_max_age", 6), ("kept", "spool_max_age", 2)]


def test_kept_rows_have_no_age_limit_when_spool_kept_max_age_is_0(tmp_path: Path) -> None:
    ids, evicted = _spool_at_age_limit(tmp_path, max_age=60.0, kept_max_age=0.0)
    kept = [f"{prefix}-kept-{n}" for prefix in ("old", "aged", "new") for n in (0, 1)]
    assert [i for i in ids if "kept" in i] == kept
    assert [i for i in ids if "noise" in i] == ["new-noise-0", "new-noise-1"]
    assert evicted == [("sheddable", "spool_max_age", 6)]


def test_one_age_limit_for_both_classes_unless_kept_has_its_own(tmp_path: Path) -> None:
    ids, evicted = _spool_at_age_limit(tmp_path, max_age=60.0)
    assert ids == ["new-noise-0", "new-noise-1", "new-kept-0", "new-kept-1"]
    assert evicted == [("sheddable", "spool_max_age", 6), ("kept", "spool_max_age", 4)]


def test_a_kept_age_limit_shorter_than_the_sheddable_one_is_a_configure_error(tmp_path: Path) -> None:
    says = r"spool_kept_max_age = 30 is shorter than spool_max_age = 60"
    with pytest.raises(ConfigurationError, match=says):
        eventlog.configure(db=str(tmp_path / "s.db"), spool_max_age=60, spool_kept_max_age=30)


def _lines(pipeline: eventlog.Pipeline, template: str, count: int, level: int = logging.DEBUG) -> None:
    """``count`` records of one template (``template % n``), through the pipeline's record door."""
    for n in range(count):
        record = logging.LogRecord("noise", level, __file__, 1, template, (n,), None)
        pipeline.submit_record(record, (template, (n,)), current())


def test_sampling_keeps_the_first_of_every_n_of_each_template(receiver: LineReceiver) -> None:
    pipeline = _held(receiver, queue_size=100, sample_sheddable=3)
    _lines(pipeline, "miss %s", 10)
    _lines(pipeline, "hit %s", 4)
    _lines(pipeline, "failed %s", 4, logging.ERROR)  # kept: never sampled
    charges = _charges(pipeline, 2)
    assert pipeline._overload.shed == {("sheddable", "sampled"): 8}
    events = _deliver(receiver, pipeline)
    assert [e["message"] for e in events if e["action"] == "log.debug"] == [
        "miss 0",
        "miss 3",
        "miss 6",
        "miss 9",
        "hit 0",
        "hit 3",
    ]
    assert [e["message"] for e in events if e["action"] == "log.error"] == [f"failed {n}" for n in range(4)]
    assert _ids(events, "billing.charge") == charges
    stats = pipeline.stats
    assert stats.dropped == {"sampled": 8} and stats.sent == 12
    assert stats.taken == 20 and pipeline.queue_depth() == 0  # accepted = sent + dropped


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limit_lets_n_a_second_of_each_template_through(receiver: LineReceiver) -> None:
    pipeline = _held(receiver, queue_size=100, rate_limit_sheddable=2)
    assert pipeline._overload.thinning is not None
    clock = pipeline._overload.thinning.clock = _Clock()
    _lines(pipeline, "miss %s", 5)  # a burst of two, then limited
    _lines(pipeline, "hit %s", 3)  # its own bucket
    _lines(pipeline, "failed %s", 3, logging.WARNING)  # kept: never limited
    clock.now += 0.5  # one more token
    _lines(pipeline, "miss 2nd %s", 1)
    _lines(pipeline, "miss %s", 2)
    clock.now += 10  # the bucket holds one second's worth, not ten
    _lines(pipeline, "miss %s", 4)
    assert pipeline._overload.shed == {("sheddable", "rate_limited"): 3 + 1 + 1 + 2}
    events = _deliver(receiver, pipeline)
    assert [e["message"] for e in events if e["action"] != "log.warning"] == [
        "miss 0",
        "miss 1",
        "hit 0",
        "hit 1",
        "miss 2nd 0",
        "miss 0",
        "miss 0",
        "miss 1",
    ]
    assert pipeline.stats.dropped == {"rate_limited": 7} and pipeline.stats.sent == 11


def test_sampling_and_rate_limits_are_off_by_default_and_cost_the_intake_nothing() -> None:
    pipeline = eventlog.configure()
    assert pipeline._overload.thinning is None
    assert pipeline.worker.limit == pipeline.settings.queue_size  # the inlined check as before
    sampled = eventlog.configure(sample_sheddable=2)
    assert sampled.worker.limit == 0  # every event goes to the overload control
    # What the compiled doors read in one go is in step with the bounds.
    for worker in (pipeline.worker, sampled.worker):
        assert worker.gate == (worker.queue, worker.accounts, worker.limit, worker.max_bytes)
        assert worker.gate[0] is worker.queue and worker.gate[1] is worker.accounts


def test_sampling_and_rate_limits_come_from_the_environment_and_dict_config(
    monkeypatch: pytest.MonkeyPatch, receiver: LineReceiver
) -> None:
    monkeypatch.setenv("EVENTLOG_SAMPLE_SHEDDABLE", "10")
    monkeypatch.setenv("EVENTLOG_RATE_LIMIT_SHEDDABLE", "0.5")
    thinning = eventlog.configure()._overload.thinning
    assert thinning is not None and (thinning.every, thinning.rate, thinning.burst) == (10, 0.5, 1.0)
    monkeypatch.delenv("EVENTLOG_SAMPLE_SHEDDABLE")
    monkeypatch.delenv("EVENTLOG_RATE_LIMIT_SHEDDABLE")
    handler = eventlog.EventHandler(transport="tcp", host="127.0.0.1", port=receiver.port, sample_sheddable=4)
    try:
        assert handler.pipeline is not None
        assert handler.pipeline._overload.thinning is not None
        assert handler.pipeline._overload.thinning.every == 4
    finally:
        handler.close()


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("sample_sheddable", 0, "a whole number, 1 or more"),
        ("rate_limit_sheddable", "fast", "expected a number of events a second"),
    ],
)
def test_bad_sampling_settings_are_configure_errors(setting: str, value: object, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        eventlog.configure(**{setting: value})


def test_the_logging_handler_and_log_event_are_sampled_too(
    receiver: LineReceiver, app_logger: logging.Logger
) -> None:
    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=receiver.port,
        sample_sheddable=3,
        classes="action:ui.*=sheddable",
    )
    for n in range(7):
        app_logger.info("clicked %s", n)  # through the handler's inlined intake
        click = Event("ui.click", f"button-{n}", "ui")
        click.id = f"click-{n}"
        eventlog.log_event(click)
    app_logger.warning("kept")
    assert eventlog.flush(30) and receiver.wait_for(7, timeout=30)
    events = [json.loads(line) for line in receiver.lines]
    assert [e["message"] for e in events if e["action"] == "log.info"] == [
        "clicked 0",
        "clicked 3",
        "clicked 6",
    ]
    assert _ids(events, "ui.click") == ["click-0", "click-3", "click-6"]
    assert [e["message"] for e in events if e["action"] == "log.warning"] == ["kept"]
    assert pipeline.stats.dropped == {"sampled": 8} and pipeline.stats.sent == 7
