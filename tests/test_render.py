"""Messages and exceptions that cannot be rendered: sent with a placeholder, counted, never raised.

Each case runs on the worker's three ways (the pure-Python fast path, the
eventlog-speedups C one, and the careful path that other enrichers force) and
must give the same message, the same count, and nothing on stderr: stdlib's
``handleError`` ("--- Logging error ---") is never reached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import eventlog
import eventlog._records.logrecords
from eventlog._builtin.receiver import LineReceiver
from tests.peers import missing

_COMPILED = eventlog._records.logrecords._load_accelerator()


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Deep:
    def __repr__(self) -> str:
        return repr(self)  # RecursionError, which stdlib's handleError re-raises


HERE = __name__


@pytest.fixture(params=["python", "speedups", "careful"])
def logger(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, receiver: LineReceiver
) -> Iterator[logging.Logger]:
    settings: dict[str, Any] = {}
    if request.param == "speedups":
        if _COMPILED is None:
            missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")
        monkeypatch.setattr(eventlog._records.logrecords, "accelerator", _COMPILED)
    else:
        monkeypatch.setattr(eventlog._records.logrecords, "accelerator", None)
    if request.param == "careful":
        settings["enrichers"] = "host,site,context,code"  # a caller-stage enricher: no fast path
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, **settings)
    assert pipeline._encoder.fast is (request.param != "careful")
    log = logging.getLogger(f"test.render.{request.param}")
    log.handlers[:] = [eventlog.EventHandler()]
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    log.handlers.clear()


def _only_ours(log: logging.Logger) -> None:
    # pytest's log capture adds its handlers for the test's call, and they would raise on
    # these records (stdlib's handleError): only the EventHandler may see them here.
    log.handlers[:] = [h for h in log.handlers if isinstance(h, eventlog.EventHandler)]


def _sent(receiver: LineReceiver, count: int) -> list[dict[str, Any]]:
    assert eventlog.flush(10)
    assert receiver.wait_for(count, 10)
    events = receiver.events()
    assert len(events) == count
    return events


def test_messages_that_cannot_be_rendered_are_sent_with_a_placeholder_and_counted(
    logger: logging.Logger, receiver: LineReceiver, capfd: pytest.CaptureFixture[str]
) -> None:
    _only_ours(logger)
    logger.info(BadStr())  # type: ignore[arg-type]
    logger.info("v=%s", BadRepr())
    logger.info("v=%r", Deep())
    logger.info("user %s, v=%s", "alice", BadRepr())  # rendered in the caller: a mutable argument
    logger.info("count %d", "no")  # immutable arguments: the worker renders, and fails
    logger.info("dict %(a)s %(b)d", {"a": 1, "b": "x"})
    logger.info("fine %s", "still")
    events = _sent(receiver, 7)
    assert [e["message"] for e in events] == [
        f"<{HERE}.BadStr> <unrenderable: RuntimeError>",
        f"v=%s <unrenderable: RuntimeError; args: (<{HERE}.BadRepr>,)>",
        f"v=%r <unrenderable: RecursionError; args: (<{HERE}.Deep>,)>",
        f"user %s, v=%s <unrenderable: RuntimeError; args: ('alice', <{HERE}.BadRepr>)>",
        "count %d <unrenderable: TypeError; args: ('no',)>",
        "dict %(a)s %(b)d <unrenderable: TypeError; args: {'a': 1, 'b': 'x'}>",
        "fine still",
    ]
    assert all(e["action"] == "log.info" and e["target"] == logger.name for e in events)
    stats = eventlog.get_pipeline().stats
    assert stats.converted == {"unrenderable": 6}
    assert stats.dropped_by_reason() == {} and stats.sent == 7
    out, err = capfd.readouterr()
    assert "Logging error" not in out + err and err == ""


def test_exc_info_that_is_no_exception_is_converted_not_set_aside(
    logger: logging.Logger, receiver: LineReceiver, capfd: pytest.CaptureFixture[str]
) -> None:
    _only_ours(logger)
    logger.error("bad exc", exc_info=(ValueError, "not an exception", None))  # type: ignore[arg-type]
    logger.error("odd exc", exc_info=(ValueError, BadStr(), None))  # type: ignore[arg-type]
    try:
        raise KeyError("k")
    except KeyError:
        logger.exception("real one")
    events = _sent(receiver, 3)
    assert [e["message"] for e in events] == ["bad exc", "odd exc", "real one"]
    assert json.loads(events[0]["exc_info"]) == {
        "type": "ValueError",
        "value": "not an exception",
        "stack": "",
    }
    assert json.loads(events[1]["exc_info"]) == {
        "type": "ValueError",
        "value": f"<{HERE}.BadStr>",
        "stack": "",
    }
    real = json.loads(events[2]["exc_info"])
    assert real["type"] == "KeyError" and "raise KeyError" in real["stack"]
    stats = eventlog.get_pipeline().stats
    assert stats.converted == {"bad_exc_info": 2}
    assert stats.dropped_by_reason() == {} and stats.sent == 3
    out, err = capfd.readouterr()
    assert "Logging error" not in out + err and err == ""
