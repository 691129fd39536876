"""msgpack maps written straight from the queued items (eventlog-speedups' ``msgpack_records``,
the msgpack formatter's ``encode_items``) against the wire-dict path: the same bytes.

The reference is the engine's path for a formatter without ``encode_items``: each item's
wire dict, then one ``format()`` per event (``msgpack.Packer``).  What the compiled walk does
not take is a hole: written the reference way and spliced in at its place; an event whose
time the format clamps goes through ``format()`` of its wire dict from C, in its turn.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.peers import missing
from tests.test_spool_props import any_text, hostile_event, hostile_value

from eventlog import Event
from eventlog._config.config import Settings
from eventlog._engine.pipeline import Pipeline
from eventlog._records.context import EMPTY, RequestContext
from eventlog._records.wire import _ids
from eventlog.plugin import EncodedBatch, Record
from eventlog_fluent import msgpack_format
from eventlog_fluent.msgpack_format import TSTAMP_MAX, MsgpackFormatter

if msgpack_format.compiled_records is None:
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        pytest.skip("EVENTLOG_SPEEDUPS=0: the compiled writer is off", allow_module_level=True)
    missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")

LOGGER = logging.getLogger("fluent.items")
#: Attribute names makeRecord refuses in extra= (they would overwrite the record's own).
_RESERVED = set(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__) | {"message", "asctime"}

ascii_text = st.text(st.characters(max_codepoint=127), max_size=30)
#: Text across msgpack's str headers: fixstr (< 32 bytes), str8, str16 (and UTF-8 longer
#: than its characters).
sized_text = st.sampled_from([0, 1, 31, 32, 255, 256, 1000]).flatmap(
    lambda n: st.sampled_from(["a" * n, "\u00e9" * n, "x" * max(n - 1, 0) + "\u2603"])
)
plainish_value = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(),
    st.floats(),
    st.booleans(),
    ascii_text,
    sized_text,
    any_text,
    st.lists(ascii_text, max_size=3),
    hostile_value,
)
contexts = st.just(EMPTY) | st.builds(
    RequestContext, st.none() | ascii_text, st.none() | ascii_text, st.none() | any_text
)
#: Times inside EventTime's range and outside it (before 1970, after 2106): those are clamped.
times_ns = st.none() | st.integers(-(2**63), 2**63 - 1) | st.sampled_from([-1, 0, TSTAMP_MAX * 1_000_000])


@st.composite
def log_record_item(draw: st.DrawFn) -> tuple[Any, Any, Any]:
    """A queued log record, as EventHandler queues it."""
    extra = draw(st.dictionaries(ascii_text.filter(lambda k: k not in _RESERVED), plainish_value, max_size=4))
    args = draw(st.sampled_from([(), ("alice", 7)]))
    msg = "user %s did %d" if args else draw(ascii_text | any_text | sized_text)
    record = LOGGER.makeRecord(
        draw(st.sampled_from(["fluent.items", "", "\u00fc.logger"])) or "root",
        draw(st.sampled_from([logging.INFO, logging.WARNING, 5, 60])),
        "/app/views.py",
        draw(st.sampled_from([42, 0, 200, 70_000, 2**40])),
        msg,
        args,
        None,
        "handler",
        extra or None,
    )
    if draw(st.integers(0, 9)) == 0:
        record.created = draw(st.sampled_from([-1.5, 0.0, 5e9]))  # before 1970, after 2106
    message = (record.msg, record.args) if record.args else record.getMessage()
    return (record, message, draw(contexts))


@st.composite
def event_item(draw: st.DrawFn) -> Event:
    """An Event, mostly of what the compiled walk takes whole, with maps and lists past 15 and
    16 items (msgpack's fixmap and fixarray)."""
    many = st.sampled_from([15, 16, 17])
    return Event(
        draw(st.sampled_from(["signup", "log.info"]) | ascii_text.filter(bool)),
        draw(st.none() | ascii_text | sized_text),
        draw(st.none() | st.sampled_from(["logger", "user"])),
        message=draw(st.none() | ascii_text | any_text | sized_text),
        level=draw(st.none() | st.sampled_from([10, 20, 30, 7, 60])),
        tags=draw(
            st.none() | st.lists(ascii_text, max_size=3) | many.map(lambda n: [f"t{i}" for i in range(n)])
        ),
        fields=draw(
            st.none()
            | st.dictionaries(ascii_text, plainish_value, max_size=4)
            | many.map(lambda n: {f"k{i}": i * 1000 - 70_000 for i in range(n)})
        ),
        metrics=draw(st.none() | st.dictionaries(ascii_text, plainish_value, max_size=3)),
        user=draw(st.none() | ascii_text),
        time_ns=draw(times_ns),
        log_code=draw(st.booleans()),
    )


items_strategy = st.lists(log_record_item() | event_item() | hostile_event(), min_size=1, max_size=8)


def _reset_ids() -> None:
    _ids._next = itertools.count(1).__next__


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    pipeline = Pipeline(Settings.load({"transport": "console", "site": "shop", "cluster": "eu-1"}))
    yield pipeline
    pipeline.shutdown()


def _use(pipeline: Pipeline, formatter: MsgpackFormatter, direct: bool) -> None:
    """The pipeline's Encoder as it is made for this formatter (encode_items or not)."""
    encoder = pipeline._encoder
    encoder.format = formatter.format
    encoder.format_many = encoder.split_many = None
    encoder.json_lines = None
    encoder.encode_items = formatter.encode_items if direct else None


def _both(
    pipeline: Pipeline, items: list[Any], spool: bool = False
) -> tuple[Any, list[Record], dict[str, int], dict[str, int]]:
    """The batch by encode_items (or, ``spool``, the Records spool mode stores) and the
    wire-dict path's Records for the same items, with what each counted."""
    events = [copy.copy(item) for item in items if type(item) is Event]
    direct, wired = MsgpackFormatter(), MsgpackFormatter()
    _use(pipeline, direct, direct=True)
    _reset_ids()
    if spool:
        batch, kept = pipeline._encoder.sourced(items)
        assert len(kept) == len(batch)
    else:
        batch = pipeline._encoder.batch(items)
    for item, original in zip((i for i in items if type(i) is Event), events):
        item.id = original.id  # drawn by the first run: the reference draws them again
    _use(pipeline, wired, direct=False)
    _reset_ids()
    reference = pipeline._encoder.batch(items)
    assert type(reference) is list
    for item, original in zip((i for i in items if type(i) is Event), events):
        item.id = original.id  # as the application queued them
    return batch, reference, dict(direct.conversions), dict(wired.conversions)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=items_strategy)
def test_maps_written_from_the_items_are_the_bytes_of_the_wire_dicts(
    pipeline: Pipeline, items: list[Any]
) -> None:
    """Byte for byte the formatter's payloads, each event's id, action and time too (the
    transport's EventTime), and the same clamped times counted."""
    batch, reference, counted, counted_reference = _both(pipeline, items)
    assert list(batch) == reference
    assert counted == counted_reference
    if reference:
        assert type(batch) is EncodedBatch
        assert batch.sizes == [len(r.payload) for r in reference]
        assert batch.body == b"".join(r.payload for r in reference)
    stored, reference, _, _ = _both(pipeline, items, spool=True)
    assert list(stored) == reference  # spool mode: each event's own payload, for its row


@settings(max_examples=2000, deadline=None)
@given(value=st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_is_written_as_msgpack_packs_it(value: float) -> None:
    import eventlog_speedups._wires as compiled

    assert compiled.msgpack_number(value) == msgpack.packb(value)


#: Each of msgpack's integer forms, at both ends, and the float64 edges.
EDGES = [0, 1, -1, 127, 128, -32, -33, 255, 256, -128, -129, 65535, 65536, -32768, -32769, 2**32 - 1]
EDGES += [2**32, -(2**31), -(2**31) - 1, 2**63 - 1, -(2**63), 0.0, -0.0, 1.5, 5e-324, 1e308]


@pytest.mark.parametrize("value", EDGES)
def test_each_integer_form_is_msgpacks(value: float) -> None:
    import eventlog_speedups._wires as compiled

    assert compiled.msgpack_number(value) == msgpack.packb(value)


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, float("nan"), float("inf"), True, None, "1"])
def test_what_the_writer_does_not_take_is_handed_on(value: Any) -> None:
    import eventlog_speedups._wires as compiled

    assert compiled.msgpack_number(value) is None


def test_plain_items_are_written_in_c_and_a_clamped_time_goes_through_format(pipeline: Pipeline) -> None:
    """The common record and Event are written with no format() call; an Event before 1970
    goes through format() of its wire dict, in its turn, which clamps and counts it."""
    record = LOGGER.makeRecord(LOGGER.name, logging.INFO, "/app/v.py", 7, "user %s", ("bob",), None, "f")
    items: list[Any] = [
        (record, (record.msg, record.args), EMPTY),
        Event("signup", "u1", "user", fields={"plan": "pro"}, metrics={"ms": 12.5}),
        Event("old", time_ns=-1_000_000_000),
    ]
    static = pipeline._encoder.static_fields()
    node, next_seq = _ids.node_and_counter()
    formatter = MsgpackFormatter()
    formats: list[dict[str, Any]] = []

    def format(wire: dict[str, Any]) -> bytes:
        formats.append(wire)
        return MsgpackFormatter.format(formatter, wire)

    assert msgpack_format.compiled_records is not None
    written = msgpack_format.compiled_records(format, 0, TSTAMP_MAX, items, static, True, node, next_seq)
    body, ids, actions, times, holes, sizes = written
    assert holes == [] and len(body) == sum(sizes)
    assert [wire["action"] for wire in formats] == ["old"]  # the other two: no format() call
    first, second, third = (
        msgpack.unpackb(body[start : start + size])
        for start, size in zip([0, sizes[0], sizes[0] + sizes[1]], sizes)
    )
    assert (first["message"], first["level"], first["codeLine"], first["site"]) == ("user bob", 20, 7, "shop")
    assert second["metrics"] == {"ms": 12.5} and second["fields"] == {"plan": "pro"}
    assert (third["tstamp"], third["fields"]) == (0, {"tstamp_original": "-1000"})
    assert formatter.conversions == {"event_time_clamped": 1}
    assert actions == ["log.info", "signup", "old"] and ids[1:] == [items[1].id, items[2].id]
    assert times[2] == -1_000_000_000  # the Record keeps the event's time; the transport clamps
    batch, reference, counted, _ = _both(pipeline, items)
    assert list(batch) == reference and counted == {"event_time_clamped": 1}


def test_only_the_formatter_of_its_own_class_encodes_items() -> None:
    class Custom(MsgpackFormatter):
        def format(self, wire: dict[str, Any]) -> bytes:
            return super().format(wire)

    assert MsgpackFormatter().encode_items is not None
    assert Custom().encode_items is None


def test_the_engine_uses_encode_items_with_the_fluent_transport() -> None:
    pipeline = Pipeline(Settings.load({"transport": "fluent", "host": "127.0.0.1", "port": 9}))
    try:
        assert pipeline._encoder.encode_items is not None
    finally:
        pipeline.shutdown()


@pytest.mark.parametrize("bounds", [("0", 1), (0, "1"), (2**64, 1), (0, None)])
def test_time_bounds_that_are_no_int64_are_refused_with_their_error(bounds: tuple[Any, Any]) -> None:
    assert msgpack_format.compiled_records is not None
    node, next_seq = _ids.node_and_counter()
    with pytest.raises((TypeError, OverflowError)):
        msgpack_format.compiled_records(bytes, *bounds, [Event("e")], {}, False, node, next_seq)
