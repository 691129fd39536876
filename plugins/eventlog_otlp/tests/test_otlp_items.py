"""OTLP envelopes written straight from the queued items (eventlog-speedups' ``envelopes``,
the formatter's ``encode_items``) against the wire-dict path: the same bytes.

The reference is the engine's path for a formatter without ``encode_items``: each
item's wire dict, then one ``format()`` per event (the formatter and
``encoding.log_record`` stay the reference of those).  Items the compiled walk does
not take, or whose scope or process identity the formatter has not cached yet, are
holes: written the reference way and spliced in at their place.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.peers.otlp import OtlpPeer, records
from tests.test_spool_props import any_text, hostile_event, hostile_value

from eventlog import Event
from eventlog._config.config import Settings
from eventlog._engine.pipeline import Pipeline
from eventlog._records.context import EMPTY, RequestContext
from eventlog._records.wire import _ids
from eventlog.plugin import EncodedBatch, Record
from eventlog.plugin.testing import make_transport
from eventlog_otlp import encoding
from eventlog_otlp.formatter import OtlpFormatter

if encoding.compiled is None or getattr(encoding.compiled, "envelopes", None) is None:
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        pytest.skip("EVENTLOG_SPEEDUPS=0: the compiled encoder is off", allow_module_level=True)
    pytest.skip(
        "eventlog-speedups is not installed: pip install -e plugins/eventlog_speedups (needs a C compiler)",
        allow_module_level=True,
    )

LOGGER = logging.getLogger("otlp.items")
#: Attribute names makeRecord refuses in extra= (they would overwrite the record's own).
_RESERVED = set(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__) | {"message", "asctime"}

ascii_text = st.text(st.characters(max_codepoint=127), max_size=30)
plainish_value = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(),
    st.floats(),
    st.booleans(),
    ascii_text,
    any_text,
    st.lists(ascii_text, max_size=3),
    hostile_value,
)
contexts = st.just(EMPTY) | st.builds(
    RequestContext,
    st.none() | ascii_text,
    st.none() | ascii_text,
    st.none() | any_text,
    st.none() | st.integers(0, 2**128 - 1),
    st.none() | st.integers(0, 2**64 - 1),
    st.none() | st.integers(0, 255),
)
loggers = st.sampled_from(["otlp.items", "otlp.items.other", "", "ü.logger"])


@st.composite
def log_record_item(draw: st.DrawFn) -> tuple[Any, Any, Any]:
    """A queued log record (as EventHandler queues it): most plain, some with an exception."""
    extra = draw(st.dictionaries(ascii_text.filter(lambda k: k not in _RESERVED), plainish_value, max_size=4))
    level = draw(st.sampled_from([logging.INFO, logging.WARNING, logging.ERROR, 5, 60]))
    exc_info = None
    if draw(st.integers(0, 5)) == 0:
        try:
            raise ValueError(draw(ascii_text))
        except ValueError:
            exc_info = sys.exc_info()
    args = draw(st.sampled_from([(), ("alice", 7)]))
    msg = "user %s did %d" if args else draw(ascii_text | any_text)
    record = LOGGER.makeRecord(
        draw(loggers) or "root",
        level,
        "/app/views.py",
        42,
        msg,
        args,
        exc_info,
        "handler",
        extra or None,
    )
    message = (record.msg, record.args) if record.args else record.getMessage()
    return (record, message, draw(contexts))


@st.composite
def event_item(draw: st.DrawFn) -> Event:
    """An Event, mostly of what the compiled walk takes whole."""
    return Event(
        draw(st.sampled_from(["signup", "log.info", "order.paid"]) | ascii_text.filter(bool)),
        draw(st.none() | ascii_text),
        draw(st.none() | st.sampled_from(["logger", "user"]) | ascii_text),
        message=draw(st.none() | ascii_text | any_text),
        level=draw(st.none() | st.sampled_from([10, 20, 30, 7, 60])),
        tags=draw(st.none() | st.lists(ascii_text, max_size=3)),
        fields=draw(st.none() | st.dictionaries(ascii_text, plainish_value, max_size=4)),
        metrics=draw(st.none() | st.dictionaries(ascii_text, plainish_value, max_size=3)),
        user=draw(st.none() | ascii_text),
        time_ns=draw(st.none() | st.integers(-(2**63), 2**63 - 1)),
        log_code=draw(st.booleans()),
    )


items_strategy = st.lists(log_record_item() | event_item() | hostile_event(), min_size=1, max_size=8)


def resource(key: bytes) -> bytes:
    return encoding.resource_message({"service.name": "svc", **encoding.resource_attributes(key)})


def _reset_ids() -> None:
    _ids._next = itertools.count(1).__next__


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    pipeline = Pipeline(Settings.load({"transport": "console", "site": "shop", "cluster": "eu-1"}))
    yield pipeline
    pipeline.shutdown()


def _use(pipeline: Pipeline, formatter: OtlpFormatter, direct: bool) -> None:
    """The pipeline's Encoder as it is made for this formatter (encode_items or not)."""
    encoder = pipeline._encoder
    encoder.format = formatter.format
    encoder.format_many = encoder.split_many = None
    encoder.json_lines = None
    encoder.encode_items = formatter.encode_items if direct else None


def _both(
    pipeline: Pipeline, items: list[Any], formatter: OtlpFormatter, spool: bool = False
) -> tuple[Any, list[Record]]:
    """The batch by encode_items (or, ``spool``, the Records spool mode stores), and the
    wire-dict path's Records for the same items."""
    events = [copy.copy(item) for item in items if type(item) is Event]
    _use(pipeline, formatter, direct=True)
    _reset_ids()
    if spool:
        batch, kept = pipeline._encoder.sourced(items)
        assert len(kept) == len(batch)
    else:
        batch = pipeline._encoder.batch(items)
    for item, original in zip((i for i in items if type(i) is Event), events):
        item.id = original.id  # drawn by the first run: the reference draws them again
    _use(pipeline, formatter, direct=False)
    _reset_ids()
    reference = pipeline._encoder.batch(items)
    assert type(reference) is list
    return batch, reference


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=items_strategy, warm=st.booleans())
def test_envelopes_written_from_the_items_are_the_bytes_of_the_wire_dicts(
    pipeline: Pipeline, items: list[Any], warm: bool
) -> None:
    """Byte for byte the formatter's payloads, each event's id, action and time too; the
    request the transport makes of the body is the one it makes of the Records."""
    formatter = OtlpFormatter()
    events = [copy.copy(item) for item in items if type(item) is Event]
    if warm:  # the scopes and the process identity cached: most items written in C; the
        # Events keep the ids this drew (the walk takes an Event's own id too)
        _both(pipeline, items, formatter)
    batch, reference = _both(pipeline, items, formatter)
    assert list(batch) == reference
    if reference:
        assert type(batch) is EncodedBatch
        assert batch.sizes == [len(r.payload) for r in reference]
        assert batch.body == b"".join(r.payload for r in reference)
        assert encoding.compiled.request_of(
            batch.body, batch.sizes, batch.heads()[2], resource
        ) == encoding.compiled.request_body(reference, resource)
    for item, original in zip((i for i in items if type(i) is Event), events):
        item.id = original.id  # as the application queued them
    stored, reference = _both(pipeline, items, formatter, spool=True)
    assert list(stored) == reference  # spool mode: each event's own payload, for its row


def test_plain_items_are_written_in_c_once_the_caches_hold_their_scope(pipeline: Pipeline) -> None:
    """A scope or process identity not cached yet goes through format() (which caches it);
    after that, no format() call: a format() that refuses shows which way each item went."""
    formatter = OtlpFormatter()
    record = LOGGER.makeRecord(LOGGER.name, logging.INFO, "/app/v.py", 7, "user %s", ("bob",), None, "f")
    items: list[Any] = [(record, (record.msg, record.args), EMPTY), Event("signup", "u1", "user")]
    static = pipeline._encoder.static_fields()
    node, next_seq = _ids.node_and_counter()

    def refuse(wire: dict[str, Any]) -> bytes:
        raise ValueError("not this way")

    assert encoding.compiled is not None
    envelopes = encoding.compiled.envelopes
    cold = envelopes(formatter._scopes, formatter._last, refuse, items, static, True, node, next_seq)
    assert [index for index, _ in cold[4]] == [0, 1] and cold[0] == b""  # both left to the engine
    written = formatter.encode_items(items, static, True, node, next_seq)
    assert written is not None and written[4] == [] and len(written[0]) == sum(written[5])
    assert set(formatter._scopes) == {LOGGER.name, encoding.EVENT_SCOPE}
    warm = envelopes(formatter._scopes, formatter._last, refuse, items, static, True, node, next_seq)
    assert warm[4] == [] and [len(warm[0])] == [sum(warm[5])]  # no format() call
    batch, reference = _both(pipeline, items, formatter)
    assert list(batch) == reference and len(reference) == 2


def test_the_engine_takes_the_wire_dict_way_where_encode_items_declines(pipeline: Pipeline) -> None:
    formatter = OtlpFormatter()
    items: list[Any] = [Event("signup", "u1", "user")]
    _use(pipeline, formatter, direct=True)
    pipeline._encoder.encode_items = lambda *args: None
    batch = pipeline._encoder.batch(items)
    assert type(batch) is list and len(batch) == 1
    assert encoding.open_envelope(batch[0].payload)[0] == encoding.PROTOBUF


def test_only_the_protobuf_formatter_of_its_own_class_encodes_items() -> None:
    class Custom(OtlpFormatter):
        def format(self, wire: dict[str, Any]) -> bytes:
            return super().format(wire)

    assert OtlpFormatter().encode_items is not None
    assert OtlpFormatter(encoding.JSON).encode_items is None
    assert Custom().encode_items is None


def test_the_engine_uses_encode_items_with_the_otlp_formatter() -> None:
    pipeline = Pipeline(Settings.load({"transport": "otlp", "otlp_endpoint": "http://127.0.0.1:9"}))
    try:
        assert pipeline._encoder.encode_items is not None
    finally:
        pipeline.shutdown()


def test_request_of_refuses_sizes_that_do_not_cover_the_body() -> None:
    payload = OtlpFormatter().format({"id": "1", "action": "signup"})
    body = payload * 2
    request_of = encoding.compiled.request_of
    assert request_of(body, [len(payload)] * 2, [5, 6], resource) == encoding.compiled.request_body(
        [Record("1", "signup", 5, payload), Record("1", "signup", 6, payload)], resource
    )
    for sizes, times in (
        ([len(payload)], [5]),  # short of the body
        ([len(payload), len(payload) + 1], [5, 6]),  # past it
        ([-1, len(payload) * 2 + 1], [5, 6]),
        ([len(payload)] * 2, [5]),  # a time short
        ([len(payload)] * 2, [5, True]),  # not an int
    ):
        assert request_of(body, sizes, times, resource) is None
    assert request_of(b"", [], [], resource) == b""


def test_a_transport_sends_an_encoded_batch_from_its_body(pipeline: Pipeline) -> None:
    """The otlp transport makes the request of the body and sizes (no Record), and splits it
    past max_body_bytes from the Records: every event arrives once, in order."""
    formatter = OtlpFormatter()
    _use(pipeline, formatter, direct=True)
    items: list[Any] = [Event("signup", f"u{i}", "user", fields={"n": i}) for i in range(8)]
    batch = pipeline._encoder.batch(items)
    assert type(batch) is EncodedBatch and batch.sizes is not None
    for limit, requests in ((1_000_000, [8]), (700, [2, 2, 2, 2])):
        with OtlpPeer() as peer:
            transport, _ = make_transport(
                {"transport": "otlp", "otlp_endpoint": peer.url, "otlp_max_body_bytes": limit}
            )
            assert transport.send(batch) == []
            assert [len(records(r)) for r in peer.requests] == requests
            assert peer.delivered_ids() == batch.heads()[0]
            transport.close()
