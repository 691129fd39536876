"""Values are converted, not lost: every door, every format, over a real TCP receiver.

What no format (or the spool) can carry is converted where it enters, in the
caller's thread: a time or level beyond 64 bits, an int of 5,000 digits, a
LogRecord whose attributes were deleted or given odd types, objects whose
``__repr__`` blocks or raises, containers the caller changes after the call.
Each conversion is counted by reason, and the event arrives with its id.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog
import eventlog._records.logrecords
from eventlog import Event
from eventlog._api.handler import EventHandler
from eventlog._config.config import Settings
from eventlog._engine.pipeline import Pipeline
from eventlog._records.context import EMPTY, bind, unbind
from eventlog._records.logrecords import record_to_event, wires_of
from eventlog._records.wire import to_wire
from tests.test_syslog import parse_stream

HUGE = 10**5000
INT64_MAX = 2**63 - 1
FORMATS = ["json", "json-array", "logstash", "ecs", "syslog", "msgpack", "capnp"]
RFC3339 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"


class StreamReceiver:
    """A TCP listener on 127.0.0.1 that keeps every byte it reads (any framing)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._data = bytearray()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    chunk = conn.recv(1 << 16)
                except OSError:
                    return
                if not chunk:
                    return
                with self._lock:
                    self._data += chunk

    def data(self) -> bytes:
        with self._lock:
            return bytes(self._data)

    def stop(self) -> None:
        self._stopped = True
        self._server.close()


def events_of(fmt: str, data: bytes) -> list[dict[str, Any]]:
    """The events of a byte stream, as dicts with ``id``, ``action`` and ``message``."""
    if fmt == "syslog":
        return parse_stream(data)
    if fmt == "capnp":
        from eventlog_capnp.format import read_messages

        return read_messages(data)
    if fmt == "msgpack":
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
        unpacker.feed(data)
        return list(unpacker)
    events = [json.loads(line) for line in data.split(b"\n") if line]
    if fmt == "ecs":
        return [
            {**e, "id": e["event"]["id"], "action": e["event"]["action"], "message": e.get("message")}
            for e in events
        ]
    return events


class Peer:
    """One pipeline of one format into one StreamReceiver."""

    def __init__(self, fmt: str, **extra: Any) -> None:
        self.fmt = fmt
        self.receiver = StreamReceiver()
        self.pipeline = Pipeline(
            Settings.load(
                {
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": self.receiver.port,
                    "format": fmt,
                    "linger_ms": 0,
                    # Values are the point here: no syslog message cut to a daemon's default
                    # size (test_syslog holds that cut, and its count, apart).
                    **({"syslog_max_message_bytes": 1 << 20} if fmt == "syslog" else {}),
                    **extra,
                }
            )
        )
        self.handler = EventHandler(pipeline=self.pipeline)
        self.logger = logging.getLogger(f"values.{fmt}.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)

    def events(self, count: int) -> list[dict[str, Any]]:
        """Flush, then the events received so far (at least ``count``; bounded wait)."""
        assert self.pipeline.flush(10)
        deadline = time.monotonic() + 10
        while True:
            events = events_of(self.fmt, self.receiver.data())
            if len(events) >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.01)

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.pipeline.shutdown(2)
        self.receiver.stop()


@pytest.fixture
def peer(request: pytest.FixtureRequest) -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(fmt: str = "json", **extra: Any) -> Peer:
        made.append(Peer(fmt, **extra))
        return made[-1]

    yield make
    for one in made:
        one.close()


def converted(peer: Peer) -> dict[str, int]:
    return dict(peer.pipeline.stats.converted)


# ---------------------------------------------------------------- times (issue 23 item 2)


def test_an_event_time_beyond_64_bits_arrives_at_the_observed_time_with_the_original(
    peer: Callable[..., Peer],
) -> None:
    json_peer = peer("json")
    before = time.time_ns() // 1_000_000
    json_peer.pipeline.submit_event(Event("time.huge", time_ns=2**64))
    json_peer.pipeline.submit_event(Event("time.float", time_ns=1.5))  # type: ignore[arg-type]
    after = time.time_ns() // 1_000_000
    huge, fractional = json_peer.events(2)
    assert before <= huge["tstamp"] <= after  # the time of the call
    assert huge["fields"] == {"tstamp_original": "18446744073709551616"}
    assert fractional["tstamp"] == 0 and fractional["fields"] == {"tstamp_original": "1.5"}
    assert converted(json_peer) == {"time_out_of_range": 1, "time_not_int": 1}
    assert json_peer.pipeline.stats.sent == 2


def test_a_log_record_made_with_a_millisecond_created_arrives_at_the_observed_time(
    peer: Callable[..., Peer],
) -> None:
    json_peer = peer("json")
    before = time.time_ns() // 1_000_000
    for created in (1.7e12, math.nan, math.inf, "yesterday"):
        record = logging.makeLogRecord(
            {"name": "app", "msg": "at %s", "args": (repr(created),), "created": created}
        )
        json_peer.handler.handle(record)
    after = time.time_ns() // 1_000_000
    events = json_peer.events(4)
    assert [e["message"] for e in events] == ["at 1700000000000.0", "at nan", "at inf", "at 'yesterday'"]
    assert all(before <= e["tstamp"] <= after for e in events)
    assert [e["fields"]["tstamp_original"] for e in events] == ["1700000000000.0", "nan", "inf", "yesterday"]
    assert converted(json_peer) == {"time_out_of_range": 1, "time_not_number": 3}


def test_a_structlog_millisecond_timestamp_arrives_at_the_observed_time(peer: Callable[..., Peer]) -> None:
    import structlog

    from eventlog.structlog import EventlogRenderer

    json_peer = peer("json")
    log = structlog.wrap_logger(None, processors=[EventlogRenderer(pipeline=json_peer.pipeline)])  # type: ignore[list-item]
    before = time.time_ns() // 1_000_000
    log.info("paid", timestamp=1_700_000_000_123.0)  # milliseconds, where seconds belong
    after = time.time_ns() // 1_000_000
    (event,) = json_peer.events(1)
    assert event["message"] == "paid"
    assert before <= event["tstamp"] <= after
    assert event["fields"] == {"tstamp_original": "1700000000123.0"}
    assert converted(json_peer) == {"time_out_of_range": 1}


@pytest.mark.parametrize("fmt", ["logstash", "ecs", "syslog"])
def test_times_out_of_rfc3339_range_arrive_with_an_rfc3339_timestamp(
    peer: Callable[..., Peer], fmt: str
) -> None:
    """Year 500 and year 20000 (issue 25 item 8): a four-digit year, the original kept, counted."""
    import re

    one_peer = peer(fmt)
    year_500 = -46_388_678_400 * 10**9
    year_20000 = 568_971_820_800 * 10**9
    one_peer.pipeline.submit_event(Event("time.old", time_ns=year_500))
    one_peer.pipeline.submit_event(Event("time.far", time_ns=year_20000))
    one_peer.pipeline.submit_event(Event("time.first", time_ns=-(2**63)))  # 1677-09-21, kept
    data = one_peer.events(3)
    assert len(data) == 3
    raw = one_peer.receiver.data().decode()
    stamps = re.findall(r"(?:@timestamp\":\"|<\d+>1 )(\S+?)[\" ]", raw)
    assert len(stamps) == 3 and all(re.fullmatch(RFC3339, s) for s in stamps), stamps
    assert stamps[2] == "1677-09-21T00:12:43.145Z"
    assert converted(one_peer) == {"time_out_of_range": 2}


@pytest.mark.parametrize("tstamp", [-(10**15), -62_135_596_800_001, 253_402_300_800_000, 10**15])
def test_iso_millis_writes_rfc3339_for_any_wire_time(tstamp: int) -> None:
    """A wire dict made by other code (a plugin, an old spool row): clamped to years 1..9999."""
    import re

    from eventlog._builtin.formats import iso_millis

    text = iso_millis(tstamp)
    assert re.fullmatch(RFC3339, text)
    assert text in ("0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z")
    assert iso_millis(-30_610_224_000_000) == "1000-01-01T00:00:00.000Z"
    assert iso_millis(-30_610_224_000_001) == "0999-12-31T23:59:59.999Z"


# ---------------------------------------------------------------- logging's own millisecond


def _record_at(created: float) -> logging.LogRecord:
    """A LogRecord made by logging at ``created`` (its own msecs, as on this Python)."""
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: created  # type: ignore[assignment]
    time.time_ns = lambda: int(created * 1e9)  # type: ignore[assignment]
    try:
        return logging.LogRecord("app", logging.INFO, "/app.py", 1, "at %s", (repr(created),), None)
    finally:
        time.time, time.time_ns = real_time, real_time_ns


def _loggings_millis(record: logging.LogRecord) -> int:
    """What a logging Formatter shows: the whole seconds of created, then msecs."""
    return int(record.created) * 1000 + int(record.msecs)


TRICKY = [1700000000.1389999, 1700384523.916, 1700273617.803, 1700022920.056, 1.0, 0.001, 1e9 + 0.999]


def test_tstamp_is_the_millisecond_logging_shows(peer: Callable[..., Peer]) -> None:
    """``int(created * 1e9)`` was one ms ahead for these (issue 25 item 10)."""
    json_peer = peer("json")
    records = [_record_at(created) for created in TRICKY]
    for record in records:
        json_peer.handler.handle(record)
    events = json_peer.events(len(records))
    assert [e["tstamp"] for e in events] == [_loggings_millis(r) for r in records]
    assert [e["id"][:12] for e in events] == [f"{_loggings_millis(r):012x}" for r in records]


_COMPILED = eventlog._records.logrecords._load_accelerator()


@settings(max_examples=300, deadline=None)
@given(created=st.floats(min_value=0.0, max_value=4e9) | st.sampled_from(TRICKY))
def test_every_path_gives_loggings_millisecond(created: float) -> None:
    record = _record_at(created)
    expected = _loggings_millis(record)
    item = (record, record.getMessage(), EMPTY)
    assert to_wire(record_to_event(*item), None)["tstamp"] == expected
    for accelerator in (None, _COMPILED):
        saved = eventlog._records.logrecords.accelerator
        eventlog._records.logrecords.accelerator = accelerator
        try:
            wires, _ = wires_of([item], {}, True, {}, lambda i: None)
        finally:
            eventlog._records.logrecords.accelerator = saved
        assert wires[0]["tstamp"] == expected


# ---------------------------------------------------------------- big ints (item 3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_int_of_5000_digits_through_every_door_arrives_converted(
    peer: Callable[..., Peer], fmt: str
) -> None:
    one_peer = peer(fmt)
    pipeline, logger = one_peer.pipeline, one_peer.logger
    pipeline.submit_event(Event("big.fields", fields={"n": HUGE}))
    pipeline.submit_event(Event("big.metrics", metrics={"n": HUGE, "ok": 1}))
    pipeline.submit_event(Event("big.level", level=HUGE))
    logger.info("big extra", extra={"n": HUGE})
    with eventlog.context(n=HUGE):
        pipeline.submit_event(Event("big.context"))
    counter = eventlog.Counter("big.counter", fmt, pipeline=pipeline)
    counter.inc(HUGE)
    eventlog._api.counters.emit()
    events = one_peer.events(6)
    assert len(events) == 6, events
    assert all(len(e["id"]) == 32 for e in events)
    assert pipeline.stats.dropped_by_reason() == {}
    if fmt in ("json", "json-array", "logstash", "msgpack"):
        by_action = {e["action"]: e for e in events}
        assert by_action["big.fields"]["fields"] == {"n": hex(HUGE)}
        assert by_action["big.metrics"]["metrics"] == {"ok": 1}
        assert by_action["big.metrics"]["fields"] == {"n": hex(HUGE)}
        assert by_action["big.level"]["level"] == INT64_MAX
        assert by_action["big.level"]["fields"] == {"level_original": hex(HUGE)}
        assert by_action["log.info"]["fields"] == {"n": hex(HUGE)}
        assert by_action["big.context"]["fields"] == {"n": hex(HUGE)}
        assert by_action["big.counter"]["fields"]["count"] == hex(HUGE)
    # fields, metrics, extra=, context, counter: as text; the level clamped, its original kept.
    assert converted(one_peer)["int_range"] == 6


# ---------------------------------------------------------------- odd records and extras


def test_tags_that_are_no_list_arrive_as_a_tag(peer: Callable[..., Peer]) -> None:
    json_peer = peer("json")
    json_peer.logger.info("flagged", extra={"tags": True})
    json_peer.logger.info("numbered", extra={"tags": 7})
    flagged, numbered = json_peer.events(2)
    assert flagged["tags"] == ["True"] and numbered["tags"] == ["7"]
    assert converted(json_peer) == {"not_text": 2}


def test_a_record_without_a_name_is_sent_not_raised(peer: Callable[..., Peer]) -> None:
    json_peer = peer("json")
    record = logging.makeLogRecord({"name": "app", "msg": "nameless", "levelno": 20, "levelname": "INFO"})
    del record.name
    json_peer.handler.handle(record)  # raised AttributeError before
    (event,) = json_peer.events(1)
    assert event["message"] == "nameless" and event["target"] == "<missing>"
    assert converted(json_peer) == {"missing_attribute": 1}


def test_odd_record_attributes_are_converted_and_counted(peer: Callable[..., Peer]) -> None:
    json_peer = peer("json")
    record = logging.makeLogRecord({"name": "app", "msg": "odd", "levelno": 20, "levelname": "INFO"})
    record.name = 42  # type: ignore[assignment]
    record.lineno = "12"  # type: ignore[assignment]
    record.funcName = b"f"  # type: ignore[assignment]
    record.pathname = None  # type: ignore[assignment]
    record.threadName = 3.5  # type: ignore[assignment]
    record.levelno = HUGE
    record.msecs = "x"  # type: ignore[assignment]
    json_peer.handler.handle(record)
    (event,) = json_peer.events(1)
    assert event["target"] == "42"
    assert "codeLine" not in event and "codeFile" not in event
    assert event["codeFunc"] == "<bytes>" and event["thread"] == "3.5"
    assert event["level"] == INT64_MAX and event["action"] == "log.info"
    assert event["fields"] == {"level_original": hex(HUGE), "codeLine_original": "12"}
    assert event["tstamp"] == int(record.created * 1000) or abs(event["tstamp"] - record.created * 1000) <= 1
    assert converted(json_peer) == {"int_range": 1, "not_int": 1, "not_text": 3}


# ---------------------------------------------------------------- application code (item 7)


class Blocking:
    """A value whose text the worker must never ask for: it would wait for ever."""

    calls: list[str] = []
    in_worker = threading.Event()

    def __repr__(self) -> str:
        Blocking.calls.append(threading.current_thread().name)
        if threading.current_thread().name.startswith("eventlog"):
            Blocking.in_worker.set()
            threading.Event().wait(30)  # what a lock held elsewhere would do to the worker
        return "Blocking()"

    __str__ = __repr__


class Raising:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def test_values_that_need_their_text_are_converted_in_the_caller(peer: Callable[..., Peer]) -> None:
    json_peer = peer("json")
    Blocking.calls.clear()
    json_peer.logger.info("extra", extra={"obj": Blocking(), "bad": Raising()})
    json_peer.pipeline.submit_event(Event("fields", fields={"obj": Blocking()}, metrics={"m": Blocking()}))
    json_peer.pipeline.submit_event(Event("message", message=Blocking()))  # type: ignore[arg-type]
    with eventlog.context(user=Blocking(), thing=Blocking()):
        json_peer.pipeline.submit_event(Event("context"))
    events = json_peer.events(4)
    assert not Blocking.in_worker.is_set()
    assert all(not name.startswith("eventlog") for name in Blocking.calls)
    assert events[0]["fields"] == {"obj": "Blocking()", "bad": "<unrepresentable Raising>"}
    assert events[1]["fields"] == {"obj": "Blocking()", "m": "Blocking()"}
    assert events[2]["message"] == "Blocking()"
    assert events[3]["user"] == "Blocking()" and events[3]["fields"] == {"thing": "Blocking()"}


def test_a_container_changed_after_the_call_arrives_as_it_was(peer: Callable[..., Peer]) -> None:
    json_peer = peer("json")
    cart: dict[str, Any] = {"items": ["apple"], "total": 3}
    tags = ["a"]
    fields: dict[str, Any] = {"cart": cart}
    json_peer.logger.info("checkout", extra={"cart": cart, "tags": tags, "fields": {"lines": [1]}})
    json_peer.pipeline.submit_event(Event("checkout", fields=fields, tags=tags))
    cart["items"].append("pear")  # after the calls: the events must not see it
    cart["total"] = 99
    tags.append("b")
    fields["late"] = 1
    record_event, event = json_peer.events(2)
    as_it_was = json.dumps({"items": ["apple"], "total": 3}, ensure_ascii=False)
    assert record_event["fields"] == {"cart": as_it_was, "lines": "[1]"}
    assert record_event["tags"] == ["a"]
    assert event["fields"] == {"cart": as_it_was} and event["tags"] == ["a"]


def test_context_and_bind_never_raise_when_str_raises(peer: Callable[..., Peer]) -> None:
    json_peer = peer("json")
    with eventlog.context(user=Raising(), session=Raising()):
        json_peer.pipeline.submit_event(Event("in.context"))
    token = bind(request_id=Raising())
    try:
        json_peer.pipeline.submit_event(Event("bound"))
    finally:
        unbind(token)
    in_context, bound = json_peer.events(2)
    assert in_context["user"] == "<unrepresentable Raising>"
    assert in_context["session"] == "<unrepresentable Raising>"
    assert bound["reqId"] == "<unrepresentable Raising>"
    assert converted(json_peer) == {"not_text": 3}


# ---------------------------------------------------------------- exc_info as an object (issue 29 item 7)


@pytest.mark.parametrize("fmt", ["json", "json-array", "logstash"])
def test_exc_info_is_an_object_when_asked_and_text_by_default(peer: Callable[..., Peer], fmt: str) -> None:
    text_peer, object_peer = peer(fmt), peer(fmt, exc_info_format="object")
    for one in (text_peer, object_peer):
        try:
            raise KeyError("sku-7")
        except KeyError:
            one.logger.exception("failed")
    (as_text,) = text_peer.events(1)
    (as_object,) = object_peer.events(1)
    assert isinstance(as_text["exc_info"], str)
    assert as_object["exc_info"] == json.loads(as_text["exc_info"])
    assert as_object["exc_info"]["type"] == "KeyError" and as_object["exc_info"]["value"] == "'sku-7'"
    assert list(as_object) == list(as_text)  # same keys, same order


def test_exc_info_format_is_checked_at_configure() -> None:
    with pytest.raises(eventlog.ConfigurationError, match="exc_info_format"):
        eventlog.configure(transport="console", exc_info_format="yaml")


# ---------------------------------------------------------------- hostile input, every format


class _Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("hostile")


odd_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(HUGE),
    st.just(-HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.just(_Hostile()),
)
MUTATED = [
    "name",
    "levelno",
    "levelname",
    "created",
    "msecs",
    "lineno",
    "funcName",
    "pathname",
    "threadName",
    "exc_text",
    "msg",
    "args",
    "exc_info",
    "thread",
]
mutation = st.tuples(st.sampled_from(MUTATED), st.one_of(st.just("<delete>"), odd_value))
extra_value = st.dictionaries(
    st.sampled_from(["tags", "metrics", "fields", "n", "obj"]), odd_value, max_size=3
)


@pytest.fixture(scope="module")
def peers() -> Iterator[dict[str, Peer]]:
    made = {fmt: Peer(fmt) for fmt in FORMATS}
    yield made
    for one in made.values():
        one.close()


@settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    mutations=st.lists(mutation, max_size=4),
    extra=extra_value,
    time_ns=st.none() | odd_value,
    level=st.none() | st.integers(min_value=-(2**70), max_value=2**70) | st.just(HUGE),
    fields=st.dictionaries(st.text(max_size=5), odd_value, max_size=3),
    metrics=st.dictionaries(st.text(max_size=5), odd_value, max_size=3),
)
def test_hostile_records_and_events_arrive_with_their_id_in_every_format(
    peers: dict[str, Peer],
    mutations: list[tuple[str, Any]],
    extra: dict[str, Any],
    time_ns: Any,
    level: Any,
    fields: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    for fmt, one in peers.items():
        before = len(events_of(fmt, one.receiver.data()))
        record = logging.makeLogRecord(
            {"name": "hostile", "msg": "hostile.record", "levelno": 20, "levelname": "INFO"}
        )
        record.__dict__.update(extra)
        for attribute, value in mutations:
            if value == "<delete>":
                record.__dict__.pop(attribute, None)
            else:
                setattr(record, attribute, value)
        one.handler.handle(record)  # never raises
        one.pipeline.submit_event(
            Event("hostile.event", level=level, fields=fields, metrics=metrics, time_ns=time_ns)
        )
        events = one.events(before + 2)[before:]
        assert len(events) == 2, (fmt, events)
        assert [e["action"] for e in events].count("hostile.event") == 1, fmt
        assert all(len(e["id"]) == 32 and int(e["id"], 16) >= 0 for e in events), fmt
        assert one.pipeline.stats.dropped_by_reason() == {}, fmt


def test_an_impossible_time_in_spool_mode_is_sent_and_the_worker_goes_on(
    peer: Callable[..., Peer], tmp_path: Any
) -> None:
    """Issue 23 item 2: the spool indexes times as SQLite ints; 2**64 killed the worker there."""
    spool_peer = peer("json", db=str(tmp_path / "events.db"))
    spool_peer.pipeline.submit_event(Event("before"))
    spool_peer.pipeline.submit_event(Event("poison", time_ns=2**64))
    record = logging.makeLogRecord(
        {"name": "app", "msg": "ms created", "levelno": 20, "levelname": "INFO", "created": 1.7e12}
    )
    spool_peer.handler.handle(record)
    spool_peer.pipeline.submit_event(Event("after"))
    events = spool_peer.events(4)
    assert [e["action"] for e in events] == ["before", "poison", "log.info", "after"]
    stats = spool_peer.pipeline.stats
    assert stats.sent == 4 and stats.dropped_by_reason() == {}
    assert spool_peer.pipeline.spool_depth() == 0


def test_context_with_an_int_past_the_digit_limit_never_raises(peer: Callable[..., Peer]) -> None:
    """str() and repr() both refuse ints of more than 4,300 digits: the context takes hex."""
    json_peer = peer("json")
    huge = 10**5000
    with eventlog.context(user=huge):
        json_peer.pipeline.submit_event(Event("huge.user"))
    (event,) = json_peer.events(1)
    assert event["user"] == hex(huge)
    assert converted(json_peer) == {"int_range": 1}
