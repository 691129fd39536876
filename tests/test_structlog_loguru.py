"""structlog's EventlogRenderer and loguru's sink, with the real libraries, to a real TCP receiver.

Each test asserts the wire dict that arrived: message, level, fields, metrics,
tags, code location, thread, exc_info, and what was converted (counted).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from tests.peers import missing

try:
    import structlog as _structlog
except ImportError:  # pragma: no cover - noxfile's TEST_DEPS installs it
    _structlog = None
try:
    import loguru as _loguru
except ImportError:  # pragma: no cover - noxfile's TEST_DEPS installs it
    _loguru = None


@pytest.fixture
def structlog() -> ModuleType:
    if _structlog is None:
        missing("structlog", "the Python package structlog is not installed (pip install structlog)")
    return _structlog


@pytest.fixture
def loguru_logger() -> Iterator[Any]:
    if _loguru is None:
        missing("loguru", "the Python package loguru is not installed (pip install loguru)")
    from eventlog.loguru import sink

    logger = _loguru.logger
    handler_id = logger.add(sink, format="{message}", level="TRACE")
    try:
        yield logger
    finally:
        logger.remove(handler_id)


@pytest.fixture
def pipeline(receiver: LineReceiver) -> eventlog.Pipeline:
    return eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)


def _arrived(receiver: LineReceiver, count: int) -> list[dict[str, Any]]:
    assert eventlog.flush(10)
    assert receiver.wait_for(count, timeout=10)
    events = receiver.events()
    assert len(events) == count, events
    return events


class Recorder:
    """A structlog logger that keeps what it is asked to print."""

    name = "shop"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((method, args, kwargs))

        return record


class HostileRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def _no_ids(wire: dict[str, Any]) -> dict[str, Any]:
    """The wire dict without what differs per run (id, time, host, pid)."""
    return {k: v for k, v in wire.items() if k not in ("id", "tstamp", "host", "pid")}


# ---------------------------------------------------------------- structlog


def test_structlog_pairs_arrive_as_fields_metrics_and_tags(
    structlog: ModuleType, pipeline: eventlog.Pipeline, receiver: LineReceiver
) -> None:
    from eventlog.structlog import EventlogRenderer

    recorder = Recorder()
    log = structlog.wrap_logger(recorder, processors=[structlog.processors.add_log_level, EventlogRenderer()])
    line = sys._getframe().f_lineno + 1
    log.warning(
        "order.paid",
        order_id="A-7",
        amount=12.5,
        items=3,
        paid=True,
        tags=["shop", "eu"],
        note=None,
        fields={"region": "eu", "n": 2},
        metrics={"latency_ms": 4},
        timestamp="2026-12-04T16:00:00.500Z",
    )
    [wire] = _arrived(receiver, 1)
    assert _no_ids(wire) == {
        "action": "log.warning",
        "target": "shop",
        "tgType": "logger",
        "level": 30,
        "levelName": "WARNING",
        "message": "order.paid",
        "tags": ["shop", "eu"],
        "metrics": {"amount": 12.5, "items": 3, "latency_ms": 4},
        "fields": {"order_id": "A-7", "paid": 1, "note": "None", "region": "eu", "n": 2},
        "thread": "MainThread",
        "codeFile": __file__,
        "codeLine": line,
        "codeFunc": "test_structlog_pairs_arrive_as_fields_metrics_and_tags",
    }
    # The event dict's timestamp, not the clock's.  (.500: the records' shared float path,
    # int(created * 1e9), can turn a .125 into .124 ms; see the report of issue 14, item 4.)
    assert wire["tstamp"] == 1796400000500
    assert pipeline.stats.converted == {"not_text": 1}  # note=None, shown as text
    assert recorder.calls == []  # DropEvent: structlog's logger printed nothing


def test_structlog_exceptions_arrive_as_exc_info(
    structlog: ModuleType, pipeline: eventlog.Pipeline, receiver: LineReceiver
) -> None:
    from eventlog.structlog import EventlogRenderer

    log = structlog.wrap_logger(Recorder(), processors=[EventlogRenderer()])
    formatted = structlog.wrap_logger(
        Recorder(), processors=[structlog.processors.format_exc_info, EventlogRenderer()]
    )
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("failed", order_id="A-7")
        formatted.exception("formatted")
    log.error("given", exc_info=KeyError("k"))
    log.info("no exception", exc_info=False)
    events = _arrived(receiver, 4)
    assert [(e["message"], e["level"]) for e in events] == [
        ("failed", 40),
        ("formatted", 40),
        ("given", 40),
        ("no exception", 20),
    ]
    failed, text, given, plain = (json.loads(e["exc_info"]) if "exc_info" in e else None for e in events)
    assert failed["type"] == "ValueError" and failed["value"] == "bad value"
    assert 'raise ValueError("bad value")' in failed["stack"]
    assert events[0]["fields"] == {"order_id": "A-7"}
    # format_exc_info left text: it is the stack, as for a record with only exc_text.
    assert text["type"] is None and text["stack"].endswith("ValueError: bad value")
    assert given == {"type": "KeyError", "value": "'k'", "stack": "KeyError: 'k'\n"}
    assert plain is None
    assert "fields" not in events[1]


def test_structlog_without_processors_uses_the_method_and_callsite_keys(
    structlog: ModuleType, pipeline: eventlog.Pipeline, receiver: LineReceiver
) -> None:
    from eventlog.structlog import EventlogRenderer

    recorder = Recorder()
    log = structlog.wrap_logger(recorder, processors=[EventlogRenderer(echo=True)])
    log.debug("from the method", logger="billing", name="alice", module="pay")  # no clash
    # CallsiteParameterAdder's keys (given here by hand) win over the frame found here.
    log.critical("from keys", pathname="/app/pay.py", lineno=12, func_name="pay", thread_name="T-1")
    log.info("bad time", timestamp="yesterday")
    events = _arrived(receiver, 3)
    assert [(e["level"], e["levelName"], e["action"]) for e in events] == [
        (10, "DEBUG", "log.debug"),
        (50, "CRITICAL", "log.critical"),
        (20, "INFO", "log.info"),
    ]
    assert events[0]["target"] == "billing"
    assert events[0]["fields"] == {"name": "alice", "module": "pay"}  # LogRecord's names: fine
    assert "fields" not in events[1]
    assert {k: events[1][k] for k in ("codeFile", "codeLine", "codeFunc", "thread")} == {
        "codeFile": "/app/pay.py",
        "codeLine": 12,
        "codeFunc": "pay",
        "thread": "T-1",
    }
    assert events[2]["fields"] == {"timestamp": "yesterday"}  # unreadable: kept, not lost
    # echo=True: structlog's logger gets the message alone.
    assert [(m, a) for m, a, _ in recorder.calls] == [
        ("debug", ("from the method",)),
        ("critical", ("from keys",)),
        ("info", ("bad time",)),
    ]


def test_structlog_hostile_values_never_raise_and_are_counted(
    structlog: ModuleType, pipeline: eventlog.Pipeline, receiver: LineReceiver
) -> None:
    from eventlog.structlog import EventlogRenderer

    log = structlog.wrap_logger(Recorder(), processors=[EventlogRenderer()])
    log.info("hostile", bad=HostileRepr(), raw=b"\xff", nan=float("nan"), nested={"a": [1]})
    [wire] = _arrived(receiver, 1)
    assert wire["fields"] == {
        "bad": "<unrepresentable HostileRepr>",
        "raw": "\\xff",
        "nested": '{"a": [1]}',
        "nan": "nan",
    }
    assert "metrics" not in wire
    assert pipeline.stats.converted == {"not_text": 2, "bytes": 1, "metric_not_number": 1, "non_finite": 1}


def test_a_structlog_event_that_is_not_text_arrives_as_its_text(
    structlog: ModuleType, pipeline: eventlog.Pipeline, receiver: LineReceiver
) -> None:
    from eventlog.structlog import EventlogRenderer

    log = structlog.wrap_logger(Recorder(), processors=[EventlogRenderer()])
    log.info(["a", 1])
    log.info(("t", 2))
    log.info(HostileRepr())
    messages = [wire["message"] for wire in _arrived(receiver, 3)]
    assert messages[:2] == ["['a', 1]", "('t', 2)"]
    assert messages[2] == "<tests.test_structlog_loguru.HostileRepr> <unrenderable: RuntimeError>"
    assert pipeline.stats.converted == {"unrenderable": 1}


def test_a_renderer_feeds_its_own_pipeline(structlog: ModuleType, receiver: LineReceiver) -> None:
    from eventlog.structlog import EventlogRenderer

    own = eventlog.Pipeline(
        eventlog._config.config.Settings.load(
            {"transport": "tcp", "host": "127.0.0.1", "port": receiver.port}, environ={}
        )
    )
    try:
        log = structlog.wrap_logger(Recorder(), processors=[EventlogRenderer(pipeline=own)])
        log.info("own pipeline", n=1)
        assert own.flush(10)
        assert receiver.wait_for(1)
        assert [(e["message"], e["metrics"]) for e in receiver.events()] == [("own pipeline", {"n": 1})]
    finally:
        own.shutdown(2)


# ---------------------------------------------------------------- loguru


def test_loguru_bind_and_extra_arrive_as_fields_metrics_and_tags(
    loguru_logger: Any, pipeline: eventlog.Pipeline, receiver: LineReceiver
) -> None:
    where: list[int] = []

    def work() -> None:
        where.append(sys._getframe().f_lineno + 1)
        loguru_logger.bind(user_id=7, tags=["shop"], paid=False).warning(
            "order {order} paid", order="A-7", amount=12.5
        )

    thread = threading.Thread(target=work, name="checkout-1")
    thread.start()
    thread.join(10)
    [wire] = _arrived(receiver, 1)
    assert _no_ids(wire) == {
        "action": "log.warning",
        "target": __name__,
        "tgType": "logger",
        "level": 30,
        "levelName": "WARNING",
        "message": "order A-7 paid",
        "tags": ["shop"],
        "metrics": {"user_id": 7, "amount": 12.5},
        "fields": {"paid": 0, "order": "A-7"},
        "thread": "checkout-1",
        "codeFile": __file__,
        "codeLine": where[0],
        "codeFunc": "work",
    }
    assert pipeline.stats.converted == {}


def test_loguru_levels_and_exceptions(
    loguru_logger: Any, pipeline: eventlog.Pipeline, receiver: LineReceiver
) -> None:
    loguru_logger.success("done")
    loguru_logger.trace("fine detail")
    try:
        raise ValueError("bad value")
    except ValueError:
        loguru_logger.exception("failed")
    loguru_logger.opt(exception=KeyError("k")).error("given")
    events = _arrived(receiver, 4)
    assert [(e["action"], e["level"], e["message"]) for e in events] == [
        ("log.success", 25, "done"),
        ("log.trace", 5, "fine detail"),
        ("log.error", 40, "failed"),
        ("log.error", 40, "given"),
    ]
    assert [e["levelName"] for e in events] == ["SUCCESS", "TRACE", "ERROR", "ERROR"]
    failed = json.loads(events[2]["exc_info"])
    assert failed["type"] == "ValueError" and failed["value"] == "bad value"
    assert 'raise ValueError("bad value")' in failed["stack"]
    assert json.loads(events[3]["exc_info"]) == {
        "type": "KeyError",
        "value": "'k'",
        "stack": "KeyError: 'k'\n",
    }
    assert "exc_info" not in events[0] and "exc_info" not in events[1]


# ---------------------------------------------------------------- import cost


def test_importing_eventlog_imports_neither_structlog_nor_loguru() -> None:
    code = (
        "import sys, eventlog, eventlog._api.bridge; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('structlog', 'loguru')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_with_a_caller_stage_enricher_the_same_fields_arrive(
    structlog: ModuleType, loguru_logger: Any, receiver: LineReceiver
) -> None:
    # A caller-stage enricher makes the record an Event in the caller (record_to_event).
    from eventlog.structlog import EventlogRenderer

    pipeline = eventlog.configure(
        transport="tcp", host="127.0.0.1", port=receiver.port, enrichers=["host", "exception"]
    )
    assert pipeline.caller_enrichers
    log = structlog.wrap_logger(Recorder(), processors=[EventlogRenderer()])
    log.info("structlog", order_id="A-7", amount=12.5, tags=["shop"])
    loguru_logger.bind(order_id="A-7", amount=12.5, tags=["shop"]).info("loguru")
    events = _arrived(receiver, 2)
    assert [
        (e["message"], e["level"], e["fields"], e["metrics"], e["tags"], e["codeFile"]) for e in events
    ] == [
        (name, 20, {"order_id": "A-7"}, {"amount": 12.5}, ["shop"], __file__)
        for name in ("structlog", "loguru")
    ]


def test_structlog_async_methods_keep_the_callers_location_and_thread(
    structlog: ModuleType, pipeline: eventlog.Pipeline, receiver: LineReceiver
) -> None:
    import asyncio

    from eventlog.structlog import EventlogRenderer

    # ainfo() runs the processors in an executor thread: the caller's frame and thread count.
    log = structlog.wrap_logger(
        Recorder(),
        processors=[EventlogRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(0),
    )
    where: list[int] = []

    async def checkout() -> None:
        where.append(sys._getframe().f_lineno + 1)
        await log.ainfo("async", n=1)

    asyncio.run(checkout())
    [wire] = _arrived(receiver, 1)
    assert (wire["codeFile"], wire["codeLine"], wire["codeFunc"]) == (__file__, where[0], "checkout")
    assert wire["thread"] == threading.current_thread().name
    assert wire["metrics"] == {"n": 1}
