"""The Event door: what the application logged is what arrives (issue 26, item 3)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

import eventlog
from eventlog import Event, log_event
from eventlog._builtin.receiver import LineReceiver
from eventlog._records.event import snapshot


@pytest.fixture
def receiver() -> Iterator[LineReceiver]:
    with LineReceiver() as peer:
        # A long linger: the worker encodes at flush(), after the test changed the Event.
        eventlog.configure(
            transport="tcp", host="127.0.0.1", port=peer.port, linger_ms=60_000, batch_size=1000
        )
        yield peer


def _arrived(receiver: LineReceiver, count: int) -> list[dict[str, object]]:
    assert eventlog.flush(10)
    assert receiver.wait_for(count, 10)
    events = receiver.events()
    assert len(events) == count
    return events


def test_changes_after_log_event_do_not_reach_the_sent_event(receiver: LineReceiver) -> None:
    event = Event("account.create", "alice", "user", fields={"n": 1}, metrics={"ms": 1.5}, tags=["a"])
    log_event(event)
    event.action = "changed"
    event.target = "bob"
    event.time_ns = 5_000_000
    assert event.fields is not None and event.metrics is not None and event.tags is not None
    event.fields["n"] = 2
    event.fields["added"] = "later"
    event.metrics["ms"] = 9.5
    event.tags.append("b")
    (sent,) = _arrived(receiver, 1)
    assert (sent["action"], sent["target"], sent["tags"]) == ("account.create", "alice", ["a"])
    assert sent["fields"] == {"n": 1}
    assert sent["metrics"] == {"ms": 1.5}
    assert sent["tstamp"] != 5


def test_the_callers_dict_is_copied_when_the_event_is_made(receiver: LineReceiver) -> None:
    fields = {"n": 1}
    event = Event("account.create", fields=fields)
    fields["n"] = 2  # the Event holds its own copy from construction
    log_event(event)
    fields["n"] = 3
    (sent,) = _arrived(receiver, 1)
    assert sent["fields"] == {"n": 1}


def test_an_event_logged_twice_arrives_twice_with_two_ids(receiver: LineReceiver) -> None:
    event = Event("click", "my-button", "ui")
    log_event(event)
    event.target = "other-button"
    log_event(event)
    first, second = _arrived(receiver, 2)
    assert (first["target"], second["target"]) == ("my-button", "other-button")
    assert first["id"] != second["id"]
    assert event.id == second["id"]  # the application's Event carries the id of its last logging


def test_snapshot_copies_every_slot() -> None:
    event = Event("a", "t", "g", message="m", level=25, tags="x", fields=[("k", object())], metrics={"m": 1})
    event.level_name = "NOTICE"
    event.exc_info, event.id, event.site = "tb", "id-1", "s"
    event.cluster, event.host, event.pid = "c", "h", 7
    copy = snapshot(event)
    for name in set(Event.__slots__) - {"_id_made"}:
        assert getattr(copy, name) == getattr(event, name), name
    assert copy.id == "id-1"  # an id set by hand goes as it is
    assert copy.fields is not event.fields and copy.tags is not event.tags
    assert copy.metrics is not event.metrics


def test_bad_arguments_still_fail_at_construction() -> None:
    with pytest.raises(TypeError, match="Event fields must be a mapping"):
        Event("a", fields=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Event metrics must be a mapping"):
        Event("a", metrics=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Event tags must be a str or an iterable"):
        Event("a", tags=3)  # type: ignore[arg-type]


def test_an_event_only_log_event_holds_is_queued_without_a_copy(receiver: LineReceiver) -> None:
    # log_event(Event(...)): no snapshot (nobody can change it); what arrives is the same.
    log_event(Event("click", "my-button", "ui", fields={"n": 1}, tags=["a"]))
    kept = Event("click", "my-button", "ui", fields={"n": 1}, tags=["a"])
    log_event(kept)
    first, second = _arrived(receiver, 2)
    for sent in (first, second):
        assert (sent["action"], sent["target"], sent["tgType"]) == ("click", "my-button", "ui")
        assert (sent["fields"], sent["tags"]) == ({"n": 1}, ["a"])


def test_log_event_copies_only_what_the_application_still_holds(
    receiver: LineReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventlog._api.api as api

    copied: list[str] = []

    def counting(event: Event) -> Event:
        copied.append(event.action)
        return snapshot(event)

    monkeypatch.setattr(api, "snapshot", counting)
    log_event(Event("only.here"))
    kept = Event("kept")
    log_event(kept)
    assert copied == ["kept"]
    assert [sent["action"] for sent in _arrived(receiver, 2)] == ["only.here", "kept"]


def test_the_documented_signature_is_the_constructors_own() -> None:
    # Event.__init__ takes its keywords as positional-or-keyword parameters (cheaper to fill);
    # the documented signature must name the same parameters with the same defaults.
    documented = inspect.signature(Event).parameters
    actual = dict(inspect.signature(Event.__init__).parameters)
    del actual["self"], actual["_keywords_follow"]
    assert list(documented) == list(actual)
    assert [(p.default, p.annotation) for p in documented.values()] == [
        (p.default, p.annotation) for p in actual.values()
    ]
    assert [p.kind for p in documented.values()][3:] == [inspect.Parameter.KEYWORD_ONLY] * 11


def test_a_fourth_positional_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="at most 3 positional arguments"):
        Event("click", "my-button", "ui", "a message")  # type: ignore[arg-type]


def test_tags_are_the_events_own_copy() -> None:
    tags = ["a", "b"]
    event = Event("a", tags=tags)
    tags.append("c")
    assert event.tags == ["a", "b"]
    odd = Event("a", tags=["a", 3, object()]).tags  # as before: plain values kept, objects text now
    assert odd is not None and odd[:2] == ["a", 3] and isinstance(odd[2], str)
    assert Event("a", tags="one").tags == ["one"]
    assert Event("a", tags=("x", "y")).tags == ["x", "y"]
