"""The compiled ``Event(...)`` and ``log_event`` (eventlog-speedups) equal the Python ones (issue 26).

``eventlog._records.event.python_init`` is the reference __init__ and
``eventlog._api.api.python_log_event`` the reference log_event.  The same
arguments, hostile ones included, go to both; the Events' slots (their types,
values and conversions), the errors raised, what is queued and the bytes a TCP
listener receives are compared exactly.
"""

from __future__ import annotations

import copy
import gc
import itertools
import logging
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog
from eventlog._api import api
from eventlog._builtin.receiver import LineReceiver
from eventlog._config.config import Settings
from eventlog._engine.accounting import done_with
from eventlog._engine.pipeline import Pipeline
from eventlog._records import event as event_module
from eventlog._records.context import current
from eventlog._records.event import Event, python_init
from eventlog._records.wire import _ids
from tests.peers import missing
from tests.test_caps_handle import _held, _without_id

LOGGER = logging.getLogger("tests.caps.event")


@pytest.fixture(autouse=True)
def _compiled() -> None:
    if not event_module.compiled:
        missing("eventlog-speedups", "pip install -e plugins/eventlog_speedups (needs a C compiler)")


class BadStr:
    """A value whose text cannot be had: str() and repr() raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


class Text(str):
    """A str subclass: converted to a plain str."""


text = st.text(max_size=12)
odd = st.one_of(
    st.integers(),  # unbounded: beyond 64 bits too
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=4),
    st.builds(BadStr),
    text.map(Text),
    st.lists(st.integers(), max_size=2),
    st.just(2**64),
)
value = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), text, odd
)
mapping = st.one_of(
    st.none(),
    st.dictionaries(
        text, st.one_of(st.integers(), st.floats(allow_nan=True), text, st.booleans()), max_size=3
    ),
    st.dictionaries(text, value, max_size=3),
    st.dictionaries(st.one_of(text, st.integers(), st.builds(BadStr)), value, max_size=2),
    st.lists(st.tuples(text, value), max_size=3),  # a fields list of (key, value) tuples
    st.lists(st.integers(), max_size=2),  # not a mapping
    st.just(5),
)
maybe_text = st.one_of(st.none(), text, odd)


@st.composite
def arguments(draw: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Event's arguments: mostly of the common kinds, and every odd kind now and then."""
    action = draw(
        st.one_of(
            st.text(min_size=1, max_size=12), st.just(""), st.integers(), st.builds(BadStr), text.map(Text)
        )
    )
    positional: list[Any] = [action]
    keywords: dict[str, Any] = {}
    for name in ("target", "tg_type"):
        chosen = draw(st.one_of(st.none(), text, st.integers()))
        if draw(st.booleans()):
            positional.append(chosen)
        else:
            keywords[name] = chosen
            break
    if draw(st.integers(0, 20)) == 0:
        positional.extend([None] * (4 - len(positional)))  # a fourth positional: refused
    choices: dict[str, st.SearchStrategy[Any]] = {
        "message": maybe_text,
        "level": st.one_of(st.none(), st.integers(-(2**65), 2**65), st.just(20), st.floats(), text),
        "tags": st.one_of(
            st.none(), st.lists(text, max_size=3), st.lists(value, max_size=2), text, st.just(3)
        ),
        "fields": mapping,
        "metrics": mapping,
        "log_code": st.one_of(st.booleans(), st.none(), st.just(0)),
        "logCode": st.one_of(st.booleans(), st.none()),
        "user": maybe_text,
        "session": maybe_text,
        "request_id": maybe_text,
        "time_ns": st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.just(2**64),
            st.just(-(2**63) - 1),
            st.floats(allow_nan=True),
            text,
        ),
        "bogus": st.just(1),  # no such parameter
    }
    for name in draw(st.lists(st.sampled_from(sorted(choices)), unique=True, max_size=8)):
        if name != "bogus" or draw(st.integers(0, 10)) == 0:
            keywords[name] = draw(choices[name])
    if draw(st.integers(0, 20)) == 0 and len(positional) > 1:
        keywords["target"] = "twice"  # given positionally and by keyword
    return tuple(positional), keywords


def _canonical(value: Any) -> Any:
    """A value with its types, its converted text's reason, NaN comparable."""
    if isinstance(value, dict):
        return ("dict", [(_canonical(k), _canonical(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_canonical(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, getattr(value, "reason", None), value)


def _slots(event: Event, with_time: bool) -> dict[str, Any]:
    return {
        slot: _canonical(getattr(event, slot, "<unset>"))
        for slot in Event.__slots__
        if with_time or slot != "time_ns"
    }


def _made(make: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("made", make(*args, **kwargs))
    except Exception as exc:
        return ("raised", (type(exc), str(exc)))


def _python(*args: Any, **kwargs: Any) -> Event:
    event: Event = object.__new__(Event)
    python_init(event, *args, **kwargs)
    return event


def _fixed_time(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether the Event's time is the given one (else the clock's, read twice: not compared)."""
    time_ns = kwargs.get("time_ns")
    return type(time_ns) is int and -(2**63) <= time_ns < 2**63


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=arguments())
def test_the_compiled_event_holds_what_the_python_init_does(
    case: tuple[tuple[Any, ...], dict[str, Any]],
) -> None:
    args, kwargs = case
    got = _made(Event, args, kwargs)
    expected = _made(_python, args, kwargs)
    assert got[0] == expected[0]
    if got[0] == "raised":
        assert got == expected
        return
    with_time = _fixed_time(args, kwargs)
    got_slots, expected_slots = _slots(got[1], with_time), _slots(expected[1], with_time)
    if kwargs.get("log_code") or kwargs.get("logCode"):
        # The caller's line: this test's call of Event against _python's call of python_init.
        assert got[1].code_func == "_made" and expected[1].code_func == "_python"
        for slot in ("code_func", "code_line"):
            del got_slots[slot], expected_slots[slot]
    assert got_slots == expected_slots
    assert type(got[1].time_ns) is int
    # The Event's containers are its own: never the caller's objects.
    for name in ("tags", "fields", "metrics"):
        if kwargs.get(name) is not None:
            assert getattr(got[1], name) is not kwargs[name]


def test_event_is_made_in_c_and_its_public_face_is_the_python_class() -> None:
    from eventlog_speedups._caps import event_compiled  # type: ignore[import-not-found, unused-ignore]

    assert event_compiled(Event) is True
    event = Event("account.admin.create", "alice", "user", tags=["admin"])
    assert type(event) is Event and isinstance(event, Event)
    assert repr(event) == "Event('account.admin.create', 'alice', 'user')"
    assert str(Event.__signature__).startswith("(action: 'str', target: 'str | None' = None")  # type: ignore[attr-defined]
    twin = copy.copy(event)
    assert _slots(twin, True) == _slots(event, True)
    assert event.thread == threading.current_thread().name
    assert event.context is current()


def test_a_literal_is_taken_and_a_held_dict_is_copied() -> None:
    fields = {"n": 1}
    event = Event("a", fields=fields, metrics={"ms": 1.5}, tags=["t"])
    assert event.fields == {"n": 1} and event.fields is not fields
    fields["n"] = 2
    assert event.fields == {"n": 1}
    assert event.metrics == {"ms": 1.5}
    assert event.tags == ["t"]


def test_a_subclass_is_made_by_the_python_init() -> None:
    from eventlog_speedups._caps import event_compiled  # type: ignore[import-not-found, unused-ignore]

    seen: list[str] = []

    class Audit(Event):
        __slots__ = ()

        def __init__(self, action: str, *args: Any, **kwargs: Any) -> None:
            seen.append(action)
            super().__init__(action, *args, **kwargs)

    event = Audit("audit.read", "doc", "file", fields={"n": 1}, time_ns=5)
    assert seen == ["audit.read"] and type(event) is Audit and not event_compiled(Audit)
    assert _slots(event, True) == _slots(
        _python("audit.read", "doc", "file", fields={"n": 1}, time_ns=5), True
    )


def test_a_changed_class_is_made_the_python_way() -> None:
    """Once Event's class dict changes (here its __init__), Event(...) is the Python call again."""
    script = (
        "from eventlog import Event\n"
        "from eventlog._records.event import python_init\n"
        "from eventlog_speedups._caps import event_compiled\n"
        "assert event_compiled(Event)\n"
        "calls = []\n"
        "def init(self, *args, **kwargs):\n"
        "    calls.append(args)\n"
        "    python_init(self, *args, **kwargs)\n"
        "Event.__init__ = init\n"
        "event = Event('a', 'b', fields={'n': 1})\n"
        "assert calls == [('a', 'b')], calls\n"
        "assert not event_compiled(Event)\n"
        "assert event.fields == {'n': 1} and event.target == 'b'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_speedups_off_leaves_the_python_class_and_function() -> None:
    script = (
        "import eventlog\n"
        "from eventlog._api import api\n"
        "from eventlog._records import event\n"
        "assert not event.compiled and api.compiled_log_event is None\n"
        "assert eventlog.log_event is api.python_log_event\n"
        "assert eventlog.Event('a', fields={'n': 1}).fields == {'n': 1}\n"
        "print('ok')\n"
    )
    env = {**__import__("os").environ, "EVENTLOG_SPEEDUPS": "0"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


# ------------------------------------------------------------------ log_event


@pytest.fixture
def held() -> Iterator[Pipeline]:
    pipeline = _held()
    previous = api.swap_default(pipeline)
    try:
        yield pipeline
    finally:
        api.swap_default(previous)
        pipeline.shutdown(timeout=0)


def test_log_event_is_the_compiled_one_and_queues_a_fresh_event_itself(held: Pipeline) -> None:
    assert eventlog.log_event is api.compiled_log_event is api.log_event
    assert eventlog.log_event is not api.python_log_event
    eventlog.log_event(Event("click", "my-button", "ui", fields={"n": 1}))
    (queued,) = held.worker.queue
    assert type(queued) is Event and queued.fields == {"n": 1} and queued.id is None
    # Only the queue holds it, and nothing it holds can hold it: left to reference counting.
    assert not gc.is_tracked(queued)
    # Once the worker (whose enrichers may add anything) is done with it, the collector sees it.
    taken = held.worker.accounts.take(held.worker.queue, 10)
    assert taken == [queued]
    done_with(taken)
    assert gc.is_tracked(queued)


def test_log_event_snapshots_a_held_event_as_the_python_one_does(held: Pipeline) -> None:
    event = Event("click", "my-button", "ui", fields={"n": 1}, time_ns=7)
    eventlog.log_event(event)
    api.python_log_event(event)
    first, second = held.worker.queue
    assert first is not event and second is not event
    assert event.id == second.id and first.id != second.id  # an id each time it is logged
    assert _slots(first, True) | {"id": None} == _slots(second, True) | {"id": None}
    event.fields["n"] = 2  # type: ignore[index]
    assert first.fields == {"n": 1}


def test_log_event_never_raises_and_logs_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def submit_event(self, event: Event) -> None:
            raise ValueError("no room")

    previous = api.swap_default(Broken())  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.ERROR, logger=api.log.name):
            assert eventlog.log_event(Event("click")) is None
            assert api.python_log_event(Event("click")) is None
    finally:
        api.swap_default(previous)
    records = [r for r in caplog.records if r.name == api.log.name]
    assert [r.getMessage() for r in records] == ["log_event failed; the event was dropped"] * 2
    assert [(r.exc_info[0], str(r.exc_info[1])) for r in records if r.exc_info] == [
        (ValueError, "no room")
    ] * 2


def _send(receiver: LineReceiver, make: Any, log: Any) -> list[bytes]:
    _ids._next = itertools.count(1).__next__  # type: ignore[method-assign]
    pipeline = Pipeline(
        Settings.load({"transport": "tcp", "host": "127.0.0.1", "port": receiver.port, "site": "shop"})
    )
    previous = api.swap_default(pipeline)
    try:
        for i in range(120):
            odd: Any = [i] if i % 7 == 0 else BadStr() if i % 11 == 0 else 2**70 if i % 13 == 0 else i
            log(
                make(
                    "user.did",
                    "alice",
                    "user",
                    fields={"req_id": "r-1", "n": odd} if i % 5 else [("req_id", "r-1"), ("n", odd)],
                    metrics={"duration_ms": 12.5, "nan": math.nan},
                    tags=["a", "b"] if i % 3 else None,
                    level=20 if i % 4 else 2**64,
                    time_ns=1_700_000_000_000_000_000 + i if i % 9 else 2**64,
                    message=None if i % 2 else f"m{i}",
                    user="alice" if i % 6 else 5,
                )
            )
        assert pipeline.flush(30)
        assert receiver.wait_for(120, timeout=30)
    finally:
        api.swap_default(previous)
        pipeline.shutdown(timeout=5)
    return list(receiver.lines)


def _without_time(line: bytes) -> bytes:
    """A line without its tstamp where the time was the clock's (an invalid time_ns)."""
    start = line.find(b'"tstamp":')
    if start < 0 or b"tstamp_original" not in line:
        return line
    end = line.index(b",", start)
    return line[:start] + line[end + 1 :]


def test_a_tcp_listener_receives_the_same_bytes_from_the_compiled_and_the_python_door() -> None:
    with LineReceiver() as on:
        compiled = _send(on, Event, eventlog.log_event)
    with LineReceiver() as off:
        python = _send(off, _python, api.python_log_event)
    assert len(compiled) == 120

    def same(line: bytes) -> bytes:
        return _without_time(_without_id(line))

    assert [same(line) for line in compiled] == [same(line) for line in python]


def test_the_clock_is_event_modules_now_ns(monkeypatch: pytest.MonkeyPatch) -> None:
    """time.time_ns read in C while ``_now_ns`` is it; a replaced ``_now_ns`` is called (freezegun)."""
    import time

    before = time.time_ns()
    made = Event("a").time_ns
    assert before <= made <= time.time_ns()
    monkeypatch.setattr(event_module, "_now_ns", lambda: 1_234)
    assert Event("a", fields={"n": 1}).time_ns == 1_234
    assert _python("a", fields={"n": 1}).time_ns == 1_234
    monkeypatch.delattr(event_module, "_now_ns")
    assert (
        _made(Event, ("a",), {})
        == _made(_python, ("a",), {})
        == ("raised", (NameError, "name '_now_ns' is not defined"))
    )


def test_each_thread_gets_its_own_name() -> None:
    names: list[str | int | None] = []

    def make() -> None:
        names.append(Event("a").thread)

    for name in ("one", "two", "one"):
        worker = threading.Thread(target=make, name=name)
        worker.start()
        worker.join()
    make()
    assert names == ["one", "two", "one", threading.current_thread().name]


def test_a_copied_or_pickled_event_leaves_event_made_in_c() -> None:
    """copyreg caches ``__slotnames__`` on the class at the first copy: not a change of __init__."""
    import pickle

    from eventlog_speedups._caps import event_compiled  # type: ignore[import-not-found, unused-ignore]

    event = Event("a", "b", fields={"n": 1}, time_ns=3)
    assert _slots(copy.copy(event), True) == _slots(event, True)
    assert _slots(pickle.loads(pickle.dumps(event)), True) == _slots(event, True)
    assert event_compiled(Event)
