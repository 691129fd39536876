"""The syslog formatter and transport against a real rsyslogd (tcp, udp, tls on loopback).

rsyslogd parses every message with its RFC 5424 parser and its structured-data
parser (mmpstrucdata); the tests read what it wrote and compare it with the
events sent, field by field.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import socket
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog
from eventlog import ConfigurationError, Event
from eventlog._builtin.syslog import (
    _CONTROL as CONTROL,
)
from eventlog._builtin.syslog import (
    _PICTURES as PICTURES,
)
from eventlog._builtin.syslog import (
    SyslogFormatter,
    SyslogTransport,
    original_key,
    unframe,
)
from eventlog._records.schema import FIELDS_BY_NAME, LEVEL_NAMES
from eventlog._records.wire import to_wire
from eventlog.plugin import Record
from eventlog.plugin.testing import FormatterConformance, TransportConformance, closed_port
from eventlog.plugin.testing import make_local_ca as make_ca
from tests.peers.rsyslog import (  # noqa: F401
    Rsyslog,
    default_rsyslog_server,
    event_id,
    rsyslog_peer,
    rsyslog_server,
)
from tests.peers.syslog_ng import SyslogNg, syslog_ng_peer, syslog_ng_server  # noqa: F401
from tests.peers.syslog_ng import event_id as ng_event_id
from tests.test_spool_props import any_text, hostile_event

PEN = "32473"


def _configure(server: Rsyslog, proto: str, **settings: Any) -> eventlog.Pipeline:
    if proto == "tls":
        settings.setdefault("syslog_tls_ca", str(server.ca.ca_cert))
    return eventlog.configure(
        transport="syslog",
        host="127.0.0.1",
        port=server.ports[proto],
        syslog_protocol=proto,
        **settings,
    )


def keyed(sd: dict[str, dict[str, str]], element: str) -> dict[str, str]:
    """An SD element's params by the keys they were made from (keys@ maps hashed names)."""
    keys = sd.get(f"keys@{PEN}", {})
    return {original_key(name, keys): value for name, value in sd.get(f"{element}@{PEN}", {}).items()}


def _by_id(rows: list[dict[str, Any]], events: list[Event]) -> dict[str, dict[str, Any]]:
    """The written row of each event, after checking that each arrived exactly once."""
    ids = {e.id for e in events}
    counts = Counter(event_id(row) for row in rows if event_id(row) in ids)
    assert counts == Counter({e.id: 1 for e in events})
    return {str(event_id(row)): row for row in rows if event_id(row) in ids}


LEVELS = [  # level, RFC 5424 severity
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
    (logging.DEBUG, 7),
    (eventlog.TRACE, 7),
    (None, 6),
]


@pytest.mark.parametrize("proto", ["tcp", "udp", "tls"])
def test_each_event_arrives_once_with_its_header_and_structured_data(rsyslog: Rsyslog, proto: str) -> None:
    pipeline = _configure(rsyslog, proto, syslog_facility="local3", syslog_app_name="shop")
    sent = [
        Event(
            "order.create",
            f"o-{i}",
            "order",
            level=level,
            message=f"order {i} by {proto}",
            tags=["web", 'say "hi"'],
            fields={"n": i, "sku": "A-1", "price": 2.5},
            metrics={"ms": 12},
        )
        for i, (level, _) in enumerate(LEVELS)
    ]
    for event in sent:
        eventlog.log_event(event)
    assert eventlog.flush(10)
    rows = _by_id(rsyslog.wait_for(proto, {e.id for e in sent}), sent)
    for i, (event, (level, sev)) in enumerate(zip(sent, LEVELS)):
        row = rows[event.id]
        assert row["protocol_version"] == "1"
        assert (row["facility"], row["severity"]) == ("19", str(sev))  # local3 is 19
        assert row["pri"] == str(19 * 8 + sev)
        assert row["hostname"] == socket.gethostname()
        assert row["app_name"] == "shop"
        assert row["procid"] == str(os.getpid())
        assert row["msgid"] == "order.create"
        assert row["msg"] == f"order {i} by {proto}"
        expected = {
            "id": event.id,
            "action": "order.create",
            "target": f"o-{i}",
            "tgType": "order",
            "tags": '["web","say \\"hi\\""]',
            "thread": "MainThread",
        }
        if level is not None:
            expected |= {"level": str(level), "levelName": LEVEL_NAMES[level]}
        assert row["sd"][f"eventlog@{PEN}"] == expected
        assert row["sd"][f"fields@{PEN}"] == {"n": str(i), "sku": "A-1", "price": "2.5"}
        assert row["sd"][f"metrics@{PEN}"] == {"ms": "12"}
    assert pipeline.stats.sent == len(sent)
    assert pipeline.stats.dropped_by_reason() == {}


def test_log_records_map_their_level_to_the_severity(rsyslog: Rsyslog) -> None:
    _configure(rsyslog, "tcp")
    logger = logging.getLogger("test.syslog.records")
    logger.propagate = False
    handler = eventlog.EventHandler()
    logger.addHandler(handler)
    try:
        logger.error("disk %s is full", "/var")
        logger.warning("low on %s", "memory")
    finally:
        logger.removeHandler(handler)
    assert eventlog.flush(10)
    wanted = {"disk /var is full": "3", "low on memory": "4"}

    def ours(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [row for row in rows if row["msg"] in wanted]

    rows = ours(rsyslog.wait_until("tcp", lambda rows: len(ours(rows)) >= 2))
    assert {r["msg"]: r["severity"] for r in rows} == wanted
    assert {r["msg"]: r["msgid"] for r in rows} == {
        "disk /var is full": "log.error",
        "low on memory": "log.warning",
    }
    assert {r["facility"] for r in rows} == {"1"}  # user, the default
    assert {r["sd"][f"eventlog@{PEN}"]["codeFunc"] for r in rows} == {
        "test_log_records_map_their_level_to_the_severity"
    }


HOSTILE_FIELDS = {"k=1": 'v]"\\', "sp ace": "a\nb", "üa": "ü", "x" * 40: "long key", "b]": 1}


@pytest.mark.parametrize("proto", ["tcp", "udp", "tls"])
def test_hostile_values_keep_the_framing_and_arrive_exactly(rsyslog: Rsyslog, proto: str) -> None:
    _configure(rsyslog, proto, syslog_app_name="hostile")
    action = 'evil action]\n"é' + "x" * 100
    message = 'line1\nline2 ] " \\ \u2603\n57 <14>1 - - - - - - injected\r\n\tend'
    hostile = Event(
        action,
        'a]b"c\\d\n e',
        "ü" * 50,
        level=logging.ERROR,
        message=message,
        tags=["t]1", 't"2', "t\\3"],
        fields=HOSTILE_FIELDS,
    )
    hostile.host = "bad host\nname-ü" + "h" * 300
    after = Event("after.hostile", message="still framed")
    eventlog.log_event(hostile)
    eventlog.log_event(after)
    assert eventlog.flush(10)
    rows = _by_id(rsyslog.wait_for(proto, {str(hostile.id), str(after.id)}), [hostile, after])
    row = rows[str(hostile.id)]
    assert row["hostname"] == ("bad_host_name-_" + "h" * 300)[:255]
    assert row["msgid"] == 'evil_action]_"_' + "x" * 17  # printable ASCII only, 32 long
    assert row["msg"] == message.replace("\r", "\u240d")  # a control picture, see test_control_...
    assert row["severity"] == "3"
    sd = row["sd"][f"eventlog@{PEN}"]
    assert (sd["action"], sd["target"], sd["tgType"]) == (action, 'a]b"c\\d\n e', "ü" * 50)
    assert sd["tags"] == '["t]1","t\\"2","t\\\\3"]'
    assert keyed(row["sd"], "fields") == {k: str(v) for k, v in HOSTILE_FIELDS.items()}
    assert rows[str(after.id)]["msg"] == "still framed"
    assert rows[str(after.id)]["msgid"] == "after.hostile"


def test_a_huge_message_arrives_whole_over_tcp(rsyslog: Rsyslog) -> None:
    # Beyond the default limit (8192 bytes); the test's rsyslogd takes 1 MiB.
    _configure(rsyslog, "tcp", syslog_max_message_bytes=1 << 20)
    huge = Event("huge", message="0123456789" * 20_000, fields={"big": "y" * 10_000})
    after = Event("after.huge")
    eventlog.log_event(huge)
    eventlog.log_event(after)
    assert eventlog.flush(10)
    rows = _by_id(rsyslog.wait_for("tcp", {str(huge.id), str(after.id)}), [huge, after])
    assert rows[str(huge.id)]["msg"] == "0123456789" * 20_000
    assert rows[str(huge.id)]["sd"][f"fields@{PEN}"] == {"big": "y" * 10_000}
    # An event without a message has no MSG part at all.
    assert rows[str(after.id)]["raw"].endswith(f'id="{after.id}" action="after.huge" thread="MainThread"]')


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_an_oversized_message_is_cut_to_fit_counted_and_the_rest_sent(rsyslog: Rsyslog, proto: str) -> None:
    pipeline = _configure(rsyslog, proto, syslog_max_message_bytes=1000)
    before, after = Event("small.one", message="a"), Event("small.two", message="b")
    big = Event("too.big", message="é" * 2000)
    for event in (before, big, after):
        eventlog.log_event(event)
    assert eventlog.flush(10)
    sent = [before, big, after]
    rows = _by_id(rsyslog.wait_for(proto, {str(e.id) for e in sent}), sent)
    assert [rows[str(e.id)]["msg"] for e in (before, after)] == ["a", "b"]
    cut = rows[str(big.id)]
    assert len(cut["raw"].encode()) <= 1000 and cut["msg"] == "é" * len(cut["msg"])  # whole characters
    assert len(cut["raw"].encode()) > 990  # as much as fits
    assert pipeline.stats.converted == {"truncated": 1}
    assert pipeline.stats.dropped_by_reason() == {}
    assert pipeline.stats.sent == 3


def test_the_tcp_transport_carries_the_syslog_format_as_it_is(rsyslog: Rsyslog) -> None:
    # The payloads are octet-counted frames, so any stream transport can carry them.
    eventlog.configure(transport="tcp", format="syslog", host="127.0.0.1", port=rsyslog.ports["tcp"])
    sent = [Event("via.tcp", str(i), message=f"m\n{i}") for i in range(20)]
    for event in sent:
        eventlog.log_event(event)
    assert eventlog.flush(10)
    rows = _by_id(rsyslog.wait_for("tcp", {str(e.id) for e in sent}), sent)
    assert [rows[str(e.id)]["msg"] for e in sent] == [f"m\n{i}" for i in range(20)]


def test_tls_refuses_a_server_the_ca_did_not_sign(rsyslog: Rsyslog, tmp_path: Path) -> None:
    other = make_ca(tmp_path / "other")
    pipeline = _configure(rsyslog, "tls", syslog_tls_ca=str(other.ca_cert), retry_backoff_max=0.1)
    event = Event("never.sent")
    eventlog.log_event(event)
    assert not eventlog.flush(1)
    assert pipeline.stats.retries >= 1 and pipeline.stats.sent == 0
    eventlog.shutdown(0.1)
    assert not [row for row in rsyslog.read("tls") if event_id(row) == event.id]


# ---------------------------------------------------------------- both receivers

RECEIVERS = ["rsyslog", "syslog_ng"]


def _receiver(request: pytest.FixtureRequest, name: str) -> Rsyslog | SyslogNg:
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def _ids(receiver: Rsyslog | SyslogNg, row: dict[str, Any]) -> str | None:
    return event_id(row) if isinstance(receiver, Rsyslog) else ng_event_id(row)


def _rows(receiver: Rsyslog | SyslogNg, proto: str, events: list[Event]) -> dict[str, dict[str, Any]]:
    """Each event's row, after checking that each arrived exactly once."""
    ids = {str(e.id) for e in events}
    rows = receiver.wait_until(proto, lambda rows: ids <= {_ids(receiver, r) for r in rows})
    counts = Counter(_ids(receiver, row) for row in rows if _ids(receiver, row) in ids)
    assert counts == Counter({e.id: 1 for e in events})
    return {str(_ids(receiver, row)): row for row in rows if _ids(receiver, row) in ids}


COLLIDING = {
    "a=b": "1",
    "a b": "2",
    "a_b": "3",
    "a.b": "4",
    "a%3Db": "5",
    "": "6",
    "é": "7",
    "k" * 40: "8",
    "k" * 40 + "x": "9",
    "k" * 20 + "%~": "10",
}


@pytest.mark.parametrize("receiver_name", RECEIVERS)
def test_distinct_keys_keep_distinct_names_and_every_value_arrives(
    request: pytest.FixtureRequest, receiver_name: str
) -> None:
    receiver = _receiver(request, receiver_name)
    pipeline = eventlog.configure(transport="syslog", host="127.0.0.1", port=receiver.ports["tcp"])
    event = Event("keys", fields=COLLIDING, metrics={"a.b": 1, "a_b": 2})
    eventlog.log_event(event)
    assert eventlog.flush(10)
    row = _rows(receiver, "tcp", [event])[str(event.id)]
    # Every value under its own name, and each name leads back to its key.
    assert keyed(row["sd"], "fields") == COLLIDING
    assert keyed(row["sd"], "metrics") == {"a.b": "1", "a_b": "2"}
    assert len(row["sd"][f"fields@{PEN}"]) == len(COLLIDING)
    assert pipeline.stats.sent == 1


@pytest.mark.parametrize("receiver_name", ["default_rsyslog", "syslog_ng"])
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_the_default_size_is_one_default_receivers_take_and_longer_messages_are_cut(
    request: pytest.FixtureRequest, receiver_name: str, proto: str
) -> None:
    receiver = _receiver(request, receiver_name)
    pipeline = eventlog.configure(
        transport="syslog", host="127.0.0.1", port=receiver.ports[proto], syslog_protocol=proto
    )
    big_text = "0123456789abcdef" * 4096  # 64 KiB: a default syslog-ng dropped the connection
    events = [Event("before", message="a"), Event("big", message=big_text)]
    events += [Event("after", str(i), message="b") for i in range(2)]
    for event in events:
        eventlog.log_event(event)
    assert eventlog.flush(10)
    rows = _rows(receiver, proto, events)
    cut = rows[str(events[1].id)]
    assert 8000 < len(cut["raw"].encode()) <= 8192
    assert big_text.startswith(cut["msg"]) and len(cut["msg"]) > 7000
    assert [rows[str(e.id)]["msg"] for e in events[2:]] == ["b", "b"]
    assert pipeline.stats.sent == 4
    assert pipeline.stats.converted == {"truncated": 1}


@pytest.mark.parametrize("receiver_name", RECEIVERS)
@pytest.mark.parametrize("bom", [False, True])
def test_utf8_messages_with_and_without_a_bom(
    request: pytest.FixtureRequest, receiver_name: str, bom: bool
) -> None:
    receiver = _receiver(request, receiver_name)
    eventlog.configure(transport="syslog", host="127.0.0.1", port=receiver.ports["tcp"], syslog_bom=bom)
    event = Event("utf8", message="Grüße ☃ 𝄞")
    eventlog.log_event(event)
    assert eventlog.flush(10)
    row = _rows(receiver, "tcp", [event])[str(event.id)]
    assert row["raw"].endswith(("\ufeff" if bom else "] ") + "Grüße ☃ 𝄞")
    # RFC 5424 6.4 asks for the BOM; syslog-ng takes it off, rsyslog keeps it as text:
    # why the default is without one.
    kept = bom and isinstance(receiver, Rsyslog)
    assert row["msg"] == ("\ufeff" if kept else "") + "Grüße ☃ 𝄞"


@pytest.mark.parametrize("receiver_name", RECEIVERS)
def test_control_characters_arrive_as_their_pictures_counted(
    request: pytest.FixtureRequest, receiver_name: str
) -> None:
    receiver = _receiver(request, receiver_name)
    pipeline = eventlog.configure(transport="syslog", host="127.0.0.1", port=receiver.ports["tcp"])
    event = Event("controls", message="nul\x00 bel\x07 esc\x1b[31m del\x7f cr\r tab\t lf\nend")
    eventlog.log_event(event)
    assert eventlog.flush(10)
    row = _rows(receiver, "tcp", [event])[str(event.id)]
    assert row["msg"] == "nul\u2400 bel\u2407 esc\u241b[31m del\u2421 cr\u240d tab\t lf\nend"
    assert pipeline.stats.converted == {"control_character": 1}


# ---------------------------------------------------------------- RFC 5424's grammar

_SD_NAME = rb"[\x21-\x7e]{1,32}"
#: RFC 5424 section 6's ABNF as one expression: HEADER SP STRUCTURED-DATA [SP MSG].
RFC5424 = re.compile(
    rb"<(?P<prival>\d{1,3})>(?P<version>[1-9]\d{0,2}) "
    rb"(?P<timestamp>-|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})) "
    rb"(?P<hostname>-|[\x21-\x7e]{1,255}) (?P<app>-|[\x21-\x7e]{1,48}) "
    rb"(?P<procid>-|[\x21-\x7e]{1,128}) (?P<msgid>-|[\x21-\x7e]{1,32}) "
    rb'(?P<sd>-|(?:\[[^\x00-\x20=\]"\x7f-\xff]{1,32}'
    rb'(?: [^\x00-\x20=\]"\x7f-\xff]{1,32}="(?:[^"\\\]]|\\["\\\]])*")*\])+)'
    rb"(?P<msg> .*)?",
    re.S,
)
_ELEMENT = re.compile(rb'\[([^ \]]+)((?: [^=]+="(?:[^"\\\]]|\\["\\\]])*")*)\]', re.S)
_SD_PARAM_NAME = re.compile(rb' ([^=]+)="')


def assert_rfc5424(message: bytes, limit: int) -> None:
    """``message`` against RFC 5424's grammar, and eventlog's own promises on top of it."""
    assert len(message) <= limit
    found = RFC5424.fullmatch(message)
    assert found, message[:300]
    assert 0 <= int(found["prival"]) <= 191
    assert found["timestamp"] != b"-"
    message.decode("utf-8")  # MSG and PARAM-VALUEs are UTF-8 (no lone surrogate)
    sd_ids = []
    for element in _ELEMENT.finditer(found["sd"]):
        sd_ids.append(element[1])
        names = _SD_PARAM_NAME.findall(re.sub(rb'="(?:[^"\\\]]|\\["\\\]])*"', b'=""', element[2]))
        assert len(names) == len(set(names)), f"a PARAM-NAME twice in {element[1]!r}: {names}"
        assert all(b"." not in name for name in names), "syslog-ng reads a dot as nesting"
    assert len(sd_ids) == len(set(sd_ids)), "an SD-ID twice (RFC 5424 6.3.2)"
    if found["msg"]:
        assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", found["msg"]), "a control character in MSG"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event=hostile_event(),
    limit=st.sampled_from([480, 2048, 8192]),
    bom=st.booleans(),
    extra=st.dictionaries(any_text.filter(lambda key: key not in FIELDS_BY_NAME), any_text, max_size=3),
)
def test_every_message_follows_rfc5424_and_gives_the_event_back(
    event: Event, limit: int, bom: bool, extra: dict[str, str]
) -> None:
    wire = to_wire(event, {})
    for key, value in extra.items():  # what enrichers add, under any name
        wire.setdefault(key, value)
    conversions: dict[str, int] = {}
    formatter = SyslogFormatter(app_name="app", bom=bom, max_message_bytes=limit, conversions=conversions)
    try:
        payload = formatter.format(wire)
    except ValueError as exc:  # only when names alone do not fit: said so, and rare
        assert "cannot" in str(exc) or "fits" in str(exc)
        return
    message = unframe(payload)
    assert_rfc5424(message, limit)
    if conversions.get("truncated"):
        return  # cut to fit: what arrives is checked against the receivers
    back = parse_message(message.replace(b"\xef\xbb\xbf", b"", 1) if bom else message)
    for key in ("fields", "metrics"):  # a long key (mapped in keys@) has its controls as pictures
        arrived_values = {pictures(k): v for k, v in back.get(key, {}).items()}
        assert arrived_values == {pictures(k): pictures(str(v)) for k, v in (wire.get(key) or {}).items()}

    # A lone surrogate (no UTF-8 for it) arrives visible, as \udxxx; all else as it was.
    def visible(text: str) -> str:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    arrived = {pictures(visible(key)): value for key, value in back.items()}
    for key, value in extra.items():
        assert arrived[pictures(visible(key))] == pictures(visible(value))


def pictures(text: str) -> str:
    """``text`` as the formatter sends it: control characters but TAB and LF as pictures."""
    return CONTROL.sub(lambda m: PICTURES[m.group()], text)


def _hostile_batch_arrives(receiver: Rsyslog | SyslogNg, events: list[Event]) -> None:
    """Send ``events`` over TCP with the defaults; each arrives once, every value as sent."""
    pipeline = eventlog.configure(transport="syslog", host="127.0.0.1", port=receiver.ports["tcp"])
    for event in events:
        eventlog.log_event(event)
    assert eventlog.flush(20)
    wires = {str(event.id): to_wire(event, {}) for event in events}  # ids are given at log time
    rows = _rows(receiver, "tcp", events)
    cut = pipeline.stats.converted.get("truncated", 0)
    for event_id_, wire in wires.items():
        row = rows[event_id_]
        message = pictures(wire.get("message") or "")
        if isinstance(receiver, SyslogNg):
            message = message.rstrip("\n")  # syslog-ng drops the newlines that end MSG
        sent = {"message": message}
        got = {"message": row["msg"]}
        for element in ("fields", "metrics"):  # a long key's control characters: pictures
            sent |= {
                f"{element}.{pictures(k)}": pictures(str(v)) for k, v in (wire.get(element) or {}).items()
            }
            got |= {f"{element}.{pictures(k)}": v for k, v in keyed(row["sd"], element).items()}
        sent["action"], got["action"] = pictures(wire["action"]), row["sd"][f"eventlog@{PEN}"]["action"]
        assert got.keys() == sent.keys()
        if cut:  # some event was cut to the size limit: what arrived is the start of each value
            assert all(sent[key].startswith(value) for key, value in got.items())
        else:
            assert got == sent
    assert pipeline.stats.sent == len(events)


_hostile_batches = settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


@_hostile_batches
@given(events=st.lists(hostile_event(), min_size=1, max_size=25))
def test_hostile_events_arrive_whole_at_rsyslog(rsyslog: Rsyslog, events: list[Event]) -> None:
    _hostile_batch_arrives(rsyslog, events)


@_hostile_batches
@given(events=st.lists(hostile_event(), min_size=1, max_size=25))
def test_hostile_events_arrive_whole_at_syslog_ng(syslog_ng: SyslogNg, events: list[Event]) -> None:
    _hostile_batch_arrives(syslog_ng, events)


# ---------------------------------------------------------------- without a peer

WIRE: dict[str, Any] = {
    "id": "01ABC",
    "tstamp": 1764806420123,
    "action": "order.create",
    "target": 'o]"\\1',
    "level": 40,
    "levelName": "ERROR",
    "message": "héllo",
    "fields": {"n": 1},
    "host": "web1",
    "pid": 42,
}
HEAD = (
    '<131>1 2025-12-04T00:00:20.123Z web1 shop 42 order.create [eventlog@32473 id="01ABC" '
    'action="order.create" target="o\\]\\"\\\\1" level="40" levelName="ERROR"]'
    '[fields@32473 n="1"]'
)


def test_the_formatter_writes_one_octet_counted_rfc5424_message() -> None:
    message = (HEAD + " héllo").encode()
    payload = SyslogFormatter(facility=16, app_name="shop").format(WIRE)
    assert payload == b"%d " % len(message) + message
    assert unframe(payload) == message
    with_bom = SyslogFormatter(facility=16, app_name="shop", bom=True).format(WIRE)
    assert unframe(with_bom) == HEAD.encode() + b" \xef\xbb\xbfh\xc3\xa9llo"
    no_message = SyslogFormatter(facility=16, app_name="shop", enterprise_id="1.2").format(
        {k: v for k, v in WIRE.items() if k != "message"}
    )
    assert unframe(no_message) == HEAD.replace("@32473", "@1.2").encode()


@pytest.mark.parametrize(
    ("spec_name", "argv0", "expected"),
    [
        ("pytest.__main__", "/x/pytest/__main__.py", "pytest"),  # python -m pytest
        ("myapp", "/srv/myapp.py", "myapp"),  # python -m myapp
        (None, "/usr/local/bin/gunicorn", "gunicorn"),  # a script: its file's name
        (None, "-c", "python"),  # python -c: no program name to give
        (None, "", "python"),  # the REPL
    ],
)
def test_the_default_app_name_is_the_program_name(
    monkeypatch: pytest.MonkeyPatch, spec_name: str | None, argv0: str, expected: str
) -> None:
    import importlib.machinery
    import sys
    import types

    main = types.ModuleType("__main__")
    main.__spec__ = importlib.machinery.ModuleSpec(spec_name, None) if spec_name else None
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", [argv0])
    assert SyslogFormatter().app_name == expected


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"syslog_facility": "bogus"}, "configure(syslog_facility=...) = 'bogus' is invalid"),
        ({"syslog_facility": "24"}, "or a number 0 to 23"),
        ({"syslog_app_name": "my app"}, "printable ASCII characters without spaces"),
        ({"syslog_app_name": "a" * 49}, "1 to 48 printable"),
        ({"syslog_enterprise_id": "acme"}, "private enterprise number"),
        ({"syslog_protocol": "ssl"}, "choose one of: tcp, tls, udp"),
        (
            {"syslog_tls_ca": "/etc/ssl/certs/ca-certificates.crt"},
            "EVENTLOG_SYSLOG_TLS_CA set, but EVENTLOG_SYSLOG_PROTOCOL = 'tcp'",
        ),
        ({"syslog_max_message_bytes": 479}, "must be 480 bytes or more"),
        (
            {"syslog_protocol": "udp", "syslog_max_message_bytes": 70_000},
            "more than a UDP datagram can carry (65507 bytes)",
        ),
        ({"host": None}, "transport 'syslog' needs the server: set EVENTLOG_HOST"),
        ({"host": "unix:///dev/log"}, "not to a Unix socket"),
        ({"format": "json"}, "transport 'syslog' cannot carry format 'json'"),
    ],
)
def test_bad_settings_say_what_and_which_value(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        eventlog.configure(**{"transport": "syslog", "host": "127.0.0.1", **settings})
    assert error in str(info.value)


@pytest.mark.parametrize(
    ("protocol", "port", "limit"), [("tcp", 514, 8192), ("udp", 514, 8192), ("tls", 6514, 8192)]
)
def test_defaults_per_protocol(protocol: str, port: int, limit: int) -> None:
    pipeline = eventlog.configure(transport="syslog", host="127.0.0.1", syslog_protocol=protocol)
    transport = pipeline._sender.transport
    assert isinstance(transport, SyslogTransport)
    assert (transport.port, transport.max_message_bytes) == (port, limit)
    assert (transport.tls is not None) == (protocol == "tls")


def test_udp_refuses_bytes_that_are_not_one_syslog_message() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        transport = SyslogTransport("127.0.0.1", sock.getsockname()[1], protocol="udp")
        good = SyslogFormatter(app_name="t").format(WIRE)
        records = [Record("1", "a", 0, b'{"json": 1}\n'), Record("2", "a", 0, good)]
        refused = transport.send(records)
        assert [(r.id, reason.split(":")[0]) for r, reason in refused or ()] == [("1", "not_syslog")]
        assert sock.recv(70_000) == unframe(good)
        transport.close()


# ---------------------------------------------------------------- the suites plugins run

_PARAM = re.compile(rb'\s*([^=\s\]"]+)="((?:[^"\\]|\\.)*)"', re.S)
_INTS = ("level", "codeLine")


def parse_message(message: bytes) -> dict[str, Any]:
    """An RFC 5424 message back to wire fields (an independent parser, for the suites)."""
    pri_version, timestamp, host, _app, procid, _msgid, rest = message.split(b" ", 6)
    assert re.fullmatch(rb"<\d{1,3}>1", pri_version), pri_version
    stamp = datetime.datetime.strptime(timestamp.decode(), "%Y-%m-%dT%H:%M:%S.%f%z")
    wire: dict[str, Any] = {"tstamp": int(stamp.timestamp() * 1000)}
    if host != b"-":
        wire["host"] = host.decode()
    if procid != b"-":
        wire["pid"] = int(procid)
    elements: dict[str, dict[str, str]] = {}
    while rest.startswith(b"["):
        sd_id, _, rest = rest[1:].partition(b" ")
        params: dict[str, str] = {}
        while not rest.startswith(b"]"):
            found = _PARAM.match(rest)
            assert found, rest[:80]
            value = re.sub(rb"\\(.)", rb"\1", found.group(2), flags=re.S)
            params[found.group(1).decode()] = value.decode()
            rest = rest[found.end() :]
        rest = rest[1:]
        elements[sd_id.decode().partition("@")[0]] = params
    keys = elements.pop("keys", {})
    for element, params in elements.items():
        # PARAM-NAMEs back to keys (eventlog's own encoding, the one thing not from the RFC).
        params = {original_key(name, keys): value for name, value in params.items()}
        if element == "eventlog":
            wire.update({k: int(v) if k in _INTS else v for k, v in params.items()})
            if "tags" in wire:
                wire["tags"] = json.loads(wire["tags"])
        else:
            wire[element] = params
    if rest:
        assert rest.startswith(b" "), rest[:80]
        wire["message"] = rest[1:].decode()
    return wire


def parse_stream(data: bytes) -> list[dict[str, Any]]:
    """Octet-counted frames back to back, each parsed."""
    wires = []
    while data:
        length, _, data = data.partition(b" ")
        wires.append(parse_message(data[: int(length)]))
        data = data[int(length) :]
    return wires


class TestSyslogFormat(FormatterConformance):
    formatter = "syslog"

    def options(self) -> dict[str, Any]:
        # The round trip of every sample whole; cutting is tested against the receivers.
        return {"syslog_max_message_bytes": 1 << 24}

    def decode(self, payload: bytes) -> dict[str, Any]:
        return parse_message(unframe(payload))

    def decode_stream(self, data: bytes) -> list[dict[str, Any]]:
        return parse_stream(data)

    def decode_batch(self, body: bytes) -> list[dict[str, Any]]:
        return parse_stream(body)  # a batch body is the payloads back to back

    @staticmethod
    def assert_carries(decoded: Mapping[str, Any], wire: Mapping[str, Any]) -> None:
        expected = dict(wire)
        # Maps carry text values; an empty message is no MSG at all; control characters
        # in MSG arrive as their pictures.
        for key in ("fields", "metrics"):
            if key in expected:
                expected[key] = {k: str(v) for k, v in expected[key].items()}
        if expected.get("message") == "":
            del expected["message"]
        elif "message" in expected:
            expected["message"] = CONTROL.sub(lambda m: PICTURES[m.group()], expected["message"])
        FormatterConformance.assert_carries(decoded, expected)


class _RsyslogPeer(TransportConformance):
    transport = "syslog"
    protocol: ClassVar[str]

    @pytest.fixture
    def peer(self, tmp_path: Path) -> Iterator[Rsyslog]:
        # Its own rsyslogd: test_peer_loss stops it.
        yield from rsyslog_peer(tmp_path)

    def settings(self, peer: Rsyslog) -> dict[str, Any]:
        settings = {
            "transport": "syslog",
            "syslog_protocol": self.protocol,
            "host": "127.0.0.1",
            "port": peer.ports[self.protocol],
        }
        if self.protocol == "tls":
            settings["syslog_tls_ca"] = str(peer.ca.ca_cert)
        return settings

    def unreachable_settings(self) -> dict[str, Any]:
        return {
            "transport": "syslog",
            "syslog_protocol": self.protocol,
            "host": "127.0.0.1",
            "port": closed_port(),
            "syslog_tls_verify": False,
        }

    def delivered(self, peer: Rsyslog) -> list[str]:
        return [i for i in map(event_id, peer.read(self.protocol)) if i is not None]

    def stop_peer(self, peer: Rsyslog) -> None:
        peer.stop()

    def restart_peer(self, peer: Rsyslog) -> None:
        peer.start()  # the same configuration: the same ports and output files


class TestSyslogTcp(_RsyslogPeer):
    protocol = "tcp"


class TestSyslogTls(_RsyslogPeer):
    protocol = "tls"


class TestSyslogUdp(_RsyslogPeer):
    protocol = "udp"
    detects_unreachable_peer = False  # a datagram to nowhere is not an error
    detects_peer_loss = False
    batch_sizes = (1, 7, 200)


class _SyslogNgPeer(_RsyslogPeer):
    """The same suite against syslog-ng, a second receiver no one here wrote."""

    @pytest.fixture
    def peer(self, tmp_path: Path) -> Iterator[SyslogNg]:  # type: ignore[override]
        yield from syslog_ng_peer(tmp_path)

    def settings(self, peer: SyslogNg) -> dict[str, Any]:  # type: ignore[override]
        return {
            "transport": "syslog",
            "syslog_protocol": self.protocol,
            "host": "127.0.0.1",
            "port": peer.ports[self.protocol],
        }

    def delivered(self, peer: SyslogNg) -> list[str]:  # type: ignore[override]
        return [i for i in map(ng_event_id, peer.read(self.protocol)) if i is not None]

    def stop_peer(self, peer: SyslogNg) -> None:  # type: ignore[override]
        peer.stop()


class TestSyslogNgTcp(_SyslogNgPeer):
    protocol = "tcp"


class TestSyslogNgUdp(_SyslogNgPeer):
    protocol = "udp"
    detects_unreachable_peer = False
    detects_peer_loss = False
    batch_sizes = (1, 7, 200)
