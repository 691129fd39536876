"""The compiled EventHandler.handle (eventlog-speedups) decides exactly as the Python one (issue 26).

``eventlog._api.handler.python_handle`` is the reference; ``compiled_handle`` is
what ``EventHandler.handle`` is when eventlog-speedups is installed.  The same
records go through each into a pipeline of its own whose worker is held back,
so what the queues hold, the counters and the return values are compared
exactly.  Then a real TCP listener receives the same records sent with the
speedups on and off, byte for byte.
"""

from __future__ import annotations

import copy
import gc
import itertools
import json
import logging
import math
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog._records.logrecords
from eventlog import EventHandler
from eventlog._api import handler as handler_module
from eventlog._builtin.receiver import LineReceiver
from eventlog._config.config import Settings
from eventlog._core.diagnostics import WORKER_THREADS
from eventlog._engine import pipeline as pipeline_module
from eventlog._engine.accounting import done_with
from eventlog._engine.pipeline import Pipeline
from eventlog._records.caps import ITEM_BYTES, VALUE_BYTES
from eventlog._records.event import Event
from eventlog._records.wire import _ids
from tests.peers import missing
from tests.test_spool_props import hostile_event

COMPILED = handler_module.compiled_handle
PYTHON = handler_module.python_handle
LOGGER = logging.getLogger("tests.caps.handle")
#: Attribute names makeRecord refuses in extra= (they would overwrite the record's own).
_INIT_KEYS = list(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__)
_RESERVED = set(_INIT_KEYS) | {"message", "asctime"}
#: A thread ident no real thread has: a record "logged from a worker".
FAKE_WORKER = 7


@pytest.fixture(autouse=True)
def _compiled() -> None:
    if COMPILED is None:
        missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")


def _held(queue_size: int = 100) -> Pipeline:
    """A pipeline whose worker never starts: the queue only fills."""
    pipeline = Pipeline(Settings.load({"transport": "console", "queue_size": queue_size}))
    pipeline.worker._start = lambda: None  # type: ignore[method-assign]
    return pipeline


class _Python(EventHandler):
    """The handler with the reference handle()."""

    handle = PYTHON  # type: ignore[assignment]


plain = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=8),
)
mutable = st.one_of(
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """A logging call's record and the handler's and pipeline's state around it."""
    return {
        "name": draw(st.sampled_from(["tests.caps.handle", "eventlog", "eventlog._engine.worker", "ünï"])),
        "msg": draw(
            st.one_of(
                st.text(max_size=30),
                st.just("x" * 5000),  # past SMALL_BYTES
                st.just("user %s did thing %d"),
                st.integers(),
                mutable,
            )
        ),
        "args": draw(
            st.one_of(
                st.just(()),
                st.lists(plain, max_size=3).map(tuple),
                st.tuples(plain, mutable),  # rendered now: the list may change later
                st.just(({"a": 1},)),  # a mapping: LogRecord keeps the dict itself
                st.just(({},)),
                st.just(("x" * 3000,)),
            )
        ),
        "extra": draw(
            st.dictionaries(
                st.text(min_size=1, max_size=8).filter(lambda key: key not in _RESERVED),
                st.one_of(plain, mutable),
                max_size=3,
            )
        ),
        "delete": draw(st.one_of(st.none(), st.sampled_from(_INIT_KEYS))),
        "moved": draw(st.booleans()),  # an attribute deleted and set again: it moves to the end
        "exc": draw(st.booleans()),
        "created": draw(st.one_of(st.none(), st.sampled_from([math.nan, 1e30, -1e30, 5, "now"]))),
        "worker_thread": draw(st.booleans()),
        "filter": draw(st.sampled_from([None, "pass", "block", "replace"])),
        "enricher": draw(st.booleans()),
        "full": draw(st.booleans()),
        "own_pipeline": draw(st.booleans()),
    }


def _record(case: dict[str, Any]) -> logging.LogRecord:
    exc_info = None
    if case["exc"]:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    args = case["args"]
    record = LOGGER.makeRecord(
        case["name"], logging.INFO, "f.py", 3, case["msg"], args, exc_info, "fn", case["extra"] or None
    )
    record.created = 1_700_000_000.25  # the same on both records (the copy keeps it)
    if case["created"] is not None:
        record.created = case["created"]
    if case["worker_thread"]:
        record.thread = FAKE_WORKER
    if case["delete"] is not None:
        value = record.__dict__.pop(case["delete"])
        if case["moved"]:
            record.__dict__[case["delete"]] = value
    return record


def _filter(kind: str | None) -> Any:
    if kind == "pass":
        return lambda record: True
    if kind == "block":
        return lambda record: False

    def replace(record: logging.LogRecord) -> logging.LogRecord:  # 3.12+: the record replaced
        replaced = copy.copy(record)
        replaced.msg = "replaced"
        return replaced

    return replace


def _slots(event: Event, with_time: bool) -> dict[str, Any]:
    return {
        slot: getattr(event, slot, "<unset>") for slot in Event.__slots__ if with_time or slot != "time_ns"
    }


def _queued(pipeline: Pipeline, with_time: bool) -> list[Any]:
    """What the queue holds, comparable across pipelines (a record by its attributes)."""
    out: list[Any] = []
    for item in pipeline.worker.queue:
        if type(item) is tuple:
            record, message, ctx = item
            out.append(("record", list(record.__dict__.items()), message, ctx))
        else:
            out.append(("event", _slots(item, with_time)))
    return out


def _run(case: dict[str, Any], handler: EventHandler, pipeline: Pipeline, record: logging.LogRecord) -> Any:
    if case["filter"] is not None:
        handler.addFilter(_filter(case["filter"]))
    if case["enricher"]:
        pipeline.caller_enrichers = [lambda event: setattr(event, "user", "enriched")]
    if case["full"]:
        pipeline.submit_event(Event("fill", time_ns=1))  # queue_size=1: the record finds it full
    return handler.handle(record)


@pytest.fixture
def worker_thread() -> Iterator[None]:
    WORKER_THREADS.add(FAKE_WORKER)
    yield
    WORKER_THREADS.discard(FAKE_WORKER)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_the_compiled_handle_queues_what_the_python_one_does(
    case: dict[str, Any], worker_thread: None
) -> None:
    record = _record(case)
    twin = copy.copy(record)  # the same attributes, in the same order
    size = 1 if case["full"] else 100
    compiled_pipeline, python_pipeline = _held(size), _held(size)
    try:
        if case["own_pipeline"]:
            compiled = EventHandler(pipeline=compiled_pipeline)
            python = _Python(pipeline=python_pipeline)
        else:  # the default pipeline, read from eventlog._api.api._default per call
            compiled, python = EventHandler(), _Python()
        if case["own_pipeline"]:
            got = _run(case, compiled, compiled_pipeline, record)
            expected = _run(case, python, python_pipeline, twin)
        else:
            eventlog._api.api._default = compiled_pipeline
            got = _run(case, compiled, compiled_pipeline, record)
            eventlog._api.api._default = python_pipeline
            expected = _run(case, python, python_pipeline, twin)
            eventlog._api.api._default = None
        assert got == expected and type(got) is type(expected)
        with_time = case["created"] is None and case["delete"] not in ("created", "msecs")
        assert _queued(compiled_pipeline, with_time) == _queued(python_pipeline, with_time)
        assert compiled_pipeline.worker.accounts.queued_bytes == python_pipeline.worker.accounts.queued_bytes
        assert vars(compiled_pipeline.stats) == vars(python_pipeline.stats)
        assert compiled_pipeline.worker.wake_needed == python_pipeline.worker.wake_needed
    finally:
        compiled_pipeline.shutdown(timeout=0)
        python_pipeline.shutdown(timeout=0)


def test_eventhandler_handle_is_the_compiled_one() -> None:
    assert EventHandler.handle is COMPILED
    assert EventHandler.__dict__["handle"] is COMPILED


def test_a_plain_record_never_reaches_the_python_handle() -> None:
    pipeline = _held()
    handler = EventHandler(pipeline=pipeline)
    records = [
        LOGGER.makeRecord(
            LOGGER.name, logging.INFO, "f.py", 3, "user %s did thing %d", ("alice", i), None, "fn", {"k": i}
        )
        for i in range(3)
    ] + [LOGGER.makeRecord(LOGGER.name, logging.WARNING, "f.py", 4, "no args", (), None)]
    called: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is PYTHON.__code__:
            called.append(event)

    sys.setprofile(profile)
    try:
        results = [handler.handle(record) for record in records]
    finally:
        sys.setprofile(None)
    try:
        assert results == [True] * 4
        assert called == []
        assert [(item[0], item[1]) for item in pipeline.worker.queue] == [
            (records[0], ("user %s did thing %d", ("alice", 0))),
            (records[1], ("user %s did thing %d", ("alice", 1))),
            (records[2], ("user %s did thing %d", ("alice", 2))),
            (records[3], "no args"),
        ]
        assert pipeline.worker.accounts.queued_bytes == 3 * (1024 + 20 + 2 * 64) + (1024 + 7)
    finally:
        pipeline.shutdown(timeout=0)


def _cyclic_record(i: int) -> logging.LogRecord:
    """A plain record; the caller's handle() queues it with nothing that can form a cycle."""
    return LOGGER.makeRecord(
        LOGGER.name, logging.INFO, "f.py", 3, "user %s did thing %d", ("alice", i), None, "fn", {"k": i}
    )


def test_a_queued_record_is_hidden_from_the_collector_until_the_worker_is_done_with_it() -> None:
    """The young-generation passes of the garbage collector do not walk the queue (issue 26:
    ~4k instructions an event in a flood), nor the worker's round; once the worker is done
    with the items, the collector sees them again."""
    pipeline = _held()
    handler = EventHandler(pipeline=pipeline)
    record = _cyclic_record(1)
    try:
        assert handler.handle(record) is True
        (item,) = pipeline.worker.queue
        assert [gc.is_tracked(o) for o in (record, record.__dict__, item, item[1])] == [False] * 4
        taken = pipeline.worker.accounts.take(pipeline.worker.queue, 10)
        assert taken == [item] and not gc.is_tracked(record)
        done_with(taken)
        assert [gc.is_tracked(o) for o in (record, record.__dict__)] == [True, True]
    finally:
        pipeline.shutdown(timeout=0)


@pytest.mark.parametrize("mode", ["memory", "spool"])
def test_a_cycle_made_while_records_wait_is_collected_once_they_leave_the_queue(
    mode: str, tmp_path: Path
) -> None:
    """Another handler (or the application) may make a record part of a reference cycle after
    ours queued it: sent (from memory or through the spool), given up at shutdown or evicted,
    the record is collected as ever."""
    db = {"db": str(tmp_path / "spool.db")} if mode == "spool" else {}
    with LineReceiver() as receiver:
        pipeline = Pipeline(
            Settings.load({"transport": "tcp", "host": "127.0.0.1", "port": receiver.port, **db})
        )
        handler = EventHandler(pipeline=pipeline)
        refs = []
        try:
            for i in range(20):
                record = _cyclic_record(i)
                assert handler.handle(record) is True
                record.itself = record  # what a later handler's filter might do: a cycle
                refs.append(weakref.ref(record))
            del record
            assert pipeline.flush(30)
            assert receiver.wait_for(20, timeout=30)
        finally:
            pipeline.shutdown(timeout=5)
    held = _held(queue_size=3)
    handler = EventHandler(pipeline=held)
    for i in range(3):
        record = _cyclic_record(i)
        assert handler.handle(record) is True
        record.itself = record
        refs.append(weakref.ref(record))
    del record
    queue = held.worker.queue
    assert held.worker.accounts.evict(queue, lambda taken: 0, "overload") == 0
    assert held.worker.accounts.give_up(queue, "shutdown") == 2
    held.shutdown(timeout=0)
    gc.collect()
    assert [ref() for ref in refs] == [None] * 23


@pytest.mark.parametrize("handle", [COMPILED, PYTHON], ids=["compiled", "python"])
def test_a_wake_that_fails_after_queuing_goes_to_handle_error_once(handle: Any) -> None:
    pipeline = _held()
    handler = EventHandler(pipeline=pipeline)
    seen: list[Any] = []

    def boom() -> None:
        raise OSError("no thread")

    pipeline.worker.wake = boom  # type: ignore[method-assign]
    handler.handleError = lambda record: seen.append((record, sys.exc_info()[1]))  # type: ignore[method-assign]
    record = LOGGER.makeRecord(LOGGER.name, logging.INFO, "f.py", 3, "m", (), None)
    try:
        assert handle(handler, record) is True
        assert len(pipeline.worker.queue) == 1 and pipeline.worker.queue[0][0] is record
        assert len(seen) == 1 and seen[0][0] is record
        assert type(seen[0][1]) is OSError and str(seen[0][1]) == "no thread"
        assert pipeline.worker.accounts.queued_bytes == 1024 + 1
    finally:
        del pipeline.worker.wake
        pipeline.shutdown(timeout=0)


def _send(
    receiver: LineReceiver, handler_class: type[EventHandler], records: list[logging.LogRecord]
) -> list[bytes]:
    _ids._next = itertools.count(1).__next__  # type: ignore[method-assign]
    pipeline = Pipeline(
        Settings.load({"transport": "tcp", "host": "127.0.0.1", "port": receiver.port, "site": "shop"})
    )
    handler = handler_class(pipeline=pipeline)
    try:
        for record in records:
            handler.handle(copy.copy(record))
        assert pipeline.flush(30)
        assert receiver.wait_for(len(records), timeout=30)
    finally:
        pipeline.shutdown(timeout=5)
    return list(receiver.lines)


def test_a_tcp_listener_receives_the_same_bytes_with_speedups_on_and_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = []
    for i in range(200):
        extra: dict[str, Any] = {"k": i, "user": "alice"} if i % 3 else {"k": [i]}
        args: tuple[Any, ...] = ("alice", i) if i % 5 else ("alice", [i])
        record = LOGGER.makeRecord(
            LOGGER.name, 10 + i % 5 * 10, "f.py", i, "user %s did thing %s", args, None, "fn", extra
        )
        record.created, record.msecs = 1_700_000_000.0 + i, float(i % 1000)
        records.append(record)
    records.append(LOGGER.makeRecord(LOGGER.name, logging.INFO, "f.py", 1, "y" * 5000, (), None))
    with LineReceiver() as on:
        sent_on = _send(on, EventHandler, records)
    with LineReceiver() as off:
        handler_off = _send(off, _Python, records)
    assert len(sent_on) == len(records)
    # The same bytes but for the ids' sequence part: the worker's compiled encoder draws ids
    # for a batch's plain records first, then for the rest, so where the batches split (the
    # worker's timing, which the two handlers' speeds change) moves them (CI, 3.13: the first
    # line's id was ...87 against ...83).
    assert [_without_id(line) for line in sent_on] == [_without_id(line) for line in handler_off]
    # And with the worker's speedups off too.
    monkeypatch.setattr(eventlog._records.logrecords, "accelerator", None)
    monkeypatch.setattr(eventlog._records.logrecords, "json_lines", None)
    with LineReceiver() as off:
        all_off = _send(off, _Python, records)
    assert [_without_id(line) for line in sent_on] == [_without_id(line) for line in all_off]
    for lines in (sent_on, handler_off, all_off):
        assert sorted(int(json.loads(line)["id"][-8:], 16) for line in lines) == list(
            range(1, len(records) + 1)
        )


def _without_id(line: bytes) -> bytes:
    start = line.index(b'"id":"')
    return line[:start] + line[line.index(b'"', start + 6) + 1 :]


# ------------------------------------------------------------------ Pipeline.submit_event

SUBMIT = pipeline_module.compiled_submit_event
PYTHON_SUBMIT = pipeline_module.python_submit_event


@st.composite
def submitted(draw: st.DrawFn) -> dict[str, Any]:
    """An Event as log_event hands it over, and the pipeline's state around it."""
    return {
        "event": draw(hostile_event()),
        "unset": draw(
            st.one_of(st.none(), st.sampled_from(["message", "tags", "fields", "metrics", "exc_info"]))
        ),
        "odd": draw(
            st.one_of(st.none(), st.sampled_from([("tags", ("a",)), ("fields", [("k", 1)]), ("message", 5)]))
        ),
        "exc_info": draw(st.one_of(st.none(), st.just(""), st.just('{"type": "E"}'))),
        "subclass": draw(st.booleans()),
        "enricher": draw(st.booleans()),
        "full": draw(st.booleans()),
    }


class _Event(Event):
    """An Event subclass: the compiled method leaves it to Python."""

    __slots__ = ()


def _submit(case: dict[str, Any], submit: Any, pipeline: Pipeline, event: Event) -> Any:
    if case["enricher"]:
        pipeline.caller_enrichers = [lambda event: setattr(event, "user", "enriched")]
    if case["full"]:
        PYTHON_SUBMIT(pipeline, Event("fill", time_ns=1))  # queue_size=1: the event finds it full
    try:
        return ("returned", submit(pipeline, event))
    except Exception as exc:  # as from the Python method: the door catches it
        return ("raised", type(exc), str(exc))


def _prepared(case: dict[str, Any]) -> Event:
    event: Event = copy.copy(case["event"])
    if case["subclass"]:
        odd = _Event("x")
        for slot in Event.__slots__:
            if hasattr(event, slot):
                setattr(odd, slot, getattr(event, slot))
        event = odd
    event.exc_info = case["exc_info"]
    if case["odd"] is not None:
        setattr(event, *case["odd"])
    if case["unset"] is not None:
        delattr(event, case["unset"])
    return event


@settings(max_examples=300, deadline=None)
@given(case=submitted())
def test_the_compiled_submit_event_queues_what_the_python_one_does(case: dict[str, Any]) -> None:
    if SUBMIT is None:
        missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")
    size = 1 if case["full"] else 100
    compiled_pipeline, python_pipeline = _held(size), _held(size)
    try:
        got = _submit(case, SUBMIT, compiled_pipeline, _prepared(case))
        expected = _submit(case, PYTHON_SUBMIT, python_pipeline, _prepared(case))
        assert got == expected
        assert _queued(compiled_pipeline, True) == _queued(python_pipeline, True)
        assert compiled_pipeline.worker.accounts.queued_bytes == python_pipeline.worker.accounts.queued_bytes
        assert vars(compiled_pipeline.stats) == vars(python_pipeline.stats)
    finally:
        compiled_pipeline.shutdown(timeout=0)
        python_pipeline.shutdown(timeout=0)


def test_pipeline_submit_event_is_the_compiled_one_and_takes_a_plain_event_itself() -> None:
    if SUBMIT is None:
        missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")
    assert Pipeline.__dict__["submit_event"] is SUBMIT
    pipeline = _held()
    events = [
        Event("user.did", "alice", "user", fields={"req_id": "r-1", "n": 1}, metrics={"duration_ms": 12.5}),
        Event("click", "my-button", "ui"),
    ]
    called: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is PYTHON_SUBMIT.__code__:
            called.append(event)

    sys.setprofile(profile)
    try:
        for event in events:
            pipeline.submit_event(event)
    finally:
        sys.setprofile(None)
    try:
        assert called == []
        assert list(pipeline.worker.queue) == events
        # ITEM_BYTES each; the first also its two fields and one metric (a key and a value
        # each: 2 * VALUE_BYTES) and their text: req_id r-1 n (the int not text) duration_ms.
        assert pipeline.worker.accounts.queued_bytes == 2 * ITEM_BYTES + 6 * VALUE_BYTES + 6 + 3 + 1 + 11
    finally:
        pipeline.shutdown(timeout=0)
