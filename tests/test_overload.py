"""Overload control: classes of service, the queue-full policies, the spool's limits.

The scenario of issue 24, scaled down: an application logs DEBUG lines with one
billing Event and one error every N while its collector is down; with defaults
(plus a small queue or spool) every billing event and every error arrives,
each once, and every shed DEBUG line is counted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventlog
from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._config.classes import parse_classes, parse_overload_policy
from eventlog._core.errors import ConfigurationError
from eventlog._engine.overload import Classifier
from eventlog._records.batch import Record, SheddableRecord
from eventlog._records.context import current
from eventlog._spool.sqlite import SQLiteSpool
from eventlog.plugin import FormatterSpec, hookimpl
from eventlog.plugin.testing import closed_port, make_pipeline
from tests.spool_support import wait_until

DEBUG_LINES = 10_000
EVERY = 100  # one billing event and one error every EVERY debug lines: 100 of each


def _outage(logger: logging.Logger) -> None:
    """The issue's application: DEBUG noise, a billing Event and an error every EVERY lines."""
    for number in range(DEBUG_LINES):
        logger.debug("cache miss %s", number)
        if number % EVERY == EVERY - 1:
            charge = Event("billing.charge", f"invoice-{number // EVERY}", "invoice")
            charge.id = f"charge-{number // EVERY:04d}"
            eventlog.log_event(charge)
            logger.error("payment failed %s", number // EVERY)


def _arrived(receiver: LineReceiver) -> tuple[Counter[str], Counter[str], int, list[dict[str, Any]]]:
    """Billing ids, error messages (each with how often it arrived), the debug lines, and the
    summaries of collapsed repeats."""
    charges: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    debug = 0
    summaries = []
    for line in receiver.lines:
        event: dict[str, Any] = json.loads(line)
        if "repeated" in (event.get("fields") or {}):
            summaries.append(event)
        elif event["action"] == "billing.charge":
            charges[event["id"]] += 1
        elif event["action"] == "log.error":
            errors[event["message"]] += 1
        elif event["action"] == "log.debug":
            debug += 1
    return charges, errors, debug, summaries


def _scenario(receiver: LineReceiver, logger: logging.Logger, **settings: Any) -> eventlog.Pipeline:
    receiver.stop()  # the collector is down while the application logs
    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=receiver.port, retry_backoff_max=0.2, **settings
    )
    _outage(logger)
    receiver.restart()
    assert eventlog.flush(60)
    return pipeline


def _assert_all_kept_arrived_once(receiver: LineReceiver, pipeline: eventlog.Pipeline) -> int:
    # A summary of collapsed repeats is queued once the queue has room: after the flush
    # that made room, so a second flush covers it.
    assert eventlog.flush(30)
    assert receiver.wait_for(pipeline.stats.sent, timeout=30)
    charges, errors, debug, summaries = _arrived(receiver)
    expected_charges = {f"charge-{n:04d}" for n in range(DEBUG_LINES // EVERY)}
    assert set(charges) == expected_charges and set(charges.values()) == {1}
    assert set(errors) == {f"payment failed {n}" for n in range(DEBUG_LINES // EVERY)}
    assert set(errors.values()) == {1}
    stats = pipeline.stats
    # The summaries of collapsed repeats queued: one each time the queue had room again
    # after repeats were collapsed (more than one on a loaded machine, where the queue
    # fills again after the first); every other accepted event is the scenario's own.
    accepted = stats.taken + pipeline.queue_depth() + stats.overflow
    queued_summaries = accepted - DEBUG_LINES - 2 * (DEBUG_LINES // EVERY)
    collapsed = pipeline._overload.shed.get(("sheddable", "collapsed"), 0)
    assert queued_summaries >= (1 if collapsed else 0) and queued_summaries >= len(summaries)
    # Every debug line and summary arrived or was dropped, counted; nothing kept was dropped.
    # (A summary is sheddable too: on CI one was evicted to make room for an error.)
    shed = pipeline._overload.shed
    assert sum(count for (klass, _), count in shed.items() if klass == "kept") == 0
    shed_debug = sum(count for (klass, _), count in shed.items() if klass == "sheddable")
    assert debug + len(summaries) + shed_debug == DEBUG_LINES + queued_summaries
    assert sum(stats.dropped_by_reason().values()) == shed_debug
    # The summaries that arrived count the repeats collapsed; all of them when none was shed.
    repeated = sum(event["fields"]["repeated"] for event in summaries)
    assert repeated == collapsed if len(summaries) == queued_summaries else repeated < collapsed
    assert stats.sent == len(receiver.lines)
    return shed_debug


def test_memory_mode_keeps_every_billing_event_and_error_and_counts_what_it_sheds(
    receiver: LineReceiver, app_logger: logging.Logger
) -> None:
    pipeline = _scenario(receiver, app_logger, queue_size=1_000)
    shed = _assert_all_kept_arrived_once(receiver, pipeline)
    assert shed > DEBUG_LINES // 2  # the queue held a tenth of the lines: most were shed
    reasons = pipeline.stats.dropped_by_reason()
    assert reasons["evicted"] == pipeline._overload.shed[("sheddable", "evicted")] > 0
    # One template: every debug line shed at a full queue went into its repeat summary.
    assert reasons["collapsed"] == pipeline._overload.shed[("sheddable", "collapsed")] > 0
    assert "queue_full" not in reasons


def test_repeats_collapse_into_one_event_with_the_count_and_the_last_arguments(
    receiver: LineReceiver, app_logger: logging.Logger
) -> None:
    receiver.stop()
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, queue_size=10)
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]  # no worker while the queue fills
    for number in range(25):
        app_logger.info("retrying %s", number)
    assert pipeline.stats.dropped == {"collapsed": 15}
    receiver.restart()
    del pipeline.worker._start
    assert eventlog.flush(30)
    assert eventlog.flush(30)  # the summary is queued once the first flush made room
    assert receiver.wait_for(11, timeout=30)
    events = [json.loads(line) for line in receiver.lines]
    assert [e["message"] for e in events[:10]] == [f"retrying {n}" for n in range(10)]
    (summary,) = events[10:]
    assert summary["message"] == "retrying 24 (repeated 15 times while the queue was full)"
    assert summary["fields"]["repeated"] == 15
    assert summary["fields"]["repeat_first_ms"] <= summary["fields"]["repeat_last_ms"]
    assert pipeline.stats.sent == 11


def test_repeats_are_shed_plainly_when_collapse_is_off(receiver: LineReceiver) -> None:
    receiver.stop()
    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=receiver.port, queue_size=2, collapse_repeats=False
    )
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]
    record = logging.LogRecord("noise", logging.DEBUG, __file__, 1, "debug", None, None)
    for _ in range(5):
        pipeline.submit_record(record, "debug", current())
    assert pipeline.stats.dropped == {}
    assert pipeline.stats.overflow == 3


def test_spool_mode_evicts_sheddable_rows_first(
    receiver: LineReceiver, app_logger: logging.Logger, tmp_path: Path
) -> None:
    pipeline = _scenario(receiver, app_logger, db=str(tmp_path / "spool.db"), spool_max_bytes=2 * 1024 * 1024)
    shed = _assert_all_kept_arrived_once(receiver, pipeline)
    assert shed > 0
    assert pipeline.stats.dropped_by_reason().get("spool_max_bytes", 0) > 0
    assert ("kept", "spool_max_bytes") not in pipeline._overload.shed


def test_kept_events_evict_the_oldest_sheddable_event(receiver: LineReceiver) -> None:
    receiver.stop()
    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=receiver.port, queue_size=4, collapse_repeats=False
    )
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]  # no worker: the queue stays full
    record = logging.LogRecord("noise", logging.DEBUG, __file__, 1, "debug %s", (1,), None)
    for _ in range(4):
        pipeline.submit_record(record, ("debug %s", (1,)), current())
    kept = [Event("billing.charge", str(n)) for n in range(6)]
    for event in kept:
        pipeline.submit_event(event)
    queued = list(pipeline.worker.queue)
    # Four debug lines made room for four charges; the last two found no sheddable event.
    assert queued == kept[:4]
    assert pipeline.stats.dropped == {"evicted": 4}
    assert pipeline.stats.overflow == 2
    assert pipeline._overload.shed == {("sheddable", "evicted"): 4, ("kept", "queue_full"): 2}
    assert pipeline.stats.taken + len(queued) + pipeline.stats.overflow == 10


def test_shed_oldest_keeps_the_newest_of_the_class(receiver: LineReceiver) -> None:
    receiver.stop()
    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=receiver.port,
        queue_size=3,
        overload_policy="sheddable=shed_oldest",
    )
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]
    records = [
        logging.LogRecord("noise", logging.INFO, __file__, 1, f"line {n}", None, None) for n in range(5)
    ]
    charge = Event("billing.charge", "x")
    pipeline.submit_event(charge)
    for record in records:
        pipeline.submit_record(record, record.msg, current())
    assert [item if type(item) is Event else item[1] for item in pipeline.worker.queue] == [
        charge,
        "line 3",
        "line 4",
    ]
    assert pipeline.stats.dropped == {"shed_oldest": 3}


def test_classes_follow_logger_level_and_action_rules() -> None:
    classify = Classifier(parse_classes("logger:payments=kept, action:ui.*=sheddable, level:INFO=kept")).klass

    def record(name: str, level: int) -> tuple[logging.LogRecord, str, Any]:
        return (logging.LogRecord(name, level, __file__, 1, "m", None, None), "m", None)

    assert classify(record("app", logging.DEBUG)) == "sheddable"
    assert classify(record("app", logging.WARNING)) == "kept"
    assert classify(record("payments.card", logging.DEBUG)) == "kept"
    assert classify(record("app", logging.INFO)) == "kept"
    assert classify(Event("ui.click", "button")) == "sheddable"
    assert classify(Event("billing.charge", "x")) == "kept"
    assert Classifier().klass(Event("ui.click", "button")) == "kept"


def test_classes_and_policies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_CLASSES", "logger:noisy=sheddable")
    monkeypatch.setenv("EVENTLOG_OVERLOAD_POLICY", "kept=block:0.5")
    pipeline = eventlog.configure()
    assert pipeline._overload.policy["kept"] == ("block", 0.5)
    assert pipeline._overload.classifier.klass(Event("a", "b")) == "kept"
    noisy = logging.LogRecord("noisy", logging.ERROR, __file__, 1, "m", None, None)
    assert pipeline._overload.classifier.klass((noisy, "m", None)) == "sheddable"


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("classes", "payments=kept", "must be logger:NAME, level:NAME or action:NAME"),
        ("classes", "logger:payments=keep", "the class is one of kept, sheddable"),
        ("classes", "level:LOUD=kept", "'LOUD' is not a level name"),
        ("overload_policy", "kept=drop", "the policy is one of"),
        ("overload_policy", "kept=block", "block needs seconds"),
        ("overload_policy", "urgent=evict", "'urgent' is not a class"),
    ],
)
def test_bad_classes_and_policies_are_configure_errors(setting: str, value: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        eventlog.configure(**{setting: value})


def test_policy_parser_defaults() -> None:
    assert parse_overload_policy("") == ("kept=evict", "sheddable=shed_newest")
    assert parse_overload_policy("kept=block:0.25") == ("kept=block:0.25", "sheddable=shed_newest")
    assert parse_overload_policy("sheddable=evict") == ("kept=evict", "sheddable=shed_oldest")
    rules = parse_classes("logger:a=kept,level:debug=kept")
    assert parse_classes(",".join(map(str, rules))) == rules  # as eventlog plugins --settings prints


def test_shed_events_are_scraped_by_class_and_reason(receiver: LineReceiver) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from eventlog._engine.prometheus import EventlogCollector

    receiver.stop()
    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=receiver.port,
        queue_size=1,
        name="shed-scrape",
        collapse_repeats=False,
    )
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]
    record = logging.LogRecord("noise", logging.DEBUG, __file__, 1, "debug", None, None)
    pipeline.submit_record(record, "debug", current())
    pipeline.submit_record(record, "debug", current())  # the queue is full: shed
    pipeline.submit_event(Event("billing.charge", "x"))  # evicts the first
    registry = CollectorRegistry()
    registry.register(EventlogCollector())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert (
        'eventlog_events_shed_total{class="sheddable",pipeline="shed-scrape",reason="queue_full"} 1.0' in text
    )
    assert 'eventlog_events_shed_total{class="sheddable",pipeline="shed-scrape",reason="evicted"} 1.0' in text


def _records(prefix: str, count: int, *, sheddable: bool) -> list[Record]:
    kind = SheddableRecord if sheddable else Record
    return [
        kind(f"{prefix}-{n:05d}", "log.debug" if sheddable else "billing.charge", n, b"x" * 2000)
        for n in range(count)
    ]


def test_the_spool_evicts_sheddable_rows_before_kept_ones(tmp_path: Path) -> None:
    evicted: list[tuple[str, str, int]] = []
    spool = SQLiteSpool(str(tmp_path / "spool.db"), "json", max_bytes=400_000, row_events=50)
    spool.on_evict_class = lambda klass, reason, count: evicted.append((klass, reason, count))
    spool.add(_records("kept", 50, sheddable=False))  # the oldest rows: kept
    for batch in range(8):
        spool.add(
            _records(f"noise{batch}", 50, sheddable=True) + _records(f"kept{batch}", 2, sheddable=False)
        )
    ids = [record.id for record in spool.pending(10_000)]
    assert {i for i in ids if i.startswith("kept")} == {f"kept-{n:05d}" for n in range(50)} | {
        f"kept{b}-{n:05d}" for b in range(8) for n in range(2)
    }
    assert evicted and {klass for klass, _, _ in evicted} == {"sheddable"}
    assert sum(count for _, _, count in evicted) == 8 * 50 + 50 + 16 - len(ids)
    spool.close()


def test_an_old_spool_gets_the_shed_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, format TEXT NOT NULL, "
        "events INTEGER NOT NULL, records TEXT NOT NULL, payloads BLOB NOT NULL, added REAL NOT NULL, "
        "owner TEXT, destination TEXT);"
    )
    conn.close()
    os.chmod(path, 0o600)
    spool = SQLiteSpool(str(path), "json")
    spool.add(_records("noise", 3, sheddable=True))
    assert [r.id for r in spool.pending(10)] == ["noise-00000", "noise-00001", "noise-00002"]
    spool.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT shed, events FROM batches").fetchall() == [(1, 3)]
    conn.close()


class _RefusesPoison:
    """A plugin whose json-like formatter refuses (raises on) events with the action 'poison'."""

    @staticmethod
    @hookimpl
    def eventlog_formatters() -> list[FormatterSpec]:
        from eventlog._builtin.formats import JsonFormatter

        class Refusing(JsonFormatter):
            def format(self, wire: dict[str, Any]) -> bytes:
                if wire["action"] == "poison":
                    raise ValueError("refused")
                return super().format(wire)

            def format_many(self, wires: list[dict[str, Any]]) -> bytes:  # type: ignore[override]
                return b"".join(self.format(wire) for wire in wires)

        return [FormatterSpec("refusing", lambda _: Refusing(), framing="lines")]


def test_spool_rows_keep_each_events_class_when_the_encoder_sets_one_aside(tmp_path: Path) -> None:
    db = tmp_path / "spool.db"
    pipeline = make_pipeline(
        {
            "transport": "tcp",
            "host": "127.0.0.1",
            "port": closed_port(),
            "format": "refusing",
            "db": str(db),
            "classes": "logger:payments=kept, action:ui.*=sheddable",
        },
        plugins=[_RefusesPoison],
    )
    handler = eventlog.EventHandler(pipeline=pipeline)
    payments = logging.getLogger("payments")
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]  # one batch, in this order
    pipeline.submit_event(Event("poison", "p"))
    handler.handle(payments.makeRecord("payments", logging.DEBUG, __file__, 1, "charge %s", ("x",), None))
    pipeline.submit_event(Event("ui.click", "b", "ui"))
    del pipeline.worker._start
    pipeline.worker.wake()

    def rows() -> dict[str, int]:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            found = conn.execute("SELECT payloads, shed FROM batches").fetchall()
        return {
            json.loads(line)["action"]: flag for payloads, flag in found for line in payloads.splitlines()
        }

    wait_until(lambda: len(rows()) == 2)
    shed = rows()
    # The payments DEBUG record is kept by the rule, ui.click shed first, whatever was set aside.
    assert shed == {"log.debug": 0, "ui.click": 1}
    assert pipeline.stats.dropped_by_reason() == {"unencodable": 1}
    pipeline.shutdown(0.1)


def test_a_flush_waits_for_its_events_however_many_collapse_or_are_evicted_after_it(
    receiver: LineReceiver, app_logger: logging.Logger
) -> None:
    receiver.stop()
    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=receiver.port, queue_size=100, batch_size=10
    )
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]  # the queue stays full
    for number in range(50):
        app_logger.error("important %s", number)  # kept, queued before the flush
    flushed: list[tuple[bool, int]] = []
    flusher = threading.Thread(target=lambda: flushed.append((pipeline.flush(30), pipeline.stats.sent)))
    flusher.start()
    wait_until(lambda: pipeline._accounts.markers)
    for number in range(50):
        app_logger.debug("noise %s", number)  # sheddable, queued after the flush: the queue is full
    for number in range(20):
        eventlog.log_event(Event("billing.charge", str(number)))  # each evicts a debug line
    for _ in range(300):
        app_logger.debug("more noise")  # the queue is full: collapsed, never queued
    assert pipeline.stats.dropped_by_reason() == {"evicted": 20, "collapsed": 300}
    receiver.restart()
    del pipeline.worker._start
    pipeline.worker.wake()
    flusher.join(60)
    # The flush ended once the 50 errors it covered (the oldest, sent first) were sent, not
    # 320 events early: before the fix it returned True with 10 sent.
    ((done, sent),) = flushed
    assert done and sent >= 50
    assert receiver.wait_for(50 + 30 + 20 + 1)  # and the collapsed lines' summary


_LEVELS = st.sampled_from([5, 10, 20, 29, 30, 40, 50, 30.0, 10.5, True, "20", None, 2**70, -1])


@st.composite
def _batch_items(draw: st.DrawFn) -> list[Any]:
    """Queued items as the worker takes them: record tuples of odd levels too, Events."""
    items: list[Any] = []
    for i in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 5)) == 0:
            items.append(Event("e", fields={"n": i}))
            continue
        record = logging.LogRecord("tests.overload", 20, "f.py", 1, "m %d", (i,), None)
        level = draw(_LEVELS)
        if level is None:
            del record.levelno
        else:
            record.levelno = level  # type: ignore[assignment]
        items.append((record, ("m %d", (i,)), current()))
    return items


@settings(max_examples=300, deadline=None)
@given(items=_batch_items(), rules=st.sampled_from(["", "logger:tests.*=kept", "level:20=kept"]))
def test_a_batch_is_classed_as_each_of_its_items_is(items: list[Any], rules: str) -> None:
    """The batch classes (C loops over the levels, for log records with no rules) are exactly
    the classes of its items one by one."""
    classifier = Classifier(parse_classes(rules) if rules else ())
    assert classifier.kinds(items) == set(map(classifier.sheddable, items))
