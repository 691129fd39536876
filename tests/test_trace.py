"""Trace correlation with OpenTelemetry, and ``eventlog.context(**fields)``.

With ``opentelemetry-api`` installed and a span current, every event (log
records and Events) carries ``traceId``, ``spanId`` and ``traceFlags`` in the
W3C hex forms, taken in the caller's thread.  The spans here come from the
real ``opentelemetry-sdk`` tracer.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import eventlog
import eventlog._records.logrecords
from eventlog import Event, EventHandler
from eventlog._config.config import Settings
from eventlog._engine.pipeline import Pipeline
from eventlog._records.context import EMPTY, RequestContext
from eventlog._records.logrecords import wires_of
from eventlog.cli import main
from eventlog.testing import capture_events
from tests.peers import missing
from tests.test_fast_path import FORMATTERS, assert_same

try:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
except ImportError:  # the subprocess test below still runs
    trace = None  # type: ignore[assignment]

_context_module = sys.modules["eventlog._records.context"]
_COMPILED = eventlog._records.logrecords._load_accelerator()
LOGGER = logging.getLogger("trace.test")


@pytest.fixture(params=["python", "speedups"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs with the pure-Python worker path and with eventlog-speedups' C one."""
    if request.param == "speedups":
        if _COMPILED is None:
            missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")
        monkeypatch.setattr(eventlog._records.logrecords, "accelerator", _COMPILED)
    else:
        monkeypatch.setattr(eventlog._records.logrecords, "accelerator", None)
    return str(request.param)


@pytest.fixture
def tracer() -> Any:
    """A real SDK tracer (its own provider: the global one is left alone)."""
    if trace is None:
        missing("opentelemetry-sdk", "pip install opentelemetry-api opentelemetry-sdk")
    return TracerProvider().get_tracer("eventlog.tests")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger feeding the default pipeline (the capture, inside capture_events)."""
    handler = EventHandler()
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    yield LOGGER
    LOGGER.removeHandler(handler)


def _ids(span: Any) -> dict[str, str]:
    context = span.get_span_context()
    return {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "traceFlags": f"{context.trace_flags:02x}",
    }


TRACE_KEYS = ("traceId", "spanId", "traceFlags")


def _trace_of(event: dict[str, Any]) -> dict[str, str]:
    return {key: event[key] for key in TRACE_KEYS if key in event}


def test_events_in_a_span_carry_its_ids_and_events_outside_none(
    tracer: Any, logger: logging.Logger, fast_path: str
) -> None:
    with capture_events() as events:
        logger.info("before")
        with tracer.start_as_current_span("outer") as outer:
            logger.info("in outer %s", "span", extra={"k": 1})
            eventlog.log_event(Event("click", "my-button", "ui"))
            with tracer.start_as_current_span("inner") as inner:
                logger.warning("in inner")
                with eventlog.context(user="alice"):
                    logger.warning("in inner as alice")
            logger.info("back in outer")
        logger.info("after")
    by_message = {e.get("message", e["action"]): e for e in events}
    assert len(events) == 7
    assert _trace_of(by_message["before"]) == {}
    assert _trace_of(by_message["after"]) == {}
    assert _trace_of(by_message["in outer span"]) == _ids(outer)
    assert _trace_of(by_message["click"]) == _ids(outer)
    assert _trace_of(by_message["in inner"]) == _ids(inner)
    assert _trace_of(by_message["in inner as alice"]) == _ids(inner)
    assert by_message["in inner as alice"]["user"] == "alice"
    assert _trace_of(by_message["back in outer"]) == _ids(outer)
    # The forms W3C traceparent uses: lowercase hex of 32, 16 and 2 digits.
    trace_id = outer.get_span_context().trace_id
    assert by_message["in outer span"]["traceId"] == format(trace_id, "032x")
    assert len(by_message["in inner"]["spanId"]) == 16
    assert by_message["in inner"]["traceId"] == by_message["in outer span"]["traceId"]
    assert by_message["in outer span"]["spanId"] != by_message["in inner"]["spanId"]


def test_an_unsampled_span_carries_its_ids_with_flags_00(tracer: Any, logger: logging.Logger) -> None:
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(0),
    )
    with capture_events() as events, trace.use_span(NonRecordingSpan(remote)):
        logger.info("unsampled")
    assert _trace_of(events[0]) == {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "00f067aa0ba902b7",
        "traceFlags": "00",
    }


def test_each_thread_carries_its_own_span(tracer: Any, logger: logging.Logger) -> None:
    spans: dict[str, dict[str, str]] = {}
    barrier = threading.Barrier(4)

    def work(name: str) -> None:
        with tracer.start_as_current_span(name) as span:
            spans[name] = _ids(span)
            barrier.wait(10)  # all four spans are current at once
            logger.info(name)
            eventlog.log_event(Event("thread.event", name))

    with capture_events() as events:
        threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len(events) == 8
    for event in events:
        name = event.get("message") or event["target"]
        assert _trace_of(event) == spans[name], name
    assert len({ids["spanId"] for ids in spans.values()}) == 4


def test_ids_are_taken_in_the_caller_and_survive_the_end_of_the_span(tracer: Any) -> None:
    with tracer.start_as_current_span("short") as span:
        record = LOGGER.makeRecord(LOGGER.name, logging.INFO, "f.py", 1, "m", (), None)
        item = (record, "m", _context_module.current())
        event = Event("e")
    assert not span.is_recording()  # ended: the worker runs after this
    for accelerator in (None, _COMPILED):
        eventlog._records.logrecords.accelerator = accelerator
        try:
            (wire,), _ = wires_of([item], {}, True, {}, lambda item: None)
        finally:
            eventlog._records.logrecords.accelerator = _COMPILED
        assert _trace_of(wire) == _ids(span)
    assert _trace_of(eventlog._records.wire.to_wire(event, {}, {}, event.context)) == _ids(span)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    made = Pipeline(Settings.load({"transport": "console", "site": "shop", "cluster": "eu-1"}))
    yield made
    made.shutdown()


def test_fast_and_careful_paths_give_the_same_bytes_with_trace_and_fields(
    tracer: Any, pipeline: Pipeline, fast_path: str
) -> None:
    def record(msg: str, **extra: Any) -> logging.LogRecord:
        return LOGGER.makeRecord(LOGGER.name, logging.INFO, "/a.py", 3, msg, (), None, "f", extra)

    items: list[Any] = []
    with tracer.start_as_current_span("s"):
        items.append((record("traced"), "traced", _context_module.current()))
        items.append(Event("traced.event"))
        with eventlog.context(user="alice", tenant="acme", shard=3, ratio=0.5, obj=[1, 2]):
            ctx = _context_module.current()
            items.append((record("ctx"), "ctx", ctx))
            items.append((record("ctx extras", k=1, who="bob", tenant="own"), "ctx extras", ctx))
            items.append((record("ctx odd", raw=b"\xff"), "ctx odd", ctx))
            items.append(Event("ctx.event", fields={"tenant": "mine", "n": 1}))
        with eventlog.context(tenant="acme", shard=3, ratio=0.5):
            ctx = _context_module.current()
            plain = [
                (record("plain ctx"), "plain ctx", ctx),
                (record("plain ctx extras", k=1, who="bob", tenant="own"), "plain ctx extras", ctx),
            ]
    assert_same(pipeline, items + plain)
    # Traced records whose context fields are plain are the compiled path's plain case.
    if fast_path == "speedups":
        taken = [items[0], *plain]
        wires, holes = _COMPILED(taken, {}, True, *eventlog._records.wire._ids.node_and_counter())  # type: ignore[misc]
        assert holes == 0 and all(set(TRACE_KEYS) <= set(wire) for wire in wires)
        assert wires[2]["fields"] == {"who": "bob", "tenant": "own", "shard": 3, "ratio": 0.5}
        assert wires[2]["metrics"] == {"k": 1}


def test_every_format_carries_the_trace_keys(tracer: Any) -> None:
    with tracer.start_as_current_span("s") as span:
        event = Event("e")
    wire = eventlog._records.wire.to_wire(event, {}, {}, event.context)
    expected = _ids(span)
    assert json.loads(FORMATTERS["json"].format(wire))["traceId"] == expected["traceId"]
    logstash = json.loads(FORMATTERS["logstash"].format(wire))
    assert _trace_of(logstash) == expected
    if "msgpack" in FORMATTERS:
        import msgpack

        assert _trace_of(msgpack.unpackb(FORMATTERS["msgpack"].format(wire))) == expected
    if "capnp" in FORMATTERS:
        from eventlog_capnp.format import read_messages

        (message,) = read_messages(FORMATTERS["capnp"].format(wire))
        assert _trace_of(message) == expected


def test_context_fields_land_in_fields_with_their_types(logger: logging.Logger) -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    with capture_events() as events:
        with eventlog.context(user="alice", tenant="acme", shard=3, ratio=0.5, thing=Thing()):
            with eventlog.context(shard=4, region="eu"):
                logger.info("nested", extra={"fields": {"tenant": "own"}})
                eventlog.log_event(Event("e", fields={"n": 1}))
            logger.info("outer")
        logger.info("outside")
        pipeline = events.pipeline
        assert pipeline is not None
        events.flush()
        converted = dict(pipeline.stats.converted)
    nested, event, outer, outside = events
    assert nested["fields"] == {
        "tenant": "own",  # the event's own field wins
        "shard": 4,
        "ratio": 0.5,
        "thing": "<thing>",
        "region": "eu",
    }
    assert nested["user"] == "alice"
    assert event["fields"] == {
        "n": 1,
        "tenant": "acme",
        "shard": 4,
        "ratio": 0.5,
        "thing": "<thing>",
        "region": "eu",
    }
    assert outer["fields"] == {"tenant": "acme", "shard": 3, "ratio": 0.5, "thing": "<thing>"}
    assert type(outer["fields"]["shard"]) is int and type(outer["fields"]["ratio"]) is float
    assert "fields" not in outside and "user" not in outside
    # The object is text, counted once per event that carried it.
    assert converted.get("not_text") == 3


def test_context_without_fields_keeps_its_old_behaviour() -> None:
    with eventlog.context(user="u", request_id=7) as snapshot:
        assert snapshot == RequestContext("u", None, "7")
        assert snapshot.fields is None
    assert _context_module.current() is EMPTY or _context_module.current().user is None
    token = _context_module.bind(session="s", tenant="t")
    try:
        assert _context_module.current()[:3] == (None, "s", None)
        assert _context_module.current().fields == {"tenant": "t"}
    finally:
        _context_module.unbind(token)
    assert _context_module.current().fields is None


def test_the_public_api_is_used_for_a_runtime_context_of_another_kind(
    tracer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opentelemetry.context as otel_context

    class Wrapped:
        """A runtime context that is no ContextVarsRuntimeContext (as OTEL_PYTHON_CONTEXT may pick)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(otel_context, "_RUNTIME_CONTEXT", Wrapped(otel_context._RUNTIME_CONTEXT))
    traced = _context_module._tracing_current()
    assert traced is not None
    current, trace_var = traced
    assert trace_var is None  # a compiled caller calls current() itself (CONTEXT_VARS)
    assert current() is _context_module.current()  # no span: the snapshot as it is
    with tracer.start_as_current_span("s") as span:
        ctx = current()
    assert (ctx.trace_id, ctx.span_id, ctx.trace_flags) == tuple(
        getattr(span.get_span_context(), name) for name in ("trace_id", "span_id", "trace_flags")
    )


_WITHOUT_OTEL = """
import json, logging, sys
sys.modules["opentelemetry"] = None  # as if it were not installed
import eventlog
from eventlog.testing import capture_events
ctx = sys.modules["eventlog._records.context"]
log = logging.getLogger("x")
log.addHandler(eventlog.EventHandler())
with capture_events() as events:
    log.warning("plain")
    eventlog.log_event(eventlog.Event("e"))
print(json.dumps({
    "imported": sorted(m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m]),
    "bare_get": type(ctx.current).__name__,
    "keys": sorted({k for e in events for k in e}),
    "count": len(events),
}))
"""


def test_without_opentelemetry_nothing_is_imported_and_events_have_no_trace_keys() -> None:
    done = subprocess.run([sys.executable, "-c", _WITHOUT_OTEL], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["imported"] == []
    # The hot path reads the context with the bare ContextVar.get, as before.
    assert result["bare_get"] == "builtin_function_or_method"
    assert result["count"] == 2
    assert not set(TRACE_KEYS) & set(result["keys"])


@pytest.mark.peer("clickhouse")
def test_clickhouse_rows_have_the_trace_columns(clickhouse: Any, tracer: Any) -> None:
    from eventlog_capnp.clickhouse import insert_url, render_ddl

    table = "trace_events"
    assert main(["capnp", "schema", "--output", str(clickhouse.format_schema_dir)]) == 0
    clickhouse.query(f"DROP TABLE IF EXISTS {table}")
    clickhouse.query(render_ddl(table))
    try:
        pipeline = eventlog.configure(
            transport="http", format="capnp", http_url=insert_url(clickhouse.url, table)
        )
        with tracer.start_as_current_span("s") as span:
            eventlog.log_event(Event("traced"))
        eventlog.log_event(Event("untraced"))
        assert pipeline.flush(60)
        assert pipeline.stats.sent == 2
        eventlog.shutdown(5)
        rows = clickhouse.rows(f"SELECT action, traceId, spanId, traceFlags FROM {table} ORDER BY action")
    finally:
        clickhouse.query(f"DROP TABLE IF EXISTS {table}")
    assert rows == [
        {"action": "traced", **_ids(span)},
        # No Nullable in ClickHouse 18.16: a field the event lacks reads as ''.
        {"action": "untraced", "traceId": "", "spanId": "", "traceFlags": ""},
    ]


def test_compiled_trace_hex_is_what_format_writes_at_the_edges() -> None:
    if _COMPILED is None:
        missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")
    record = LOGGER.makeRecord(LOGGER.name, logging.INFO, "f.py", 1, "m", (), None)
    node_and_counter = eventlog._records.wire._ids.node_and_counter()
    for trace_id in (0, 1, 2**64 - 1, 2**64, 2**128 - 1, 2**128, -1, 2**200):
        for span_id in (0, 2**64 - 1, 2**64, -3):
            for flags in (0, 1, 255, 256, -1, True):
                ctx = RequestContext(trace_id=trace_id, span_id=span_id, trace_flags=flags)
                (wire,), _ = _COMPILED([(record, "m", ctx)], {}, True, *node_and_counter)
                assert (wire["traceId"], wire["spanId"], wire["traceFlags"]) == (
                    format(trace_id, "032x"),
                    format(span_id, "016x"),
                    format(flags, "02x"),
                ), (trace_id, span_id, flags)


@pytest.mark.parametrize("enrichers", ["", "host", "context,site"])
def test_trace_ids_go_whatever_the_enrichers(tracer: Any, enrichers: str, fast_path: str) -> None:
    made = Pipeline(Settings.load({"transport": "console", "enrichers": enrichers}))
    try:
        with tracer.start_as_current_span("s") as span, eventlog.context(user="u", tenant="t"):
            record = LOGGER.makeRecord(LOGGER.name, logging.INFO, "/a.py", 3, "m", (), None, "f")
            items: list[Any] = [(record, "m", _context_module.current()), Event("e")]
        assert_same(made, items, all_fast=True)
        wires, _ = made._encoder.wires(items)
        for wire in wires:
            assert _trace_of(wire) == _ids(span)
            # user and the context's fields come with the context enricher only
            assert ("user" in wire) == ("context" in enrichers)
            assert ("fields" in wire) == ("context" in enrichers)
    finally:
        made.shutdown()
