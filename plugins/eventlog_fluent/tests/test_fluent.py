"""eventlog-fluent against a real Forward server: FluentServer from @fluent-org/logger.

Each test starts its own server (tests/peers/fluent_server.js), sends through
the real pipeline, and reads back every entry the server received.
"""

from __future__ import annotations

import gzip
import io
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.peers.fluent import FluentPeer, fluent_peer_fixture  # noqa: F401  (fixture)
from tests.test_spool_props import hostile_event

import eventlog
from eventlog import ConfigurationError, Event
from eventlog._engine.pipeline import Pipeline
from eventlog._records.wire import to_wire
from eventlog.plugin.testing import make_local_ca, make_records, make_transport
from eventlog_fluent.tags import tag_problem

StartPeer = Callable[..., FluentPeer]
needs_fluent_server = pytest.mark.peer("FluentServer")
pytestmark = pytest.mark.timeout(120)  # a hung peer fails its test, not the whole run

#: A start time with nanoseconds that milliseconds or floats would lose.
T0 = 1_764_115_200_123_456_789


def make_events(count: int, *, action: str = "order.create") -> list[Event]:
    """Events with distinct nanosecond times and typed fields to check on the far side."""
    return [
        Event(
            action,
            f"order-{i}",
            "order",
            message=f"order {i} créé",
            fields={"n": i, "price": i / 4, "sku": f"sku-{i % 7}"},
            metrics={"ms": i % 100},
            tags=["shop"],
            time_ns=T0 + i * 1_000_003,
        )
        for i in range(count)
    ]


def log_all(events: list[Event]) -> None:
    for event in events:
        eventlog.log_event(event)


def time_ns_of(entry: dict[str, Any]) -> int:
    when = entry["time"]
    assert isinstance(when, dict), f"expected an EventTime, got {when!r}"
    return int(when["epoch"]) * 1_000_000_000 + int(when["nano"])


def assert_delivered(entries: list[dict[str, Any]], events: list[Event], tag: str) -> None:
    """Every event exactly once, with its tag, nanosecond time and field values."""
    by_target = {entry["record"]["target"]: entry for entry in entries}
    counts = Counter(entry["record"]["id"] for entry in entries)
    assert len(entries) == len(events), f"{len(entries)} entries for {len(events)} events"
    assert max(counts.values()) == 1
    for i, event in enumerate(events):
        entry = by_target[f"order-{i}"]
        record = entry["record"]
        assert entry["tag"] == tag
        assert time_ns_of(entry) == event.time_ns
        assert record["id"] == event.id
        assert record["tstamp"] == event.time_ns // 1_000_000
        assert record["action"] == event.action
        assert record["tgType"] == "order"
        assert record["message"] == f"order {i} créé"
        assert record["fields"] == {"n": i, "price": i / 4, "sku": f"sku-{i % 7}"}
        assert record["metrics"] == {"ms": i % 100}
        assert record["tags"] == ["shop"]


@pytest.fixture(params=["packed", "forward"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs once per mode FluentServer reads (EVENTLOG_FLUENT_MODE, as operators set it)."""
    monkeypatch.setenv("EVENTLOG_FLUENT_MODE", request.param)
    return str(request.param)


#: What arrives in each mode, as FluentServer names it.
MODE_SEEN = {"packed": "PackedForward", "compressed": "CompressedPackedForward", "forward": "Forward"}


def assert_mode(peer: FluentPeer, mode: str) -> None:
    """Every message ``peer`` received came in ``mode``."""
    modes = {m["mode"] for m in peer.messages()}
    assert modes == {MODE_SEEN[mode]}, modes


def fluent(peer: FluentPeer, **settings: Any) -> Pipeline:
    """The default pipeline, sending to ``peer`` with quick retries."""
    if peer.unix_path is not None:
        settings.setdefault("host", f"unix://{peer.unix_path}")
    else:
        settings.setdefault("host", "127.0.0.1")
        settings.setdefault("port", peer.port)
    settings.setdefault("retry_backoff_max", 0.3)
    return eventlog.configure(transport="fluent", **settings)


@pytest.fixture
def eventlog_log() -> Iterator[list[str]]:
    """The messages eventlog logs about itself (its logger does not propagate)."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("eventlog")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# ---------------------------------------------------------------- the msgpack format


def test_msgpack_format_is_the_wire_dict_with_string_keys() -> None:
    from eventlog_fluent.msgpack_format import MsgpackFormatter

    wire = {"id": "x", "tstamp": 5, "action": "a.b", "fields": {"big": 2**70, "f": 1.5}}
    payload = MsgpackFormatter().format(wire)
    assert msgpack.unpackb(payload, raw=True) == {
        b"id": b"x",
        b"tstamp": 5,
        b"action": b"a.b",
        b"fields": {b"big": str(2**70).encode(), b"f": 1.5},
    }
    # The packer is reusable after the overflow fallback.
    assert msgpack.unpackb(MsgpackFormatter().format({"id": "y"})) == {"id": "y"}


def test_entry_head_makes_a_forward_entry_with_nanosecond_event_time() -> None:
    from eventlog_fluent.forward import entry_head

    entry = msgpack.unpackb(entry_head(T0) + msgpack.packb({"k": "v"}), raw=False)
    time_ext, record = entry
    seconds, nanos = divmod(T0, 10**9)
    assert time_ext == msgpack.ExtType(0, seconds.to_bytes(4, "big") + nanos.to_bytes(4, "big"))
    assert record == {"k": "v"}


@pytest.mark.parametrize("acks", [False, True])
@pytest.mark.parametrize("mode", ["packed", "compressed", "forward"])
@pytest.mark.parametrize("limit", [400, 1_000, 32_768])
def test_every_message_fits_max_message_bytes_tag_and_option_included(
    mode: str, acks: bool, limit: int
) -> None:
    from eventlog_fluent.msgpack_format import MsgpackFormatter

    settings = {
        "transport": "fluent",
        "host": "127.0.0.1",
        "fluent_mode": mode,
        "fluent_require_ack_response": acks,
        "fluent_max_message_bytes": limit,
        "fluent_tag": "a." + "long" * 20,
    }
    transport, _ = make_transport(settings)
    records = make_records(200, MsgpackFormatter())
    messages, chunks, refused = transport._messages(records)  # type: ignore[attr-defined]
    assert refused == []
    assert len(chunks) == (len(messages) if acks else 0)
    seen = []
    for message in messages:
        tag, entries, option = msgpack.unpackb(message, raw=False)
        assert tag == settings["fluent_tag"]
        size = len(message)
        if mode == "compressed":  # the limit counts the entries before gzip
            size += len(gzip.decompress(entries)) - len(entries)
            entries = gzip.decompress(entries)
        assert size <= limit
        # Forward mode carries an array of entries; the packed modes a stream of them.
        listed = entries if mode == "forward" else list(msgpack.Unpacker(io.BytesIO(entries), raw=False))
        assert option["size"] == len(listed)
        seen += [record["id"] for _, record in listed]
    assert seen == [record.id for record in records]


# ---------------------------------------------------------------- configuration


def test_other_formats_are_refused_at_configure_time() -> None:
    with pytest.raises(ConfigurationError, match=r"cannot carry format 'json'.*msgpack"):
        eventlog.configure(transport="fluent", host="127.0.0.1", format="json")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fluent_tag_mode": "prefix"}, "choose one of: fixed, action"),
        ({"fluent_mode": "message"}, "choose one of: packed, compressed, forward"),
        ({"fluent_mode": "gzip"}, "choose one of: packed, compressed, forward"),
        ({"fluent_ack_timeout": "-1"}, "must be 0 or more"),
        ({"fluent_ack_timeout": 0}, "needs time to answer"),
        ({"fluent_max_message_bytes": "0"}, "must be 1 or more"),
        ({"fluent_require_ack_response": "maybe"}, "expected true or false"),
        ({"fluent_tag": "my app"}, "without spaces"),
        ({"fluent_tag": "app..events"}, "has an empty word"),
        ({"fluent_password": "pw"}, "USERNAME is not"),
        ({"fluent_username": "u", "fluent_password": "pw"}, "needs EVENTLOG_FLUENT_SHARED_KEY"),
        ({"fluent_tls": "yes", "fluent_tls_ca": "/no/such/ca.pem"}, "cannot load TLS files"),
        ({"host": "unix:///tmp/x.sock", "fluent_tls": True}, "no host name to verify"),
        ({"host": None}, "needs the server"),
    ],
)
def test_bad_options_are_configure_time_errors(settings: dict[str, Any], message: str) -> None:
    settings = {"transport": "fluent", "host": "127.0.0.1", **settings}
    with pytest.raises(ConfigurationError, match=message):
        eventlog.configure(**settings)


@needs_fluent_server
@pytest.mark.parametrize(
    ("old", "mode"),
    [
        ("gzip", "compressed"),
        ("none", "packed"),
        ("GZIP", "compressed"),
        ("true", "compressed"),
        ("false", "packed"),
    ],
)
def test_the_old_compressed_variable_still_chooses_the_mode_with_a_warning(
    fluent_peer: StartPeer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    old: str,
    mode: str,
) -> None:
    """EVENTLOG_FLUENT_COMPRESSED (0.1.0) is a deprecated alias of EVENTLOG_FLUENT_MODE for one release."""
    peer = fluent_peer()
    monkeypatch.setenv("EVENTLOG_FLUENT_COMPRESSED", old)
    with caplog.at_level(logging.WARNING):
        pipeline = fluent(peer)
    warned = [r.getMessage() for r in caplog.records if "EVENTLOG_FLUENT_COMPRESSED" in r.getMessage()]
    assert warned == [
        f"EVENTLOG_FLUENT_COMPRESSED is deprecated and goes in eventlog-fluent 0.2; it is taken as "
        f"EVENTLOG_FLUENT_MODE={mode}: set that instead"
    ]
    events = make_events(3)
    log_all(events)
    assert eventlog.flush(10)
    assert_delivered(peer.wait_for(lambda e: len(e) >= 3), events, "eventlog")
    assert_mode(peer, mode)
    assert pipeline.stats.sent == 3


@pytest.mark.parametrize("old", ["gzip", "none", "true", "false"])
def test_the_old_compressed_variable_beside_the_mode_is_an_error(
    monkeypatch: pytest.MonkeyPatch, old: str
) -> None:
    monkeypatch.setenv("EVENTLOG_FLUENT_COMPRESSED", old)
    monkeypatch.setenv("EVENTLOG_FLUENT_MODE", "forward")
    with pytest.raises(
        ConfigurationError,
        match=r"both EVENTLOG_FLUENT_COMPRESSED \(deprecated\) and EVENTLOG_FLUENT_MODE are set: "
        r"remove EVENTLOG_FLUENT_COMPRESSED",
    ):
        eventlog.configure(transport="fluent", host="127.0.0.1")


def test_the_old_compressed_variable_refuses_what_it_never_took(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_FLUENT_COMPRESSED", "zstd")
    with pytest.raises(ConfigurationError, match=r"'zstd' is invalid: expected gzip or none"):
        eventlog.configure(transport="fluent", host="127.0.0.1")


# ---------------------------------------------------------------- delivery


@needs_fluent_server
@pytest.mark.parametrize("acks", [False, True], ids=["no_acks", "acks"])
@pytest.mark.parametrize("mode", ["packed", "compressed", "forward"])
def test_ten_thousand_events_arrive_with_nanosecond_times(
    fluent_peer: StartPeer, monkeypatch: pytest.MonkeyPatch, mode: str, acks: bool
) -> None:
    peer = fluent_peer()
    # Options from the environment, as an operator sets them.
    monkeypatch.setenv("EVENTLOG_FLUENT_TAG", "shop.orders")
    monkeypatch.setenv("EVENTLOG_FLUENT_MODE", mode)
    # Acknowledgements are on by default.
    if not acks:
        monkeypatch.setenv("EVENTLOG_FLUENT_REQUIRE_ACK_RESPONSE", "false")
    pipeline = fluent(peer)
    events = make_events(10_000)
    log_all(events)
    assert eventlog.flush(30)
    entries = peer.wait_for(lambda e: len(e) >= len(events))
    assert_delivered(entries, events, "shop.orders")
    assert pipeline.stats.sent == 10_000
    assert pipeline.stats.send_errors == {}
    messages = peer.messages()
    assert {m["mode"] for m in messages} == {MODE_SEEN[mode]}
    assert sum(m["entries"] for m in messages) == 10_000
    assert all(m["option"]["size"] == m["entries"] for m in messages)
    chunks = [m["option"].get("chunk") for m in messages]
    if acks:
        assert len(set(chunks)) == len(messages) and None not in chunks
    else:
        assert chunks == [None] * len(messages)


@needs_fluent_server
def test_tag_mode_action_tags_each_event_with_prefix_and_action(fluent_peer: StartPeer, mode: str) -> None:
    peer = fluent_peer()
    fluent(peer, fluent_tag="app", fluent_tag_mode="action", fluent_require_ack_response=True)
    for i in range(30):
        eventlog.log_event(Event(("user.login", "user.logout", "cart.add")[i % 3], f"t{i}"))
    assert eventlog.flush(10)
    entries = peer.wait_for(lambda e: len(e) >= 30)
    assert len(entries) == 30
    assert {e["record"]["target"]: e["tag"] for e in entries} == {
        f"t{i}": "app." + ("user.login", "user.logout", "cart.add")[i % 3] for i in range(30)
    }
    # One message per tag and batch, each with its own chunk id.
    messages = peer.messages()
    assert len(messages) >= 3
    assert len({m["option"]["chunk"] for m in messages}) == len(messages)
    assert_mode(peer, mode)


@needs_fluent_server
def test_action_tags_pass_the_tag_check_and_changed_ones_are_counted(
    fluent_peer: StartPeer, mode: str
) -> None:
    peer = fluent_peer()
    pipeline = fluent(peer, fluent_tag="app", fluent_tag_mode="action")
    actions = {
        "user.login": "app.user.login",
        "has space\tand tab": "app.has_space_and_tab",
        ".lead..and.trail.": "app.lead.and.trail",
        "...": "app",
        "line\nbreak": "app.line_break",
    }
    events = [Event(action, f"t{i}") for i, action in enumerate(actions)]
    log_all(events)
    assert eventlog.flush(10)
    entries = peer.wait_for(lambda e: len(e) >= len(events))
    assert {e["record"]["target"]: e["tag"] for e in entries} == {
        f"t{i}": tag for i, tag in enumerate(actions.values())
    }
    assert all(tag_problem(e["tag"]) is None for e in entries)
    assert {e["record"]["action"] for e in entries} == set(actions)  # the action itself is kept
    assert pipeline.stats.converted == {"fluent_tag": 4}
    assert_mode(peer, mode)


@needs_fluent_server
def test_times_event_time_cannot_hold_are_clamped_in_the_record_too_and_counted(
    fluent_peer: StartPeer, mode: str
) -> None:
    peer = fluent_peer()
    pipeline = fluent(peer)
    before_1970 = Event("old", "t-old", time_ns=-86_400 * 10**9 - 5)
    after_2106 = Event("far", "t-far", time_ns=(2**32 + 86_400) * 10**9)
    ordinary = Event("now", "t-now", time_ns=T0)
    log_all([before_1970, after_2106, ordinary])
    assert eventlog.flush(10)
    entries = {e["record"]["target"]: e for e in peer.wait_for(lambda e: len(e) >= 3)}
    for target, time_ns in (("t-old", 0), ("t-far", (2**32 - 1) * 10**9 + 999_999_999), ("t-now", T0)):
        entry = entries[target]
        assert time_ns_of(entry) == time_ns
        # The record says the time its EventTime says.
        assert entry["record"]["tstamp"] == time_ns // 1_000_000
    # The time given is not lost: the record keeps it (ms, as text), as the core keeps its own.
    assert entries["t-old"]["record"]["fields"] == {"tstamp_original": str(-86_400_001)}
    assert entries["t-far"]["record"]["fields"] == {"tstamp_original": str((2**32 + 86_400) * 1000)}
    assert "fields" not in entries["t-now"]["record"]
    assert pipeline.stats.converted == {"event_time_clamped": 2}
    assert pipeline.stats.sent == 3
    assert_mode(peer, mode)


@needs_fluent_server
def test_unix_socket_address(fluent_peer: StartPeer, tmp_path: Path, mode: str) -> None:
    peer = fluent_peer(unix_path=tmp_path / "forward.sock")
    fluent(peer, fluent_require_ack_response=True)
    events = make_events(100)
    log_all(events)
    assert eventlog.flush(10)
    assert_delivered(peer.wait_for(lambda e: len(e) >= 100), events, "eventlog")
    assert_mode(peer, mode)


@needs_fluent_server
def test_big_batches_are_split_and_an_event_larger_than_a_message_is_refused(
    fluent_peer: StartPeer, eventlog_log: list[str], mode: str
) -> None:
    peer = fluent_peer()
    pipeline = fluent(peer, fluent_max_message_bytes=4_000, linger_ms=200)
    events = make_events(100)
    log_all(events[:50])
    eventlog.log_event(Event("huge", "big", message="x" * 5_000))
    log_all(events[50:])
    assert eventlog.flush(10)
    assert_delivered(peer.wait_for(lambda e: len(e) >= 100), events, "eventlog")
    messages = peer.messages()
    sizes = [m["entries"] for m in messages]
    assert sum(sizes) == 100 and len(sizes) >= 100 * 200 // 4_000  # records are > 200 bytes
    assert pipeline.stats.dropped_by_reason() == {"rejected": 1}
    assert any(
        "too_large: a message of 5" in line and "MAX_MESSAGE_BYTES (4000)" in line for line in eventlog_log
    ), eventlog_log
    assert_mode(peer, mode)


# ---------------------------------------------------------------- acknowledgements


@needs_fluent_server
def test_unacknowledged_batches_are_sent_again_with_the_same_ids(
    fluent_peer: StartPeer, eventlog_log: list[str], mode: str
) -> None:
    peer = fluent_peer(ack=False)  # receives, but never acknowledges
    # A long linger makes the 50 events one batch, which is then tried again and again.
    pipeline = fluent(peer, fluent_require_ack_response=True, fluent_ack_timeout=0.2, linger_ms=300)
    events = make_events(50)
    log_all(events)
    entries = peer.wait_for(lambda e: len(e) >= 150)
    pipeline.shutdown(0.5)
    counts = Counter(entry["record"]["id"] for entry in entries)
    assert set(counts) == {event.id for event in events}
    assert min(counts.values()) >= 3  # each try carried every event again, under its own id
    assert pipeline.stats.sent == 0
    assert pipeline.stats.send_errors["SendTimeout"] >= 2
    assert wait_until(
        lambda: any("did not acknowledge 1 of 1 chunks within 0.2s" in line for line in eventlog_log)
    ), eventlog_log
    assert_mode(peer, mode)


@needs_fluent_server
def test_server_killed_and_restarted_mid_stream_loses_nothing(fluent_peer: StartPeer, mode: str) -> None:
    peer = fluent_peer()
    pipeline = fluent(peer, fluent_require_ack_response=True, batch_size=200)
    events = make_events(10_000)

    def produce() -> None:
        for start in range(0, len(events), 250):
            log_all(events[start : start + 250])
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    before = peer.wait_for(lambda e: len(e) >= 2_000)
    peer.kill()
    received_at_kill = len(peer.entries())
    time.sleep(0.3)  # the client notices, fails and retries while the server is down
    peer.start()
    producer.join()
    assert eventlog.flush(60)
    entries = peer.wait_for(lambda e: len({x["record"]["id"] for x in e}) >= len(events))
    assert len(before) >= 2_000 and received_at_kill < len(events), "the kill came too late"
    ids = Counter(entry["record"]["id"] for entry in entries)
    assert set(ids) == {event.id for event in events}, f"{len(events) - len(ids)} events missing"
    assert pipeline.stats.sent == len(events)
    assert sum(pipeline.stats.send_errors.values()) >= 1
    # Resent duplicates are whole copies: same id, same time, same record.
    first: dict[str, dict[str, Any]] = {}
    for entry in entries:
        assert first.setdefault(entry["record"]["id"], entry) == entry
    assert_mode(peer, mode)


# ---------------------------------------------------------------- authentication


@needs_fluent_server
def test_shared_key_and_user_password_authenticate(fluent_peer: StartPeer, mode: str) -> None:
    peer = fluent_peer(shared_key="s3cret", users={"app": "pa55"})
    fluent(
        peer,
        fluent_shared_key="s3cret",
        fluent_username="app",
        fluent_password="pa55",
        fluent_require_ack_response=True,
    )
    events = make_events(1_000)
    log_all(events)
    assert eventlog.flush(20)
    assert_delivered(peer.wait_for(lambda e: len(e) >= 1_000), events, "eventlog")
    assert_mode(peer, mode)


@needs_fluent_server
def test_wrong_key_delivers_nothing_and_loses_nothing_once_fixed(
    fluent_peer: StartPeer, eventlog_log: list[str], mode: str
) -> None:
    peer = fluent_peer(shared_key="server-key")
    pipeline = fluent(peer, fluent_shared_key="client-key", fluent_require_ack_response=True)
    events = make_events(2_000)
    log_all(events)
    assert wait_until(lambda: pipeline.stats.send_errors.get("AuthError", 0) >= 3)
    assert not eventlog.flush(0.2)
    assert peer.entries() == []
    assert pipeline.stats.transport_up == 0
    assert pipeline.stats.dropped_by_reason() == {}
    assert any(
        "refused authentication: shared key mismatch; check EVENTLOG_FLUENT_SHARED_KEY" in line
        for line in eventlog_log
    ), eventlog_log
    from prometheus_client.core import CollectorRegistry

    from eventlog._engine.prometheus import EventlogCollector

    registry = CollectorRegistry()
    registry.register(EventlogCollector())  # type: ignore[arg-type]
    labels = {"pipeline": "default", "error": "AuthError"}
    assert (registry.get_sample_value("eventlog_send_errors_total", labels) or 0) >= 3

    # The operator fixes the key (here on the server's side); the queued events go through.
    peer.stop()
    peer.env["FLUENT_SHARED_KEY"] = "client-key"
    peer.start()
    assert eventlog.flush(30)
    assert_delivered(peer.wait_for(lambda e: len(e) >= 2_000), events, "eventlog")
    assert_mode(peer, mode)


@needs_fluent_server
def test_wrong_key_in_spool_mode_keeps_every_event_for_the_fixed_configuration(
    fluent_peer: StartPeer, tmp_path: Path
) -> None:
    peer = fluent_peer(shared_key="right-key")
    spool = str(tmp_path / "spool.db")
    pipeline = fluent(peer, db=spool, fluent_shared_key="wrong-key")
    events = make_events(2_000)
    log_all(events)
    assert wait_until(
        lambda: pipeline.stats.send_errors.get("AuthError", 0) >= 2 and pipeline.spool_depth() == len(events)
    ), (pipeline.stats.send_errors, pipeline.spool_depth())
    assert not eventlog.shutdown(0.5)
    assert peer.entries() == []
    assert pipeline.stats.dropped_by_reason() == {}

    # The key is fixed in the application's configuration (a restart, in real life).
    fluent(peer, db=spool, fluent_shared_key="right-key")
    assert eventlog.flush(20)
    assert_delivered(peer.wait_for(lambda e: len(e) >= len(events)), events, "eventlog")


@needs_fluent_server
@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"fluent_username": "app", "fluent_password": "wrong"}, "username/password mismatch"),
        ({}, "asks for a user name and password: set EVENTLOG_FLUENT_USERNAME"),
    ],
)
def test_wrong_or_missing_user_is_an_auth_error(
    fluent_peer: StartPeer, eventlog_log: list[str], user: dict[str, str], message: str
) -> None:
    peer = fluent_peer(shared_key="k", users={"app": "right"})
    pipeline = fluent(peer, fluent_shared_key="k", **user)
    eventlog.log_event(Event("a"))
    assert wait_until(lambda: pipeline.stats.send_errors.get("AuthError", 0) >= 1)
    assert peer.entries() == []
    assert wait_until(lambda: any(message in line for line in eventlog_log)), eventlog_log
    pipeline.shutdown(0.1)  # it would retry until the end of the test's shutdown deadline


@needs_fluent_server
def test_server_asking_for_a_key_we_do_not_have_is_an_auth_error(
    fluent_peer: StartPeer, eventlog_log: list[str]
) -> None:
    peer = fluent_peer(shared_key="k")
    pipeline = fluent(peer, fluent_require_ack_response=True)
    eventlog.log_event(Event("a"))
    assert wait_until(lambda: pipeline.stats.send_errors.get("AuthError", 0) >= 1)
    assert peer.entries() == []
    assert wait_until(lambda: any("asks for shared-key authentication" in line for line in eventlog_log)), (
        eventlog_log
    )
    pipeline.shutdown(0.1)


@needs_fluent_server
def test_without_acks_a_server_asking_for_a_key_loses_nothing(
    fluent_peer: StartPeer, eventlog_log: list[str], mode: str
) -> None:
    peer = fluent_peer(shared_key="k")
    pipeline = fluent(peer, fluent_require_ack_response=False)
    events = make_events(300)
    log_all(events)
    assert wait_until(lambda: pipeline.stats.send_errors.get("AuthError", 0) >= 3)
    assert peer.entries() == []
    assert wait_until(lambda: any("asks for shared-key authentication" in line for line in eventlog_log)), (
        eventlog_log
    )
    peer.stop()  # fixed: the server no longer asks for a key
    del peer.env["FLUENT_SHARED_KEY"]
    peer.start()
    assert eventlog.flush(20)
    assert_delivered(peer.wait_for(lambda e: len(e) >= 300), events, "eventlog")
    assert_mode(peer, mode)


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA made for this test, and a server certificate it signed for 127.0.0.1."""
    ca = make_local_ca(tmp_path_factory.mktemp("tls"))
    return {"ca": ca.ca_cert, "cert": ca.server_cert, "key": ca.server_key}


@needs_fluent_server
def test_tls_with_the_test_ca_delivers(fluent_peer: StartPeer, tls_files: dict[str, Path], mode: str) -> None:
    peer = fluent_peer(tls=(tls_files["cert"], tls_files["key"]), shared_key="k")
    fluent(
        peer,
        fluent_tls=True,
        fluent_tls_ca=str(tls_files["ca"]),
        fluent_shared_key="k",
        fluent_require_ack_response=True,
    )
    events = make_events(1_000)
    log_all(events)
    assert eventlog.flush(20)
    assert_delivered(peer.wait_for(lambda e: len(e) >= 1_000), events, "eventlog")
    assert_mode(peer, mode)


@needs_fluent_server
def test_tls_without_the_ca_is_refused(
    fluent_peer: StartPeer, tls_files: dict[str, Path], eventlog_log: list[str]
) -> None:
    peer = fluent_peer(tls=(tls_files["cert"], tls_files["key"]))
    pipeline = fluent(peer, fluent_tls=True, fluent_require_ack_response=True)
    eventlog.log_event(Event("a"))
    assert wait_until(lambda: pipeline.stats.send_errors.get("ConnectError", 0) >= 2)
    assert peer.entries() == []
    assert wait_until(lambda: any("CERTIFICATE_VERIFY_FAILED" in line for line in eventlog_log)), eventlog_log
    pipeline.shutdown(0.1)


# ---------------------------------------------------------------- hostile values (issue 25, Deliver)


def _js_exact(value: Any) -> bool:
    """Whether JavaScript's numbers hold ``value`` exactly (FluentServer decodes in node)."""
    return type(value) is not int or abs(value) <= 2**53


def _as_sent(got: Any, sent: Any) -> Any:
    """A whole float comes back from node's JSON as an int in its shortest decimal form
    (4.69455149985125e+16 as 46945514998512500, not the float's exact value): read it back
    as the float it names."""
    return float(got) if type(sent) is float and type(got) is int else got


def _no_proto_key(event: Event) -> bool:
    """No map key ``__proto__``: the npm FluentServer closes the connection before the ack on a
    record with one (seen with `metrics={"__proto__": 1.0}`: every try, until shutdown), so the
    batch never arrives there.  The flake of stops 33-35, found with CI's example database.
    Open, not fixed: to such a receiver that key is a poison value."""
    maps = (event.fields, event.metrics, event.context.fields if event.context else None)
    return not any(isinstance(m, dict) and "__proto__" in m for m in maps)


@needs_fluent_server
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(events=st.lists(hostile_event().filter(_no_proto_key), min_size=1, max_size=25))
@example(events=[Event("whole.float", metrics={"m": 4.69455149985125e16, "n": 2.0**60})])
def test_hostile_events_arrive_at_fluent_server_exactly(fluent_peer: StartPeer, events: list[Event]) -> None:
    """The suite's hostile events through the npm FluentServer: each once, every value as sent."""
    peer = fluent_peer()
    pipeline = fluent(peer)
    log_all(events)
    # Flaked under load ("closed the connection before the ack"): the server says why.
    assert eventlog.flush(20), peer.diagnostics()
    entries = peer.wait_for(lambda e: len(e) >= len(events))
    assert Counter(e["record"]["id"] for e in entries) == Counter(str(event.id) for event in events)
    records = {e["record"]["id"]: e["record"] for e in entries}
    for event in events:
        wire, record = to_wire(event, {}), records[str(event.id)]
        for key in ("action", "message", "target", "tags"):
            assert record.get(key) == wire.get(key), key
        for element in ("fields", "metrics"):
            sent = {k: v for k, v in (wire.get(element) or {}).items() if _js_exact(v)}
            got = {k: _as_sent(v, sent[k]) for k, v in (record.get(element) or {}).items() if k in sent}
            assert got == sent, element
    assert pipeline.stats.sent == len(events)
