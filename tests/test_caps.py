"""Memory bounded by bytes as well as by count (issue 24 item 3).

The per-event caps apply in the caller, before an item is queued, each cut
counted as converted{reason}; the memory queue holds at most ``queue_max_bytes``
of events (as eventlog._records.caps estimates them), and at that bound the
class of service decides, as at ``queue_size``.  The worker is held back
(``pipeline.worker._start``) while the collector is down, so what the queue
holds is exact; then it is let go and what arrives is read back.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import eventlog
from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._records.caps import ITEM_BYTES, VALUE_BYTES, _py_text_bytes, event_bytes
from eventlog._records.context import current
from eventlog._records.text import MAX_EVENT_BYTES, MAX_ITEMS, MAX_MESSAGE_CHARS, MAX_VALUE_CHARS

MIB = 1024 * 1024
#: What one capped 1 MiB message costs the queue: the cut text and the item's overhead.
CAPPED_MESSAGE_BYTES = ITEM_BYTES + MAX_MESSAGE_CHARS


def _held(receiver: LineReceiver, **settings: object) -> eventlog.Pipeline:
    """A pipeline to the receiver, which is down, with no worker: the queue only fills."""
    receiver.stop()
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, **settings)
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]
    return pipeline


def _queue_bytes(pipeline: eventlog.Pipeline) -> int:
    """The queue's byte total, as the byte bound reads it."""
    return pipeline.worker.accounts.queued_bytes


def _let_go(receiver: LineReceiver, pipeline: eventlog.Pipeline, expected: int) -> list[dict[str, object]]:
    receiver.restart()
    del pipeline.worker._start
    assert eventlog.flush(60)
    assert receiver.wait_for(expected, timeout=60)
    return [json.loads(line) for line in receiver.lines]


def test_one_mib_messages_with_the_peer_down_stay_within_the_byte_bound(
    receiver: LineReceiver, app_logger: logging.Logger
) -> None:
    pipeline = _held(receiver, queue_max_bytes=4 * MIB)
    big = "x" * MIB
    for _ in range(1_500):
        app_logger.info(big)
    fits = 4 * MIB // CAPPED_MESSAGE_BYTES  # 15
    assert len(pipeline.worker.queue) == fits
    assert _queue_bytes(pipeline) == fits * CAPPED_MESSAGE_BYTES <= 4 * MIB
    # Each record was cut before it was queued, once; the rest found the byte bound.
    assert pipeline.stats.converted == {"truncated": 1_500}
    assert pipeline.stats.dropped_by_reason() == {"queue_bytes": 1_500 - fits}
    assert pipeline.shed_counts() == {("sheddable", "queue_bytes"): 1_500 - fits}
    # A kept event that does not fit evicts the oldest sheddable one, as at the count bound.
    charge = Event("billing.charge", "invoice-1", "invoice", message="c" * (MAX_MESSAGE_CHARS + 10))
    eventlog.log_event(charge)
    assert pipeline.stats.dropped_by_reason() == {"queue_bytes": 1_500 - fits, "evicted": 1}
    assert _queue_bytes(pipeline) == fits * CAPPED_MESSAGE_BYTES <= 4 * MIB  # one out, one in
    stats = pipeline.stats
    assert stats.taken + pipeline.queue_depth() + stats.overflow == 1_501  # accepted
    events = _let_go(receiver, pipeline, fits)
    assert [e["message"] for e in events] == ["x" * MAX_MESSAGE_CHARS] * (fits - 1) + [
        "c" * MAX_MESSAGE_CHARS
    ]
    assert events[-1]["action"] == "billing.charge"
    assert _queue_bytes(pipeline) == 0
    assert stats.sent == fits and stats.sent + sum(stats.dropped_by_reason().values()) == 1_501
    assert stats.converted == {"truncated": 1_501}  # the worker counted no cut again


def test_a_huge_tags_event_is_cut_before_it_is_queued(receiver: LineReceiver) -> None:
    pipeline = _held(receiver)
    tag = "t" * 16_000  # within MAX_VALUE_CHARS: kept whole, 20,000 of them are not
    eventlog.log_event(Event("upload", "file-1", "file", tags=[tag] * 20_000))
    kept = (MAX_EVENT_BYTES - ITEM_BYTES) // (len(tag) + VALUE_BYTES)  # 65
    (queued,) = pipeline.worker.queue
    assert queued.tags == [tag] * kept
    assert _queue_bytes(pipeline) == ITEM_BYTES + kept * (len(tag) + VALUE_BYTES) == event_bytes(queued)
    assert pipeline.stats.converted == {"tags_cut": 1}
    (event,) = _let_go(receiver, pipeline, 1)
    assert event["tags"] == [tag] * kept
    assert pipeline.stats.converted == {"tags_cut": 1}
    assert pipeline.stats.sent == 1


def test_long_values_and_too_many_fields_are_cut_in_the_caller_and_counted_once(
    receiver: LineReceiver,
) -> None:
    pipeline = _held(receiver)
    fields = {f"k{n}": n for n in range(MAX_ITEMS + 5)}
    eventlog.log_event(Event("many", tags=["u" * 20_000] * 3, fields=fields))
    eventlog.log_event(Event("long", fields={"k" * 17_000: "v" * 40_000}, metrics={"ms": 1.5}))
    eventlog.log_event(Event("small", "x", "y", tags=["a"], fields={"n": 1}))
    assert pipeline.stats.converted == {"truncated": 5, "fields_cut": 1}
    many, long, small = pipeline.worker.queue
    assert many.tags == ["u" * MAX_VALUE_CHARS] * 3
    assert many.fields == {f"k{n}": n for n in range(MAX_ITEMS)}
    assert long.fields == {"k" * MAX_VALUE_CHARS: "v" * MAX_VALUE_CHARS}
    assert small.tags == ["a"] and small.fields == {"n": 1}
    assert _queue_bytes(pipeline) == sum(map(event_bytes, (many, long, small)))
    events = _let_go(receiver, pipeline, 3)
    assert [len(e["fields"]) for e in events] == [MAX_ITEMS, 1, 1]  # type: ignore[arg-type]
    assert events[1]["metrics"] == {"ms": 1.5}
    assert pipeline.stats.converted == {"truncated": 5, "fields_cut": 1}  # none again in the worker


def test_the_count_bound_still_holds_small_events(receiver: LineReceiver) -> None:
    pipeline = _held(receiver, queue_size=3, collapse_repeats=False)
    record = logging.LogRecord("noise", logging.DEBUG, __file__, 1, "debug", None, None)
    for _ in range(5):
        pipeline.submit_record(record, "debug", current())
    assert pipeline.stats.dropped_by_reason() == {"queue_full": 2}
    assert _queue_bytes(pipeline) == 3 * (ITEM_BYTES + len("debug"))


def test_queue_bytes_drops_are_scraped_by_class_and_reason(receiver: LineReceiver) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from eventlog._engine.prometheus import EventlogCollector

    pipeline = _held(receiver, queue_max_bytes=3 * ITEM_BYTES, name="bytes-scrape", collapse_repeats=False)
    record = logging.LogRecord("noise", logging.DEBUG, __file__, 1, "debug", None, None)
    for _ in range(3):
        pipeline.submit_record(record, "debug", current())
    registry = CollectorRegistry()
    registry.register(EventlogCollector())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert 'eventlog_events_dropped_total{pipeline="bytes-scrape",reason="queue_bytes"} 1.0' in text
    assert (
        'eventlog_events_shed_total{class="sheddable",pipeline="bytes-scrape",reason="queue_bytes"} 1.0'
        in text
    )


@given(
    st.one_of(
        st.lists(st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.none(), st.booleans())),
        st.dictionaries(st.text(), st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.none())),
    )
)
def test_the_compiled_size_estimate_is_the_pure_python_one(values: Any) -> None:
    compiled = pytest.importorskip("eventlog_speedups._wires").text_bytes
    assert compiled(values) == _py_text_bytes(values)
    assert compiled(tuple(values)) == _py_text_bytes(tuple(values))


_VALUES = st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.none(), st.booleans())


class _Subclass(Event):
    __slots__ = ()


class _Odd:
    """An Event attribute set to something odd after construction: the size so far counts."""

    def __bool__(self) -> bool:
        raise ValueError("no truth")


@given(
    message=st.one_of(st.none(), st.text(), st.binary(), st.integers()),
    exc_info=st.one_of(st.none(), st.text()),
    tags=st.one_of(st.none(), st.lists(_VALUES), st.tuples(st.text(), st.integers()), st.just(_Odd())),
    fields=st.one_of(st.none(), st.dictionaries(st.text(), _VALUES), st.just(_Odd())),
    metrics=st.one_of(st.none(), st.dictionaries(st.text(), st.floats())),
    unset=st.sampled_from([None, "message", "tags", "fields"]),
    kind=st.sampled_from([Event, _Subclass]),
)
def test_the_compiled_event_size_is_the_pure_python_one(
    message: Any, exc_info: Any, tags: Any, fields: Any, metrics: Any, unset: str | None, kind: type
) -> None:
    compiled = pytest.importorskip("eventlog_speedups._caps").event_bytes
    event = kind("a")  # an Event's slots are read directly, a subclass's through getattr
    event.message, event.exc_info, event.tags, event.fields, event.metrics = (
        message,
        exc_info,
        tags,
        fields,
        metrics,
    )
    if unset is not None:
        delattr(event, unset)  # an unset slot: the size so far, as the Python function says
    assert compiled(event) == event_bytes(event)


def test_the_pipeline_measures_events_with_the_compiled_size_when_it_is_there() -> None:
    pytest.importorskip("eventlog_speedups._caps")
    from eventlog._records import caps

    assert caps.event_size is not caps.event_bytes
    assert caps.event_size(Event("a", tags=["xy"], fields={"k": "vvv"})) == ITEM_BYTES + 18 + 36
