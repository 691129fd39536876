"""The worker's fast path gives every format exactly the bytes of the careful path.

The careful path is the general one: a log record becomes an Event, the
enrichers run on it, ``to_wire`` cleans it.  The fast path builds the wire
dict in one pass (see ``eventlog._records.logrecords.wires_of``).  Both draw ids from the
same counter, which each comparison resets, so ids are equal too.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import sys
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog
import eventlog._records.logrecords
from eventlog import Event
from eventlog._config.config import Settings
from eventlog._config.contracts import Formatter, PluginContext
from eventlog._config.registry import get_registry
from eventlog._engine.pipeline import Pipeline
from eventlog._records.batch import EncodedBatch
from eventlog._records.context import EMPTY, RequestContext
from eventlog._records.logrecords import record_to_event, unrenderable, wires_of
from eventlog._records.schema import W
from eventlog._records.wire import _ids, to_wire
from tests.peers import missing
from tests.test_spool_props import any_text, hostile_event, hostile_value
from tests.varied import varied_events

LOGGER = logging.getLogger("fast.path")
#: Attribute names makeRecord refuses in extra= (they would overwrite the record's own).
_RESERVED = set(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__) | {"message", "asctime"}


_COMPILED = eventlog._records.logrecords._load_accelerator()
_LINES = eventlog._records.logrecords._load_json_lines()


@pytest.fixture(autouse=True, params=["python", "speedups"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the pure-Python fast path and with eventlog-speedups' C one."""
    if request.param == "speedups":
        if _COMPILED is None:
            missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")
        monkeypatch.setattr(eventlog._records.logrecords, "accelerator", _COMPILED)
        monkeypatch.setattr(eventlog._records.logrecords, "json_lines", _LINES)
    else:
        monkeypatch.setattr(eventlog._records.logrecords, "accelerator", None)
        monkeypatch.setattr(eventlog._records.logrecords, "json_lines", None)
    return str(request.param)


def _pipeline(**extra: Any) -> Pipeline:
    return Pipeline(Settings.load({"transport": "console", "site": "shop", "cluster": "eu-1", **extra}))


@pytest.fixture(scope="module")
def pipeline() -> Any:
    pipeline = _pipeline()
    yield pipeline
    pipeline.shutdown()


def _formatters() -> dict[str, Formatter]:
    registry = get_registry()
    settings = Settings.load({"transport": "console"})
    made = {}
    for name, registered in registry.formatters.items():
        options = settings.plugin_options(name, registered.spec.options)
        made[name] = registered.spec.factory(PluginContext(settings, options))
    return made


FORMATTERS = _formatters()


def _reset_ids() -> None:
    _ids._next = itertools.count(1).__next__


def _fast(pipeline: Pipeline, items: list[Any], conversions: dict[str, int]) -> list[Any]:
    """What the fast path makes of each item (None where it hands the item on)."""
    static = pipeline._encoder.static_fields()
    out = []
    for item in items:
        _reset_ids()
        wires, _ = wires_of([item], static, pipeline._encoder.with_context, conversions, lambda i: None)
        out.append(wires[0] if wires else None)
    return out


def _careful(pipeline: Pipeline, items: list[Any], conversions: dict[str, int]) -> list[Any]:
    out = []
    for item in items:
        _reset_ids()
        event = copy.copy(item) if type(item) is Event else record_to_event(*item)
        for enrich in pipeline._encoder.worker_enrichers:
            enrich(event)
        out.append(to_wire(event, conversions))
    return out


def _encoded(formatter: Formatter, wire: dict[str, Any]) -> Any:
    try:
        return formatter.format(wire)
    except Exception as exc:  # both paths must fail alike, too
        return type(exc)


def assert_same(pipeline: Pipeline, items: list[Any], *, all_fast: bool = False) -> None:
    conversions_fast: dict[str, int] = {}
    conversions_careful: dict[str, int] = {}
    fast = _fast(pipeline, items, conversions_fast)
    careful = _careful(pipeline, items, conversions_careful)
    taken = 0
    for item, fast_wire, careful_wire in zip(items, fast, careful):
        if fast_wire is None:
            assert not all_fast, f"the fast path did not take {item!r}"
            continue
        taken += 1
        # Same keys in the same order, same values of the same types.
        assert list(fast_wire.items()) == list(careful_wire.items())
        assert [type(v) for v in fast_wire.values()] == [type(v) for v in careful_wire.values()]
        for name, formatter in FORMATTERS.items():
            assert _encoded(formatter, fast_wire) == _encoded(formatter, careful_wire), name
    if all(w is not None for w in fast):
        assert conversions_fast == conversions_careful
    assert taken or not all_fast


def _record(
    msg: Any, args: tuple[Any, ...] = (), level: int = logging.INFO, /, **extra: Any
) -> logging.LogRecord:
    # Positional-only: an extra= key may be any name logging allows, "level" too (hypothesis
    # drew it, and it is also a wire field's name).
    return LOGGER.makeRecord(
        LOGGER.name, level, "/app/views.py", 42, msg, args, None, "handler", extra or None
    )


def _item(record: logging.LogRecord, ctx: RequestContext = EMPTY) -> tuple[Any, Any, Any]:
    # As EventHandler queues it: (msg, args) still to render, or the rendered message.
    message = (record.msg, record.args) if record.args else record.getMessage()
    return (record, message, ctx)


def test_common_log_records_take_the_fast_path_with_the_same_bytes(
    pipeline: Pipeline, fast_path: str
) -> None:
    items = [
        _item(_record("user %s did thing %d", ("alice", 7), k=7)),
        _item(_record("plain")),
        _item(_record("ratio %.2f", (0.5,), logging.WARNING, ratio=0.25, who="bob")),
        _item(_record("in a request"), RequestContext("alice", "s-1", "r-1")),
        _item(_record("many", k1=1, k2="two", k3=3.5, k4=-4)),
        _item(_record("trace", (), 5)),
        _item(_record("extras named like wire fields", (), logging.INFO, level="high", action="x")),
    ]
    assert_same(pipeline, items, all_fast=True)
    if fast_path == "speedups":  # and the compiled part took every one of them
        static = pipeline._encoder.static_fields()
        wires, holes = _COMPILED(items, static, True, *_ids.node_and_counter())  # type: ignore[misc]
        assert holes == 0 and all(type(w) is dict for w in wires)


def test_unusual_log_records_have_the_same_bytes(pipeline: Pipeline) -> None:
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        exc = _record("failed", (), logging.ERROR)
        exc.exc_info = sys.exc_info()
    record_no_func = logging.LogRecord("fast.path", logging.INFO, "p.py", 1, "no func", (), None)
    nameless = _record("odd name")
    nameless.name = "naïve.logger"
    no_thread = _record("no thread")
    no_thread.threadName = None
    bad_exc = _record("bad exc", (), logging.ERROR)
    bad_exc.exc_info = (ValueError, "not an exception", None)  # type: ignore[assignment]
    unrendered = _record("v=%s", (object(),))
    items = [
        _item(exc),
        _item(bad_exc),
        # As the handler queues a message that raised in the caller: the placeholder, counted.
        (unrendered, unrenderable("v=%s", (object(),), RecursionError()), EMPTY),
        _item(_record("big %d", (10**5000,))),  # neither renders nor repr()s: the placeholder
        _item(record_no_func),
        _item(nameless),
        _item(no_thread),
        _item(_record("café %s", ("naïve",))),
        _item(_record("lone \udc80 surrogate")),
        _item(_record("x" * 300_000)),
        _item(_record("bad %d", ("not a number",))),
        _item(_record("tags", tags=["a", "b"], metrics={"m": 1.5}, fields={"f": "v"}, n=1)),
        _item(_record("odd extras", flag=True, nan=math.nan, big=2**70, obj=object(), raw=b"\xff")),
        _item(_record("custom level", (), 25)),
        _item(_record("keys", **{"clé": 1, "x" * 20_000: "long key"})),
        _item(_record("ctx"), RequestContext("Zoë", None, "r\udc80")),
    ]
    assert_same(pipeline, items)


def test_a_custom_levels_own_name_is_its_level_name(pipeline: Pipeline) -> None:
    """loguru's SUCCESS, logging.addLevelName: the record's name, not "Level 25"."""
    notice = _record("noticed", (), 25)
    notice.levelname = "NOTICE"
    unnamed = _record("unnamed", (), 25)  # logging's own name for it: "Level 25"
    wires, _ = pipeline._encoder.wires(
        [_item(notice), _item(unnamed), Event("e", level=25), Event("w", level=30)]
    )
    assert [(w["action"], w["level"], w["levelName"]) for w in wires] == [
        ("log.notice", 25, "NOTICE"),
        ("log.level 25", 25, "Level 25"),
        ("e", 25, "Level 25"),
        ("w", 30, "WARNING"),
    ]


def test_events_take_the_fast_path_with_the_same_bytes(pipeline: Pipeline) -> None:
    assert_same(pipeline, list(varied_events(300)))
    assert_same(pipeline, [Event("click", "my-button", "ui")], all_fast=True)


@pytest.mark.parametrize(
    "settings",
    [{"enrichers": "host"}, {"enrichers": "context,site"}, {"enrichers": ""}, {"site": None}],
    ids=["host", "context-site", "none", "no-site"],
)
def test_other_enricher_choices_have_the_same_bytes(settings: dict[str, Any]) -> None:
    pipeline = _pipeline(**settings)
    try:
        items: list[Any] = [
            _item(_record("hello %s", ("x",), k=1), RequestContext("alice")),
            Event("click", "b", "ui", user="bob"),
        ]
        with eventlog.context(user="carol"):
            items.append(Event("in.context"))
        assert_same(pipeline, items, all_fast=True)
    finally:
        pipeline.shutdown()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=hostile_event())
def test_hostile_events_have_the_same_bytes(event: Event) -> None:
    pipeline = _PIPELINE
    assert_same(pipeline, [event])


extra_key = any_text.filter(lambda k: k not in _RESERVED)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    level=st.sampled_from([logging.INFO, logging.WARNING, logging.ERROR, 5, 60]),
    msg=any_text,
    args=st.lists(st.one_of(any_text, st.integers(), st.floats(), st.binary(max_size=8)), max_size=3),
    extra=st.dictionaries(extra_key, hostile_value, max_size=5),
    ctx=st.builds(RequestContext, st.none() | any_text, st.none() | any_text, st.none() | any_text),
)
def test_hostile_log_records_have_the_same_bytes(
    level: int, msg: str, args: list[Any], extra: dict[str, Any], ctx: RequestContext
) -> None:
    record = _record(msg, tuple(args), level, **extra)
    assert_same(_PIPELINE, [_item(record, ctx)])


_PIPELINE = _pipeline()


def test_a_batch_is_encoded_in_one_call_with_the_per_event_bytes(pipeline: Pipeline, fast_path: str) -> None:
    items = [_item(_record("n %d", (i,), k=i)) for i in range(50)] + list(varied_events(50))
    for name in ("json", "logstash"):
        _use_formatter(pipeline, name)
        _reset_ids()
        batch = pipeline._encoder.batch(items)
        assert type(batch) is EncodedBatch
        _reset_ids()
        records = pipeline._encoder.each(*pipeline._encoder.wires(items))  # one format() call per event
        assert batch.body == b"".join(r.payload for r in records)
        # Records on demand: the same ids, actions, times and payloads as one by one.
        assert list(batch) == records and len(batch) == 100
        assert batch[3] == records[3]
        _reset_ids()
        spooled = pipeline._encoder.records(items)  # spool mode's Records, from the one call
        if fast_path == "speedups":  # kept in one piece, with each payload's size: no Record made
            assert type(spooled) is EncodedBatch and spooled._records is None
            assert spooled.sizes == [len(r.payload) for r in records]
        assert list(spooled) == records


def test_an_event_carries_the_name_of_its_thread_after_the_thread_exits() -> None:
    made: list[Event] = []
    thread = threading.Thread(target=lambda: made.append(Event("from.thread")), name="worker-7")
    thread.start()
    thread.join()
    assert to_wire(made[0], None)["thread"] == "worker-7"


def test_a_subclass_that_overrides_format_is_not_bypassed_by_the_batch_encoder() -> None:
    from eventlog._builtin.formats import JsonFormatter, LogstashFormatter
    from eventlog._config.contracts import batch_encoder

    class Tagged(JsonFormatter):
        def format(self, wire: dict[str, Any]) -> bytes:
            return super().format({**wire, "tagged": 1})

    assert batch_encoder(Tagged()) is None  # its format() must see every event
    assert batch_encoder(JsonFormatter()) is not None
    assert batch_encoder(LogstashFormatter()) is not None


def test_plain_events_are_made_by_the_compiled_path_with_the_same_bytes(
    fast_path: str, pipeline: Pipeline
) -> None:
    with eventlog.context(user="bob", request_id="r-9", shop="s-1"):
        in_context = Event("cart.add", "sku-1", "item", fields={"n": 2})
    events = [
        Event("click", "my-button", "ui"),
        Event(
            "user.did",
            "alice",
            "user",
            message="done",
            level=logging.WARNING,
            tags=["a", "b"],
            fields={"req_id": "r-1", "n": 3, "ratio": 0.5},
            metrics={"duration_ms": 12.5, "rows": 7},
            log_code=True,
        ),
        Event("early", time_ns=-5),
        in_context,
    ]
    assert_same(pipeline, events, all_fast=True)
    if fast_path == "speedups":
        assert _COMPILED is not None
        static = pipeline._encoder.static_fields()
        _, holes = _COMPILED(events, static, True, *_ids.node_and_counter())
        assert holes == 0


def test_a_batchs_times_are_each_events_time(pipeline: Pipeline) -> None:
    from eventlog._engine.encoder import _time_ns, _times_ns

    odd = _record("odd")
    odd.created = float("nan")
    items = [_item(_record("n %d", (i,), k=i)) for i in range(5)] + list(varied_events(20)) + [_item(odd)]
    wires, sources = wires_of(items, {}, True, {}, lambda item: None)
    assert _times_ns(sources, wires) == [_time_ns(item, wire) for item, wire in zip(sources, wires)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(st.one_of(any_text, st.integers(), st.booleans()), hostile_value, max_size=5))
def test_event_copies_plain_dicts_in_c_as_in_python(fast_path: str, values: dict[Any, Any]) -> None:
    from eventlog._records import event

    compiled = event._load_plain_copy()
    python = event._py_plain_copy(values)
    got = compiled(values)

    def same_objects(d: dict[Any, Any] | None) -> Any:
        return None if d is None else [(k, id(v)) for k, v in d.items()]

    assert same_objects(got) == same_objects(python)
    assert got is None or got is not values
    assert same_objects(got) in (None, same_objects(values))


def test_a_record_with_an_attribute_deleted_and_an_extra_added_keeps_the_extra() -> None:
    # Found by the fault-injection run (rule record_deleted_attribute): the record has as many
    # attributes as logging gives, so it looked like one without extra= and the extra was lost.
    import logging

    from eventlog import EventHandler
    from eventlog.testing import capture_events

    class Mutate(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            del record.processName
            record.cart = "3 items"
            return True

    logger = logging.getLogger("tests.fast_path.deleted_attribute")
    logger.propagate = False
    handler = EventHandler()
    handler.addFilter(Mutate())
    logger.addHandler(handler)
    try:
        with capture_events() as events:
            logger.warning("checkout")
    finally:
        logger.removeHandler(handler)
    assert [(e["message"], e["fields"]["cart"]) for e in events] == [("checkout", "3 items")]


def _use_formatter(pipeline: Pipeline, name: str) -> None:
    encoder, formatter = pipeline._encoder, FORMATTERS[name]
    encoder.format_many = formatter.format_many
    encoder.split_many = formatter.split_many
    encoder.format = formatter.format
    encoder.json_lines = getattr(formatter, "json_lines", None)


_LINES_PIPELINE = _pipeline()
ascii_text = st.text(st.characters(max_codepoint=127), max_size=30)
#: Values the compiled path writes itself (and some it hands on: non-ASCII, beyond 64 bits).
plainish_value = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    ascii_text,
    st.integers(),
    any_text,
)


@st.composite
def plainish_item(draw: st.DrawFn) -> Any:
    """A log record or an Event, mostly of what the compiled path takes whole."""
    ctx = draw(
        st.just(EMPTY)
        | st.builds(RequestContext, st.none() | ascii_text, st.none() | ascii_text, st.none() | any_text)
    )
    if draw(st.booleans()):
        extra = draw(
            st.dictionaries(ascii_text.filter(lambda k: k not in _RESERVED), plainish_value, max_size=4)
        )
        level = draw(st.sampled_from([logging.INFO, logging.WARNING, 5, 60]))
        return _item(_record(draw(ascii_text | any_text), (), level, **extra), ctx)
    return Event(
        draw(ascii_text.filter(bool)),
        draw(st.none() | ascii_text),
        draw(st.none() | ascii_text),
        message=draw(st.none() | ascii_text | any_text),
        level=draw(st.none() | st.sampled_from([10, 20, 30, 7])),
        tags=draw(st.none() | st.lists(ascii_text, max_size=3)),
        fields=draw(st.none() | st.dictionaries(ascii_text, plainish_value, max_size=4)),
        metrics=draw(st.none() | st.dictionaries(ascii_text, plainish_value, max_size=3)),
        time_ns=draw(st.none() | st.integers(-(2**63), 2**63 - 1)),
        log_code=draw(st.booleans()),
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    items=st.lists(plainish_item() | hostile_event(), min_size=1, max_size=8),
    name=st.sampled_from(["json", "json-array", "logstash"]),
)
def test_json_lines_written_without_wire_dicts_are_the_bytes_of_the_wire_dicts(
    fast_path: str, items: list[Any], name: str
) -> None:
    """The batch the engine sends (eventlog-speedups' lines() where installed, else the
    wire dicts and orjson) is byte for byte the formatter's bytes of each wire dict."""
    pipeline = _LINES_PIPELINE
    _use_formatter(pipeline, name)
    encoder = pipeline._encoder
    events = [copy.copy(item) for item in items if type(item) is Event]
    _reset_ids()
    batch = encoder.batch(items)
    if fast_path == "speedups":
        assert encoder.lines(items[:0]) is not None  # the batch above was written by lines()
    for item, original in zip((i for i in items if type(i) is Event), events):
        item.id = original.id  # drawn by the first run: the reference draws them again
    _reset_ids()
    records = encoder.each(*encoder.wires(items))  # the reference: one format() per wire dict
    assert list(batch) == records
    if records:
        assert type(batch) is EncodedBatch
        assert batch.body == b"".join(r.payload for r in records)


@pytest.mark.parametrize(
    "value",
    [
        1e-05,
        -1.234e-05,
        9.999e-05,
        1e-06,
        1.5e-07,
        5e-324,
        1e16,
        -1.5e16,
        1e22,
        0.0,
        -0.0,
        12.5,
        -0.25,
        1200.0,
        0.0001,
        0.00012345,
        999999999999999.0,
        999999999999999.9,
        0.123456789,
        2.675,
        2**63 - 1,
        -(2**63),
    ],
)
def test_numbers_are_written_as_orjson_writes_them(fast_path: str, value: float) -> None:
    _compiled_number_is_orjsons(fast_path, value)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**63 - 1))
def test_any_number_is_written_as_orjson_writes_it(fast_path: str, value: float) -> None:
    _compiled_number_is_orjsons(fast_path, value)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    digits=st.integers(-(10**17), 10**17) | st.integers(-(10**6), 10**6),
    places=st.integers(0, 12),
)
def test_a_short_decimal_float_is_written_as_orjson_writes_it(
    fast_path: str, digits: int, places: int
) -> None:
    """Metric values are mostly short decimals (12.5, 0.25): the C writer's shortcut for them
    (no shortest-digits search) is held to orjson's bytes, also just past its bounds (15
    significant digits, 8 fraction digits, 1e-4)."""
    _compiled_number_is_orjsons(fast_path, digits / 10**places)


def _compiled_number_is_orjsons(fast_path: str, value: float) -> None:
    orjson = pytest.importorskip("orjson")
    if fast_path != "speedups":
        return  # the pure-Python path is orjson itself
    import eventlog_speedups._wires as compiled

    assert compiled.json_number(value) == orjson.dumps(value)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    millis=st.integers(-(2**63) // 1_000_000 - 1, 2**63 // 1_000_000) | st.sampled_from([0, -1, -1000, -1001])
)
def test_logstash_timestamps_are_written_as_iso_millis_writes_them(fast_path: str, millis: int) -> None:
    from eventlog._builtin.formats import iso_millis

    if fast_path == "speedups":  # every millisecond an Event's int64 time_ns can have
        import eventlog_speedups._wires as compiled

        assert compiled.iso_text(millis) == iso_millis(millis)


def test_the_compiled_code_spells_no_wire_name() -> None:
    """eventlog-speedups learns the wire names from the schema at set-up: a renamed field
    cannot leave the C code writing the old name."""
    from pathlib import Path

    from eventlog._records.schema import FIELDS

    sources = Path(__file__).resolve().parents[1] / "plugins/eventlog_speedups/src/eventlog_speedups"
    # The names that differ from their Event attribute (the C tables spell the attributes).
    renamed = [f.wire for f in FIELDS if f.wire != f.python_name]
    assert renamed  # tgType, levelName, reqId, codeFile ...
    for source in ("_wires.c", "_otlp.c"):
        text = (sources / source).read_text()
        assert [name for name in renamed if f'"{name}"' in text] == [], source


# The compiled walk renders the usual "%s"/"%d" messages itself (PyUnicode_Format for the
# rest): templates made of those, their neighbours and text that is not ASCII.
template_piece = st.sampled_from(
    ["user ", "%s", "%d", "%%", "%5d", "%r", "%-3s", "%", "é", "\u2603", " did ", "%i", "d", "s"]
)
format_arg = st.one_of(
    st.sampled_from(["alice", "", "é", 'a"b\\c\n', "%s"]),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, True, False, 1.5]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(template_piece, max_size=6), args=st.lists(format_arg, min_size=1, max_size=4))
def test_a_message_rendered_by_the_compiled_walk_is_the_str_of_msg_percent_args(
    fast_path: str, pieces: list[str], args: list[Any]
) -> None:
    msg = "".join(pieces)
    item = _item(_record(msg, tuple(args)))
    assert_same(_PIPELINE, [item])
    if fast_path != "speedups":
        return
    static = _PIPELINE._encoder.static_fields()
    wires, _ = _COMPILED([item], static, True, *_ids.node_and_counter())  # type: ignore[misc]
    try:
        want = msg % tuple(args)
    except (TypeError, ValueError):
        assert wires[0] is None  # the Python path sends its placeholder, counted
        return
    if wires[0] is not None:
        assert wires[0][W.message] == want


def test_a_mixed_batch_has_the_per_record_bytes_and_its_own_items_as_sources(pipeline: Pipeline) -> None:
    """The pure-Python loop writes the commonest records itself and hands the rest on: in one
    batch, each wire dict is the reference's and each source is the item queued."""
    before_1970 = _record("old %d", (1,), k=1)
    before_1970.created, before_1970.msecs = -1.5, 500.0
    items = [
        _item(_record("user %s did thing %d", ("alice", 7), k=7)),
        _item(_record("caf\u00e9 %s", ("cr\u00e8me",), k=1)),  # rendered non-ASCII: handed on
        _item(_record("in a request %d", (3,), k=3), RequestContext("alice", "s-1", "r-1")),
        _item(_record("big numbers", (), logging.INFO, n=2**40, m=-(2**63), f=1.5, s="text")),
        _item(_record("beyond 64 bits", (), logging.INFO, n=2**64)),
        _item(_record("not finite", (), logging.INFO, f=float("inf"))),
        _item(_record("no extras")),
        _item(before_1970),
        _item(_record("%d%%", (5,), logging.WARNING, fields={"a": 1})),
    ]
    static = pipeline._encoder.static_fields()
    _reset_ids()
    wires, sources = wires_of(items, static, True, {}, lambda item: None)
    assert all(source is item for source, item in zip(sources, items, strict=True))
    # Ids are drawn in batch order here and per record (from 1) in the reference: not compared.
    reference = _careful(pipeline, items, {})
    assert [[kv for kv in w.items() if kv[0] != "id"] for w in wires] == [
        [kv for kv in w.items() if kv[0] != "id"] for w in reference
    ]
    assert_same(pipeline, items, all_fast=True)
