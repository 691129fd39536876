"""Every string on the wire is one UTF-8 can encode, and every id sorts by its event's time.

A lone surrogate can reach a record from the file system (a path decoded with
``surrogateescape``), a thread's or function's name, or an exception's text;
it used to make the whole event unencodable, set aside and lost.  The wire
conversion escapes it (``\\udc80`` as text) on every path: the pure-Python fast
path, eventlog-speedups' C one, and the careful path for records with exceptions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog._records.logrecords
from eventlog import Event, EventHandler
from eventlog._engine.pipeline import Pipeline
from eventlog.testing import CapturedEvents, capturing_pipeline
from tests.peers import missing

_COMPILED = eventlog._records.logrecords._load_accelerator()

#: Text with lone surrogates among other characters (hypothesis's Cs category).
_text = st.text(st.characters(codec="utf-8"), max_size=10)
surrogate_text = st.builds(
    lambda head, code, tail: f"{head}{chr(code)}{tail}", _text, st.integers(0xD800, 0xDFFF), _text
)


def escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.fixture(params=["python", "speedups"])
def capture(request: pytest.FixtureRequest) -> Iterator[tuple[Pipeline, CapturedEvents, EventHandler]]:
    """A capturing pipeline and a handler feeding it, with the pure-Python and the C fast path."""
    if request.param == "speedups" and _COMPILED is None:
        missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")
    saved = eventlog._records.logrecords.accelerator
    eventlog._records.logrecords.accelerator = _COMPILED if request.param == "speedups" else None
    pipeline, captured = capturing_pipeline()
    try:
        yield pipeline, captured, EventHandler(pipeline=pipeline)
    finally:
        pipeline.shutdown()
        eventlog._records.logrecords.accelerator = saved


def _record(msg: str, *, path: str, func: str, thread: str, exc_info: Any = None) -> logging.LogRecord:
    record = logging.getLogger("wire.safety").makeRecord(
        "wire.safety", logging.ERROR, path, 7, msg, (), exc_info, func
    )
    record.threadName = thread
    return record


def _raised(text: str) -> Any:
    try:
        raise ValueError(text)
    except ValueError as exc:
        return (ValueError, exc, exc.__traceback__)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=surrogate_text,
    func=surrogate_text,
    thread=surrogate_text,
    exc_text=st.none() | surrogate_text,
)
def test_lone_surrogates_in_a_record_are_escaped_not_dropped(
    capture: tuple[Pipeline, CapturedEvents, EventHandler],
    path: str,
    func: str,
    thread: str,
    exc_text: str | None,
) -> None:
    pipeline, captured, handler = capture
    before = len(captured)
    exc_info = _raised(exc_text) if exc_text is not None else None
    handler.handle(_record("boom", path=path, func=func, thread=thread, exc_info=exc_info))
    captured.flush()
    assert len(captured) == before + 1, "the event was set aside"
    got = captured[-1]
    wanted = (escaped(path), escaped(func), escaped(thread))
    assert (got["codeFile"], got["codeFunc"], got["thread"]) == wanted
    if exc_text is None:
        assert "exc_info" not in got
    else:
        parsed = json.loads(got["exc_info"])
        assert parsed["type"] == "ValueError"
        assert parsed["value"] == escaped(exc_text)
        assert parsed["stack"].endswith(f"ValueError: {escaped(exc_text)}\n")
    assert pipeline.stats.dropped.get("unencodable", 0) == 0


def test_each_escaped_string_is_counted(capture: tuple[Pipeline, CapturedEvents, EventHandler]) -> None:
    pipeline, captured, handler = capture
    handler.handle(_record("m", path="/a\udc80.py", func="f\ud800", thread="t\udfff"))
    handler.handle(_record("m", path="/a.py", func="f", thread="t", exc_info=_raised("v\udc81")))
    captured.flush()
    assert [e["codeFile"] for e in captured] == ["/a\\udc80.py", "/a.py"]
    assert captured[0]["codeFunc"] == "f\\ud800" and captured[0]["thread"] == "t\\udfff"
    assert json.loads(captured[1]["exc_info"])["value"] == "v\\udc81"
    assert pipeline.stats.converted["surrogates"] == 4


def test_an_event_with_surrogates_in_its_exception_text_is_sent() -> None:
    pipeline, captured = capturing_pipeline()
    try:
        event = Event("failed", "job")
        event.exc_info = json.dumps({"type": "E", "value": "x\udc80", "stack": ""}, ensure_ascii=False)
        event.thread = "worker\ud800"
        pipeline.submit_event(event)
        captured.flush()
    finally:
        pipeline.shutdown()
    assert [e["action"] for e in captured] == ["failed"]
    assert captured[0]["thread"] == "worker\\ud800"
    assert pipeline.stats.converted["surrogates"] == 2


@pytest.mark.parametrize("time_ns", [-5, -(2**63), -1_000_000_000_000_000_000])
def test_an_event_before_1970_gets_an_id_that_sorts_first(time_ns: int) -> None:
    early = Event("early", time_ns=time_ns).to_dict()
    now = Event("now").to_dict()
    last = Event("last", time_ns=2**63 - 1).to_dict()
    assert early["id"] < now["id"] < last["id"]
    assert early["id"][:12] == "000000000000"
    assert early["tstamp"] == time_ns // 1_000_000  # the time itself is kept


def test_a_record_before_1970_gets_an_id_that_sorts_first(
    capture: tuple[Pipeline, CapturedEvents, EventHandler],
) -> None:
    _, captured, handler = capture
    early = _record("early", path="/a.py", func="f", thread="t")
    early.created, early.msecs = -2.5, 500.0
    handler.handle(early)
    handler.handle(_record("now", path="/a.py", func="f", thread="t"))
    captured.flush()
    assert [e["message"] for e in captured] == ["early", "now"]
    assert captured[0]["tstamp"] == -2500
    assert captured[0]["id"][:12] == "000000000000" and captured[0]["id"] < captured[1]["id"]
