"""ECS documents written straight from the queued items (eventlog-speedups' ``ecs_records``, the
ecs formatter's ``encode_items``) against the wire-dict path: the same bytes.

The reference is the engine's path for a formatter without ``encode_items``: each item's
wire dict, then one ``format()`` per event (``document()`` and orjson).  What the compiled
writer does not take (an exception, a key Elasticsearch could not map as it is, a value of
another kind) is a hole: written the reference way and spliced in at its place.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import Event
from eventlog._builtin import ecs
from eventlog._builtin.ecs import EcsFormatter
from eventlog._config.config import Settings
from eventlog._engine.pipeline import Pipeline
from eventlog._records.batch import EncodedBatch, Record
from eventlog._records.context import EMPTY, RequestContext
from eventlog._records.logrecords import record_to_event
from eventlog._records.wire import _ids
from tests.peers import missing
from tests.test_spool_props import any_text, hostile_event, hostile_value

if ecs._compiled_records() is None:
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        pytest.skip("EVENTLOG_SPEEDUPS=0: the compiled writer is off", allow_module_level=True)
    missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")

LOGGER = logging.getLogger("ecs.items")
#: Attribute names makeRecord refuses in extra= (they would overwrite the record's own).
_RESERVED = set(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__) | {"message", "asctime"}

ascii_text = st.text(st.characters(max_codepoint=127), max_size=20)
#: Keys Elasticsearch maps as they are, and some the formatter renames (dots, stars, blanks).
keys = ascii_text | st.sampled_from(
    [
        "a.b",
        "*",
        "\\x",
        "",
        " ",
        "\t\x1c",
        "\x1f",
        " \x1d\x1e",
        "\x0b",
        "\u00e9",
        "\u00a0",
        "\u0085",
        "k\u00e9.y",
    ]
)
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
levels = st.sampled_from([logging.INFO, logging.WARNING, logging.ERROR, 5, 60, 25])


@st.composite
def log_record_item(draw: st.DrawFn) -> tuple[Any, Any, Any]:
    """A queued log record (as EventHandler queues it): most plain, some with an exception."""
    extra = draw(st.dictionaries(keys.filter(lambda k: k not in _RESERVED), plainish_value, max_size=4))
    exc_info = None
    if draw(st.integers(0, 7)) == 0:
        try:
            raise ValueError(draw(ascii_text))
        except ValueError:
            exc_info = sys.exc_info()
    args = draw(st.sampled_from([(), ("alice", 7)]))
    msg = "user %s did %d" if args else draw(ascii_text | any_text)
    record = LOGGER.makeRecord(
        draw(st.sampled_from(["ecs.items", "", "\u00fc.logger"])) or "root",
        draw(levels),
        draw(
            st.sampled_from(
                ["/app/views.py", "C:\\app\\views.py", "views.py", "/a\\b/c.py", "/app/\u00e9.py"]
            )
        ),
        draw(st.sampled_from([42, 0, 2**40])),
        msg,
        args,
        exc_info,
        draw(st.sampled_from(["handler", "<module>", "f\u00e9"])),
        extra or None,
    )
    message = (record.msg, record.args) if record.args else record.getMessage()
    return (record, message, draw(contexts))


@st.composite
def event_item(draw: st.DrawFn) -> Event:
    """An Event, mostly of what the compiled writer takes whole."""
    return Event(
        draw(st.sampled_from(["signup", "log.info"]) | ascii_text.filter(bool)),
        draw(st.none() | ascii_text),
        draw(st.none() | st.sampled_from(["logger", "user"]) | ascii_text),
        message=draw(st.none() | ascii_text | any_text),
        level=draw(st.none() | st.sampled_from([10, 20, 30, 7, 60])),
        tags=draw(st.none() | st.lists(ascii_text, max_size=3)),
        fields=draw(st.none() | st.dictionaries(keys, plainish_value, max_size=4)),
        metrics=draw(st.none() | st.dictionaries(keys, plainish_value, max_size=3)),
        user=draw(st.none() | ascii_text),
        request_id=draw(st.none() | ascii_text),
        time_ns=draw(st.none() | st.integers(-(2**63), 2**63 - 1)),
        log_code=draw(st.booleans()),
    )


items_strategy = st.lists(log_record_item() | event_item() | hostile_event(), min_size=1, max_size=8)
formatters = st.sampled_from(
    [
        {},
        {"service_name": "shop"},
        {"service_name": "shop", "service_version": "1.2", "service_environment": "prod"},
    ]
)


def _reset_ids() -> None:
    _ids._next = itertools.count(1).__next__


@pytest.fixture(scope="module", params=["site", "bare"])
def pipeline(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    given = {"site": "shop", "cluster": "eu-1"} if request.param == "site" else {}
    pipeline = Pipeline(Settings.load({"transport": "console", **given}))
    yield pipeline
    pipeline.shutdown()


def _use(pipeline: Pipeline, formatter: EcsFormatter, direct: bool) -> None:
    """The pipeline's Encoder as it is made for this formatter (encode_items or not)."""
    encoder = pipeline._encoder
    encoder.format = formatter.format
    encoder.format_many = formatter.format_many
    encoder.split_many = formatter.split_many
    encoder.json_lines = None
    encoder.encode_items = formatter.encode_items if direct else None


def _both(
    pipeline: Pipeline, items: list[Any], options: dict[str, str], spool: bool = False
) -> tuple[Any, Any]:
    """The batch by encode_items (or, ``spool``, the Records spool mode stores), and the
    wire-dict path's Records for the same items (one format() per wire dict)."""
    events = [copy.copy(item) for item in items if type(item) is Event]
    formatter = EcsFormatter(**options)
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
    reference = pipeline._encoder.each(*pipeline._encoder.wires(items))
    for item, original in zip((i for i in items if type(i) is Event), events):
        item.id = original.id  # as the application queued them
    return batch, reference


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=items_strategy, options=formatters)
def test_documents_written_from_the_items_are_the_bytes_of_the_wire_dicts(
    pipeline: Pipeline, items: list[Any], options: dict[str, str]
) -> None:
    """Byte for byte the formatter's payloads, each event's id, action and time too."""
    batch, reference = _both(pipeline, items, options)
    assert list(batch) == reference
    if reference:
        assert type(batch) is EncodedBatch
        assert batch.body == b"".join(r.payload for r in reference)
    stored, reference = _both(pipeline, items, options, spool=True)
    assert list(stored) == reference  # spool mode: each event's own payload, for its row


#: Keys the formatter keeps and keys it renames (a dot, a star, a backslash, only whitespace
#: as str.strip() sees it, ASCII or not).
EDGE_KEYS = ["plain", "a.b", "*", "a\\b", "", " ", "\t", "\x0b", "\x1c", "\x1d", "\x1e", "\x1f", " \x1f "]
EDGE_KEYS += ["\x1fa", "\u00e9", "\u00a0", "\u0085", "\u2003x", "\u2003", "k\u00e9.y", "k\x7f"]


@pytest.mark.parametrize("key", EDGE_KEYS)
def test_each_kind_of_key_is_kept_or_renamed_as_the_formatter_does(pipeline: Pipeline, key: str) -> None:
    record = LOGGER.makeRecord(LOGGER.name, logging.INFO, "/app/v.py", 7, "m", (), None, "f", {key: 1})
    items: list[Any] = [
        Event("text", fields={key: "v"}),
        Event("number", fields={key: 2}, metrics={key: 2.5}),
        (record, "m", EMPTY),
    ]
    batch, reference = _both(pipeline, items, {})
    assert list(batch) == reference and len(reference) == 3


def test_the_common_record_and_event_are_written_in_c_and_the_rest_through_format(pipeline: Pipeline) -> None:
    """No format() call for the common record and Event; a key Elasticsearch could not map as
    it is and an exception go through format() of their wire dicts, in their turn."""
    record = LOGGER.makeRecord(
        LOGGER.name, logging.WARNING, "/app/v.py", 7, "user %s", ("bob",), None, "f", {"k": 3}
    )
    try:
        raise ValueError("boom")
    except ValueError:
        failed = LOGGER.makeRecord(
            LOGGER.name, logging.ERROR, "/app/v.py", 9, "failed", (), sys.exc_info(), "f"
        )
    items: list[Any] = [
        (record, (record.msg, record.args), RequestContext("alice", "s-1", "r-1")),
        Event("signup", "u1", "user", fields={"plan": "pro", "seats": 3}, metrics={"ms": 12.5}, tags=["new"]),
        Event("renamed", fields={"a.b": "x"}),  # labels.a_b: renamed in Python
        record_to_event(failed, "failed", EMPTY),  # as the handler queues it; error.*: in Python
    ]
    static = pipeline._encoder.static_fields()
    node, next_seq = _ids.node_and_counter()
    formatter = EcsFormatter(service_name="shop")
    formats: list[str] = []

    def format(wire: dict[str, Any]) -> bytes:
        formats.append(wire["action"])
        return formatter.format(wire)

    assert formatter.encode_items is not None
    version, dataset, service = formatter.encode_items.args[1:]
    records = ecs._compiled_records()
    assert records is not None
    written = records(format, version, dataset, service, items, static, True, node, next_seq)
    body, ids, actions, times, holes, sizes = written
    assert holes == [] and formats == ["renamed", "log.error"] and sum(sizes) == len(body)
    assert actions == ["log.warning", "signup", "renamed", "log.error"] and times[1] == items[1].time_ns
    first, second, third, fourth = (json.loads(line) for line in body.splitlines())
    assert first["log.level"] == "warning" and first["message"] == "user bob"
    assert first["log"] == {
        "logger": "ecs.items",
        "origin": {"file": {"name": "v.py", "line": 7}, "function": "f"},
    }
    assert first["user"] == {"name": "alice"} and first["http"] == {"request": {"id": "r-1"}}
    assert first["event"] == {"action": "log.warning", "id": ids[0], "dataset": "shop"}
    assert first["eventlog"]["metrics"] == {"k": 3} and first["eventlog"]["session"] == "s-1"
    assert second["labels"] == {"plan": "pro"} and second["eventlog"]["fields"] == {"seats": 3}
    assert second["tags"] == ["new"] and second["service"] == {"name": "shop"}
    assert third["labels"] == {"a_b": "x"} and third["eventlog"]["keys"] == {"labels": {"a_b": "a.b"}}
    assert fourth["error"]["type"] == "ValueError" and fourth["error"]["message"] == "boom"
    batch, reference = _both(pipeline, items, {"service_name": "shop"})
    assert list(batch) == reference and len(reference) == 4


def test_only_the_formatter_of_its_own_class_encodes_items() -> None:
    class Custom(EcsFormatter):
        def document(self, wire: dict[str, Any]) -> dict[str, Any]:
            return super().document(wire)

    assert EcsFormatter().encode_items is not None
    assert Custom().encode_items is None


def test_the_engine_uses_encode_items_with_the_ecs_format() -> None:
    pipeline = Pipeline(Settings.load({"transport": "console", "format": "ecs"}))
    try:
        assert pipeline._encoder.encode_items is not None
        batch = pipeline._encoder.batch([Event("signup", "u1", "user")])
        assert type(batch) is EncodedBatch
        assert json.loads(batch.body)["event"]["action"] == "signup"
        assert type(batch[0]) is Record
    finally:
        pipeline.shutdown()
